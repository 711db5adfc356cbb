"""Batch normalisation over the batch, per feature (nn.BatchNorm1d on (N, D)), and per
channel on images (spatial batch norm, nn.BatchNorm2d on (N, C, H, W))."""

from __future__ import annotations

import numpy as np

#: what ``momentum`` means: torch's r = (1 - m) r + m * batch, or cs231n's r = m r + (1 - m) batch
MOMENTUM_CONVENTIONS = ("torch", "cs231n")
#: the batch variance folded into ``running_var``: N/(N-1) times the biased one (torch) or not
RUNNING_VAR_ESTIMATES = ("unbiased", "biased")


class BatchNorm:
    """y = gamma * (x - mu) / sqrt(var + eps) + beta, statistics per feature.

    Training: mu and var are the batch's (var biased, divided by N), and the running
    statistics move towards them. On an image batch (N, C, H, W) the statistics are per
    channel over the N * H * W entries of the channel (axes 0, 2, 3), and N * H * W takes
    N's place everywhere (in the unbiased factor too). Evaluation: mu and var are ``running_mean{k}`` and
    ``running_var{k}``, untouched. At the start gamma = 1, beta = 0, running_mean = 0,
    running_var = 1 (the network sets them).

    Parameters
    ----------
    params, buffers : dict of str to ndarray
        The network's parameters (``gamma{k}``, ``beta{k}``, shape (D,)) and buffers
        (``running_mean{k}``, ``running_var{k}``, shape (D,) or (C,) for images), read
        under this layer's names.
    index : int
        The number of the linear layer before this one.
    momentum : float
        0.1 with torch's convention; 0.9 with cs231n's means the same update.
    momentum_convention : {"torch", "cs231n"}
    running_var : {"unbiased", "biased"}
        torch keeps the unbiased batch variance in ``running_var``; cs231n the biased one.
    eps : float
        Added to the variance inside the square root.
    """

    def __init__(self, params: dict, buffers: dict, index: int, *, momentum: float = 0.1,
                 momentum_convention: str = "torch", running_var: str = "unbiased",
                 eps: float = 1e-5):
        if momentum_convention not in MOMENTUM_CONVENTIONS:
            raise ValueError(f"momentum_convention must be one of "
                             f"{', '.join(MOMENTUM_CONVENTIONS)}, got {momentum_convention!r}")
        if running_var not in RUNNING_VAR_ESTIMATES:
            raise ValueError(f"running_var must be one of {', '.join(RUNNING_VAR_ESTIMATES)}, "
                             f"got {running_var!r}")
        self.params, self.buffers = params, buffers
        self.gamma, self.beta = f"gamma{index}", f"beta{index}"
        self.mean, self.var = f"running_mean{index}", f"running_var{index}"
        # the weight of the new batch statistic in the running average
        self.new_weight = momentum if momentum_convention == "torch" else 1.0 - momentum
        self.unbiased = running_var == "unbiased"
        self.eps = eps
        self.grads: dict[str, np.ndarray] = {}
        self.cache = None

    def _update_running(self, mu: np.ndarray, var: np.ndarray, n: int) -> None:
        # r = (1 - w) r + w * batch statistic; the variance is N/(N-1) var when unbiased
        w = self.new_weight
        batch_var = var * (n / (n - 1)) if self.unbiased else var
        for name, stat in ((self.mean, mu), (self.var, batch_var)):
            r = self.buffers[name]
            r[...] = (1 - w) * r + w * stat

    @staticmethod
    def _axes(x: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The axes the statistics reduce over, and the shape a (D,) vector broadcasts as:
        (0,) and (D,) for (N, D); (0, 2, 3) and (C, 1, 1) for (N, C, H, W)."""
        if x.ndim == 4:
            return (0, 2, 3), (x.shape[1], 1, 1)
        return (0,), (x.shape[1],)

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """(N, D) -> (N, D), or (N, C, H, W) -> (N, C, H, W). Training needs more than one
        value per feature (a variance of one sample is 0)."""
        axes, shape = self._axes(x)
        gamma = self.params[self.gamma].reshape(shape)
        beta = self.params[self.beta].reshape(shape)
        if train:
            n = x.size // x.shape[1]  # N, or N * H * W per channel
            if n < 2:
                raise ValueError(f"batch norm in training mode needs more than one sample "
                                 f"per batch, got a batch of {x.shape[0]}")
            mu = x.mean(axis=axes)
            var = x.var(axis=axes)  # biased: divided by N (N * H * W)
            self._update_running(mu, var, n)
        else:
            mu, var = self.buffers[self.mean], self.buffers[self.var]
        inv_std = (1.0 / np.sqrt(var + self.eps)).reshape(shape)
        xhat = (x - mu.reshape(shape)) * inv_std
        self.cache = (xhat, inv_std, train)
        return gamma * xhat + beta

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, D) -> dx (N, D); dgamma, dbeta (D,) in ``self.grads``.

        dgamma = sum_n dout * xhat;  dbeta = sum_n dout;  dxhat = dout * gamma.
        In training mu and var depend on x too; the chain rule through both collapses to
            dx = (gamma / sigma) / N * (N dxhat - sum_n dxhat - xhat * sum_n (dxhat * xhat))
        with sigma = sqrt(var + eps). In evaluation mu and var are constants: dx = dxhat / sigma.
        """
        xhat, inv_std, train = self.cache
        axes, shape = self._axes(dout)  # images: sums over N, H, W and N * H * W for N
        self.grads = {self.gamma: (dout * xhat).sum(axis=axes), self.beta: dout.sum(axis=axes)}
        dxhat = dout * self.params[self.gamma].reshape(shape)
        if not train:
            return dxhat * inv_std
        n = dout.size // dout.shape[1]
        return (inv_std / n) * (n * dxhat - dxhat.sum(axis=axes, keepdims=True)
                                - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True))

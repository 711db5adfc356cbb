"""Layer normalisation over the features of each row (nn.LayerNorm on (N, D))."""

from __future__ import annotations

import numpy as np


class LayerNorm:
    """y = gamma * (x - mu) / sqrt(var + eps) + beta, statistics per row over its D features.

    The same in training and evaluation (no running statistics). At the start
    gamma = 1, beta = 0 (the network sets them).

    Parameters
    ----------
    params : dict of str to ndarray
        The network's parameters; this layer reads ``gamma{k}`` and ``beta{k}``, shape (D,).
    index : int
        The number of the linear layer before this one.
    eps : float
        Added to the (biased) variance inside the square root.
    """

    def __init__(self, params: dict, index: int, eps: float = 1e-5):
        self.params = params
        self.gamma, self.beta = f"gamma{index}", f"beta{index}"
        self.eps = eps
        self.grads: dict[str, np.ndarray] = {}
        self.cache = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """(N, D) -> (N, D)."""
        mu = x.mean(axis=1, keepdims=True)
        var = x.var(axis=1, keepdims=True)  # biased: divided by D
        inv_std = 1.0 / np.sqrt(var + self.eps)
        xhat = (x - mu) * inv_std
        self.cache = (xhat, inv_std)
        return self.params[self.gamma] * xhat + self.params[self.beta]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, D) -> dx (N, D); dgamma, dbeta (D,) in ``self.grads``.

        Batch norm's backward with the roles of the axes swapped: per row, over D features,
            dx = (1 / sigma) / D * (D dxhat - sum_d dxhat - xhat * sum_d (dxhat * xhat)),
        with dxhat = dout * gamma; dgamma = sum_n dout * xhat, dbeta = sum_n dout.
        """
        xhat, inv_std = self.cache
        self.grads = {self.gamma: (dout * xhat).sum(axis=0), self.beta: dout.sum(axis=0)}
        dxhat = dout * self.params[self.gamma]
        d = dout.shape[1]
        return (inv_std / d) * (d * dxhat - dxhat.sum(axis=1, keepdims=True)
                                - xhat * (dxhat * xhat).sum(axis=1, keepdims=True))

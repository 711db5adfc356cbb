"""Optimizers with torch.optim's update rules, written out by hand.

Each optimizer updates a dict of parameters **in place** from a dict of gradients
with the same keys and shapes, keeping whatever state it needs per parameter (as
torch.optim keeps ``optimizer.state[p]``). Arrays keep their dtype: a float32
parameter stays float32, and so do its buffers.

The rules are those of the pseudo-code in torch.optim's documentation, with the
defaults torch uses here (``dampening=0``, ``amsgrad=False``, ``maximize=False``).
They agree with torch.optim up to rounding: torch fuses some multiply-adds (one
rounding where NumPy makes two), so results differ in the last bit now and then,
never in the rule.
"""

from __future__ import annotations

import math

import numpy as np

#: elements per block of :func:`sub_scaled_`: large enough to amortise NumPy's
#: per-call cost, small enough (128 kB in float32) to stay in cache
BLOCK = 1 << 15


def sub_scaled_(p: np.ndarray, scale: float, g: np.ndarray) -> None:
    """``p -= scale * g`` in place, with no temporary the size of ``p``.

    Large arrays are updated block by block through a small work array; every
    element is rounded exactly as ``p -= scale * g`` rounds it.
    """
    if p.size <= BLOCK or not (p.flags.c_contiguous and g.flags.c_contiguous):
        p -= scale * g
        return
    p_flat, g_flat = p.reshape(-1), g.reshape(-1)  # views
    work = np.empty(BLOCK, dtype=p.dtype)
    for start in range(0, p_flat.size, BLOCK):
        stop = min(start + BLOCK, p_flat.size)
        w = np.multiply(g_flat[start:stop], scale, out=work[:stop - start])
        np.subtract(p_flat[start:stop], w, out=p_flat[start:stop])


class SGD:
    """torch.optim.SGD with dampening 0.

    For each parameter p with gradient g, at step t::

        g <- g + weight_decay * p                     (if weight_decay != 0)
        if momentum != 0:
            b <- g                                    (t = 1)
            b <- momentum * b + g                     (t > 1)
            g <- g + momentum * b                     (nesterov)
            g <- b                                    (otherwise)
        p <- p - lr * g

    Weight decay is added to the gradient of every parameter, biases included.

    Parameters
    ----------
    lr : float
    momentum : float
    nesterov : bool
    weight_decay : float
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.buffers: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every array of ``params`` in place from ``grads`` (same keys, shapes)."""
        for name, p in params.items():
            g = grads[name]
            if self.weight_decay != 0:
                g = g + self.weight_decay * p
            if self.momentum != 0:
                buf = self.buffers.get(name)
                if buf is None:
                    buf = self.buffers[name] = g.copy()
                else:
                    buf *= self.momentum
                    buf += g
                g = g + self.momentum * buf if self.nesterov else buf
            sub_scaled_(p, self.lr, g)  # p -= lr * g


def lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """start <- start + weight * (end - start), in place, rounded as torch.lerp rounds.

    torch uses ``end - (end - start) * (1 - weight)`` when weight >= 0.5, so that
    weight 1 gives ``end`` exactly (Adam with beta1 = 0).
    """
    if weight < 0.5:
        start += weight * (end - start)
    else:
        np.subtract(end, (end - start) * (1 - weight), out=start)


class Adam:
    """torch.optim.Adam: weight decay is an L2 term added to the gradient.

    For each parameter p with gradient g, at its step t (1, 2, ...)::

        g <- g + weight_decay * p                     (if weight_decay != 0)
        m <- beta1 * m + (1 - beta1) * g              (m_0 = 0)
        v <- beta2 * v + (1 - beta2) * g^2            (v_0 = 0)
        m_hat <- m / (1 - beta1^t)
        v_hat <- v / (1 - beta2^t)
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)

    computed as torch computes it: ``denom = sqrt(v) / sqrt(1 - beta2^t) + eps`` and
    ``p <- p - (lr / (1 - beta1^t)) * m / denom``, so eps is added after the square
    root and the bias correction. Weight decay reaches every parameter, biases included.

    Parameters
    ----------
    lr : float
    betas : (float, float)
    eps : float
    weight_decay : float
    """

    #: AdamW sets this: decay the parameter itself instead of adding an L2 gradient
    decoupled = False

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.steps: dict[str, int] = {}
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    @property
    def t(self) -> int:
        """Steps taken so far (torch counts them per parameter; here they move together)."""
        return max(self.steps.values(), default=0)

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every array of ``params`` in place from ``grads`` (same keys, shapes)."""
        for name, p in params.items():
            g = grads[name]
            t = self.steps[name] = self.steps.get(name, 0) + 1
            if self.weight_decay != 0:
                if self.decoupled:
                    p *= 1 - self.lr * self.weight_decay  # AdamW: shrink p itself
                else:
                    g = g + self.weight_decay * p  # Adam: L2 term in the gradient
            if name not in self.m:
                self.m[name] = np.zeros_like(p)
                self.v[name] = np.zeros_like(p)
            m, v = self.m[name], self.v[name]
            lerp_(m, g, 1 - self.beta1)  # m <- beta1 m + (1 - beta1) g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            bias_correction1 = 1 - self.beta1 ** t
            bias_correction2_sqrt = math.sqrt(1 - self.beta2 ** t)
            denom = np.sqrt(v) / bias_correction2_sqrt + self.eps
            p -= (self.lr / bias_correction1) * m / denom


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay.

    The same rule as :class:`Adam` without the L2 term; instead, before the moment
    updates, ``p <- p * (1 - lr * weight_decay)``. Every parameter, biases included.
    """

    decoupled = True


def make_optimizer(name: str = "sgd", lr: float = 0.01, momentum: float = 0.0,
                   nesterov: bool = False, betas=(0.9, 0.999), eps: float = 1e-8,
                   weight_decay: float = 0.0):
    """Build the optimizer ``name`` (sgd, adam, adamw) with torch.optim's argument names.

    Arguments that do not apply to ``name`` (momentum for adam, betas for sgd) are ignored.
    """
    if name == "sgd":
        return SGD(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if name == "adam":
        return Adam(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    if name == "adamw":
        return AdamW(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of sgd, adam, adamw")

"""Optimizers with torch.optim's update rules, written out by hand.

Each optimizer updates a dict of parameters in place from a dict of gradients
with the same keys and shapes, keeping whatever state it needs per parameter.
The rules follow the pseudo-code in torch.optim's documentation.
"""

from __future__ import annotations

import numpy as np


class SGD:
    """torch.optim.SGD with dampening 0.

    g <- g + weight_decay * p
    b <- g at the first step, else momentum * b + g
    g <- g + momentum * b (Nesterov) or b (classic), when momentum != 0
    p <- p - lr * g
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.buffers: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        for name, p in params.items():
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * p
            if self.momentum:
                buf = self.buffers.get(name)
                if buf is None:
                    buf = self.buffers[name] = g.copy()
                else:
                    buf *= self.momentum
                    buf += g
                g = g + self.momentum * buf if self.nesterov else buf
            p -= self.lr * g



class Adam:
    """torch.optim.Adam; weight decay is an L2 term added to the gradient.

    g <- g + weight_decay * p
    m <- beta1 m + (1 - beta1) g,   v <- beta2 v + (1 - beta2) g^2
    p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    decoupled = False

    def __init__(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.t = 0
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        bias1 = 1 - self.beta1 ** self.t
        bias2_sqrt = (1 - self.beta2 ** self.t) ** 0.5
        for name, p in params.items():
            g = grads[name]
            if self.weight_decay and self.decoupled:
                p *= 1 - self.lr * self.weight_decay  # AdamW: shrink p itself
            elif self.weight_decay:
                g = g + self.weight_decay * p  # Adam: L2 term in the gradient
            if name not in self.m:
                self.m[name] = np.zeros_like(p)
                self.v[name] = np.zeros_like(p)
            m, v = self.m[name], self.v[name]
            m += (1 - self.beta1) * (g - m)
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            denom = np.sqrt(v) / bias2_sqrt + self.eps
            p -= (self.lr / bias1) * m / denom


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay, p <- p (1 - lr wd) first."""

    decoupled = True


def make_optimizer(name: str = "sgd", lr: float = 0.01, momentum: float = 0.0,
                   nesterov: bool = False, betas=(0.9, 0.999), eps: float = 1e-8,
                   weight_decay: float = 0.0):
    """Build the optimizer ``name`` (sgd, adam, adamw) with torch.optim's argument names."""
    if name == "sgd":
        return SGD(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if name == "adam":
        return Adam(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    if name == "adamw":
        return AdamW(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of sgd, adam, adamw")

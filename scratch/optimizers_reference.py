"""The optimizers' update rules as their textbook formulas, for reading.

:mod:`scratch.optimizers` computes the same rules block by block, in place, with the
rounding chosen to follow torch.optim; it is fast and hard to read. Here each rule is
the few lines of its formula on whole arrays, as :mod:`scratch.reference` is the
readable network beside :mod:`scratch.model`. Both agree to the last few bits, and
both agree with torch.optim (``tests/test_optim_recipes.py``).

Every optimizer updates a dict of parameters in place from a dict of gradients with
the same keys and shapes: ``opt.step(params, grads)``. Weight decay added to the
gradient reaches every parameter (``weight_decay_on="all"``) or the weights ``W{i}``
only (``"weights"``).
"""

from __future__ import annotations

import numpy as np

from scratch.optimizers import decays


class SGD:
    """SGD with momentum (dampening 0), optional Nesterov, and weight decay.

    Parameters
    ----------
    lr, momentum, weight_decay : float
    nesterov : bool
    weight_decay_on : {"all", "weights"}
    """

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0,
                 weight_decay_on="all"):
        self.lr, self.momentum, self.nesterov = lr, momentum, nesterov
        self.weight_decay, self.weight_decay_on = weight_decay, weight_decay_on
        self.velocity: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every array of ``params`` in place from ``grads`` (same keys, shapes)."""
        for name, p in params.items():
            g = grads[name]
            if decays(name, self.weight_decay_on):
                g = g + self.weight_decay * p  # g <- g + lambda p
            if self.momentum:
                b = self.velocity.get(name)
                b = g if b is None else self.momentum * b + g  # b <- mu b + g (b_1 = g)
                self.velocity[name] = b
                g = g + self.momentum * b if self.nesterov else b  # Nesterov: g + mu b
            p -= self.lr * g  # p <- p - lr g


class Adam:
    """Adam: moments of the gradient with bias correction; weight decay as an L2 gradient.

    Parameters
    ----------
    lr, eps, weight_decay : float
    betas : (float, float)
    weight_decay_on : {"all", "weights"}
    """

    #: AdamW: shrink the parameter itself instead of adding to the gradient
    decoupled = False

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 weight_decay_on="all"):
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.weight_decay, self.weight_decay_on = weight_decay, weight_decay_on
        self.t = 0
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every array of ``params`` in place from ``grads`` (same keys, shapes)."""
        self.t += 1
        for name, p in params.items():
            g = grads[name]
            if decays(name, self.weight_decay_on):
                if self.decoupled:
                    p *= 1 - self.lr * self.weight_decay  # AdamW: p <- p (1 - lr lambda)
                else:
                    g = g + self.weight_decay * p  # Adam: g <- g + lambda p
            m = self.m.get(name, 0.0)
            v = self.v.get(name, 0.0)
            m = self.m[name] = self.beta1 * m + (1 - self.beta1) * g  # m <- b1 m + (1-b1) g
            v = self.v[name] = self.beta2 * v + (1 - self.beta2) * g * g  # v <- b2 v + (1-b2) g^2
            m_hat = m / (1 - self.beta1 ** self.t)
            v_hat = v / (1 - self.beta2 ** self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)  # p <- p - lr m^ / (sqrt(v^) + eps)


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay, ``p <- p (1 - lr weight_decay)``."""

    decoupled = True


class RMSprop:
    """RMSprop: divide by the root of a running average of g^2 (eps outside the root).

    Parameters
    ----------
    lr, alpha, eps, momentum, weight_decay : float
    centered : bool
        Subtract the square of the running average of g under the root.
    weight_decay_on : {"all", "weights"}
    """

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, centered=False,
                 weight_decay=0.0, weight_decay_on="all"):
        self.lr, self.alpha, self.eps = lr, alpha, eps
        self.momentum, self.centered = momentum, centered
        self.weight_decay, self.weight_decay_on = weight_decay, weight_decay_on
        self.v: dict[str, np.ndarray] = {}
        self.mean: dict[str, np.ndarray] = {}
        self.buf: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every array of ``params`` in place from ``grads`` (same keys, shapes)."""
        for name, p in params.items():
            g = grads[name]
            if decays(name, self.weight_decay_on):
                g = g + self.weight_decay * p  # g <- g + lambda p
            v = self.v[name] = self.alpha * self.v.get(name, 0.0) + (1 - self.alpha) * g * g
            if self.centered:  # m <- alpha m + (1 - alpha) g; d = sqrt(v - m^2) + eps
                m = self.mean[name] = self.alpha * self.mean.get(name, 0.0) + (1 - self.alpha) * g
                d = np.sqrt(v - m * m) + self.eps
            else:
                d = np.sqrt(v) + self.eps  # d = sqrt(v) + eps
            if self.momentum:
                b = self.buf[name] = self.momentum * self.buf.get(name, 0.0) + g / d
                p -= self.lr * b  # b <- mu b + g / d;  p <- p - lr b
            else:
                p -= self.lr * g / d  # p <- p - lr g / d


class Adagrad:
    """Adagrad: divide by the root of the sum of all past g^2; the rate decays as
    lr / (1 + (t - 1) lr_decay).

    Parameters
    ----------
    lr, lr_decay, initial_accumulator_value, eps, weight_decay : float
    weight_decay_on : {"all", "weights"}
    """

    def __init__(self, lr=0.01, lr_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 weight_decay=0.0, weight_decay_on="all"):
        self.lr, self.lr_decay, self.eps = lr, lr_decay, eps
        self.initial_accumulator_value = initial_accumulator_value
        self.weight_decay, self.weight_decay_on = weight_decay, weight_decay_on
        self.t = 0
        self.sums: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every array of ``params`` in place from ``grads`` (same keys, shapes)."""
        self.t += 1
        lr_t = self.lr / (1 + (self.t - 1) * self.lr_decay)  # lr_t = lr / (1 + (t-1) decay)
        for name, p in params.items():
            g = grads[name]
            if decays(name, self.weight_decay_on):
                g = g + self.weight_decay * p  # g <- g + lambda p
            s = self.sums.get(name, self.initial_accumulator_value)
            s = self.sums[name] = s + g * g  # s <- s + g^2  (s_0 = initial value)
            p -= lr_t * g / (np.sqrt(s) + self.eps)  # p <- p - lr_t g / (sqrt(s) + eps)


#: the optimizers by name, as :data:`scratch.optimizers.OPTIMIZERS` (same arguments)
OPTIMIZERS = {
    "sgd": (SGD, ("lr", "momentum", "nesterov")),
    "adam": (Adam, ("lr", "betas", "eps")),
    "adamw": (AdamW, ("lr", "betas", "eps")),
    "rmsprop": (RMSprop, ("lr", "alpha", "eps", "momentum", "centered")),
    "adagrad": (Adagrad, ("lr", "lr_decay", "initial_accumulator_value", "eps")),
}


def make_optimizer(name: str = "sgd", lr: float = 0.01, **kw):
    """:func:`scratch.optimizers.make_optimizer` with these readable rules."""
    from scratch.optimizers import make_optimizer as make

    return make(name, lr, table=OPTIMIZERS, **kw)

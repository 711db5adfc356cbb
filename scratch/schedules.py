"""Learning-rate schedules and gradient clipping around an optimizer, as torch does them.

A schedule moves the optimizer's ``lr`` after every optimizer step, in torch's order
(``optimizer.step(); scheduler.step()``): step t (1, 2, ...) uses ``lr(t - 1)``, so the
first step uses the base rate ``lr(0)``. Each schedule is written as its closed form in a
comment and computed as torch's ``lr_scheduler`` computes it (from the current rate,
step by step), so that the rates agree bit for bit.

Clipping changes the gradients the optimizer steps with, after the L2-in-loss term and
before any weight decay inside the optimizer (torch: clip between ``backward`` and
``step``).
"""

from __future__ import annotations

import math

import numpy as np

class Constant:
    """lr(t) = lr."""

    def __init__(self, lr: float):
        self.base_lr = lr

    def next(self, lr: float, t: int) -> float:
        return lr


class StepLR(Constant):
    """lr(t) = lr * gamma ** (t // step_size), as torch.optim.lr_scheduler.StepLR."""

    def __init__(self, lr: float, step_size: int = 1, gamma: float = 0.1):
        super().__init__(lr)
        self.step_size, self.gamma = step_size, gamma

    def next(self, lr: float, t: int) -> float:
        return lr * self.gamma if t % self.step_size == 0 else lr


class ExponentialLR(Constant):
    """lr(t) = lr * gamma ** t, as torch.optim.lr_scheduler.ExponentialLR."""

    def __init__(self, lr: float, gamma: float = 0.1):
        super().__init__(lr)
        self.gamma = gamma

    def next(self, lr: float, t: int) -> float:
        return lr * self.gamma


class InverseTime(Constant):
    """lr(t) = lr / (1 + decay * t), as a LambdaLR with ``1 / (1 + decay * t)``."""

    def __init__(self, lr: float, decay: float = 0.0):
        super().__init__(lr)
        self.decay = decay

    def next(self, lr: float, t: int) -> float:
        return self.base_lr * (1.0 / (1.0 + self.decay * t))


class CosineAnnealingLR(Constant):
    """lr(t) = eta_min + (lr - eta_min) * (1 + cos(pi * t / t_max)) / 2, as
    torch.optim.lr_scheduler.CosineAnnealingLR (computed from the previous rate)."""

    def __init__(self, lr: float, t_max: int = 1, eta_min: float = 0.0):
        super().__init__(lr)
        self.t_max, self.eta_min = t_max, eta_min

    def next(self, lr: float, t: int) -> float:
        t_max, eta_min = self.t_max, self.eta_min
        if (t - 1 - t_max) % (2 * t_max) == 0:
            return lr + (self.base_lr - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
        return ((1 + math.cos(math.pi * t / t_max)) / (1 + math.cos(math.pi * (t - 1) / t_max))
                * (lr - eta_min) + eta_min)


#: each schedule's class and the options it takes, by name
SCHEDULES = {
    "none": (Constant, ()),
    "step": (StepLR, ("step_size", "gamma")),
    "inverse_time": (InverseTime, ("decay",)),
    "cosine": (CosineAnnealingLR, ("t_max", "eta_min")),
    "exponential": (ExponentialLR, ("gamma",)),
}


def make_schedule(name: str, lr: float, **options):
    """The schedule ``name`` (a key of :data:`SCHEDULES`) from the base rate ``lr``.

    ``options`` may hold any schedule's parameters (step_size, gamma, decay, t_max,
    eta_min); those the schedule does not take are ignored.
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown lr_schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    cls, takes = SCHEDULES[name]
    return cls(lr, **{k: options[k] for k in takes if k in options})


def clip_grad_norm_(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale every gradient in place so that their global L2 norm is at most ``max_norm``.

    norm = sqrt(sum over parameters of ||g||^2);  g <- g * min(max_norm / (norm + 1e-6), 1),
    as torch.nn.utils.clip_grad_norm_ (the norm of the per-parameter norms, in the
    gradients' dtype). Returns the norm before clipping.
    """
    arrays = list(grads.values())
    dtype = arrays[0].dtype.type
    norms = np.array([np.sqrt(np.dot(g.ravel(), g.ravel())) for g in arrays], dtype=dtype)
    total = np.sqrt(np.dot(norms, norms))
    coef = dtype(1) / (total + dtype(1e-6)) * dtype(max_norm)  # torch: reciprocal, then *
    coef = min(coef, dtype(1))
    for g in arrays:
        g *= coef
    return float(total)


def clip_grad_value_(grads: dict[str, np.ndarray], clip_value: float) -> None:
    """g <- clip(g, -clip_value, clip_value) for every gradient, in place, as
    torch.nn.utils.clip_grad_value_."""
    for g in grads.values():
        np.clip(g, -clip_value, clip_value, out=g)


class Scheduled:
    """An optimizer with clipping before and a schedule after each of its steps.

    ``step(params, grads)`` clips ``grads`` in place (by value, then by global norm,
    whichever is set), steps the optimizer, then sets its ``lr`` to the schedule's next
    rate: step t (1-based) uses lr(t - 1).

    Parameters
    ----------
    optimizer : object with ``lr`` and ``step(params, grads)``
    schedule : one of this module's schedules
    clip_grad_norm, clip_grad_value : float or None
    """

    def __init__(self, optimizer, schedule, clip_grad_norm: float | None = None,
                 clip_grad_value: float | None = None):
        self.optimizer = optimizer
        self.schedule = schedule
        self.clip_grad_norm = clip_grad_norm
        self.clip_grad_value = clip_grad_value
        self.t = 0  # steps taken (torch's ``last_epoch``)

    @property
    def lr(self) -> float:
        return self.optimizer.lr

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Clip, update ``params`` in place, then move the rate."""
        if self.clip_grad_value is not None:
            clip_grad_value_(grads, self.clip_grad_value)
        if self.clip_grad_norm is not None:
            clip_grad_norm_(grads, self.clip_grad_norm)
        self.optimizer.step(params, grads)
        self.t += 1
        self.optimizer.lr = self.schedule.next(self.optimizer.lr, self.t)

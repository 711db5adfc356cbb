"""Named, explained differences a user may accept (``--accept NAME``).

Some differences are known and intended: code that reports its loss clipped at
eps = 1e-7 (Keras' habit) differs from the exact cross-entropy in the loss value only.
Accepting one by name reproduces it on the reference side (the reference, its float64
arbiter and the witnesses), so that everything else is still compared exactly; every
output names what was accepted (the header line ``accepted: ...``), never silently.

:data:`ACCEPTABLE` is the registry: a name, the words every output shows, and the
wrapper that reproduces it on a reference model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.errors import ConfigError


@dataclass(frozen=True)
class Acceptable:
    """One acceptable difference: its name, its words and how a reference reproduces it."""

    name: str
    words: str
    wrap: Callable


class _Delegating:
    """A model that forwards every member to ``inner`` (the reference it changes)."""

    def __init__(self, inner, spec):
        self._inner, self._spec = inner, spec

    def __getattr__(self, name):
        return getattr(self._inner, name)


class ClippedLossReference(_Delegating):
    """The reference with its reported loss -log(clip(p_y, eps, 1 - eps)) (the mean or the
    sum over the batch, as the spec's reduction), gradients and steps unchanged."""

    EPS = 1e-7

    def _clipped(self, x, y) -> float:
        # p = softmax(z); the loss reads p_y clipped into [eps, 1 - eps]
        z = np.asarray(self._inner.forward(x), dtype=np.float64)
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        p = np.clip(np.exp(logp[np.arange(len(y)), y]), self.EPS, 1 - self.EPS)
        per_row = -np.log(p)
        total = per_row.sum() if getattr(self._spec, "loss_reduction", "mean") == "sum" \
            else per_row.mean()
        return float(total)

    def loss_and_grads(self, x, y):
        _, grads = self._inner.loss_and_grads(x, y)
        return self._clipped(x, y), grads

    def train_step(self, x, y):
        value = self._clipped(x, y)
        self._inner.train_step(x, y)
        return value


ACCEPTABLE: dict[str, Acceptable] = {
    "loss-clip-eps": Acceptable(
        "loss-clip-eps",
        "the loss value clipped at eps = 1e-7, -log(clip(p_y, 1e-7, 1 - 1e-7)), reproduced "
        "on the reference side (gradients and steps compared as before)",
        ClippedLossReference),
}


def validate_accept(names) -> tuple[str, ...]:
    """The names as a tuple; a ConfigError naming the unknown one and the choices."""
    if isinstance(names, str):
        names = tuple(n for n in names.split(",") if n)
    names = tuple(names or ())
    for name in names:
        if name not in ACCEPTABLE:
            raise ConfigError(f"`--accept` must name an acceptable difference, one of "
                              f"{', '.join(ACCEPTABLE)}; got {name!r}")
    return names


def accepted(model, spec, names) -> object:
    """``model`` (a reference) reproducing every accepted difference of ``names``."""
    for name in names:
        model = ACCEPTABLE[name].wrap(model, spec)
    return model


def describe(names) -> list[str]:
    """The header line every output shows, or nothing."""
    if not names:
        return []
    return ["accepted: " + "; ".join(f"{n} ({ACCEPTABLE[n].words})" for n in names)]

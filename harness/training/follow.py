"""After one backend's loss became non-finite: does the workload diverge, or only that backend?

When a loss becomes non-finite the comparison stops there, but two correct runs of a
workload that diverges (a learning rate far too large) need not reach infinity at the same
step: float32 rounding decides which overflows first. :func:`follow_on` trains every model
and follower still finite on the run's remaining batches, as the run would have, and notes
the step at which each one *follows*: a loss that is non-finite, that reached
:data:`~harness.training.plausibility.HUGE_LOSS` or :data:`~harness.training.plausibility.GROWTH`
times its first step's. Nothing of that continuation is compared or recorded in the history;
it only says whether the other side diverges too (:func:`workload_diverged`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from harness.training.plausibility import GROWTH, HUGE_LOSS


def exploded(loss: float, first: float | None) -> bool:
    """Whether ``loss`` shows a diverged run: non-finite, huge, or GROWTH times ``first``."""
    if not math.isfinite(loss) or loss >= HUGE_LOSS:
        return True
    return first is not None and math.isfinite(first) and first > 0 and loss >= GROWTH * first


def follow_on(runners: Mapping[str, Any], xs: Mapping[str, np.ndarray], y: np.ndarray,
              schedule: Iterator[tuple[int, int, np.ndarray]],
              firsts: Mapping[str, float]) -> tuple[dict[str, tuple[int, float]], int]:
    """Train ``runners`` on the rest of ``schedule`` until each has diverged or it ends.

    Parameters
    ----------
    runners : dict of str to Classifier
        The models and followers whose losses were still finite.
    xs : dict of str to ndarray of shape (N, d_0)
        Each runner's training inputs in its dtype.
    y : ndarray of int, shape (N,)
    schedule : iterator of (epoch, step, idx)
        The run's remaining batches, in order.
    firsts : dict of str to float
        Each runner's loss at the run's first step (the start :func:`exploded` measures from).

    Returns
    -------
    followed : dict of str to (int, float)
        The runners that diverged: the step and the loss there.
    steps : int
        The steps trained on (the horizon looked at).
    """
    alive = dict(runners)
    followed: dict[str, tuple[int, float]] = {}
    steps = 0
    for _epoch, step, idx in schedule:
        if not alive:
            break
        steps += 1
        for name, model in list(alive.items()):
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                loss = float(model.train_step(xs[name][idx], y[idx]))
            if exploded(loss, firsts.get(name)):
                followed[name] = (step, loss)
                del alive[name]
    return followed, steps


def workload_diverged(error, reference: str, candidate: str) -> bool:
    """Whether ``error`` (a :class:`~harness.errors.NumericalError`) shows the workload
    diverging rather than the candidate: the candidate and, before or after it, the
    reference or one of its correct copies (float64 arbiter, witnesses) diverged."""
    if error is None:
        return False
    diverged = set(getattr(error, "backends", ())) | set(getattr(error, "followed", {}) or {})
    return candidate in diverged and bool(diverged - {candidate})


def followed_clause(followed: Mapping[str, tuple[int, float]], steps: int,
                    stayed: list[str], witnesses: list[str]) -> str:
    """What training the others on found, for the error message: each model that followed
    (step and loss), the witnesses that did in one count, the models that stayed finite."""
    if not followed and not stayed:
        return ""
    models = sorted(((n, v) for n, v in followed.items() if n not in witnesses),
                    key=lambda kv: kv[1][0])
    parts = [f"{name!r} followed at step {step} (loss {loss:.3g})"
             for name, (step, loss) in models]
    gone = sorted(v[0] for n, v in followed.items() if n in witnesses)
    if gone:
        parts.append(f"{len(gone)} of {len(witnesses)} witnesses did, the first at step "
                     f"{gone[0]}")
    if stayed:
        parts.append(" and ".join(repr(n) for n in stayed)
                     + f" stayed finite for the {steps} remaining steps")
    return "; the others, trained on alone on the run's remaining batches: " + ", ".join(parts)

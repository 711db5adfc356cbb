"""After one backend's loss became non-finite: does the workload diverge, or only that backend?

When a loss becomes non-finite the comparison stops there, but two correct runs of a
workload that diverges (a learning rate far too large) need not overflow at the same step:
float32 rounding decides which goes first. :func:`follow_on` trains every model and
follower still finite on the run's remaining batches, as the run would have, and notes the
step at which each one's loss became non-finite too (*followed*), and the first step at
which one that stayed finite had *grown* to :data:`~harness.training.plausibility.GROWTH`
times its first step's loss (or :data:`~harness.training.plausibility.HUGE_LOSS`). Nothing
of that continuation is compared or recorded in the history; it only says whether the other
side diverges too (:func:`workload_diverged`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.training.plausibility import GROWTH, HUGE_LOSS


def grown(loss: float, first: float | None) -> bool:
    """Whether a finite ``loss`` has blown up: HUGE_LOSS, or GROWTH times ``first``."""
    if loss >= HUGE_LOSS:
        return True
    return first is not None and math.isfinite(first) and first > 0 and loss >= GROWTH * first


def follow_on(runners: Mapping[str, Any], xs: Mapping[str, np.ndarray], y: np.ndarray,
              schedule: Iterator[tuple[int, int, np.ndarray]], firsts: Mapping[str, float]
              ) -> tuple[dict[str, tuple[int, float]], dict[str, tuple[int, float]], int]:
    """Train ``runners`` on the rest of ``schedule`` until each is non-finite or it ends.

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
        Each runner's loss at the run's first step (what :func:`grown` measures from).

    Returns
    -------
    followed : dict of str to (int, float)
        The runners whose loss became non-finite: the step and the loss there.
    grew : dict of str to (int, float)
        The others whose loss had grown (:func:`grown`): the first such step and its loss.
    steps : int
        The steps trained on (the horizon looked at).
    """
    alive = dict(runners)
    followed: dict[str, tuple[int, float]] = {}
    grew: dict[str, tuple[int, float]] = {}
    steps = 0
    for _epoch, step, idx in schedule:
        if not alive:
            break
        steps += 1
        for name, model in list(alive.items()):
            try:
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    loss = float(model.train_step(xs[name][idx], y[idx]))
            except (HarnessError, ArithmeticError, ValueError):
                del alive[name]  # a backend that refuses to go on shows nothing either way
                continue
            if not math.isfinite(loss):
                followed[name] = (step, loss)
                del alive[name]
            elif name not in grew and grown(loss, firsts.get(name)):
                grew[name] = (step, loss)
    return followed, {n: v for n, v in grew.items() if n not in followed}, steps


def workload_diverged(error, reference: str, candidate: str) -> bool:
    """Whether ``error`` (a :class:`~harness.errors.NumericalError`) shows the workload
    diverging rather than the candidate: the reference, or one of its correct copies (the
    float64 arbiter, a witness), reached a non-finite loss, at the candidate's step or
    after it, and the candidate did too or, trained on alone after the reference's, grew
    (:func:`grown`). A reference that only grows proves nothing: a correct loss grows
    finitely where a wrong one overflows (a softmax without its max shift)."""
    if error is None:
        return False
    nonfinite = set(getattr(error, "backends", ())) | set(getattr(error, "followed", {}))
    candidate_went = candidate in nonfinite or candidate in getattr(error, "grew", {})
    return candidate_went and bool(nonfinite - {candidate})


def followed_clause(followed: Mapping[str, tuple[int, float]],
                    grew: Mapping[str, tuple[int, float]], stayed: list[str],
                    witnesses: list[str], firsts: Mapping[str, float]) -> str:
    """What training the others on found, for the error message, shortly: the models that
    went non-finite too (and when), the witnesses that did in one count, the models that
    stayed finite to the run's end (and whether their loss grew)."""
    models = sorted(((n, v[0]) for n, v in followed.items() if n not in witnesses),
                    key=lambda kv: kv[1])
    parts = [f"{name!r} at step {step}" for name, step in models]
    gone = sorted(v[0] for n, v in followed.items() if n in witnesses)
    if gone:
        parts.append(f"{len(gone)} of {len(witnesses)} witnesses (from step {gone[0]})")
    said = f"non-finite too: {', '.join(parts)}" if parts else ""
    for name in stayed:
        said += f"{'; ' if said else ''}{name!r} stayed finite to the run's end"
        if name in grew:
            step, loss = grew[name]
            said += f" (its loss {loss / firsts[name]:.0f} times its start at step {step})"
    return f"; trained on alone: {said}" if said else ""

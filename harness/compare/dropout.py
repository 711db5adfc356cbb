"""What can be compared of a dropout network that draws its own masks.

A class with dropout but without ``set_dropout_masks`` (:mod:`harness.model.masks`) never
drops the same units as the reference, so no training pass of it can be compared entry
by entry: its loss, its gradients, its steps and its running statistics are NOT
CHECKED, and the verdict says so (never PASS). What is compared instead:

* the evaluation pass (``forward``: no dropout), exactly, on the same parameters;
* the training loss over :data:`DRAWS` passes, each with fresh masks, on both sides: the
  two means must agree within :data:`SIGMAS` standard errors of their difference. A
  dropout that is not inverted (its kept units not scaled by 1/(1-p)), that uses p as the
  keep probability (for p != 0.5) or that is left off in training moves the mean loss by
  far more than that; a correct one, whatever masks it draws, does not.
"""

from __future__ import annotations

import math

import numpy as np

from harness.compare.closeness import Comparison, compare
from harness.model.masks import OWN_MASKS_REASON, find_own_masks

#: training passes on each side for the statistical comparison of the loss
DRAWS = 64
#: how many standard errors of the difference of the two mean losses are allowed
SIGMAS = 5.0


def own_masks_reason(reference, candidate, names: tuple[str, str]) -> str | None:
    """Why the training passes cannot be compared (a side draws its own masks), or None."""
    for model, name in zip((reference, candidate), names):
        if find_own_masks(model) is not None:
            return OWN_MASKS_REASON.format(name=name)
    return None


def _losses(model, x, y, n: int) -> np.ndarray:
    buffers = model.get_buffers() if callable(getattr(model, "get_buffers", None)) else None
    out = np.array([float(np.asarray(model.loss_and_grads(x, y)[0]).reshape(()))
                    for _ in range(n)])
    if buffers:  # the passes moved the running statistics: put them back
        model.set_buffers(buffers)
    return out


def mean_loss_row(reference, candidate, x, y, *, draws: int = DRAWS) -> Comparison:
    """The two mean training losses over ``draws`` passes with fresh masks, judged within
    :data:`SIGMAS` standard errors of their difference (the row's ``atol``)."""
    ref = _losses(reference, x, y, draws)
    cand = _losses(candidate, x, y, draws)
    spread = math.sqrt(ref.var(ddof=1) / draws + cand.var(ddof=1) / draws)
    bound = SIGMAS * spread + 1e-12
    scale = max(1.0, abs(float(ref.mean())))
    return compare(f"training loss, mean of {draws} passes with fresh masks",
                   float(cand.mean()), float(ref.mean()), rtol=0.0, atol=bound / scale,
                   scalar=True)


def not_checked_note(reason: str, draws: int = DRAWS) -> str:
    """The note of a comparison whose training passes were not compared."""
    return (f"NOT CHECKED: the training passes (loss, gradients, the step, the running "
            f"statistics): {reason}; compared instead: the evaluation pass, exactly, and the "
            f"mean training loss over {draws} passes with fresh masks, statistically (give "
            f"the class set_dropout_masks to compare every training quantity exactly)")

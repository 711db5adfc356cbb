"""Is an agreement between two backends evidence of anything? Plausibility of a training run.

Two backends that agree step for step are the same computation, but two runs that
both blow up (a learning rate far too large) agree just as well, and a network that
is wrong can score better than the right one. :func:`training_sanity` looks at the
per-step losses (and optionally the final accuracies) of both backends and says
when a verdict needs a warning:

* a loss trajectory **diverged**: a non-finite loss, a loss that grew to
  :data:`GROWTH` times its start, or one that reached :data:`HUGE_LOSS`;
* the candidate's accuracy is at least :data:`ACCURACY_MARGIN` better than the
  reference's while the comparison failed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: a loss that ends (or peaks) at this many times its start has diverged
GROWTH = 100.0
#: a cross-entropy loss this large has diverged whatever it started at
HUGE_LOSS = 1e6
#: a candidate this much more accurate than the reference (absolute, 0..1) is suspicious
ACCURACY_MARGIN = 0.05


@dataclass(frozen=True)
class Sanity:
    """What :func:`training_sanity` found.

    Attributes
    ----------
    reasons : tuple of str
        One sentence per finding; empty when nothing is suspicious.
    """

    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.reasons

    @property
    def reason(self) -> str | None:
        """The findings as one line, or None."""
        return "; ".join(self.reasons) if self.reasons else None


def divergence(losses: Sequence[float]) -> str | None:
    """Why the per-step ``losses`` of one run diverged, or None when they did not.

    Parameters
    ----------
    losses : sequence of float, shape (steps,)
        The batch loss of every step, in order.

    Returns
    -------
    str or None
        ``"loss nan at step 12, 2.3 at the start"``, ``"loss 4.8e+20 at the end, 2.3
        at the start"`` or ``"loss reached 3.1e+07 at step 40, 2.3 at the start"``
        (steps counted from 1); None for a run that did not diverge or has no steps.
    """
    loss = np.asarray(losses, dtype=np.float64).reshape(-1)
    if loss.size == 0:
        return None
    start = loss[0]
    bad = ~np.isfinite(loss)
    if bad.any():
        k = int(np.argmax(bad))
        return f"loss {loss[k]:g} at step {k + 1}, {start:.2g} at the start"
    limit = min(HUGE_LOSS, GROWTH * abs(start)) if start > 0 else HUGE_LOSS
    end = loss[-1]
    if end >= limit:
        return f"loss {end:.2g} at the end, {start:.2g} at the start"
    peak = int(np.argmax(loss))
    if loss[peak] >= limit:
        return f"loss reached {loss[peak]:.2g} at step {peak + 1}, {start:.2g} at the start"
    return None


def training_sanity(reference_losses: Sequence[float], candidate_losses: Sequence[float], *,
                    agreed: bool, reference_accuracy: float | None = None,
                    candidate_accuracy: float | None = None, reference: str = "reference",
                    candidate: str = "candidate") -> Sanity:
    """Whether the verdict of a side-by-side training run means what it says.

    Parameters
    ----------
    reference_losses, candidate_losses : sequence of float, shape (steps,)
        Per-step batch losses of the two backends.
    agreed : bool
        Whether the comparison found the trajectories equal within tolerance.
    reference_accuracy, candidate_accuracy : float, optional
        Final accuracies in [0, 1] (validation if there is a validation set).
    reference, candidate : str
        The backends' names, for the messages.

    Returns
    -------
    Sanity
        Empty when nothing is suspicious. Otherwise, for instance, "both backends
        diverged identically (loss 4.8e+20 at the end, 2.3 at the start): agreement
        here shows nothing".
    """
    reasons = []
    ref, cand = divergence(reference_losses), divergence(candidate_losses)
    if ref is not None and cand is not None:
        how = "identically " if agreed else ""
        what = ref if ref == cand or agreed else f"{reference}: {ref}; {candidate}: {cand}"
        tail = ": agreement here shows nothing" if agreed else ""
        reasons.append(f"both backends diverged {how}({what}){tail}")
    elif ref is not None or cand is not None:
        name, why = (reference, ref) if ref is not None else (candidate, cand)
        reasons.append(f"{name} diverged ({why})")
    if (not agreed and reference_accuracy is not None and candidate_accuracy is not None
            and math.isfinite(reference_accuracy) and math.isfinite(candidate_accuracy)
            and candidate_accuracy - reference_accuracy >= ACCURACY_MARGIN):
        reasons.append(f"{candidate} reaches accuracy {candidate_accuracy:.3f} against "
                       f"{reference}'s {reference_accuracy:.3f} although the trajectories "
                       f"differ: a wrong network can score better; trust the comparison, "
                       f"not the score")
    return Sanity(tuple(reasons))

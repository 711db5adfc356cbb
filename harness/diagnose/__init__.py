"""Why two networks differ: hypotheses tested against the numbers, and where.

After a failed check the runner calls :func:`diagnose` with the configuration and
the batch. It builds a fresh reference and a fresh candidate at the same initial
weights (the user's models and arrays are never touched) and

* tests every hypothesis of :mod:`harness.diagnose.hints` (a summed loss, an L2
  penalty in the loss, probabilities returned as logits, transposed weights, ...),
  keeping the lines of those that hold, each with its evidence and the flags that
  would align the reference;
* for a network given as a list of layers, tests the likely causes of
  :mod:`harness.diagnose.layers` (batch norm's conventions, rerun with the flags that
  would align them; the classic batch-norm, layer-norm and dropout mistakes), and for a
  conv network those of :mod:`harness.diagnose.conv` (a flipped kernel, NHWC data,
  (in, out, kh, kw) weights, asymmetric padding, a stride in the backward, max pool's
  tie rule, average pool's divisor, a flatten in (H, W, C) order, each at its layer);
* localises the difference with crafted weights (:mod:`harness.diagnose.probes`):
  the output layer, the loss, the hidden activation or its derivative, a backward step.

A hypothesis that does not hold prints nothing, so a correct network gets no hint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.diagnose.evidence import Evidence
from harness.diagnose.hints import HYPOTHESES, hypotheses_for
from harness.diagnose.probes import localise

__all__ = ["Diagnosis", "Evidence", "HYPOTHESES", "diagnose", "diagnose_backend",
           "hypotheses_for", "localise"]


@dataclass
class Diagnosis:
    """The hints that hold and the localisation line (``"localised: ..."``), if any."""

    hints: list[str] = field(default_factory=list)
    localised: str | None = None
    #: what was found but does not explain this failure (a latent bug)
    latent: list[str] = field(default_factory=list)
    #: the complete nearby setting under which the candidate passes, and its hint
    passing: object = None
    passing_hint: str | None = None

    @property
    def notes(self) -> list[str]:
        return ([self.localised] if self.localised else []) + list(self.latent)


def diagnose(config, x, y, reference_name: str, candidate_name: str, *,
             builder=None, steps: int = 1, failure: str = "",
             train_batch: int | None = None) -> Diagnosis:
    """Test the hypotheses and localise, for ``candidate_name`` against ``reference_name``.

    Parameters
    ----------
    config : harness.checks.CheckConfig
    x : ndarray (N, d_0), y : ndarray of int (N,)
        The check's batch (copied, never changed).
    reference_name, candidate_name : str
        Backend names as the registry builds them.
    builder : callable, optional
        ``builder(config, name, dtype=None)`` returning a model (the checks layer's
        ``build_model``); default: :func:`harness.model.registry.make_backend`.
    steps : int
        Steps a verifying rerun takes (1 for the equivalence check, a few for training).
    failure : str
        The failed verdict's words (the overflow probe is a cause only where they
        name a non-finite value).
    train_batch : int, optional
        The batch size of the training run diagnosed (the hints quote it).

    Returns
    -------
    Diagnosis
        Empty when the reference itself cannot be run at these weights.
    """
    try:
        ev = Evidence.build(config, reference_name, candidate_name, x, y, builder=builder)
        ev.train_batch = train_batch
        if ev.ref.errors or ev.ref.grads is None or _draws_own_masks(ev):
            return Diagnosis()
    except Exception:  # noqa: BLE001 - a diagnosis never turns a verdict into a crash
        return Diagnosis()
    # the probes craft an MLP's weights: a layer network is localised by its layers
    # (harness.diagnose.localize) and its causes tested by harness.diagnose.layers
    layered = getattr(getattr(config, "spec", None), "is_layered", False)
    from harness.diagnose.verified import verify_and_rank

    hints = hypotheses_for(ev)
    try:
        hints, latent, passing, passing_hint = verify_and_rank(ev, hints, steps=steps,
                                                              failure=failure)
    except Exception:  # noqa: BLE001 - the unverified lines are dropped, never a crash
        hints, latent, passing, passing_hint = [], [], None, None
    return Diagnosis(hints, None if layered else localise(ev), latent, passing, passing_hint)


def _draws_own_masks(ev: Evidence) -> bool:
    """Whether a side draws its own dropout masks: its training passes differ from any
    other's by the masks alone, and no hypothesis tested on them would be verified."""
    from harness.model.masks import find_own_masks

    if not getattr(ev.spec, "has_dropout", False):
        return False
    return any(find_own_masks(ev.fresh(which)) is not None
               for which in ("reference", "candidate"))


def diagnose_backend(config, x, y, name: str, *, builder=None, steps: int = 1,
                     failure: str = "") -> Diagnosis:
    """A backend that failed on its own (the gradient check), against a built-in one.

    Built-in backends are the references and are not diagnosed; a plug-in is compared
    with the ``scratch`` backend at the same weights.
    """
    if ":" not in name:
        return Diagnosis()
    return diagnose(config, x, y, "scratch", name, builder=builder, steps=steps,
                    failure=failure)

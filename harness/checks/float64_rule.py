"""A float32 trajectory too blunt to judge, judged again in float64.

Where float32 amplifies rounding (a large learning rate with momentum on small batches),
correct float32 runs part from float64 early, and by a few hundred steps they no longer
follow one another: a change that starts late (a learning rate cut, a layer frozen after
step 300) hides in that spread and the float32 verdict can only WARN. The same workload in
float64 parts from its witnesses thousands of times later, so its trajectory still judges
the update rule there. :func:`judged_in_float64` reruns it and turns the WARN into a FAIL
where the float64 trajectories part beyond their own spread.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from harness.checks.result import FAIL, WARN
from harness.errors import HarnessError


def _amplified_fail(result, report) -> bool:
    """A float32 FAIL on a finite difference first seen once the run amplified rounding:
    the witnesses sample float32's spread there thinly (a correct class computing its
    softmax another way can part further at a loss spike), so float64 judges it."""
    first = getattr(report, "first_divergence", None)
    amplified = getattr(report, "amplified_step", None)
    return (result.status == FAIL and report.error is None and first is not None
            and amplified is not None and first.step >= amplified
            and math.isfinite(first.difference))


def _reference_overflowed_alone(result, report) -> bool:
    """A float32 FAIL on a numerical failure of the reference alone: its loss became
    non-finite while the candidate, trained on alone, stayed finite without growing
    (:mod:`harness.training.follow`), after agreeing until then. A correct float32 copy
    of an unstable workload can overflow where another does not; whether the candidate
    is the one that is wrong, float64 judges."""
    error = getattr(report, "error", None)
    if result.status != FAIL or error is None or tuple(error.backends) != (report.reference,):
        return False
    if report.candidate not in getattr(error, "stayed", ()) or report.candidate in error.grew:
        return False
    first = report.first_divergence
    return first is None or (first.step == error.step and not math.isfinite(first.difference))


def _rerun(result, rerun: Callable[[], object]):
    """The float64 trajectory report of ``rerun()``, its first divergence step noted in
    ``result.fields``; None (with a note on ``result``) where it could not run."""
    try:
        report64 = rerun()
    except (HarnessError, ValueError, TypeError, ArithmeticError, RuntimeError) as exc:
        result.notes.append(f"the same workload in float64 could not run ({exc}); the "
                            f"float32 verdict stands")
        return None
    first = report64.first_divergence
    result.fields["training_float64_step"] = None if first is None else first.step
    return report64


def judged_in_float64(result, report, rerun: Callable[[], object]):
    """``result`` (a float32 training verdict) judged again where it was blunt.

    A WARN of an amplifying float32 run (``report.amplified_step`` set) is rerun, and so
    is a FAIL first seen after that step on a finite difference: ``rerun()`` gives the
    float64 :class:`~harness.training.trajectory.TrajectoryReport` of the same workload,
    or raises where a backend cannot be built in float64 (then ``result`` stands). For a
    WARN, a float64 divergence makes the verdict a FAIL naming the step, and a float64
    run that agrees adds a note. For such a FAIL, a float64 run that agrees makes it a
    WARN saying so (the float32 difference is rounding the workload amplifies), and one
    that parts keeps the FAIL with its step. A numerical failure (NaN or inf) and a
    FAIL before the run amplified are never rerun. Returns ``result``, changed in place.
    """
    if getattr(report, "arbiter", False) is False or getattr(report, "dtype", "") != "float32":
        return result
    if _amplified_fail(result, report) or _reference_overflowed_alone(result, report):
        return fail_judged_in_float64(result, report, rerun)
    if result.status != WARN or getattr(report, "amplified_step", None) is None:
        return result
    report64 = _rerun(result, rerun)
    if report64 is None:
        return result
    first = report64.first_divergence
    if first is None or report64.error is not None:
        result.notes.append(f"the same workload in float64: {report64.candidate} follows "
                            f"{report64.reference} within the float64 bound"
                            + (" until both stopped" if report64.error is not None else ""))
        return result
    verdict = result.verdicts[0]
    result.verdicts[0] = replace(verdict, status=FAIL, summary=(
        f"the same workload in float64 parts at {first} (the float32 run amplifies "
        f"rounding too much to show it: {verdict.summary})"))
    return result


def fail_judged_in_float64(result, report, rerun: Callable[[], object]):
    """A float32 FAIL on a finite difference first seen once ``report``'s run amplified
    rounding, judged again in float64 (:func:`judged_in_float64`; the drift check's too,
    whose float32 run is judged by the float64 arbiter alike): a WARN where the float64
    trajectory follows the reference, the FAIL kept (with the float64 step) where it
    parts. So is a FAIL on the reference's float32 loss alone becoming non-finite
    (:func:`_reference_overflowed_alone`): a WARN only where the float64 run follows the
    reference to its end with every loss finite, or follows it until both sides' losses
    become non-finite together (the workload diverges; ``diverged_together``). Any other
    result is returned as it is."""
    if _reference_overflowed_alone(result, report):
        return _overflow_judged_in_float64(result, report, rerun)
    if not _amplified_fail(result, report):
        return result
    report64 = _rerun(result, rerun)
    if report64 is None:
        return result
    first = report64.first_divergence
    verdict = result.verdicts[0]
    if first is not None and report64.error is None:
        result.notes.append(f"the same workload in float64 parts too, at {first}")
        return result
    until = " until both stopped" if report64.error is not None else ""
    result.verdicts[0] = replace(verdict, status=WARN, summary=(
        f"{verdict.summary}, where float32 amplifies rounding; in float64 the same workload "
        f"follows the reference within the float64 bound{until}: the float32 difference is "
        f"rounding (run in float64 for a sharp verdict)"))
    return result


def _overflow_judged_in_float64(result, report, rerun: Callable[[], object]):
    report64 = _rerun(result, rerun)
    if report64 is None:
        return result
    together = report64.error is not None and getattr(report64, "diverged_together", False)
    if not together and (report64.first_divergence is not None or report64.error is not None):
        said = (f"parts at {report64.first_divergence}" if report64.error is None
                else f"stops too: {report64.error}")
        result.notes.append(f"the same workload in float64 {said}")
        return result
    in64 = (f"both sides reach a non-finite loss together in float64 (step "
            f"{report64.error.step}), having agreed until then" if together else
            f"in float64 the same workload follows {report64.reference} to the run's end "
            f"with every loss finite")
    verdict = result.verdicts[0]
    result.verdicts[0] = replace(verdict, status=WARN, summary=(
        f"{verdict.summary}; the candidate agreed until then and stayed finite, and "
        f"{in64}: {report.reference}'s float32 overflow is rounding this workload "
        f"amplifies, not the candidate (run in float64 for a sharp verdict)"))
    return result


def cv_judged_in_float64(result, dtype: str, rerun: Callable[[], object]):
    """``result`` (a float32 cross-validation verdict) judged again in float64 where it
    FAILed on agreement: an independent float32 implementation can part from the
    reference's predictions by rounding that the reference's one witness does not show.
    ``rerun()`` gives the float64 CV result of the same folds; where it passes (or
    WARNs), the float32 FAIL becomes a WARN that says so; where it fails too, the FAIL
    stands with the float64 agreement added. A numerical failure is not rerun. Returns
    ``result``, changed in place."""
    if result.status != FAIL or dtype != "float32" or result.report is None:
        return result
    try:
        result64 = rerun()
    except (HarnessError, ValueError, TypeError, ArithmeticError, RuntimeError) as exc:
        result.notes.append(f"the same folds in float64 could not run ({exc}); the float32 "
                            f"verdict stands")
        return result
    agreement = result64.fields.get("cv_agreement")
    said = "" if agreement is None else f" on {agreement:.2%} of the predictions"
    verdict = result.verdicts[0]
    if result64.status == FAIL:
        result.notes.append(f"the same folds in float64 fail too (identical{said})")
        return result
    result.fields["cv_float64_agreement"] = agreement
    result.verdicts[0] = replace(verdict, status=WARN, summary=(
        f"{verdict.summary}; in float64 the same folds agree{said}: the float32 "
        f"disagreement is rounding this workload amplifies (run in float64 for a sharp "
        f"verdict)"))
    return result

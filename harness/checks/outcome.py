"""Shaping a check's report into a :class:`CheckResult`: verdict, summary, flat fields.

One place for each kind of result, used by the runners in :mod:`harness.checks.run`
and by :mod:`harness.testing`, so that a check reads the same wherever it ran.
"""

from __future__ import annotations

import math

from harness.checks.guard import user_frame
from harness.checks.result import (
    FAIL, NOT_CHECKED, PASS, WARN, CheckResult, Finding, Verdict,
)
from harness.compare.excusal import EXCUSED_SHARE_LIMIT as EXCUSED_SHARE
from harness.errors import BackendRaised


def _sci(x) -> str:
    x = float(x)
    return "-" if not math.isfinite(x) else f"{x:.3g}" if x == 0 else f"{x:.2e}"


def _max(values) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return max(vals) if vals else None


def finding_of(exc: BackendRaised) -> Finding:
    """A :class:`Finding` for an exception raised by the code under test."""
    original = exc.original
    frame = user_frame(original)
    where, source = frame if frame is not None else (None, None)
    return Finding(exc.backend, exc.method, type(original).__name__,
                   " ".join(str(original).split()), where, source)


# ------------------------------------------------------------------ results
def equivalence_result(report, *, title: str, seconds: float = 0.0, settings=None,
                       header=(), check: str = "equivalence") -> CheckResult:
    """The :class:`CheckResult` of an :class:`~harness.compare.equivalence.EquivalenceReport`.

    PASS, FAIL, or WARN for a pass that excused more than
    :data:`harness.compare.excusal.EXCUSED_SHARE_LIMIT` of a quantity's entries after the step,
    or NOT CHECKED where the training passes could not be compared (a class that draws
    its own dropout masks); the summary and the flat fields every output shows.
    """
    rows = report.rows
    n_bad = sum(not r.passed for r in rows)
    worst = max((r.max_abs_err for r in rows), default=0.0)
    counted = (f"{sum(r.n_elements for r in rows):,} entries compared, "
               f"{sum(getattr(r, 'n_excused', 0) for r in rows):,} excused")
    first = report.first_failure
    raised = getattr(report, "raised", None)
    findings = [finding_of(raised)] if raised is not None else []
    if raised is not None:  # what was compared before the code under test raised, and why
        summary = (f"the code under test raised: {findings[0]}; after {len(rows)} quantities "
                   f"were compared, {n_bad} differ")
    elif first is None:
        n_steps = getattr(report, "steps", 1)
        how = "one optimizer step" if n_steps == 1 else f"{n_steps} optimizer steps"
        summary = (f"all {len(rows)} quantities agree (parameters, logits, loss, gradients, "
                   f"{how}); {counted}; largest absolute difference "
                   f"{_sci(worst)}")
    else:
        summary = f"{n_bad} of {len(rows)} quantities differ; first: {first.quantity}"
        if getattr(report, "parted", None):
            summary += f"; {report.parted}"
        if report.divergence and report.divergence.get("message"):
            summary += f"; first divergence: {report.divergence['message']}"
    grads = [r for r in rows if r.quantity.startswith("grads[")]
    fields = {
        "equivalence_first_failure": None if first is None else first.quantity,
        "equivalence_max_abs_err": _max(r.max_abs_err for r in rows),
        "equivalence_max_rel_err": _max(r.max_rel_err for r in rows),
        "grad_max_abs_err": _max(r.max_abs_err for r in grads),
        "grad_max_rel_err": _max(r.max_rel_err for r in grads),
        "equivalence_quantities": len(rows),
        "equivalence_entries": sum(r.n_elements for r in rows),
        "equivalence_excused": sum(getattr(r, "n_excused", 0) for r in rows),
        "equivalence_divergence": (report.divergence or {}).get("message"),
    }
    status = PASS if report.passed else FAIL
    not_checked = getattr(report, "not_checked", None)
    if not_checked is not None and first is None and raised is None:
        status = NOT_CHECKED
        summary = (f"the training passes were not compared ({not_checked}); the evaluation "
                   f"pass and the mean training loss over many masks agree; {counted}")
    heavy = getattr(report, "heavily_excused", None)
    if report.passed and heavy:
        status = WARN
        summary += (f"; but more than {EXCUSED_SHARE:.0%} of the entries of "
                    f"{', '.join(heavy)} were excused after the step as rounding noise")
    verdict = Verdict(check, title, status, summary, seconds)
    return CheckResult(check, [verdict], report, settings=dict(settings or {}),
                       fields=fields, findings=findings, header=list(header), seconds=seconds)


def trajectory_result(report, *, title: str, seconds: float = 0.0, settings=None,
                      header=(), notes=(), check: str = "training") -> CheckResult:
    """The :class:`CheckResult` of a :class:`~harness.training.trajectory.TrajectoryReport`.

    PASS, FAIL, or WARN when the trajectories agree but both diverged (agreement
    that shows nothing); a caution also when a failing candidate scores better.
    """
    status = PASS if report.passed else FAIL
    summary = _trajectory_summary(report)
    if getattr(report, "diverged_together", False):
        summary = f"{summary}; {diverged_together_summary(report)}"
    notes = list(notes)
    caution = _training_caution(report) or getattr(report, "amplified_brief", None)
    fields = {**_trajectory_fields("training", report), "training_caution": caution}
    if caution is not None:
        if report.passed:  # agreement, but it shows nothing
            status = WARN
            summary = f"{summary}; but {caution}"
        notes.append(f"{'WARN' if report.passed else 'caution'}: {caution}")
    verdict = Verdict(check, title, status, summary, seconds)
    return CheckResult(check, [verdict], report, settings=dict(settings or {}),
                       fields=fields, notes=notes, header=list(header), seconds=seconds)


def _gradcheck_status(report) -> str:
    status = getattr(report, "status", None)
    if isinstance(status, str) and status in (PASS, FAIL, NOT_CHECKED):
        return status
    return PASS if report.passed else FAIL


def gradcheck_summary(report) -> str:
    """One line: how many entries agree, or which parameters differ, or why nothing was."""
    checked = sum(p.checked for p in report.params)
    kinks = sum(p.kinks for p in report.params)
    total = sum(p.size for p in report.params)
    status = _gradcheck_status(report)
    if status == NOT_CHECKED:
        problem = getattr(report, "arithmetic_problem", None)
        if problem:
            return f"not checked: {problem}"
        unchecked = [p for p in report.params if getattr(p, "verdict", None) == NOT_CHECKED]
        capped = [f"{p.name} ({p.kinks} of {p.checked})" for p in unchecked
                  if getattr(p, "too_many_kinks", False) and p.verified]
        if capped:
            from harness.gradients.gradcheck_report import KINK_SHARE_LIMIT

            return (f"not checked: more than {KINK_SHARE_LIMIT:.0%} of the checked entries "
                    f"skipped as kinks for {', '.join(capped)}, too many to excuse; "
                    f"{checked - kinks} of {checked} checked entries (of {total}) verified")
        names = ", ".join(p.name for p in unchecked) or "the model"
        return (f"not checked: every checked entry of {names} "
                f"sat on a kink; {checked - kinks} of {checked} checked entries (of {total}) "
                f"verified elsewhere")
    if report.passed:
        return (f"{checked - kinks} of {checked} checked entries (of {total}) agree with "
                f"central differences; {kinks} skipped at kinks")
    bad = [p.name for p in report.params if not p.passed]
    return (f"{len(bad)} of {len(report.params)} parameters differ from central differences "
            f"({', '.join(bad)})")


def diverged_together_summary(report) -> str:
    """What a run whose two sides both diverged adds to its numerical failure (still a FAIL:
    the run could not compare what was asked)."""
    return together_clause(report.error, report.reference, report.candidate,
                           "the trajectories agreed until")


def together_clause(error, reference: str, candidate: str, opening: str) -> str:
    """Which side reached a non-finite loss first and when the other followed (or, the
    candidate after the reference, grew)."""
    followed = getattr(error, "followed", {}) or {}
    if {reference, candidate} <= set(error.backends):
        return (f"{opening} both {reference} and {candidate} reached a non-finite loss at "
                f"step {error.step}: both diverged together, the workload and not the "
                f"candidate; lower --lr")
    first = " and ".join(error.backends)
    if candidate in followed or reference in followed:
        name = candidate if candidate in followed else reference
        how = f"at step {followed[name][0]}"
    elif candidate in (getattr(error, "grew", {}) or {}):
        name, (step, loss) = candidate, error.grew[candidate]
        how = f"grew to a loss of {loss:.3g} by step {step}"
    else:  # only the reference's copies followed
        name, (step, _) = min(followed.items(), key=lambda kv: kv[1][0])
        how = f"at step {step}"
    return (f"{opening} {first} reached a non-finite loss at step {error.step}, {name} "
            f"(trained on alone) {how}: both diverged together, the workload and not the "
            f"candidate; lower --lr")


def _trajectory_summary(report) -> str:
    if report.error is not None:
        return f"numerical failure: {report.error}"
    if report.first_divergence is not None:
        return f"first divergence at {report.first_divergence}"
    return (f"within tolerance for all {report.steps} steps; largest loss difference "
            f"{_sci(report.max_loss_diff)}, largest parameter difference "
            f"{_sci(report.max_param_diff)}")


def _training_caution(report) -> str | None:
    """Why a trajectory's verdict may mislead (both diverged; a failing candidate that
    scores better), or None: :func:`harness.training.plausibility.training_sanity` on its history."""
    from harness.training.plausibility import training_sanity

    h = report.history
    steps = h[h["quantity"] == "loss"]
    names = (report.reference, report.candidate)
    losses = [steps.loc[steps["backend"] == b, "value"].to_numpy() for b in names]
    final = report.final
    acc = [final.get(b, {}).get("val_accuracy", final.get(b, {}).get("train_accuracy"))
           for b in names]
    caution = training_sanity(*losses, agreed=report.passed, reference_accuracy=acc[0],
                              candidate_accuracy=acc[1], reference=names[0],
                              candidate=names[1]).reason
    if caution is not None and "diverged" in caution:
        caution += "; lower --lr"
    return caution


def _trajectory_fields(prefix: str, report) -> dict:
    div = report.first_divergence
    step = div.step if div is not None else (report.error.step if report.error is not None
                                             else None)
    message = str(div) if div is not None else (str(report.error) if report.error is not None
                                                else None)
    if prefix == "training":
        return {"training_steps": report.steps, "first_divergence_step": step,
                "training_divergence": message,
                "training_max_loss_diff": report.max_loss_diff,
                "training_max_param_diff": report.max_param_diff}
    return {"drift_steps": report.steps, "drift_max_param_diff": report.max_param_diff,
            "drift_max_loss_diff": report.max_loss_diff}

"""Running the checks: build the backends, prepare the data, run, shape the result.

Each ``run_<check>(config, data)`` returns one :class:`CheckResult`; :func:`run_checks`
runs several in order and returns a :class:`CheckRun`. ``data`` is a
:class:`harness.data.datasets.Dataset` (features not yet standardised): each check prepares
its own rows the way it is documented to (standardised over the rows it uses, a
seeded subset where the configuration asks for one).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from harness.checks.config import CHECKS, CheckConfig
from harness.checks.guard import Guarded
from harness.checks.bench_check import run_bench
from harness.checks.float64_rule import (cv_judged_in_float64, fail_judged_in_float64,
                                         judged_in_float64)
from harness.checks.outcome import (
    _gradcheck_status, diverged_together_summary, _max, _sci, _trajectory_fields,
    _trajectory_summary, equivalence_result, together_clause, finding_of, gradcheck_summary,
    trajectory_result,
)
from harness.checks.result import (FAIL, NOT_CHECKED, PASS, WARN, CheckResult, CheckRun,
                                   Verdict)
from harness.errors import BackendRaised, ConfigError, NumericalError
from harness.training.follow import workload_diverged


# ------------------------------------------------------------------ building
def build_model(config: CheckConfig, name: str, *, dtype: str | None = None,
                init: bool = True):
    """One model of backend ``name`` for ``config`` (another ``dtype`` if given).

    A user's class is wrapped in a :class:`~harness.checks.guard.Guarded`, so that an
    exception it raises becomes a finding. With ``init``, the model starts from
    ``config.init_params`` when they are given.
    """
    from harness.model.registry import make_backend

    cfg = config if dtype is None or dtype == config.spec.dtype else config.with_dtype(dtype)
    model = make_backend(name, cfg.spec, cfg.optimizer, device=cfg.device)
    if ":" in name:
        model = Guarded(model, name)
    if cfg.accept and name == cfg.backends[0]:  # the reference reproduces what is accepted
        from harness.checks.accept import accepted

        model = accepted(model, cfg.spec, cfg.accept)
    if init and cfg.init_params is not None:
        model.set_params(cfg.init_params)
    return model


def build_models(config: CheckConfig, names: Sequence[str] | None = None, *,
                 dtype: str | None = None) -> list:
    """One model per backend name (default: the configuration's), in order."""
    return [build_model(config, n, dtype=dtype) for n in (names or config.backends)]


def build_arbiter(config: CheckConfig, name: str, dtype: str) -> tuple[Any, str | None]:
    """The float64 arbiter of a float32 comparison: ``(model or None, note or None)``.

    Only when ``dtype`` is float32 and the configuration asks for one; the reference
    backend rebuilt in float64 (the comparison copies the reference's weights into it).
    A backend that cannot be built in float64 gives None and a note saying the
    tolerances judged alone.
    """
    if dtype != "float32" or not config.arbiter:
        return None, None
    from harness.errors import HarnessError

    try:
        return build_model(config, name, dtype="float64", init=False), None
    except (HarnessError, ValueError, TypeError) as exc:
        return None, (f"no float64 arbiter: {name} could not be built in float64 "
                      f"({' '.join(str(exc).split())}); float32 tolerances judged alone")


def _threads(config: CheckConfig, rows: int):
    """``config.threads``, else the count that fits a workload of ``rows`` per product."""
    from harness.runtime.threads import default_threads, limit_threads

    n = config.threads if config.threads is not None else default_threads(config.spec.dims,
                                                                          rows)
    return limit_threads(n, backends=config.backends)


# ------------------------------------------------------------------ data
def _shuffled_head(X: np.ndarray, y: np.ndarray, n: int | None):
    """All rows when ``n`` is None, else the first ``n`` of a fixed seeded shuffle."""
    if n is None:
        return X, y
    order = np.random.default_rng(0).permutation(len(y))[:n]
    return X[order].copy(), y[order].copy()


def check_rows(config: CheckConfig, data) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the equivalence and gradient checks: standardised, then a subset."""
    from harness.data.datasets import standardize

    (X,) = standardize(data.X)
    return _shuffled_head(X, data.y, config.check_samples)


def training_rows(config: CheckConfig, data):
    """``(X_train, y_train, X_val, y_val, split)`` of the training trajectory.

    With ``val_fraction`` > 0 a seeded (stratified where possible) part is held out and
    features are standardised with the training part's statistics; else everything
    is standardised together. ``train_samples`` then keeps a seeded subset.
    """
    from harness.data.datasets import split_validation, standardize

    if config.val_fraction > 0:
        X_tr, y_tr, X_va, y_va, stratified = split_validation(
            data.X, data.y, config.val_fraction, config.spec.seed)
    else:
        X_tr, y_tr, X_va, y_va, stratified = data.X, data.y, None, None, False
    if X_va is None:
        (X_tr,) = standardize(X_tr)
    else:
        X_tr, X_va = standardize(X_tr, X_va)
    X_tr, y_tr = _shuffled_head(X_tr, y_tr, config.train_samples)
    split = {"n_train": len(y_tr), "n_val": 0 if y_va is None else len(y_va),
             "val_fraction": config.val_fraction, "stratified": stratified}
    return X_tr, y_tr, X_va, y_va, split


# ------------------------------------------------------------------ findings
def _raised(check: str, title: str, exc: BackendRaised, config: CheckConfig,
            seconds: float, **kw) -> CheckResult:
    finding = finding_of(exc)
    verdict = Verdict(check, title, FAIL, f"the code under test raised: {finding}", seconds)
    return CheckResult(check, [verdict], settings=_settings(config), findings=[finding],
                       header=config.describe(), seconds=seconds, **kw)


def _diagnosed(result: CheckResult, config: CheckConfig, x, y, reference: str | None,
               candidate: str) -> CheckResult:
    """``result`` with the hypotheses that hold (hints, verified and ranked), the
    localisation (notes, field) and the nearby setting that passes (``result.passing``)."""
    from harness.diagnose import diagnose, diagnose_backend

    if reference == candidate:
        return result
    steps, batch = 1, None
    if result.check == "training":  # a few steps; the hints quote the run's batch size
        steps, batch = 3, getattr(config, "batch_size", None)
    failure = " ".join([result.summary, *result.notes])
    with _threads(config, len(y)):
        found = (diagnose_backend(config, x, y, candidate, builder=build_model, steps=steps,
                                  failure=failure)
                 if reference is None
                 else diagnose(config, x, y, reference, candidate, builder=build_model,
                               steps=steps, failure=failure, train_batch=batch))
    result.hints.extend(h for h in found.hints if h not in result.hints)
    if found.localised:  # localised after all: drop the line saying it could not be
        for owner in (result, result.report):
            notes = getattr(owner, "notes", None)
            if isinstance(notes, list):
                notes[:] = [n for n in notes if "no layer-level localisation" not in n]
        result.notes.append(found.localised if reference is not None
                            else f"{candidate}: {found.localised}")
        result.fields.setdefault(f"{result.check}_localised", found.localised)
    result.notes.extend(n for n in found.latent if n not in result.notes)
    if found.passing is not None:
        result.passing, result.passing_hint = found.passing, found.passing_hint
    return result


def _settings(config: CheckConfig, **extra) -> dict:
    return {"backends": list(config.backends), **config.spec.to_dict(),
            "optimizer": config.optimizer.to_dict(), "device": config.device, **extra}


# ------------------------------------------------------------------ checks
def run_equivalence(config: CheckConfig, data) -> CheckResult:
    """Copy the reference's weights into the candidate; compare everything once."""
    from harness.compare.equivalence import check_equivalence

    ref_name, cand_name = config.pair("the equivalence check")
    x, y = check_rows(config, data)
    title = f"Equivalence: {cand_name} against {ref_name}, {config.spec.dtype}"
    t0 = time.perf_counter()
    try:
        with _threads(config, len(y)):
            reference, candidate = build_models(config, (ref_name, cand_name))
            arbiter, arbiter_note = build_arbiter(config, ref_name, config.spec.dtype)
            report = check_equivalence(reference, candidate, x, y, rtol=config.rtol,
                                       atol=config.atol, reference_name=ref_name,
                                       candidate_name=cand_name, arbiter=arbiter,
                                       steps=config.steps, stress=config.stress)
    except BackendRaised as exc:
        return _diagnosed(_raised("equivalence", title, exc, config, time.perf_counter() - t0),
                          config, x, y, ref_name, cand_name)
    result = equivalence_result(report, title=title, seconds=time.perf_counter() - t0,
                                settings=_settings(config, n_samples=len(y)),
                                header=config.describe())
    if arbiter_note:
        result.notes.append(arbiter_note)
    if not result.passed:
        _diagnosed(result, config, x, y, ref_name, cand_name)
    return result


def run_gradcheck(config: CheckConfig, data, names: Sequence[str] | None = None) -> CheckResult:
    """Every named backend's gradients against central finite differences of its loss."""
    from harness.training.batches import epoch_order
    from harness.gradients.finite_diff import gradcheck

    names = tuple(names or config.backends)
    X, y = check_rows(config, data)
    rows = epoch_order(len(y), 0, seed=config.spec.seed)
    if config.gradcheck_samples is not None:
        rows = rows[:config.gradcheck_samples]
    else:
        rows = np.arange(len(y))
    x, y = X[rows], y[rows]
    verdicts, reports, findings = [], {}, []
    t_all = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        title = f"Gradient check: {name}"
        try:
            with _threads(config, len(y)):
                (model,) = build_models(config, (name,))
                report = gradcheck(model, x, y, eps=config.gradcheck_eps,
                                   rtol=config.gradcheck_rtol, atol=config.gradcheck_atol,
                                   max_entries=config.gradcheck_max_entries,
                                   seed=config.spec.seed, name=name,
                                   layers=None if config.spec.layers is None
                                   else config.spec.network.plain(),
                                   activation=config.spec.activation)
        except BackendRaised as exc:
            f = finding_of(exc)
            findings.append(f)
            verdicts.append(Verdict(f"gradcheck:{name}", title, FAIL,
                                    f"the code under test raised: {f}",
                                    time.perf_counter() - t0))
            continue
        reports[name] = report
        verdicts.append(Verdict(f"gradcheck:{name}", title, _gradcheck_status(report),
                                gradcheck_summary(report), time.perf_counter() - t0))
    seconds = time.perf_counter() - t_all
    params = [(n, p) for n, r in reports.items() for p in r.params]
    failed = [(n, p) for n, p in params if not p.passed]
    first = None
    if failed:
        first = f"{failed[0][0]} {failed[0][1].name}" if len(names) > 1 else failed[0][1].name
    elif findings:
        first = f"{findings[0].backend} {findings[0].method}"
    fields = {
        "gradcheck_first_failure": first,
        "gradcheck_max_abs_err": _max(p.max_abs_err for _, p in params),
        "gradcheck_max_rel_err": _max(p.max_rel_err for _, p in params),
        "gradcheck_checked": sum(p.checked for _, p in params),
        "gradcheck_skipped": sum(p.kinks for _, p in params),
    }
    report = reports[names[0]] if len(names) == 1 and reports else (reports or None)
    result = CheckResult("gradcheck", verdicts, report,
                         settings=_settings(config, n_samples=len(y), checked=list(names)),
                         fields=fields, findings=findings, header=config.describe(),
                         seconds=seconds)
    for name, verdict in zip(names, verdicts):
        if not verdict.passed:
            _diagnosed(result, config, x, y, None, name)
    return result


def _trajectory(config: CheckConfig, data, dtype: str, *, tolerances: bool,
                on_epoch: Callable | None = None):
    from harness.training.side_by_side import compare_training
    from harness.training.trajectory import WITNESSES

    ref_name, cand_name = config.pair("a training comparison")
    if ref_name == cand_name:
        ref_name, cand_name = f"{ref_name} (reference)", f"{cand_name} (candidate)"
    X_tr, y_tr, X_va, y_va, split = training_rows(config, data)
    cfg = config.with_dtype(dtype)
    with _threads(config, config.batch_size), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a batch larger than the data: clamped
        reference, candidate = build_models(cfg, config.pair("a training comparison"))
        arbiter, note = build_arbiter(config, config.backends[0], dtype)
        witnesses = [build_model(cfg, config.backends[0], init=False)
                     for _ in range(WITNESSES)]
        report = compare_training(
            reference, candidate, X_tr, y_tr, epochs=config.epochs,
            batch_size=config.batch_size, seed=config.spec.seed, X_val=X_va, y_val=y_va,
            rtol=cfg.rtol if tolerances else None, atol=cfg.atol if tolerances else None,
            shuffle=config.shuffle, reference_name=ref_name, candidate_name=cand_name,
            on_epoch=on_epoch, arbiter=arbiter, witnesses=witnesses)
    if note:
        split["arbiter_note"] = note
    return report, split


def own_masks_result(check: str, title: str, config: CheckConfig,
                     names: Sequence[str]) -> CheckResult | None:
    """NOT CHECKED, with the reason, when one of ``names`` draws its own dropout masks
    (no ``set_dropout_masks``): a training run compares passes mask for mask, which such a
    class cannot follow (:mod:`harness.compare.dropout`); None otherwise."""
    if not config.spec.has_dropout:
        return None
    from harness.compare.dropout import own_masks_reason

    for name in dict.fromkeys(names):
        if ":" not in name:
            continue
        reason = own_masks_reason(build_model(config, name, init=False), None, (name, ""))
        if reason is not None:
            verdict = Verdict(check, title, NOT_CHECKED,
                              f"not run: {reason}; a {check} run compares the training "
                              f"passes mask for mask (give the class set_dropout_masks)")
            return CheckResult(check, [verdict], settings=_settings(config),
                               header=config.describe())
    return None


def run_training(config: CheckConfig, data, *, on_epoch: Callable | None = None) -> CheckResult:
    """Train reference and candidate side by side on identical batches; compare."""
    ref_name, cand_name = config.pair("a training comparison")
    dtype = config.spec.dtype
    title = (f"Training trajectories: {cand_name} against {ref_name}, {dtype}, "
             f"{config.epochs} epochs")
    unmaskable = own_masks_result("training", title, config, (ref_name, cand_name))
    if unmaskable is not None:
        return unmaskable
    t0 = time.perf_counter()
    try:
        report, split = _trajectory(config, data, dtype, tolerances=True, on_epoch=on_epoch)
    except BackendRaised as exc:
        return _diagnosed(_raised("training", title, exc, config, time.perf_counter() - t0),
                          config, *check_rows(config, data), ref_name, cand_name)
    result = trajectory_result(
        report, title=title, seconds=time.perf_counter() - t0,
        settings=_settings(config, **split, epochs=config.epochs, batch_size=config.batch_size),
        header=config.describe(),
        notes=[split["arbiter_note"]] if split.get("arbiter_note") else [])
    judged_in_float64(result, report, lambda: _trajectory(config, data, "float64",
                                                          tolerances=True)[0])
    if not result.passed:
        _diagnosed(result, config, *check_rows(config, data), ref_name, cand_name)
    return result


def run_drift(config: CheckConfig, data) -> CheckResult | None:
    """The training workload again in float32, judged by the float64 arbiter (or the tolerance).

    Only for a float64 configuration (None otherwise): the float64 trajectory says
    whether the update rules agree; this one shows how far float32 rounding carries
    two correct implementations apart on the same workload.
    """
    if config.spec.dtype != "float64":
        return None
    title = "float32 drift: the same workload in float32"
    unmaskable = own_masks_result("drift", title, config, config.pair("a drift run"))
    if unmaskable is not None:
        return unmaskable
    t0 = time.perf_counter()
    try:
        report, split = _trajectory(config, data, "float32", tolerances=False)
    except BackendRaised as exc:
        return _raised("drift", title, exc, config, time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    crossed = [d for d in report.to_dict()["drift"] if d["param_diff_step"] is not None]
    where = (f"; parameter difference first exceeded {crossed[-1]['threshold']:.0e} at step "
             f"{crossed[-1]['param_diff_step']}" if crossed else "")
    status = PASS if report.passed else FAIL
    if report.passed:
        bound = ("the float64 arbiter's bound" if report.arbiter
                 else "the float32 tolerance")
        summary = (f"float32 trajectories stay within {bound} for all "
                   f"{report.steps} steps; largest parameter difference "
                   f"{_sci(report.max_param_diff)}{where}")
        if report.amplified_brief is not None:
            status, summary = WARN, f"{summary}; but {report.amplified_brief}"
    elif report.error is not None:
        summary = _trajectory_summary(report)
        if report.diverged_together:
            summary = f"{summary}; {diverged_together_summary(report)}"
    else:
        summary = (_trajectory_summary(report) + " (the float64 run tells float32 drift "
                   "from a wrong update rule)")
    verdict = Verdict("drift", title, status, summary, seconds)
    result = CheckResult("drift", [verdict], report,
                         settings=_settings(config, **split, dtype="float32"),
                         fields=_trajectory_fields("drift", report),
                         notes=[split["arbiter_note"]] if split.get("arbiter_note") else [],
                         header=config.describe(), seconds=seconds)
    return fail_judged_in_float64(result, report, lambda: _trajectory(
        config, data, "float64", tolerances=True)[0])


def run_cv(config: CheckConfig, data, *, quiet: bool = True,
           on_fold: Callable | None = None, raise_numerical: bool = False,
           witnesses: int = 1) -> CheckResult:
    """k-fold cross-validation of every backend on the same folds.

    A NaN or inf loss makes a FAIL result, or, with ``raise_numerical``, raises the
    :class:`~harness.errors.NumericalError` (a caller that keeps partial results).
    ``witnesses`` of the reference run on every fold; a FAIL on agreement with one is run
    again with :data:`CV_WITNESSES_ON_FAIL` (:func:`_cv_with_more_witnesses`)."""
    from harness.training.cv import cross_validate

    title = f"{config.folds}-fold cross-validation, {config.epochs} epochs per fold"
    unmaskable = (own_masks_result("cv", title, config, config.backends)
                  if len(config.backends) > 1 else None)
    if unmaskable is not None:
        return unmaskable
    t0 = time.perf_counter()
    try:
        with _threads(config, config.batch_size):
            report = cross_validate(
                list(config.backends), data.X, data.y, spec=config.spec,
                optimizer=config.optimizer, folds=config.folds, stratified=config.stratified,
                seed=config.split_seed, epochs=config.epochs, batch_size=config.batch_size,
                shuffle=config.shuffle, device=config.device, class_names=data.class_names,
                quiet=quiet, init_params=config.init_params, on_fold=on_fold,
                wrap=lambda name, m: Guarded(m, name) if ":" in name else m,
                witnesses=witnesses if len(config.backends) > 1 else 0)
    except BackendRaised as exc:
        return _raised("cv", title, exc, config, time.perf_counter() - t0)
    except NumericalError as exc:
        if raise_numerical:
            raise
        seconds = time.perf_counter() - t0
        together = len(config.backends) > 1 and workload_diverged(exc, *config.backends[:2])
        summary = f"numerical failure: {exc}"
        if together:  # still a FAIL (nothing could be compared), said for what it is
            summary += "; " + together_clause(exc, *config.backends[:2], "in that fold")
        verdict = Verdict("cv", title, FAIL, summary, seconds)
        return CheckResult("cv", [verdict], None, settings=_settings(config),
                           fields={"cv_diverged_together": together},
                           header=config.describe(), seconds=seconds, error=str(exc))
    seconds = time.perf_counter() - t0
    report.config["dataset"] = data.name
    multi = len(config.backends) > 1
    agreement = report.agreement_fraction if multi else math.nan
    n = int(report.agreement["n_val"].sum()) if multi else 0
    same = int(report.agreement["n_identical"].sum()) if multi else 0
    summary_rows = report.summary.to_dict("records")
    accs = ", ".join(f"{r['backend']} {r['val_acc_mean']:.4f} ± {r['val_acc_std']:.4f}"
                     for r in summary_rows)
    if not multi or config.min_agreement is None:
        status = PASS
        summary = f"validation accuracy {accs}"
        if multi:
            summary += f"; {same} of {n} validation predictions identical ({agreement:.2%})"
    else:
        passed = bool(agreement >= config.min_agreement)
        status = PASS if passed else FAIL
        summary = (f"validation accuracy {accs}; {same} of {n} validation predictions "
                   f"identical ({agreement:.2%}, {'at least' if passed else 'below'} the "
                   f"{config.min_agreement:.0%} required)")
        witnessed = report.witness_agreement_fraction
        if not passed and witnessed is not None and witnessed >= config.min_agreement and (
                witnesses < CV_WITNESSES_ON_FAIL):
            return _cv_with_more_witnesses(config, data, quiet, witnessed)
        if not passed and _witnesses_part(witnessed, witnesses, config.min_agreement):
            status, summary = _cv_against_witness(agreement, witnessed, n, summary,
                                                  config.backends[0], witnesses)
            if status == FAIL and witnesses < CV_WITNESSES_ON_FAIL:  # one witness is thin
                return _cv_with_more_witnesses(config, data, quiet, witnessed)
    fields = {"cv_agreement": agreement, "cv_n_val": n, "cv_n_identical": same,
              "cv_witness_agreement": report.witness_agreement_fraction if multi else None,
              "cv_max_val_acc_diff": report.max_val_acc_diff if multi else None}
    verdict = Verdict("cv", title, status, summary, seconds)
    result = CheckResult("cv", [verdict], report, settings=_settings(
        config, folds=config.folds, epochs=config.epochs, min_agreement=config.min_agreement),
        fields=fields, header=config.describe(), seconds=seconds)
    return cv_judged_in_float64(result, config.spec.dtype, lambda: run_cv(
        config.with_dtype("float64"), data, quiet=quiet))


#: how many times as often as a witness a candidate may disagree with the reference and
#: still get WARN (correct runs disagree as much) rather than FAIL: one witness samples the
#: spread of correct runs thinly (on the most amplifying workload of the tests the correct
#: pair disagreed 1.25 times as often as the witness did)
CV_WITNESS_FACTOR = 3.0
#: binomial standard errors of the witness's disagreement added to the allowance
CV_WITNESS_SIGMAS = 3.0


def cv_witness_allowance(witnessed: float, n: int) -> float:
    """The most a correct candidate may disagree with the reference, as a share of the
    ``n`` validation predictions, where a witness agreed on ``witnessed`` of them:
    CV_WITNESS_FACTOR times the witness's disagreement, plus CV_WITNESS_SIGMAS binomial
    standard errors of it and one prediction."""
    n = max(n, 1)
    spread = math.sqrt(max(witnessed * (1 - witnessed), 0.0) / n)
    return CV_WITNESS_FACTOR * (1 - witnessed) + CV_WITNESS_SIGMAS * spread + 1.0 / n


#: witnesses a CV FAIL on agreement is run again with when its one witness matched the
#: reference (at least the minimum), or judged it a FAIL against that one witness: one
#: correct run can land close to the reference on a fold where others part as far as the
#: candidate (calibration index 1611: the witness 39 of 40 on the fold where the
#: candidate matched 31, a second witness 30; index 3094: one witness at 97.5%, the
#: furthest of 4 at 85%, the candidate 86.7%)
CV_WITNESSES_ON_FAIL = 4


def _cv_with_more_witnesses(config: CheckConfig, data, quiet: bool,
                            witnessed: float) -> CheckResult:
    """The CV run again with :data:`CV_WITNESSES_ON_FAIL` witnesses (the same folds,
    batches and starts), the one witness's agreement noted."""
    result = run_cv(config, data, quiet=quiet, witnesses=CV_WITNESSES_ON_FAIL)
    result.notes.append(f"run again with {CV_WITNESSES_ON_FAIL} witnesses of "
                        f"{config.backends[0]}: the first one alone matched it on "
                        f"{witnessed:.2%}")
    return result


def _witnesses_part(witnessed: float | None, witnesses: int, minimum: float) -> bool:
    """Whether the witnesses' spread judges a CV below the minimum: a witness below it
    too, or the furthest of :data:`CV_WITNESSES_ON_FAIL` parting from the reference on
    any prediction."""
    return witnessed is not None and (witnessed < minimum or (
        witnesses >= CV_WITNESSES_ON_FAIL and witnessed < 1))


def _cv_against_witness(agreement: float, witnessed: float, n: int, summary: str,
                        reference: str, witnesses: int = 1) -> tuple[str, str]:
    """The rule of a CV below the minimum on a workload where a witness is below it too,
    or where the furthest of :data:`CV_WITNESSES_ON_FAIL` parts from the reference at all
    (calibration index 5557: that witness one prediction of 120 off, the candidate
    two): WARN when the candidate disagrees with the reference about as often as the
    witness does (within :func:`cv_witness_allowance`), FAIL when clearly more often."""
    allowed = cv_witness_allowance(witnessed, n)
    who = ("a witness" if witnesses == 1
           else f"the witnesses, on each fold the furthest of {witnesses},")
    how = (f"{who} of {reference} (one rounding unit apart, batches reordered) matched "
           f"it on {witnessed:.2%}")
    if 1 - agreement <= allowed:
        return WARN, (f"{summary}; but correct runs disagree as much: {how}, so this workload "
                      f"amplifies rounding and its predictions cannot be compared; a smaller "
                      f"learning rate or larger batches make it comparable")
    return FAIL, (f"{summary}; {how}, and the candidate disagrees clearly more often "
                  f"({1 - agreement:.2%} of the predictions, more than the {allowed:.2%} "
                  f"allowed: {CV_WITNESS_FACTOR:g} times the witness's {1 - witnessed:.2%} "
                  f"and {CV_WITNESS_SIGMAS:g} standard errors): not a rounding spread")


_RUNNERS: dict[str, Callable] = {
    "equivalence": run_equivalence, "gradcheck": run_gradcheck, "training": run_training,
    "drift": run_drift, "cv": run_cv, "bench": run_bench,
}


def run_check(check: str, config: CheckConfig, data, **kw) -> CheckResult | None:
    """Run the check named ``check`` (one of :data:`CHECKS`); None when it does not apply."""
    if check not in _RUNNERS:
        raise ConfigError(f"`check` must be one of {', '.join(CHECKS)}, got {check!r}")
    return _RUNNERS[check](config, data, **kw)


def run_checks(config: CheckConfig, data, checks: Sequence[str] = ("equivalence",), *,
               on_result: Callable[[CheckResult], None] | None = None,
               options: dict[str, dict] | None = None) -> CheckRun:
    """Run ``checks`` in :data:`CHECKS` order on ``data``; a :class:`CheckRun`.

    ``on_result`` is called after each check (progress); ``options`` passes keyword
    arguments to a check's runner (e.g. ``{"bench": {"log": print}}``). Checks that
    do not apply (drift in float32, bench without a configuration) are left out.
    """
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise ConfigError(f"`checks` must be among {', '.join(CHECKS)}, got {unknown[0]!r}")
    options = options or {}
    t0 = time.perf_counter()
    results = []
    for check in CHECKS:
        if check not in checks:
            continue
        result = run_check(check, config, data, **options.get(check, {}))
        if result is None:
            continue
        results.append(result)
        if on_result is not None:
            on_result(result)
    return CheckRun(config, results, time.perf_counter() - t0)

"""Assertions for a test suite, in the style of ``numpy.testing`` and ``torch.testing``.

Each assertion runs one check of the harness and raises :class:`HarnessAssertionError`
(an ``AssertionError``) whose message is what ``nn-harness`` prints for that check:
the comparison table, the counts, where the two implementations first part, the
likely causes. It needs no pytest assertion rewriting. On success it returns the
:class:`harness.checks.CheckResult`.

Every model argument is a backend name (``"torch"``, ``"scratch"``,
``"mymod:MyMLP"``), a class constructed as ``Class(spec, optimizer)``, or a model
already built. Names and classes are built with a spec read off a built argument or
inferred from the data (``dims``: features, 32, classes), or given: ``dims=``,
``activation=``, ``dtype=``, ``seed=``, ``optimizer=`` (a name, a dict of
:class:`harness.OptimizerSpec` fields or a spec), and the conventions of the command
line (``loss_reduction=``, ``weight_decay_in=``, ``weight_decay_on=``).

Example
-------
>>> from harness.testing import assert_equivalent
>>> assert_equivalent("torch", "mynet:MyMLP", x, y, activation="tanh")  # doctest: +SKIP
"""

from __future__ import annotations

import time

import numpy as np

from harness.checks.result import FAIL, NOT_CHECKED, PASS, CheckResult, Finding, Verdict
from harness.errors import BackendRaised
from harness.testing import build as _b


class HarnessAssertionError(AssertionError):
    """A failed harness assertion; ``result`` is the :class:`CheckResult` behind it."""

    def __init__(self, result: CheckResult):
        super().__init__(result.text())
        self.result = result


def _sci(x) -> str:
    x = float(x)
    return "-" if not np.isfinite(x) else f"{x:.3g}" if x == 0 else f"{x:.2e}"


def finding_of(exc: BackendRaised) -> Finding:
    """The finding of an exception raised by the code under test (the checks layer's)."""
    from harness.checks.outcome import finding_of as layer_finding

    return layer_finding(exc)


def raised_result(check: str, title: str, exc: BackendRaised, header=(), settings=None,
                  seconds: float = 0.0) -> CheckResult:
    """A FAIL result for code under test that raised."""
    f = finding_of(exc)
    return CheckResult(check, [Verdict(check, title, FAIL, f"the code under test raised: {f}",
                                       seconds)], settings=settings or {}, findings=[f],
                       header=list(header), seconds=seconds)


def equivalence_result(report, *, check: str = "equivalence", title: str, header=(),
                       settings=None, seconds: float = 0.0) -> CheckResult:
    """The checks layer's CheckResult of an :class:`~harness.compare.equivalence.EquivalenceReport`."""
    from harness.checks.outcome import equivalence_result as layer_result

    return layer_result(report, check=check, title=title, header=header, settings=settings,
                        seconds=seconds)


def _check(result: CheckResult) -> CheckResult:
    if not result.passed:
        raise HarnessAssertionError(result)
    return result


def _setup(targets, x, y, *, dims, activation, dtype, seed, optimizer, loss_reduction,
           weight_decay_in, weight_decay_on, layers=None):
    spec = _b.spec_for(targets, x, y, dims=dims, activation=activation, dtype=dtype,
                       seed=seed, loss_reduction=loss_reduction, layers=layers)
    opt = _b.make_optimizer(optimizer, weight_decay_in=weight_decay_in,
                            weight_decay_on=weight_decay_on)
    return spec, opt


def _header(spec, opt) -> list[str]:
    from harness.checks.config import CheckConfig

    return CheckConfig(("scratch",), spec, opt).describe()


def assert_equivalent(reference, candidate, x, y, *, rtol: float | None = None,
                      atol: float | None = None, dims=None, activation: str | None = None,
                      dtype: str | None = None, seed: int = 0, optimizer=None,
                      loss_reduction: str | None = None, weight_decay_in: str | None = None,
                      weight_decay_on: str | None = None, layers=None) -> CheckResult:
    """Assert that ``candidate`` computes what ``reference`` does on the batch ``(x, y)``.

    The candidate gets the reference's parameters; then parameters, logits, loss,
    every gradient, the loss returned by one ``train_step`` and the parameters after
    it are compared (:func:`harness.compare.equivalence.check_equivalence`). In float32, with the
    reference given as a name or a class, it is also rebuilt in float64 and judges as
    the float64 arbiter, as in ``nn-harness check``.

    Parameters
    ----------
    reference, candidate : str, class or Classifier
        Backend names, classes or built models (see the module docstring).
    x : ndarray of shape (N, d_0)
    y : ndarray of int, shape (N,)
    rtol, atol : float, optional
        Both or neither; default by dtype (:data:`harness.compare.equivalence.DEFAULT_TOLERANCES`).
    dims, activation, dtype, seed, optimizer, loss_reduction, weight_decay_in, weight_decay_on
        How names and classes are built (see the module docstring); ``layers`` (a layer
        list such as ``"linear(32),batchnorm,relu,linear(10)"``) instead of ``dims`` and
        ``activation``, its widths from ``x`` and ``y``.

    Returns
    -------
    CheckResult
        The passing result.

    Raises
    ------
    HarnessAssertionError
        Something differs, or the code under test raised; the message is the report.
    """
    from harness.compare.equivalence import check_equivalence

    spec, opt = _setup((reference, candidate), x, y, dims=dims, activation=activation,
                       dtype=dtype, seed=seed, optimizer=optimizer,
                       loss_reduction=loss_reduction, weight_decay_in=weight_decay_in,
                       weight_decay_on=weight_decay_on, layers=layers)
    ref_name, cand_name = _b.short_name(reference), _b.short_name(candidate)
    title = f"Equivalence: {cand_name} against {ref_name}, {spec.dtype}"
    header = _header(spec, opt)
    t0 = time.perf_counter()
    try:
        ref = _b.build(reference, spec, opt)
        cand = _b.build(candidate, spec, opt)
        arbiter, _ = _b.reference_judges(reference, spec, opt, witnesses=0)
        report = check_equivalence(ref, cand, x, y, rtol=rtol, atol=atol,
                                   reference_name=ref_name, candidate_name=cand_name,
                                   arbiter=arbiter)
    except BackendRaised as exc:
        return _check(raised_result("equivalence", title, exc, header,
                                    seconds=time.perf_counter() - t0))
    return _check(equivalence_result(report, title=title, header=header,
                                     settings={"n_samples": len(np.asarray(y))},
                                     seconds=time.perf_counter() - t0))


def assert_gradients_match(model, x, y, *, eps: float | None = None, rtol: float | None = None,
                           atol: float | None = None, max_entries: int | None = 200,
                           autograd: bool | None = None, dims=None,
                           activation: str | None = None, dtype: str | None = None,
                           seed: int = 0, optimizer=None, loss_reduction: str | None = None,
                           layers=None) -> CheckResult:
    """Assert that ``model``'s gradients match central differences (and torch.autograd).

    Parameters
    ----------
    model : str, class or Classifier
    x : ndarray of shape (N, d_0)
    y : ndarray of int, shape (N,)
    eps, rtol, atol, max_entries
        The finite-difference check's half-width, tolerances (both or neither) and
        entries checked per parameter (:func:`harness.gradients.finite_diff.gradcheck`).
    autograd : bool, optional
        Also compare logits, loss and gradients with ``torch.autograd`` on the model's
        own parameters (:func:`harness.gradients.autograd.compare_with_autograd`). Default:
        when torch is available, the activation is known and the loss is the mean.
    dims, activation, dtype, seed, optimizer, loss_reduction
        How a name or class is built.

    Returns
    -------
    CheckResult
        The passing result: one verdict for finite differences, one for autograd.
    """
    from harness.gradients.finite_diff import gradcheck
    from harness.model.conventions import activation_of

    spec, opt = _setup((model,), x, y, dims=dims, activation=activation, dtype=dtype,
                       seed=seed, optimizer=optimizer, loss_reduction=loss_reduction,
                       weight_decay_in=None, weight_decay_on=None, layers=layers)
    name = _b.short_name(model)
    header = _header(spec, opt)
    reports, verdicts, findings = {}, [], []
    t0 = time.perf_counter()
    try:
        built = _b.build(model, spec, opt)
        rep = gradcheck(built, x, y, eps=eps, rtol=rtol, atol=atol, max_entries=max_entries,
                        seed=seed, name=name)
        reports["finite differences"] = rep
        verdicts.append(Verdict("gradcheck", f"Gradient check: {name}",
                                getattr(rep, "status", None) if getattr(rep, "status", None)
                                in (PASS, FAIL, NOT_CHECKED) else
                                (PASS if rep.passed else FAIL), _fd_summary(rep)))
        act = activation or activation_of(built) or (None if _b.is_built(model)
                                                     else spec.activation)
        reduction = getattr(spec, "loss_reduction", "mean")
        if autograd is None:
            autograd = _b.has_torch() and act is not None and reduction == "mean"
        if autograd:
            from harness.gradients.autograd import compare_with_autograd

            auto = compare_with_autograd(built, x, y, activation=act, name=name)
            reports["torch.autograd"] = auto
            verdicts.append(equivalence_result(auto, check="autograd",
                                               title=f"{name} against torch.autograd"
                                               ).verdicts[0])
    except BackendRaised as exc:
        f = finding_of(exc)
        findings.append(f)
        verdicts.append(Verdict("gradcheck", f"Gradient check: {name}", FAIL,
                                f"the code under test raised: {f}"))
    seconds = time.perf_counter() - t0
    result = CheckResult("gradcheck", verdicts, reports or None, findings=findings,
                         header=header, settings={"n_samples": len(np.asarray(y))},
                         seconds=seconds)
    return _check(result)


def _fd_summary(report) -> str:
    """The gradient check's one-line summary (the checks layer's)."""
    from harness.checks.outcome import gradcheck_summary

    return gradcheck_summary(report)


def assert_trains_alike(reference, candidate, X, y, *, epochs: int, batch_size: int = 16,
                        shuffle: bool = True, rtol: float | None = None,
                        atol: float | None = None, dims=None, activation: str | None = None,
                        dtype: str | None = None, seed: int = 0, optimizer=None,
                        loss_reduction: str | None = None, weight_decay_in: str | None = None,
                        weight_decay_on: str | None = None, X_val=None,
                        y_val=None, layers=None) -> CheckResult:
    """Assert that two models trained side by side on identical batches stay together.

    The candidate starts from the reference's parameters; both take ``train_step``
    on the same batches for ``epochs`` epochs (:func:`harness.training.side_by_side.compare_training`);
    a loss or parameter difference beyond the trajectory tolerance fails. In float32,
    with the reference given as a name or a class, the float64 arbiter and two float32
    witnesses judge instead, as in ``nn-harness train`` (:mod:`harness.training.trajectory`).

    Parameters
    ----------
    reference, candidate : str, class or Classifier
        Built models must be fresh (no optimizer state yet).
    X : ndarray of shape (N, d_0)
    y : ndarray of int, shape (N,)
    epochs, batch_size, shuffle
        The training; batches drawn from ``seed``.
    rtol, atol : float, optional
        Base tolerances of the trajectory, both or neither.

    Returns
    -------
    CheckResult
        The passing result (a WARN when both diverged alike passes too).
    """
    from harness.training.side_by_side import compare_training

    spec, opt = _setup((reference, candidate), X, y, dims=dims, activation=activation,
                       dtype=dtype, seed=seed, optimizer=optimizer,
                       loss_reduction=loss_reduction, weight_decay_in=weight_decay_in,
                       weight_decay_on=weight_decay_on, layers=layers)
    ref_name, cand_name = _b.short_name(reference), _b.short_name(candidate)
    if ref_name == cand_name:
        ref_name, cand_name = f"{ref_name} (reference)", f"{cand_name} (candidate)"
    title = f"Training trajectories: {cand_name} against {ref_name}, {epochs} epochs"
    header = _header(spec, opt)
    t0 = time.perf_counter()
    try:
        ref = _b.build(reference, spec, opt)
        cand = _b.build(candidate, spec, opt)
        arbiter, witnesses = _b.reference_judges(reference, spec, opt)
        report = compare_training(ref, cand, X, y, epochs=epochs, batch_size=batch_size,
                                  seed=seed, X_val=X_val, y_val=y_val, rtol=rtol, atol=atol,
                                  shuffle=shuffle, reference_name=ref_name,
                                  candidate_name=cand_name, arbiter=arbiter,
                                  witnesses=witnesses)
    except BackendRaised as exc:
        return _check(raised_result("training", title, exc, header,
                                    seconds=time.perf_counter() - t0))
    return _check(trajectory_result(report, title=title, header=header,
                                    seconds=time.perf_counter() - t0))


def trajectory_result(report, *, check: str = "training", title: str, header=(),
                      seconds: float = 0.0) -> CheckResult:
    """The checks layer's CheckResult of a :class:`~harness.training.trajectory.TrajectoryReport`."""
    from harness.checks.outcome import trajectory_result as layer_result

    return layer_result(report, check=check, title=title, header=header, seconds=seconds)

"""A conformance suite for a ``Classifier`` class, like scikit-learn's ``check_estimator``.

:func:`checks_for` lists the checks of one class (or backend name), each with a
readable id (``gradients-tanh-float64``); :func:`check_network` runs them all;
:func:`harness.testing.parametrize_with_checks` turns them into pytest cases, and
``nn-harness conformance mymod:MyMLP`` prints them as a checklist.

The checks:

* ``contract-*``: the protocol's promises, one method each: ``forward`` returns a
  finite (N, C) array; ``loss_and_grads`` a finite scalar and one gradient per
  parameter with its shape; ``get_params`` copies under the canonical names;
  ``set_params`` copies in and refuses a wrong shape; ``train_step`` returns the loss
  before the update. Only what can make a verdict wrong FAILs (aliasing, a wrong shape
  accepted silently, a wrong dtype computed); the rest is a WARN recommendation with
  its fix (a missing or extra name or a NaN accepted, a refusal that names no
  parameter; a KeyError, a ValueError or any exception naming the parameter is a
  refusal), by the rules of :mod:`harness.model.contract`.
* ``dtype-<dtype>``: parameters, logits and gradients in the requested dtype.
* ``forward|loss|gradients-<activation>-<dtype>``: against the reference backend
  (torch, else scratch) from identical parameters; then ``gradients-depth1`` and
  ``-depth3`` (no hidden layer, two), ``-batch1``, ``-duplicated-batch`` and
  ``-zero-input``.
* ``step-<optimizer>``: one optimizer step (:func:`harness.compare.equivalence.check_equivalence`);
  ``convention-<option>-<value>``: a step in the declared conventions with one option
  set to another declared value (weight decay 0.1 where decay is in question).
* ``layer-<name>``: one step of a small network with a batch norm, a layer norm, a
  dropout, a convolution, a max pool or an average pool (:data:`LAYER_NETWORKS`; the
  conv networks on images (N, C, H, W) of :data:`IMAGE_SHAPE`), buffers and
  evaluation after the step included;
* ``trajectory``: two short epochs side by side; ``determinism``: same seed, same
  numbers; ``float32-end-to-end``: a float32 model stays float32 while training.

A class says what it supports in ``nnh_capabilities`` (see
:func:`harness.testing.terms.capabilities_of`), and every check is built in those
terms: its first optimizer, activation and dtype, its depth or fixed widths, its
conventions in the combination declared. Checks outside it are skipped with the
reason, and so is a check the class's constructor refuses (it raised for that
configuration). A failure of the equivalence kind carries the likely causes
``nn-harness check`` prints (:func:`harness.diagnose.diagnose`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.checks.result import FAIL, PASS, PASSING, CheckResult
from harness.errors import BackendRaised, BuildRefused, HarnessError
from harness.model.specs import ACTIVATION_NAMES, DTYPE_NAMES, OPTIMIZER_NAMES
from harness.testing import build as _b
from harness.testing.asserts import equivalence_result, raised_result, trajectory_result
from harness.testing.contract import (
    check_contract, check_determinism, check_dtype, check_float32_end_to_end, header_lines,
    make_batch,
)
from harness.testing.terms import (
    CONVENTION_VALUES, DEFAULT_CAPABILITIES, IMAGE_LAYERS, IMAGE_SHAPE, LAYER_NETWORKS, Terms,
    capabilities_of, terms_of, with_overrides,
)

SKIP = "SKIP"
__all__ = ["CONVENTION_VALUES", "DEFAULT_CAPABILITIES", "IMAGE_LAYERS", "IMAGE_SHAPE",
           "LAYER_NETWORKS", "ConformanceCheck",
           "ConformanceRun", "Outcome", "capabilities_of", "check_network", "checks_for",
           "parametrize_with_checks"]


# ------------------------------------------------------------------ checks
@dataclass
class ConformanceCheck:
    """One check of one class: ``run(target)`` returns its :class:`CheckResult`.

    ``skip`` is the reason it does not apply (None when it does). Calling the check
    runs it and raises :class:`~harness.testing.HarnessAssertionError` on failure
    (so that ``check(network)`` is a whole pytest case).
    """

    name: str
    params: tuple[str, ...]
    fn: Callable[..., CheckResult]
    skip: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None

    @property
    def id(self) -> str:
        return "-".join((self.name, *self.params))

    def run(self, target, *, reference: str | None = None) -> CheckResult:
        from harness.runtime.threads import limit_threads

        ref = reference or self.reference or ("torch" if _b.has_torch() else "scratch")
        t0 = time.perf_counter()
        with limit_threads(1, backends=[ref, _b.target_name(target)]):
            try:
                result = self.fn(target, ref, self.id, **self.kwargs)
            except BackendRaised as exc:
                result = raised_result(self.id, self.title(target), exc)
        result.seconds = time.perf_counter() - t0
        return result

    def title(self, target) -> str:
        return f"{_b.short_name(target)}: {self.id}"

    def outcome(self, target, *, reference: str | None = None) -> Outcome:
        """The check's :class:`Outcome`: SKIP with the reason where it does not apply or
        the class refuses to be built for it (its constructor raised: a depth, an
        optimizer or a convention it does not implement), else its result."""
        if self.skip:
            return Outcome(self.id, SKIP, reason=self.skip)
        try:
            result = self.run(target, reference=reference)
        except BuildRefused as exc:
            return Outcome(self.id, SKIP, reason=refusal_reason(target, exc))
        return Outcome(self.id, result.status, result)

    def __call__(self, target, *, reference: str | None = None) -> CheckResult:
        from harness.testing.asserts import HarnessAssertionError

        outcome = self.outcome(target, reference=reference)
        if outcome.status == SKIP:
            import pytest

            pytest.skip(outcome.reason)
        if not outcome.result.passed:
            raise HarnessAssertionError(outcome.result)
        return outcome.result

    def __repr__(self) -> str:
        return f"<check {self.id}>"


def refusal_reason(target, exc: BuildRefused) -> str:
    """The SKIP line of a check the class refused to be built for."""
    message = str(exc)
    for prefix in (f"backend {_b.short_name(target)!r} refused the configuration: ",
                   f"could not build `{_b.target_name(target)}`: "):
        message = message.removeprefix(prefix)
    return f"{_b.short_name(target)} refused to be built for it: {message}"


def _batch(kind: str, spec):
    x, y = Terms.batch(spec)
    if kind == "batch1":
        return x[:1], y[:1]
    if kind == "duplicated-batch":
        half = len(y) // 2
        return np.concatenate([x[:half], x[:half]]), np.concatenate([y[:half], y[:half]])
    if kind == "zero-input":
        return np.zeros_like(x), y
    return x, y


def _against_reference(target, ref: str, check: str, *, terms: Terms, quantity: str,
                       activation: str, dtype: str, optimizer: str, dims=None,
                       batch: str = "random") -> CheckResult:
    """Logits, loss or gradients of ``target`` against ``ref`` from identical parameters."""
    from harness.compare.closeness import compare
    from harness.compare.equivalence import EquivalenceReport, compare_dicts, resolve_tolerances

    spec = terms.spec(activation=activation, dtype=dtype, dims=dims)
    opt = terms.opt(optimizer)
    reference, candidate = _b.build(ref, spec, opt), _b.build(target, spec, opt)
    candidate.set_params(reference.get_params())
    x, y = _batch(batch, spec)
    x = x.astype(dtype)
    rtol, atol = resolve_tolerances(dtype, None, None)
    tol = dict(rtol=rtol, atol=atol)
    if quantity == "forward":
        rows = [compare("logits", candidate.forward(x), reference.forward(x), **tol)]
    else:
        loss_r, grads_r = reference.loss_and_grads(x, y)
        loss_c, grads_c = candidate.loss_and_grads(x, y)
        rows = ([compare("loss", loss_c, loss_r, **tol)] if quantity == "loss"
                else compare_dicts("grads", grads_c, grads_r, **tol))
    name = _b.short_name(target)
    divergence, notes = None, []
    if not all(r.passed for r in rows):
        from harness.diagnose.localize import localisation_note, locate_divergence

        divergence = locate_divergence(reference, candidate, x, y, **tol,
                                       reference_name=ref, candidate_name=name)
        if divergence is None:
            notes.append(localisation_note(reference, candidate, ref, name))
    report = EquivalenceReport(rows, rtol, atol, dtype, ref, name, divergence=divergence,
                               notes=notes)
    what = {"forward": "logits", "loss": "loss", "gradients": "gradients"}[quantity]
    result = equivalence_result(report, check=check, title=f"{name} {what} against {ref}, "
                                f"{activation}, {dtype}, dims {spec.dims}, {len(y)} samples "
                                f"({batch})", header=header_lines(spec, opt))
    return explained(result, target, ref, spec, opt, x, y)


def _step(target, ref: str, check: str, *, terms: Terms, activation: str, dtype: str,
          optimizer: str, conventions: dict | None = None,
          weight_decay: float | None = None) -> CheckResult:
    """One optimizer step of ``target`` against ``ref`` (everything compared once)."""
    from harness.compare.equivalence import check_equivalence

    spec = terms.spec(activation=activation, dtype=dtype, conventions=conventions)
    opt = terms.opt(optimizer, conventions=conventions, weight_decay=weight_decay)
    reference, candidate = _b.build(ref, spec, opt), _b.build(target, spec, opt)
    x, y = terms.batch(spec)
    name = _b.short_name(target)
    report = check_equivalence(reference, candidate, x, y, reference_name=ref,
                               candidate_name=name,
                               arbiter=_b.reference_judges(ref, spec, opt, witnesses=0)[0])
    result = equivalence_result(report, check=check, title=f"{name} one {optimizer} step "
                                f"against {ref}", header=header_lines(spec, opt))
    return explained(result, target, ref, spec, opt, x, y)


def _trajectory(target, ref: str, check: str, *, terms: Terms, activation: str, dtype: str,
                optimizer: str) -> CheckResult:
    import warnings

    from harness.training.side_by_side import compare_training

    spec = terms.spec(activation=activation, dtype=dtype)
    opt = terms.opt(optimizer)
    reference, candidate = _b.build(ref, spec, opt), _b.build(target, spec, opt)
    x, y = terms.batch(spec, n=12, seed=1)
    name = _b.short_name(target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        arbiter, witnesses = _b.reference_judges(ref, spec, opt)
        report = compare_training(reference, candidate, x, y, epochs=2, batch_size=4, seed=0,
                                  reference_name=ref, candidate_name=name, arbiter=arbiter,
                                  witnesses=witnesses)
    result = trajectory_result(report, check=check, title=f"{name} trajectory against {ref}, "
                               f"{optimizer}, 2 epochs of 3 batches",
                               header=header_lines(spec, opt))
    return explained(result, target, ref, spec, opt, x, y)


def _layer(target, ref: str, check: str, *, terms: Terms, layer: str, dtype: str,
           optimizer: str) -> CheckResult:
    """One step of a small network with ``layer`` (:data:`LAYER_NETWORKS`) against ``ref``:
    logits, loss, gradients, the step, the buffers and evaluation after it."""
    from harness.compare.equivalence import check_equivalence
    from harness.model.specs import ModelSpec

    reduction = terms.convention("loss_reduction")
    extra = {**({"loss_reduction": reduction} if reduction != "mean" else {}), **terms.model}
    images = layer in IMAGE_LAYERS
    spec = ModelSpec(layers=LAYER_NETWORKS[layer], dtype=dtype,
                     input_shape=IMAGE_SHAPE if images else (terms.dims[0],), **extra)
    opt = terms.opt(optimizer)
    reference, candidate = _b.build(ref, spec, opt), _b.build(target, spec, opt)
    x, y = make_batch((int(np.prod(IMAGE_SHAPE)), terms.dims[-1]) if images else spec.dims)
    if images:
        x = x.reshape(len(x), *IMAGE_SHAPE)
    name = _b.short_name(target)
    report = check_equivalence(reference, candidate, x, y, reference_name=ref,
                               candidate_name=name,
                               arbiter=_b.reference_judges(ref, spec, opt, witnesses=0)[0])
    result = equivalence_result(report, check=check, title=f"{name} {spec.layers} against "
                                f"{ref}, one {optimizer} step", header=header_lines(spec, opt))
    return explained(result, target, ref, spec, opt, x, y)


def explained(result: CheckResult, target, ref: str, spec, opt, x, y) -> CheckResult:
    """``result`` with the likely causes ``nn-harness check`` prints for a FAIL: the
    hypotheses of :func:`harness.diagnose.diagnose` that hold, and the localisation."""
    if result.passed or _b.is_built(target):
        return result
    import dataclasses

    from harness.checks.config import CheckConfig
    from harness.diagnose import diagnose

    name = _b.target_name(target)

    def builder(config, backend, dtype=None):
        s = config.spec if dtype is None else dataclasses.replace(config.spec, dtype=dtype)
        return _b.build(target if backend == name else backend, s, config.optimizer)

    try:
        found = diagnose(CheckConfig((ref, name), spec, opt), x, y, ref, name, builder=builder)
    except (HarnessError, ValueError, TypeError):
        return result  # a name the configuration refuses: the verdict stands unexplained
    result.hints.extend(h for h in found.hints if h not in result.hints)
    if found.localised and found.localised not in result.notes:
        result.notes.append(found.localised)
    return result


# ------------------------------------------------------------------ the list
def _invalid(terms: Terms, optimizer: str, conventions: dict | None = None,
             weight_decay: float | None = None) -> str | None:
    """Why no spec can express these settings (adamw with its decay in the loss), or None."""
    from harness.errors import ConfigError

    try:
        terms.spec(conventions=conventions)
        terms.opt(optimizer, conventions=conventions, weight_decay=weight_decay)
    except ConfigError as exc:
        return f"no such configuration: {exc}"
    return None


def _convention_checks(caps, terms: Terms, name: str, act: str, dt: str,
                       opt: str) -> list[ConformanceCheck]:
    """``convention-<option>-<value>``: one step in the declared base conventions with
    ``option`` set to ``value``, for every value but the default, and for the default
    too where the class's base is another value; undeclared values are skipped."""
    supported = _b.supported_conventions()
    decays = any(k.startswith("weight_decay") for k in caps["conventions"])
    out, base_id = [], None
    for key, values in CONVENTION_VALUES.items():
        declared = caps["conventions"].get(key, [values[0]])
        for value in values:
            if value == values[0] and declared[0] == values[0]:
                continue  # the default, already the base of every other check
            skip = (f"this version of nn-harness has no {key} option" if key not in supported
                    else None if value in declared else f"{name} does not declare convention "
                    f"{key} {value!r} in nnh_capabilities (declared: {', '.join(declared)})")
            if skip is None and value == declared[0]:  # the declared base combination
                if base_id is not None:
                    skip = f"the same conventions as {base_id}, {name}'s declared ones"
                base_id = base_id or f"convention-{key}-{value}"
            decay = terms.decay if (decays or key.startswith("weight_decay")) else None
            skip = skip or _invalid(terms, opt, {key: value}, decay)
            out.append(ConformanceCheck(
                "convention", (key, value), _step, skip,
                dict(terms=terms, activation=act, dtype=dt, optimizer=opt,
                     conventions={key: value}, weight_decay=decay)))
    return out


def checks_for(target, *, flags: dict | None = None) -> list[ConformanceCheck]:
    """Every check of ``target`` (a class or a backend name), skips marked with reasons.

    ``flags`` (:func:`harness.testing.terms.with_overrides`'s keys, the command line's
    flags) narrow the class's declared capabilities to the values given.
    """
    caps = with_overrides(capabilities_of(target), flags)
    terms = terms_of(caps, flags)
    name = _b.short_name(target)
    acts, dtypes, opts = caps["activations"], caps["dtypes"], caps["optimizers"]
    act, dt, opt = acts[0], dtypes[0], opts[0]
    base = dict(terms=terms, activation=act, dtype=dt, optimizer=opt)

    fixed = terms.depth_skip(0, name) if terms.layers is not None else None

    def why(kind: str, value: str) -> str | None:
        if fixed and kind in ("activations", "layers") and (kind == "layers" or value != act):
            return f"{fixed}: every check is built with it" if kind == "layers" else (
                f"{fixed}: its activations are the network's")
        return None if value in caps[kind] else (
            f"{name} does not declare {kind[:-1]} {value!r} in nnh_capabilities "
            f"(declared: {', '.join(caps[kind]) or 'none'})")

    out = [ConformanceCheck("contract", (part,), check_contract, kwargs={**base, "part": part})
           for part in ("forward", "loss_and_grads", "get_params", "set_params", "train_step")]
    out += [ConformanceCheck("dtype", (d,), check_dtype, why("dtypes", d),
                             {**base, "dtype": d}) for d in DTYPE_NAMES]
    for quantity in ("forward", "loss", "gradients"):
        for a in ACTIVATION_NAMES:
            for d in DTYPE_NAMES:
                out.append(ConformanceCheck(quantity, (a, d), _against_reference,
                                            why("activations", a) or why("dtypes", d),
                                            {**base, "quantity": quantity, "activation": a,
                                             "dtype": d}))
    grads = {**base, "quantity": "gradients"}
    out += [ConformanceCheck("gradients", (f"depth{hidden + 1}",), _against_reference,
                             terms.depth_skip(hidden, name),
                             {**grads, "dims": terms.dims_of_depth(hidden)})
            for hidden in (0, 2)]
    norm = bool(terms.layers) and "batchnorm" in terms.layers
    degenerate = {"batch1": "batch norm in training needs more than one row",
                  "zero-input": "batch norm of identical rows puts every unit at beta, on "
                                "the next activation's kink"} if norm else {}
    out += [ConformanceCheck("gradients", (kind,), _against_reference, degenerate.get(kind),
                             {**grads, "batch": kind})
            for kind in ("batch1", "duplicated-batch", "zero-input")]
    out += [ConformanceCheck("step", (o,), _step, why("optimizers", o) or _invalid(terms, o),
                             {**base, "optimizer": o}) for o in OPTIMIZER_NAMES]
    out += _convention_checks(caps, terms, name, act, dt, opt)
    out += [ConformanceCheck("layer", (layer,), _layer, why("layers", layer),
                             dict(terms=terms, layer=layer, dtype=dt, optimizer=opt))
            for layer in LAYER_NETWORKS]
    out += [ConformanceCheck("trajectory", (opt,), _trajectory, kwargs=base),
            ConformanceCheck("determinism", (), check_determinism, kwargs=base),
            ConformanceCheck("float32", ("end-to-end",), check_float32_end_to_end,
                             why("dtypes", "float32"), {**base, "dtype": "float32"})]
    return out


# ------------------------------------------------------------------ running
@dataclass
class Outcome:
    """One check's outcome: PASS (or WARN), FAIL or SKIP, with the result or the reason."""

    id: str
    status: str
    result: CheckResult | None = None
    reason: str | None = None

    @property
    def line(self) -> str:
        """The checklist line: ``PASS  id``, ``FAIL  id: first hint or failing quantity``."""
        if self.status == SKIP:
            return f"SKIP  {self.id}: {self.reason}"
        if self.result is None or self.result.status == PASS:
            return f"{self.status:<5} {self.id}"
        if self.result.passed:  # WARN: the recommendation, with its fix
            return f"{self.status:<5} {self.id}: {self.result.summary}"
        detail = self.result.hints[0] if self.result.hints else self.result.summary
        return f"{self.status:<5} {self.id}: {detail}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "reason": self.reason,
                "result": None if self.result is None else self.result.to_dict()}


@dataclass
class ConformanceRun:
    """Every check of one class: the outcomes in order."""

    target: str
    outcomes: list[Outcome]
    seconds: float = 0.0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status not in (SKIP, *PASSING)]

    @property
    def ran(self) -> bool:
        """Whether any check ran (a class that refuses every configuration runs none)."""
        return any(o.status != SKIP for o in self.outcomes)

    @property
    def passed(self) -> bool:
        return not self.failed and self.ran

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def __getitem__(self, check_id: str) -> Outcome:
        for o in self.outcomes:
            if o.id == check_id:
                return o
        raise KeyError(check_id)

    def counts(self) -> dict[str, int]:
        out = {"PASS": 0, "FAIL": 0, "SKIP": 0}
        for o in self.outcomes:
            key = o.status if o.status in (SKIP, FAIL) else (
                "PASS" if o.status in PASSING else "FAIL")
            out[key] += 1
        return out

    def verdict_line(self) -> str:
        """``PASS: 29 passed (2 with a recommendation), 0 failed, 27 skipped``."""
        c = self.counts()
        warned = sum(o.status == "WARN" for o in self.outcomes)
        line = (f"{'PASS' if self.passed else 'FAIL'}: {c['PASS']} passed"
                f"{f' ({warned} with a recommendation)' if warned else ''}, {c['FAIL']} "
                f"failed, {c['SKIP']} skipped")
        if not self.ran:
            line += "; no check ran: every one was skipped or refused"
        return line

    def text(self) -> str:
        lines = [f"conformance: {self.target}"]
        lines += [o.line for o in self.outcomes]
        lines.append(self.verdict_line())
        return "\n".join(lines)

    __str__ = text

    def to_dict(self) -> dict[str, Any]:
        from harness.runtime.values import jsonable

        return jsonable({"target": self.target, "passed": self.passed, **self.counts(),
                         "checks": [o.to_dict() for o in self.outcomes],
                         "seconds": round(self.seconds, 3)})

    def _repr_html_(self) -> str:
        from harness.compare.html import conformance_html

        return conformance_html(self)


def check_network(target, *, reference: str | None = None,
                  on_outcome: Callable[[Outcome], None] | None = None,
                  flags: dict | None = None) -> ConformanceRun:
    """Run every check of ``target`` (a class or backend name); a :class:`ConformanceRun`.

    ``reference`` is the backend compared with (default: torch, else scratch);
    ``on_outcome`` is called after each check (progress); ``flags`` narrow the
    class's terms (:func:`checks_for`).
    """
    t0 = time.perf_counter()
    outcomes = []
    for check in checks_for(target, flags=flags):
        outcome = check.outcome(target, reference=reference)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return ConformanceRun(_b.target_name(target), outcomes, time.perf_counter() - t0)


def parametrize_with_checks(targets, *, reference: str | None = None,
                            flags: dict | None = None):
    """A ``pytest.mark.parametrize`` of ``(network, check)`` over every check of each target.

    Use it like scikit-learn's::

        @parametrize_with_checks([MyMLP])
        def test_mynet(network, check):
            check(network)

    Case ids read ``MyMLP-gradients-tanh-float64``; checks outside a class's
    ``nnh_capabilities`` are skipped with the reason, and so are those the class
    refuses to be built for. A failure's message carries the likely causes
    ``nn-harness check`` prints.
    """
    import pytest

    if isinstance(targets, (str, type)):
        targets = [targets]
    params = []
    for target in targets:
        for check in checks_for(target, flags=flags):
            check.reference = reference
            marks = [pytest.mark.skip(reason=check.skip)] if check.skip else []
            params.append(pytest.param(target, check, marks=marks,
                                       id=f"{_b.short_name(target)}-{check.id}"))
    return pytest.mark.parametrize(("network", "check"), params)


"""A conformance suite for a ``Classifier`` class, like scikit-learn's ``check_estimator``.

:func:`checks_for` lists the checks of one class (or backend name), each with a
readable id (``gradients-tanh-float64``); :func:`check_network` runs them all;
:func:`harness.testing.parametrize_with_checks` turns them into pytest cases, and
``nn-harness conformance mymod:MyMLP`` prints them as a checklist.

The checks:

* ``contract-*``: the protocol's promises, one method each: ``forward`` returns a
  finite (N, C) array; ``loss_and_grads`` a finite scalar and one gradient per
  parameter with its shape; ``get_params`` copies under the canonical names;
  ``set_params`` copies in and refuses a missing or extra name, a wrong shape and a
  NaN with a ValueError; ``train_step`` returns the loss before the update.
* ``dtype-<dtype>``: parameters, logits, loss and gradients in the requested dtype.
* ``forward|loss|gradients-<activation>-<dtype>``: against the reference backend
  (torch, else scratch) from identical parameters; then ``gradients-depth1`` and
  ``-depth3``, ``-batch1``, ``-duplicated-batch`` and ``-zero-input``.
* ``step-<optimizer>``: one optimizer step (:func:`harness.compare.equivalence.check_equivalence`);
  ``convention-<option>-<value>``: a step under each non-default convention.
* ``layer-<name>``: one step of a small network with a batch norm, a layer norm, a
  dropout, a convolution, a max pool or an average pool (:data:`LAYER_NETWORKS`; the
  conv networks on images (N, C, H, W) of :data:`IMAGE_SHAPE`), buffers and
  evaluation after the step included;
* ``trajectory``: two short epochs side by side; ``determinism``: same seed, same
  numbers; ``float32-end-to-end``: a float32 model stays float32 while training.

A class says what it supports in ``nnh_capabilities`` (see :func:`capabilities_of`);
checks outside it are skipped with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.checks.result import FAIL, PASSING, CheckResult
from harness.errors import BackendRaised, ConfigError
from harness.model.specs import ACTIVATION_NAMES, DTYPE_NAMES, OPTIMIZER_NAMES
from harness.testing import build as _b
from harness.testing.asserts import equivalence_result, raised_result, trajectory_result
from harness.testing.contract import (
    DIMS, LR, check_contract, check_determinism, check_dtype, check_float32_end_to_end,
    header_lines, make_batch,
)

SKIP = "SKIP"
#: what a class supports when it declares nothing
DEFAULT_CAPABILITIES: dict[str, Any] = {
    "activations": ["relu"], "dtypes": ["float64"], "optimizers": ["sgd"], "conventions": {},
    "layers": []}
#: the layers a class may declare beyond the MLP's, and the network each is checked in
LAYER_NETWORKS: dict[str, str] = {
    "batchnorm": "linear(7),batchnorm,relu,linear(3)",
    "layernorm": "linear(7),layernorm,tanh,linear(3)",
    "dropout": "linear(7),relu,dropout(0.5),linear(3)",
    "conv2d": "conv2d(3,3,padding=1),relu,flatten,linear(3)",
    "maxpool2d": "conv2d(3,3,padding=1),relu,maxpool2d(2),flatten,linear(3)",
    "avgpool2d": "conv2d(3,3,stride=2,padding=1),tanh,avgpool2d(2),flatten,linear(3)",
}
#: the layers of :data:`LAYER_NETWORKS` checked on images, and the images' (C, H, W)
IMAGE_LAYERS: tuple[str, ...] = ("conv2d", "maxpool2d", "avgpool2d")
IMAGE_SHAPE: tuple[int, int, int] = (2, 4, 4)
#: the values of every convention option, default first
CONVENTION_VALUES: dict[str, tuple[str, ...]] = {
    "loss_reduction": ("mean", "sum"), "weight_decay_in": ("optimizer", "loss"),
    "weight_decay_on": ("all", "weights")}


# ------------------------------------------------------------------ capabilities
def capabilities_of(target) -> dict[str, Any]:
    """What ``target`` declares it supports, completed with the defaults.

    A class declares ``nnh_capabilities = {"activations": [...], "dtypes": [...],
    "optimizers": [...], "conventions": {"loss_reduction": ["mean", "sum"], ...},
    "layers": ["batchnorm", "layernorm", "dropout"]}``; a missing key takes its default
    (relu; float64; sgd; the default conventions; no layer beyond the MLP's).
    The built-in backends support everything.

    Raises
    ------
    ConfigError
        An unknown key or name in the declaration.
    """
    from harness.model.registry import BUILTIN_BACKENDS, load_user_class

    if isinstance(target, str) and target in BUILTIN_BACKENDS:
        return {"activations": list(ACTIVATION_NAMES), "dtypes": list(DTYPE_NAMES),
                "optimizers": list(OPTIMIZER_NAMES), "layers": list(LAYER_NETWORKS),
                "conventions": {k: list(CONVENTION_VALUES[k])
                                for k in _b.supported_conventions()}}
    cls = load_user_class(target) if isinstance(target, str) else (
        target if isinstance(target, type) else type(target))
    declared = getattr(cls, "nnh_capabilities", None) or {}
    where = f"{cls.__name__}.nnh_capabilities"
    if not isinstance(declared, dict):
        raise ConfigError(f"`{where}` must be a dict, got {type(declared).__name__}")
    unknown = set(declared) - set(DEFAULT_CAPABILITIES)
    if unknown:
        raise ConfigError(f"`{where}` has unknown key {sorted(unknown)[0]!r}; allowed: "
                          f"{', '.join(DEFAULT_CAPABILITIES)}")
    caps = {k: declared.get(k, v) for k, v in DEFAULT_CAPABILITIES.items()}
    for key, allowed in (("activations", ACTIVATION_NAMES), ("dtypes", DTYPE_NAMES),
                         ("optimizers", OPTIMIZER_NAMES), ("layers", tuple(LAYER_NETWORKS))):
        values = list(caps[key])
        bad = [v for v in values if v not in allowed]
        if bad or (not values and key != "layers"):
            raise ConfigError(f"`{where}['{key}']` must list some of {', '.join(allowed)}, "
                              f"got {values!r}")
        caps[key] = values
    conventions = dict(caps["conventions"])
    for key, values in conventions.items():
        if key not in CONVENTION_VALUES:
            raise ConfigError(f"`{where}['conventions']` has unknown option {key!r}; allowed: "
                              f"{', '.join(CONVENTION_VALUES)}")
        values = [values] if isinstance(values, str) else list(values)
        bad = [v for v in values if v not in CONVENTION_VALUES[key]]
        if bad:
            raise ConfigError(f"`{where}['conventions']['{key}']` must list some of "
                              f"{', '.join(CONVENTION_VALUES[key])}, got {values!r}")
        conventions[key] = values
    caps["conventions"] = conventions
    return caps


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

    def __call__(self, target, *, reference: str | None = None) -> CheckResult:
        if self.skip:
            import pytest

            pytest.skip(self.skip)
        from harness.testing.asserts import HarnessAssertionError

        result = self.run(target, reference=reference)
        if not result.passed:
            raise HarnessAssertionError(result)
        return result

    def __repr__(self) -> str:
        return f"<check {self.id}>"


def _batch(kind: str, dims):
    x, y = make_batch(dims)
    if kind == "batch1":
        return x[:1], y[:1]
    if kind == "duplicated-batch":
        half = len(y) // 2
        return np.concatenate([x[:half], x[:half]]), np.concatenate([y[:half], y[:half]])
    if kind == "zero-input":
        return np.zeros_like(x), y
    return x, y


def _against_reference(target, ref: str, check: str, *, quantity: str, activation: str,
                       dtype: str, dims=DIMS, batch: str = "random") -> CheckResult:
    """Logits, loss or gradients of ``target`` against ``ref`` from identical parameters."""
    from harness.compare.closeness import compare
    from harness.compare.equivalence import EquivalenceReport, compare_dicts, resolve_tolerances

    spec = _b.make_spec(dims, activation=activation, dtype=dtype)
    opt = _b.make_optimizer()
    reference, candidate = _b.build(ref, spec, opt), _b.build(target, spec, opt)
    candidate.set_params(reference.get_params())
    x, y = _batch(batch, dims)
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
    return equivalence_result(report, check=check, title=f"{name} {what} against {ref}, "
                              f"{activation}, {dtype}, dims {spec.dims}, {len(y)} samples "
                              f"({batch})", header=header_lines(spec, opt))


def _step(target, ref: str, check: str, *, activation: str, dtype: str, optimizer: str,
          conventions: dict | None = None, weight_decay: float = 0.0) -> CheckResult:
    """One optimizer step of ``target`` against ``ref`` (everything compared once)."""
    from harness.compare.equivalence import check_equivalence

    conventions = conventions or {}
    spec = _b.make_spec(DIMS, activation=activation, dtype=dtype,
                        loss_reduction=conventions.get("loss_reduction"))
    opt = _b.make_optimizer({"name": optimizer, "lr": LR, "weight_decay": weight_decay},
                            weight_decay_in=conventions.get("weight_decay_in"),
                            weight_decay_on=conventions.get("weight_decay_on"))
    reference, candidate = _b.build(ref, spec, opt), _b.build(target, spec, opt)
    x, y = make_batch(DIMS)
    name = _b.short_name(target)
    report = check_equivalence(reference, candidate, x, y, reference_name=ref,
                               candidate_name=name,
                               arbiter=_b.reference_judges(ref, spec, opt, witnesses=0)[0])
    return equivalence_result(report, check=check, title=f"{name} one {optimizer} step "
                              f"against {ref}", header=header_lines(spec, opt))


def _trajectory(target, ref: str, check: str, *, activation: str, dtype: str,
                optimizer: str) -> CheckResult:
    import warnings

    from harness.training.side_by_side import compare_training

    spec = _b.make_spec(DIMS, activation=activation, dtype=dtype)
    opt = _b.make_optimizer({"name": optimizer, "lr": LR})
    reference, candidate = _b.build(ref, spec, opt), _b.build(target, spec, opt)
    x, y = make_batch(DIMS, n=12, seed=1)
    name = _b.short_name(target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        arbiter, witnesses = _b.reference_judges(ref, spec, opt)
        report = compare_training(reference, candidate, x, y, epochs=2, batch_size=4, seed=0,
                                  reference_name=ref, candidate_name=name, arbiter=arbiter,
                                  witnesses=witnesses)
    return trajectory_result(report, check=check, title=f"{name} trajectory against {ref}, "
                             f"{optimizer}, 2 epochs of 3 batches", header=header_lines(spec, opt))


def _layer(target, ref: str, check: str, *, layer: str, dtype: str) -> CheckResult:
    """One step of a small network with ``layer`` (:data:`LAYER_NETWORKS`) against ``ref``:
    logits, loss, gradients, the step, the buffers and evaluation after it."""
    from harness.compare.equivalence import check_equivalence
    from harness.model.specs import ModelSpec

    images = layer in IMAGE_LAYERS
    spec = ModelSpec(layers=LAYER_NETWORKS[layer], dtype=dtype,
                     input_shape=IMAGE_SHAPE if images else (DIMS[0],))
    opt = _b.make_optimizer({"name": "sgd", "lr": LR})
    reference, candidate = _b.build(ref, spec, opt), _b.build(target, spec, opt)
    x, y = make_batch((int(np.prod(IMAGE_SHAPE)), DIMS[-1]) if images else DIMS)
    if images:
        x = x.reshape(len(x), *IMAGE_SHAPE)
    name = _b.short_name(target)
    report = check_equivalence(reference, candidate, x, y, reference_name=ref,
                               candidate_name=name,
                               arbiter=_b.reference_judges(ref, spec, opt, witnesses=0)[0])
    return equivalence_result(report, check=check, title=f"{name} {spec.layers} against "
                              f"{ref}, one sgd step", header=header_lines(spec, opt))


# ------------------------------------------------------------------ the list
def checks_for(target) -> list[ConformanceCheck]:
    """Every check of ``target`` (a class or a backend name), skips marked with reasons."""
    caps = capabilities_of(target)
    name = _b.short_name(target)
    acts, dtypes, opts = caps["activations"], caps["dtypes"], caps["optimizers"]
    act, dt, opt = acts[0], dtypes[0], opts[0]

    def why(kind: str, value: str) -> str | None:
        return None if value in caps[kind] else (
            f"{name} does not declare {kind[:-1]} {value!r} in nnh_capabilities "
            f"(declared: {', '.join(caps[kind]) or 'none'})")

    out = [ConformanceCheck("contract", (part,), check_contract,
                            kwargs=dict(part=part, activation=act, dtype=dt))
           for part in ("forward", "loss_and_grads", "get_params", "set_params", "train_step")]
    out += [ConformanceCheck("dtype", (d,), check_dtype, why("dtypes", d),
                             dict(activation=act, dtype=d)) for d in DTYPE_NAMES]
    for quantity in ("forward", "loss", "gradients"):
        for a in ACTIVATION_NAMES:
            for d in DTYPE_NAMES:
                out.append(ConformanceCheck(quantity, (a, d), _against_reference,
                                            why("activations", a) or why("dtypes", d),
                                            dict(quantity=quantity, activation=a, dtype=d)))
    base = dict(quantity="gradients", activation=act, dtype=dt)
    out += [ConformanceCheck("gradients", ("depth1",), _against_reference,
                             kwargs={**base, "dims": (DIMS[0], DIMS[-1])}),
            ConformanceCheck("gradients", ("depth3",), _against_reference,
                             kwargs={**base, "dims": (DIMS[0], 7, 6, DIMS[-1])})]
    out += [ConformanceCheck("gradients", (kind,), _against_reference,
                             kwargs={**base, "batch": kind})
            for kind in ("batch1", "duplicated-batch", "zero-input")]
    out += [ConformanceCheck("step", (o,), _step, why("optimizers", o),
                             dict(activation=act, dtype=dt, optimizer=o))
            for o in OPTIMIZER_NAMES]
    supported = _b.supported_conventions()
    for key, values in CONVENTION_VALUES.items():
        for value in values[1:]:
            declared = value in caps["conventions"].get(key, [])
            skip = (f"this version of nn-harness has no {key} option" if key not in supported
                    else None if declared else f"{name} does not declare convention {key} "
                    f"{value!r} in nnh_capabilities")
            out.append(ConformanceCheck(
                "convention", (key, value), _step, skip,
                dict(activation=act, dtype=dt, optimizer=opt, conventions={key: value},
                     weight_decay=0.1 if key.startswith("weight_decay") else 0.0)))
    out += [ConformanceCheck("layer", (layer,), _layer, why("layers", layer),
                             dict(layer=layer, dtype=dt)) for layer in LAYER_NETWORKS]
    out += [ConformanceCheck("trajectory", (opt,), _trajectory,
                             kwargs=dict(activation=act, dtype=dt, optimizer=opt)),
            ConformanceCheck("determinism", (), check_determinism,
                             kwargs=dict(activation=act, dtype=dt, optimizer=opt)),
            ConformanceCheck("float32", ("end-to-end",), check_float32_end_to_end,
                             why("dtypes", "float32"), dict(activation=act, optimizer=opt))]
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
        if self.result is None or self.result.passed:
            return f"{self.status:<5} {self.id}"
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
    def passed(self) -> bool:
        return not self.failed

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

    def text(self) -> str:
        c = self.counts()
        lines = [f"conformance: {self.target}"]
        lines += [o.line for o in self.outcomes]
        lines.append(f"{'PASS' if self.passed else 'FAIL'}: {c['PASS']} passed, {c['FAIL']} "
                     f"failed, {c['SKIP']} skipped")
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
                  on_outcome: Callable[[Outcome], None] | None = None) -> ConformanceRun:
    """Run every check of ``target`` (a class or backend name); a :class:`ConformanceRun`.

    ``reference`` is the backend compared with (default: torch, else scratch);
    ``on_outcome`` is called after each check (progress).
    """
    t0 = time.perf_counter()
    outcomes = []
    for check in checks_for(target):
        if check.skip:
            outcome = Outcome(check.id, SKIP, reason=check.skip)
        else:
            result = check.run(target, reference=reference)
            outcome = Outcome(check.id, result.status, result)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return ConformanceRun(_b.target_name(target), outcomes, time.perf_counter() - t0)


def parametrize_with_checks(targets, *, reference: str | None = None):
    """A ``pytest.mark.parametrize`` of ``(network, check)`` over every check of each target.

    Use it like scikit-learn's::

        @parametrize_with_checks([MyMLP])
        def test_mynet(network, check):
            check(network)

    Case ids read ``MyMLP-gradients-tanh-float64``; checks outside a class's
    ``nnh_capabilities`` are skipped with the reason.
    """
    import pytest

    if isinstance(targets, (str, type)):
        targets = [targets]
    params = []
    for target in targets:
        for check in checks_for(target):
            check.reference = reference
            marks = [pytest.mark.skip(reason=check.skip)] if check.skip else []
            params.append(pytest.param(target, check, marks=marks,
                                       id=f"{_b.short_name(target)}-{check.id}"))
    return pytest.mark.parametrize(("network", "check"), params)


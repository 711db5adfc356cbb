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
* ``step-<optimizer>``: one optimizer step (:func:`harness.compare.check_equivalence`);
  ``convention-<option>-<value>``: a step under each non-default convention.
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

from harness.checks.result import FAIL, PASS, PASSING, CheckResult, Verdict
from harness.errors import BackendRaised, ConfigError
from harness.specs import ACTIVATION_NAMES, DTYPE_NAMES, OPTIMIZER_NAMES
from harness.testing import build as _b
from harness.testing.asserts import equivalence_result, raised_result, trajectory_result

SKIP = "SKIP"
#: what a class supports when it declares nothing
DEFAULT_CAPABILITIES: dict[str, Any] = {
    "activations": ["relu"], "dtypes": ["float64"], "optimizers": ["sgd"], "conventions": {}}
#: the values of every convention option, default first
CONVENTION_VALUES: dict[str, tuple[str, ...]] = {
    "loss_reduction": ("mean", "sum"), "weight_decay_in": ("optimizer", "loss"),
    "weight_decay_on": ("all", "weights")}
#: the network and data of the checks: tiny, so a whole suite takes seconds
DIMS = (5, 7, 3)
N_SAMPLES = 8
LR = 0.1


# ------------------------------------------------------------------ capabilities
def capabilities_of(target) -> dict[str, Any]:
    """What ``target`` declares it supports, completed with the defaults.

    A class declares ``nnh_capabilities = {"activations": [...], "dtypes": [...],
    "optimizers": [...], "conventions": {"loss_reduction": ["mean", "sum"], ...}}``;
    a missing key takes its default (relu; float64; sgd; the default conventions).
    The built-in backends support everything.

    Raises
    ------
    ConfigError
        An unknown key or name in the declaration.
    """
    from harness.registry import BUILTIN_BACKENDS, load_user_class

    if isinstance(target, str) and target in BUILTIN_BACKENDS:
        return {"activations": list(ACTIVATION_NAMES), "dtypes": list(DTYPE_NAMES),
                "optimizers": list(OPTIMIZER_NAMES),
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
                         ("optimizers", OPTIMIZER_NAMES)):
        values = list(caps[key])
        bad = [v for v in values if v not in allowed]
        if bad or not values:
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
        from harness.threads import limit_threads

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


def _data(dims, n: int = N_SAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dims[0]))
    y = rng.permutation(np.arange(n) % dims[-1]).astype(np.int64)
    return x, y


def _batch(kind: str, dims):
    x, y = _data(dims)
    if kind == "batch1":
        return x[:1], y[:1]
    if kind == "duplicated-batch":
        half = len(y) // 2
        return np.concatenate([x[:half], x[:half]]), np.concatenate([y[:half], y[:half]])
    if kind == "zero-input":
        return np.zeros_like(x), y
    return x, y


def _header(spec, opt) -> list[str]:
    from harness.checks.config import CheckConfig

    return CheckConfig(("scratch",), spec, opt).describe()


def _result(check: str, title: str, problems: list[str], ok: str, header=()) -> CheckResult:
    status = FAIL if problems else PASS
    summary = problems[0] if problems else ok
    return CheckResult(check, [Verdict(check, title, status, summary)],
                       notes=[f"- {p}" for p in problems[1:]], header=list(header))


def _against_reference(target, ref: str, check: str, *, quantity: str, activation: str,
                       dtype: str, dims=DIMS, batch: str = "random") -> CheckResult:
    """Logits, loss or gradients of ``target`` against ``ref`` from identical parameters."""
    from harness.closeness import compare
    from harness.compare import EquivalenceReport, compare_dicts, resolve_tolerances

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
        from harness.localize import localisation_note, locate_divergence

        divergence = locate_divergence(reference, candidate, x, y, **tol,
                                       reference_name=ref, candidate_name=name)
        if divergence is None:
            notes.append(localisation_note(reference, candidate, ref, name))
    report = EquivalenceReport(rows, rtol, atol, dtype, ref, name, divergence=divergence,
                               notes=notes)
    what = {"forward": "logits", "loss": "loss", "gradients": "gradients"}[quantity]
    return equivalence_result(report, check=check, title=f"{name} {what} against {ref}, "
                              f"{activation}, {dtype}, dims {spec.dims}, {len(y)} samples "
                              f"({batch})", header=_header(spec, opt))


def _step(target, ref: str, check: str, *, activation: str, dtype: str, optimizer: str,
          conventions: dict | None = None, weight_decay: float = 0.0) -> CheckResult:
    """One optimizer step of ``target`` against ``ref`` (everything compared once)."""
    from harness.compare import check_equivalence

    conventions = conventions or {}
    spec = _b.make_spec(DIMS, activation=activation, dtype=dtype,
                        loss_reduction=conventions.get("loss_reduction"))
    opt = _b.make_optimizer({"name": optimizer, "lr": LR, "weight_decay": weight_decay},
                            weight_decay_in=conventions.get("weight_decay_in"),
                            weight_decay_on=conventions.get("weight_decay_on"))
    reference, candidate = _b.build(ref, spec, opt), _b.build(target, spec, opt)
    x, y = _data(DIMS)
    name = _b.short_name(target)
    report = check_equivalence(reference, candidate, x, y, reference_name=ref,
                               candidate_name=name)
    return equivalence_result(report, check=check, title=f"{name} one {optimizer} step "
                              f"against {ref}", header=_header(spec, opt))


def _trajectory(target, ref: str, check: str, *, activation: str, dtype: str,
                optimizer: str) -> CheckResult:
    import warnings

    from harness.training import compare_training

    spec = _b.make_spec(DIMS, activation=activation, dtype=dtype)
    opt = _b.make_optimizer({"name": optimizer, "lr": LR})
    reference, candidate = _b.build(ref, spec, opt), _b.build(target, spec, opt)
    x, y = _data(DIMS, n=12, seed=1)
    name = _b.short_name(target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        report = compare_training(reference, candidate, x, y, epochs=2, batch_size=4, seed=0,
                                  reference_name=ref, candidate_name=name)
    return trajectory_result(report, check=check, title=f"{name} trajectory against {ref}, "
                             f"{optimizer}, 2 epochs of 3 batches", header=_header(spec, opt))


# ------------------------------------------------------------------ contract
def _arr_problem(what: str, value, shape, dtype=None) -> str | None:
    if not isinstance(value, np.ndarray):
        return f"{what} returned {type(value).__name__}, expected a NumPy array"
    if value.shape != tuple(shape):
        return f"{what} has shape {value.shape}, expected {tuple(shape)}"
    if dtype is not None and value.dtype != np.dtype(dtype):
        return f"{what} has dtype {value.dtype}, expected {dtype} (the requested dtype)"
    if value.dtype.kind != "f" or not np.all(np.isfinite(value)):
        return f"{what} is not all finite floating-point numbers"
    return None


def _param_shapes(dims) -> dict[str, tuple[int, ...]]:
    out = {}
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        out[f"W{i}"], out[f"b{i}"] = (a, b), (b,)
    return out


def _scalar_problem(what: str, loss, dtype=None) -> str | None:
    if isinstance(loss, (np.ndarray, np.generic)):
        if np.ndim(loss) != 0:
            return f"{what} is an array of shape {np.shape(loss)}, expected a scalar"
        if dtype is not None and loss.dtype != np.dtype(dtype):
            return f"{what} has dtype {loss.dtype}, expected {dtype} (the requested dtype)"
    elif not isinstance(loss, (int, float)) or isinstance(loss, bool):
        return f"{what} is {type(loss).__name__}, expected a float"
    if not np.isfinite(float(loss)):
        return f"{what} is {float(loss)}, expected a finite number"
    return None


def _contract(target, ref: str, check: str, *, part: str, activation: str,
              dtype: str) -> CheckResult:
    """The protocol's promises for one method (``part``), in one dtype."""
    from harness.checks.guard import unwrap

    spec = _b.make_spec(DIMS, activation=activation, dtype=dtype)
    opt = _b.make_optimizer({"name": "sgd", "lr": LR})
    model = _b.build(target, spec, opt)
    x, y = _data(DIMS)
    shapes = _param_shapes(DIMS)
    problems: list[str] = []
    if part == "forward":
        p = _arr_problem("forward(x)", model.forward(x), (len(y), DIMS[-1]))
        problems += [p] if p else []
    elif part == "loss_and_grads":
        out = model.loss_and_grads(x, y)
        if not isinstance(out, tuple) or len(out) != 2:
            problems.append(f"loss_and_grads returned {type(out).__name__}, expected a tuple "
                            f"(loss, grads)")
        else:
            loss, grads = out
            p = _scalar_problem("the loss of loss_and_grads", loss)
            problems += [p] if p else []
            if not isinstance(grads, dict):
                problems.append(f"the gradients are a {type(grads).__name__}, expected a dict")
            else:
                if set(grads) != set(shapes):
                    problems.append(f"the gradients are named {sorted(grads)}, expected one "
                                    f"per parameter: {sorted(shapes)}")
                problems += [p for k in shapes if k in grads
                             for p in [_arr_problem(f"grads['{k}']", grads[k], shapes[k])] if p]
    elif part == "get_params":
        params = model.get_params()
        if not isinstance(params, dict) or set(params) != set(shapes):
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            problems.append(f"get_params returned {got}, expected the canonical names "
                            f"{sorted(shapes)}")
        else:
            problems += [p for k in shapes
                         for p in [_arr_problem(f"get_params()['{k}']", params[k], shapes[k])] if p]
            if not problems:
                before = params["W0"].copy()
                params["W0"] += 1.0
                if not np.array_equal(model.get_params()["W0"], before):
                    problems.append("get_params returns the model's own arrays: changing "
                                    "the returned W0 changed the model (it must return copies)")
    elif part == "set_params":
        problems += _set_params_problems(model, unwrap(model), shapes)
    elif part == "train_step":
        loss_before, _ = model.loss_and_grads(x, y)
        before = model.get_params()
        returned = model.train_step(x, y)
        p = _scalar_problem("the loss train_step returned", returned)
        if p:
            problems.append(p)
        else:
            from harness.compare import resolve_tolerances

            rtol, atol = resolve_tolerances(dtype, None, None)
            if not np.isclose(float(returned), float(loss_before), rtol=rtol, atol=atol):
                problems.append(f"train_step returned loss {float(returned):.8g}, but the loss "
                                f"before the update is {float(loss_before):.8g} (it must return "
                                f"the loss before the update)")
        after = model.get_params()
        if all(np.array_equal(after[k], before[k]) for k in before):
            problems.append("train_step did not change any parameter")
    return _result(check, f"{_b.short_name(target)} {part} keeps the protocol's promises",
                   problems, f"{part} keeps the protocol's promises", _header(spec, opt))


def _set_params_problems(model, raw, shapes) -> list[str]:
    problems = []
    params = model.get_params()
    new = {k: v + 0.5 for k, v in params.items()}
    model.set_params(new)
    got = model.get_params()
    if any(not np.allclose(got[k], new[k]) for k in new):
        problems.append("set_params did not take the values given (get_params differs after it)")
        return problems
    new["W0"] += 1.0
    if np.allclose(model.get_params()["W0"], new["W0"]):
        problems.append("set_params keeps the caller's arrays: changing W0 afterwards changed "
                        "the model (it must copy them in)")
    good = model.get_params()
    first = next(iter(shapes))
    bad_inputs = {
        f"a missing parameter ({first})": {k: v for k, v in good.items() if k != first},
        "an extra parameter (W99)": {**good, "W99": np.zeros((1, 1), good[first].dtype)},
        f"a wrong shape ({first} transposed)": {**good, first: good[first].T.copy()},
        f"a NaN in {first}": {**good, first: np.full_like(good[first], np.nan)},
    }
    for what, bad in bad_inputs.items():
        try:
            raw.set_params(bad)
        except ValueError:
            pass
        except Exception as exc:  # noqa: BLE001 - the wrong exception is the finding
            problems.append(f"set_params with {what} raised {type(exc).__name__}: {exc}; the "
                            f"protocol asks for a ValueError naming the parameter")
            continue
        else:
            problems.append(f"set_params accepted {what}; it must refuse it with a ValueError")
            continue
        after = model.get_params()
        if set(after) != set(good) or any(not np.array_equal(after[k], good[k]) for k in good):
            problems.append(f"set_params with {what} raised but changed the parameters")
    return problems


def _dtype_check(target, ref: str, check: str, *, activation: str, dtype: str) -> CheckResult:
    spec = _b.make_spec(DIMS, activation=activation, dtype=dtype)
    opt = _b.make_optimizer({"name": "sgd", "lr": LR})
    model = _b.build(target, spec, opt)
    x, y = _data(DIMS)
    x = x.astype(dtype)
    shapes = _param_shapes(DIMS)
    params = model.get_params()
    problems = [p for k in shapes if k in params
                for p in [_arr_problem(f"get_params()['{k}']", params[k], shapes[k], dtype)] if p]
    p = _arr_problem("forward(x)", model.forward(x), (len(y), DIMS[-1]), dtype)
    problems += [p] if p else []
    loss, grads = model.loss_and_grads(x, y)
    p = _scalar_problem("the loss", loss, dtype)
    problems += [p] if p else []
    problems += [p for k in shapes if k in grads
                 for p in [_arr_problem(f"grads['{k}']", grads[k], shapes[k], dtype)] if p]
    return _result(check, f"{_b.short_name(target)} honours dtype {dtype}", problems,
                   f"parameters, logits, loss and gradients are {dtype}", _header(spec, opt))


def _float32_end_to_end(target, ref: str, check: str, *, activation: str,
                        optimizer: str) -> CheckResult:
    spec = _b.make_spec(DIMS, activation=activation, dtype="float32")
    opt = _b.make_optimizer({"name": optimizer, "lr": LR})
    model = _b.build(target, spec, opt)
    x, y = _data(DIMS)
    problems = []
    for step in range(3):
        loss = model.train_step(x, y)  # float64 input: the model keeps its own dtype
        if not np.isfinite(float(loss)):
            problems.append(f"train_step {step + 1} returned loss {float(loss)}")
            break
    params = model.get_params()
    problems += [f"after 3 float32 train_steps {k} is {v.dtype}" for k, v in params.items()
                 if v.dtype != np.float32]
    logits = model.forward(x)
    if getattr(logits, "dtype", None) != np.float32:
        problems.append(f"after 3 float32 train_steps forward(float64 x) returns "
                        f"{getattr(logits, 'dtype', type(logits).__name__)}, expected float32")
    return _result(check, f"{_b.short_name(target)} stays float32 while training", problems,
                   "float32 parameters and logits after 3 train_steps on float64 input",
                   _header(spec, opt))


def _determinism(target, ref: str, check: str, *, activation: str, dtype: str,
                 optimizer: str) -> CheckResult:
    spec = _b.make_spec(DIMS, activation=activation, dtype=dtype, seed=3)
    opt = _b.make_optimizer({"name": optimizer, "lr": LR})
    a, b = _b.build(target, spec, opt), _b.build(target, spec, opt)
    x, y = _data(DIMS)
    problems = []
    pa, pb = a.get_params(), b.get_params()
    if any(not np.array_equal(pa[k], pb[k]) for k in pa):
        problems.append("two models built with seed 3 start from different parameters")
    la = [float(a.train_step(x, y)) for _ in range(2)]
    lb = [float(b.train_step(x, y)) for _ in range(2)]
    if la != lb:
        problems.append(f"two models with seed 3 return different losses for the same "
                        f"train_steps: {la} and {lb}")
    pa, pb = a.get_params(), b.get_params()
    if any(not np.array_equal(pa[k], pb[k]) for k in pa):
        problems.append("two models with seed 3 hold different parameters after the same "
                        "train_steps")
    if not np.array_equal(a.forward(x), a.forward(x)):
        problems.append("forward(x) twice gives different logits")
    return _result(check, f"{_b.short_name(target)} is deterministic under a seed", problems,
                   "same seed, same parameters, losses and logits", _header(spec, opt))


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
            f"(declared: {', '.join(caps[kind])})")

    out = [ConformanceCheck("contract", (part,), _contract,
                            kwargs=dict(part=part, activation=act, dtype=dt))
           for part in ("forward", "loss_and_grads", "get_params", "set_params", "train_step")]
    out += [ConformanceCheck("dtype", (d,), _dtype_check, why("dtypes", d),
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
    out += [ConformanceCheck("trajectory", (opt,), _trajectory,
                             kwargs=dict(activation=act, dtype=dt, optimizer=opt)),
            ConformanceCheck("determinism", (), _determinism,
                             kwargs=dict(activation=act, dtype=dt, optimizer=opt)),
            ConformanceCheck("float32", ("end-to-end",), _float32_end_to_end,
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
        from harness.util import jsonable

        return jsonable({"target": self.target, "passed": self.passed, **self.counts(),
                         "checks": [o.to_dict() for o in self.outcomes],
                         "seconds": round(self.seconds, 3)})

    def _repr_html_(self) -> str:
        from harness.display import conformance_html

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


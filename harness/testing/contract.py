"""The conformance suite's checks of the protocol's promises, of dtypes and of determinism.

Each check builds the class under test for a tiny network (:data:`DIMS`) and returns a
:class:`~harness.checks.CheckResult` whose verdict names the first broken promise
(the others follow as notes). See :mod:`harness.testing.conformance`.
"""

from __future__ import annotations

import numpy as np

from harness.model.contract import (
    array_problem, check_copies, check_train_step_loss, scalar_problem,
)
from harness.model.layout import param_shapes
from harness.model.masks import held_masks
from harness.checks.result import FAIL, PASS, CheckResult, Verdict
from harness.testing import build as _b

#: the network and data of the checks: tiny, so a whole suite takes seconds
DIMS = (5, 7, 3)
N_SAMPLES = 8
LR = 0.1


def make_batch(dims, n: int = N_SAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dims[0]))
    y = rng.permutation(np.arange(n) % dims[-1]).astype(np.int64)
    return x, y


def header_lines(spec, opt) -> list[str]:
    from harness.checks.config import CheckConfig

    return CheckConfig(("scratch",), spec, opt).describe()


def _result(check: str, title: str, problems: list[str], ok: str, header=()) -> CheckResult:
    status = FAIL if problems else PASS
    summary = problems[0] if problems else ok
    return CheckResult(check, [Verdict(check, title, status, summary)],
                       notes=[f"- {p}" for p in problems[1:]], header=list(header))


# ------------------------------------------------------------------ contract
def check_contract(target, ref: str, check: str, *, part: str, activation: str,
              dtype: str) -> CheckResult:
    """The protocol's promises for one method (``part``), in one dtype."""
    from harness.checks.guard import unwrap

    spec = _b.make_spec(DIMS, activation=activation, dtype=dtype)
    opt = _b.make_optimizer({"name": "sgd", "lr": LR})
    model = _b.build(target, spec, opt)
    x, y = make_batch(DIMS)
    shapes = param_shapes(DIMS)
    problems: list[str] = []
    if part == "forward":
        p = array_problem("forward(x)", model.forward(x), (len(y), DIMS[-1]))
        problems += [p] if p else []
    elif part == "loss_and_grads":
        out = model.loss_and_grads(x, y)
        if not isinstance(out, tuple) or len(out) != 2:
            problems.append(f"loss_and_grads returned {type(out).__name__}, expected a tuple "
                            f"(loss, grads)")
        else:
            loss, grads = out
            p = scalar_problem("the loss of loss_and_grads", loss)
            problems += [p] if p else []
            if not isinstance(grads, dict):
                problems.append(f"the gradients are a {type(grads).__name__}, expected a dict")
            else:
                if set(grads) != set(shapes):
                    problems.append(f"the gradients are named {sorted(grads)}, expected one "
                                    f"per parameter: {sorted(shapes)}")
                problems += [p for k in shapes if k in grads
                             for p in [array_problem(f"grads['{k}']", grads[k], shapes[k])] if p]
    elif part == "get_params":
        params = model.get_params()
        if not isinstance(params, dict) or set(params) != set(shapes):
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            problems.append(f"get_params returned {got}, expected the canonical names "
                            f"{sorted(shapes)}")
        else:
            problems += [p for k in shapes
                         for p in [array_problem(f"get_params()['{k}']", params[k], shapes[k])] if p]
            if not problems:
                problems += _copy_problems(model, params, "get_params")
    elif part == "set_params":
        problems += _set_params_problems(model, unwrap(model), shapes)
    elif part == "train_step":
        with held_masks(model):  # the same dropout masks for the loss and the step
            loss_before, _ = model.loss_and_grads(x, y)
            before = model.get_params()
            problems += _train_step_problems(model, x, y, loss_before, dtype)
        after = model.get_params()
        if all(np.array_equal(after[k], before[k]) for k in before):
            problems.append("train_step did not change any parameter")
    return _result(check, f"{_b.short_name(target)} {part} keeps the protocol's promises",
                   problems, f"{part} keeps the protocol's promises", header_lines(spec, opt))


class _NotALoss(Exception):
    """train_step returned something that is not one finite number."""


def _train_step_problems(model, x, y, loss_before, dtype: str) -> list[str]:
    """The contract's rule on train_step's loss (:func:`harness.model.contract.
    check_train_step_loss`), as problem lines."""
    problems: list[str] = []

    def call(method, *args):
        out = getattr(model, method)(*args)
        if method == "train_step":
            p = scalar_problem("the loss train_step returned", out)
            if p:
                raise _NotALoss(p)
        return out

    try:
        check_train_step_loss(call, lambda m, msg: problems.append(f"{m} {msg}"), x, y,
                              loss_before, dtype)
    except _NotALoss as exc:
        problems.append(str(exc))
    return problems


def _copy_problems(model, params: dict, method: str) -> list[str]:
    """The contract's copy rule (:func:`harness.model.contract.check_copies`) for ``method``
    (get_params or set_params), as problem lines."""
    problems: list[str] = []

    def broke(m: str, message: str) -> None:
        if m == method:
            problems.append(f"{m} {message}")

    check_copies(lambda m, *args: getattr(model, m)(*args), broke, params)
    return problems


def _set_params_problems(model, raw, shapes) -> list[str]:
    problems = []
    params = model.get_params()
    new = {k: v + 0.5 for k, v in params.items()}
    model.set_params(new)
    got = model.get_params()
    if any(not np.allclose(got[k], new[k]) for k in new):
        problems.append("set_params did not take the values given (get_params differs after it)")
        return problems
    problems += _copy_problems(model, model.get_params(), "set_params")
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


def check_dtype(target, ref: str, check: str, *, activation: str, dtype: str) -> CheckResult:
    spec = _b.make_spec(DIMS, activation=activation, dtype=dtype)
    opt = _b.make_optimizer({"name": "sgd", "lr": LR})
    model = _b.build(target, spec, opt)
    x, y = make_batch(DIMS)
    x = x.astype(dtype)
    shapes = param_shapes(DIMS)
    params = model.get_params()
    problems = [p for k in shapes if k in params
                for p in [array_problem(f"get_params()['{k}']", params[k], shapes[k], dtype)] if p]
    p = array_problem("forward(x)", model.forward(x), (len(y), DIMS[-1]), dtype)
    problems += [p] if p else []
    loss, grads = model.loss_and_grads(x, y)
    p = scalar_problem("the loss", loss, dtype)
    problems += [p] if p else []
    problems += [p for k in shapes if k in grads
                 for p in [array_problem(f"grads['{k}']", grads[k], shapes[k], dtype)] if p]
    return _result(check, f"{_b.short_name(target)} honours dtype {dtype}", problems,
                   f"parameters, logits, loss and gradients are {dtype}", header_lines(spec, opt))


def check_float32_end_to_end(target, ref: str, check: str, *, activation: str,
                        optimizer: str) -> CheckResult:
    spec = _b.make_spec(DIMS, activation=activation, dtype="float32")
    opt = _b.make_optimizer({"name": optimizer, "lr": LR})
    model = _b.build(target, spec, opt)
    x, y = make_batch(DIMS)
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
                   header_lines(spec, opt))


def check_determinism(target, ref: str, check: str, *, activation: str, dtype: str,
                 optimizer: str) -> CheckResult:
    spec = _b.make_spec(DIMS, activation=activation, dtype=dtype, seed=3)
    opt = _b.make_optimizer({"name": optimizer, "lr": LR})
    a, b = _b.build(target, spec, opt), _b.build(target, spec, opt)
    x, y = make_batch(DIMS)
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
                   "same seed, same parameters, losses and logits", header_lines(spec, opt))

"""The conformance suite's checks of the protocol's promises, of dtypes and of determinism.

Each check builds the class under test for a tiny network (:data:`DIMS`) and returns a
:class:`~harness.checks.CheckResult` whose verdict names the first broken promise
(the others follow as notes). See :mod:`harness.testing.conformance`.
"""

from __future__ import annotations

import numpy as np

from harness.model.contract import (
    array_problem, check_copies, check_refusals, check_train_step_loss, loss_dtype_advice,
    scalar_problem,
)
from harness.model.masks import held_masks
from harness.checks.result import FAIL, PASS, WARN, CheckResult, Verdict
from harness.testing import build as _b
from harness.testing.terms import DIMS, LR, N_SAMPLES, Terms, make_batch

__all__ = ["DIMS", "LR", "N_SAMPLES", "check_contract", "check_determinism", "check_dtype",
           "check_float32_end_to_end", "header_lines", "make_batch"]

def header_lines(spec, opt) -> list[str]:
    from harness.checks.config import CheckConfig

    return CheckConfig(("scratch",), spec, opt).describe()


def _result(check: str, title: str, problems: list[str], ok: str, header=(),
            advice: list[str] | None = None) -> CheckResult:
    """FAIL with the first problem (what can make a verdict wrong); else WARN with the
    first recommendation (``advice``: the protocol asks for more, no verdict is at
    stake); else PASS. The rest follow as notes."""
    advice = list(advice or [])
    status = FAIL if problems else WARN if advice else PASS
    summary = problems[0] if problems else advice[0] if advice else ok
    rest = problems[1:] + advice if problems else advice[1:]
    notes = [f"- {p}" for p in rest]
    if advice:
        notes.append(f"WARN: {len(advice)} recommendation{'s' * (len(advice) > 1)} of the "
                     f"protocol; no verdict depends on {'them' if len(advice) > 1 else 'it'}")
    return CheckResult(check, [Verdict(check, title, status, summary)], notes=notes,
                       header=list(header))


# ------------------------------------------------------------------ contract
def check_contract(target, ref: str, check: str, *, terms: Terms, part: str, activation: str,
                   dtype: str, optimizer: str) -> CheckResult:
    """The protocol's promises for one method (``part``), in one dtype, built with the
    class's own optimizer and conventions."""
    from harness.checks.guard import unwrap

    spec = terms.spec(activation=activation, dtype=dtype)
    opt = terms.opt(optimizer)
    model = _b.build(target, spec, opt)
    x, y = terms.batch(spec)
    shapes = spec.network.param_shapes
    problems: list[str] = []
    advice: list[str] = []
    if part == "forward":
        p = array_problem("forward(x)", model.forward(x), (len(y), spec.dims[-1]))
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
        problems += _set_params_problems(model, unwrap(model), advice)
    elif part == "train_step":
        with held_masks(model):  # the same dropout masks for the loss and the step
            loss_before, _ = model.loss_and_grads(x, y)
            before = model.get_params()
            problems += _train_step_problems(model, x, y, loss_before, dtype)
        after = model.get_params()
        if all(np.array_equal(after[k], before[k]) for k in before):
            problems.append("train_step did not change any parameter")
    return _result(check, f"{_b.short_name(target)} {part} keeps the protocol's promises",
                   problems, f"{part} keeps the protocol's promises", header_lines(spec, opt),
                   advice)


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


def _set_params_problems(model, raw, advice: list[str]) -> list[str]:
    """The contract's rules on set_params (:func:`harness.model.contract.check_copies`
    and :func:`~harness.model.contract.check_refusals`): problems returned, the
    recommendations appended to ``advice``."""
    problems: list[str] = []
    params = model.get_params()
    new = {k: v + 0.5 for k, v in params.items()}
    model.set_params(new)
    got = model.get_params()
    if any(not np.allclose(got[k], new[k]) for k in new):
        problems.append("set_params did not take the values given (get_params differs after it)")
        return problems
    problems += _copy_problems(model, model.get_params(), "set_params")
    check_refusals(raw.set_params, model.get_params, problems.append, advice.append,
                   model.get_params())
    return problems


def check_dtype(target, ref: str, check: str, *, terms: Terms, activation: str, dtype: str,
                optimizer: str) -> CheckResult:
    """Parameters, logits and gradients computed in the requested dtype (a FAIL: the
    comparison would judge another precision); a loss returned in another dtype is a
    recommendation (it is compared as a number)."""
    spec = terms.spec(activation=activation, dtype=dtype)
    opt = terms.opt(optimizer)
    model = _b.build(target, spec, opt)
    x, y = terms.batch(spec)
    x = x.astype(dtype)
    shapes = spec.network.param_shapes
    params = model.get_params()
    problems = [p for k in shapes if k in params
                for p in [array_problem(f"get_params()['{k}']", params[k], shapes[k], dtype)] if p]
    p = array_problem("forward(x)", model.forward(x), (len(y), spec.dims[-1]), dtype)
    problems += [p] if p else []
    loss, grads = model.loss_and_grads(x, y)
    p = scalar_problem("the loss", loss)
    problems += [p] if p else []
    advice = [a for a in [loss_dtype_advice("the loss", loss, dtype)] if a and not p]
    problems += [p for k in shapes if k in grads
                 for p in [array_problem(f"grads['{k}']", grads[k], shapes[k], dtype)] if p]
    return _result(check, f"{_b.short_name(target)} honours dtype {dtype}", problems,
                   f"parameters, logits, loss and gradients are {dtype}",
                   header_lines(spec, opt), advice)


def check_float32_end_to_end(target, ref: str, check: str, *, terms: Terms, activation: str,
                             dtype: str, optimizer: str) -> CheckResult:
    """Three float32 train_steps on float64 input keep the parameters float32 (a FAIL
    otherwise), and forward(float32 x) stays float32; forward(float64 x) returning
    float64 is a recommendation (the checks feed a float32 model float32 input)."""
    spec = terms.spec(activation=activation, dtype="float32")
    opt = terms.opt(optimizer)
    model = _b.build(target, spec, opt)
    x, y = terms.batch(spec)
    problems, advice = [], []
    for step in range(3):
        loss = model.train_step(x, y)  # float64 input: the model keeps its own dtype
        if not np.isfinite(float(loss)):
            problems.append(f"train_step {step + 1} returned loss {float(loss)}")
            break
    params = model.get_params()
    problems += [f"after 3 float32 train_steps on float64 input {k} is {v.dtype}"
                 for k, v in params.items() if v.dtype != np.float32]
    logits = model.forward(x.astype(np.float32))
    if getattr(logits, "dtype", None) != np.float32:
        problems.append(f"after 3 float32 train_steps forward(float32 x) returns "
                        f"{getattr(logits, 'dtype', type(logits).__name__)}, expected float32")
    wide = model.forward(x)
    if not problems and getattr(wide, "dtype", None) != np.float32:
        advice.append(f"forward(float64 x) returns {getattr(wide, 'dtype', '?')} from a "
                      f"float32 model; recommended: cast the input, `x = np.asarray(x, "
                      f"self.dtype)` (the checks hand a float32 model float32 input)")
    return _result(check, f"{_b.short_name(target)} stays float32 while training", problems,
                   "float32 parameters and logits after 3 train_steps on float64 input",
                   header_lines(spec, opt), advice)


def check_determinism(target, ref: str, check: str, *, terms: Terms, activation: str,
                      dtype: str, optimizer: str) -> CheckResult:
    spec = terms.spec(activation=activation, dtype=dtype, seed=3)
    opt = terms.opt(optimizer)
    a, b = _b.build(target, spec, opt), _b.build(target, spec, opt)
    x, y = terms.batch(spec)
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

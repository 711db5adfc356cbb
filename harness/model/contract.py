"""What each protocol method must return, checked in plain words before any maths.

A user's class may return a 1-D array from ``forward`` (a ``max(x, 0)`` that reduced
instead of clipping), ``None`` from a method it forgot to finish, a list where a dict
is due. Left alone, such a value fails deep inside a comparison with a TypeError that
names NumPy, not the user's method. :func:`check_return` looks at one returned value
and raises :class:`ContractViolation` with a line that names the method, what it
returned and what was expected::

    forward returned an array of shape (10,); expected (N, C) = (150, 3): logits for
    each sample

The guard around a plug-in (:class:`harness.checks.guard.Guarded`) calls it after
every protocol method, so the violation becomes a finding like any exception the
code under test raises; the preflight (:func:`harness.checks.preflight`) adds the
checks one call cannot see (copies, dtype, the loss ``train_step`` returns).

This module is the one home of the contract's rules, used by the preflight of every
command and by the conformance suite (:mod:`harness.testing.contract`) alike. A rule
broken is a failure only where it can make a verdict wrong (aliasing between what
``get_params`` returns and the model, a wrong shape accepted silently, a wrong dtype
computed); the rest of the protocol's asks (:func:`check_refusals`: a missing or an
extra name or a NaN accepted, a refusal that names no parameter;
:func:`loss_dtype_advice`) are recommendations, each with its fix.
"""

from __future__ import annotations

import inspect
import math
import os

import numpy as np

from harness.model.protocol import PROTOCOL_METHODS


class ContractViolation(TypeError):
    """A protocol method returned something the ``Classifier`` contract does not allow.

    ``where`` and ``source`` are ``file:line`` and the text of the method's ``def``
    line in the user's file, when they can be found (there is no frame of the user's
    to point at: the method returned normally).
    """

    def __init__(self, message: str, *, where: str | None = None, source: str | None = None):
        super().__init__(message)
        self.where = where
        self.source = source


def method_location(model, method: str) -> tuple[str | None, str | None]:
    """``("file.py:LINE", "def ...")`` of ``model``'s ``method``, or ``(None, None)``."""
    func = getattr(type(model), method, None)
    try:
        func = inspect.unwrap(func)
        path = inspect.getsourcefile(func)
        lines, start = inspect.getsourcelines(func)
    except (TypeError, OSError):
        return None, None
    if path is None:
        return None, None
    line = next((ln for ln in lines if ln.lstrip().startswith("def ")), lines[0] if lines
                else "")
    offset = lines.index(line) if line in lines else 0
    return f"{os.path.basename(path)}:{start + offset}", line.strip()


def describe(value) -> str:
    """``value``'s kind in a few words: "None", "a list of 4 items", "an array of shape (10,)"."""
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} ({value.dtype})"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, dict):
        return f"a dict with keys {', '.join(map(str, value))}"
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # a tensor, a NumPy lookalike
        return f"a {type(value).__module__.split('.')[0]}.{type(value).__name__} of shape " \
               f"{tuple(value.shape)}"
    return f"a {type(value).__name__}"


def scalar_loss(value) -> float | None:
    """A loss as a float when it is one number (Python float, NumPy scalar, 0-d or 1-element
    array), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "fiu":
        return float(value.reshape(()))
    return None


def _logits(value, n: int, c: int) -> str | None:
    expected = f"expected (N, C) = ({n}, {c}): logits for each sample"
    if not isinstance(value, np.ndarray):
        return f"forward returned {describe(value)}; {expected}, as a NumPy array"
    if value.shape != (n, c):
        return f"forward returned an array of shape {value.shape}; {expected}"
    if value.dtype.kind != "f":
        return f"forward returned {value.dtype} logits; {expected}, floating point"
    return None


def _grads(value, params: dict | None, what: str) -> str | None:
    if not isinstance(value, dict):
        names = ", ".join(params) if params else "W0, b0, ..."
        return (f"{what} returned {describe(value)} as its gradients; expected a dict of "
                f"one array per parameter ({names})")
    if params is None:
        return None
    missing = [k for k in params if k not in value]
    if missing:
        return (f"{what} returned no gradient for {', '.join(missing)}; expected one per "
                f"parameter ({', '.join(params)})")
    extra = [k for k in value if k not in params]
    if extra:
        return (f"{what} returned gradients for {', '.join(map(str, extra))}, which are not "
                f"parameters ({', '.join(params)})")
    for key, p in params.items():
        g = value[key]
        if not isinstance(g, np.ndarray):
            return f"{what} returned {describe(g)} as the gradient of {key}; expected a NumPy " \
                   f"array of shape {np.shape(p)}"
        if g.shape != np.shape(p):
            return (f"{what} returned a gradient of shape {g.shape} for {key}; expected "
                    f"{np.shape(p)}, the parameter's shape")
    return None


def _loss(value, method: str) -> str | None:
    loss = scalar_loss(value)
    if loss is None:
        return f"{method} returned {describe(value)} as the loss; expected one number " \
               f"(a float): the loss over the batch"
    return None


def violation(method: str, value, *, x=None, dims=None, params: dict | None = None
              ) -> str | None:
    """What is wrong with ``value`` returned by ``method`` (one line), or None.

    Parameters
    ----------
    method : str
        The protocol method (forward, loss_and_grads, get_params, train_step).
    value : object
        What it returned.
    x : ndarray of shape (N, d_0), optional
        The batch it was called with (forward: the expected N).
    dims : tuple of int, optional
        The model's layer widths (forward: the expected C).
    params : dict of ndarray, optional
        The model's parameters (loss_and_grads: one gradient per parameter, same shape).
    """
    if method == "forward" and x is not None and dims:
        return _logits(value, len(x), int(dims[-1]))
    if method == "loss_and_grads":
        if not isinstance(value, tuple) or len(value) != 2:
            return (f"loss_and_grads returned {describe(value)}; expected a pair (loss, "
                    f"grads): the loss as a float and a dict of one gradient per parameter")
        return _loss(value[0], method) or _grads(value[1], params, method)
    if method == "get_params":
        if not isinstance(value, dict) or not value:
            return (f"get_params returned {describe(value)}; expected a dict of NumPy arrays "
                    f"W0, b0, W1, b1, ... (copies)")
        bad = [k for k, v in value.items() if not isinstance(v, np.ndarray)]
        if bad:
            return (f"get_params returned {describe(value[bad[0]])} for {bad[0]}; expected a "
                    f"NumPy array")
        return None
    if method == "train_step":
        return _loss(value, method)
    return None


def check_return(model, method: str, value, args: tuple) -> None:
    """Raise :class:`ContractViolation` when ``value``, returned by ``model.method(*args)``,
    breaks the contract; otherwise return nothing. Cheap: shapes and types only."""
    x = args[0] if args and method == "forward" else None
    params = None
    if method == "loss_and_grads" and isinstance(value, tuple) and len(value) == 2 \
            and isinstance(value[1], dict):
        try:
            params = model.get_params()
        except Exception:  # noqa: BLE001 - a broken get_params is its own finding
            params = None
        if not isinstance(params, dict):
            params = None
    message = violation(method, value, x=x, dims=getattr(model, "dims", None), params=params)
    if message is not None:
        where, source = method_location(model, method)
        raise ContractViolation(message, where=where, source=source)


def finite(value) -> bool:
    """Whether a loss is a finite number."""
    loss = scalar_loss(value)
    return loss is not None and math.isfinite(loss)


# ----------------------------------------------------------------- the members a class has
def missing_members(model) -> list[str]:
    """The protocol's members ``model`` lacks: ``dims`` and the methods that are not callable."""
    missing = [m for m in PROTOCOL_METHODS if not callable(getattr(model, m, None))]
    if not hasattr(model, "dims"):
        missing.insert(0, "dims")
    return missing


# ------------------------------------------------------------ what a value must look like
def array_problem(what: str, value, shape, dtype=None) -> str | None:
    """Why ``value`` (what ``what`` returned) is not a finite float array of ``shape``
    (and ``dtype`` when given), or None."""
    if not isinstance(value, np.ndarray):
        return f"{what} returned {type(value).__name__}, expected a NumPy array"
    if value.shape != tuple(shape):
        return f"{what} has shape {value.shape}, expected {tuple(shape)}"
    if dtype is not None and value.dtype != np.dtype(dtype):
        return f"{what} has dtype {value.dtype}, expected {dtype} (the requested dtype)"
    if value.dtype.kind != "f" or not np.all(np.isfinite(value)):
        return f"{what} is not all finite floating-point numbers"
    return None


def scalar_problem(what: str, loss, dtype=None) -> str | None:
    """Why ``loss`` (what ``what`` returned) is not one finite number (of ``dtype`` when it
    is a NumPy scalar or array), or None."""
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


def loss_dtype_advice(what: str, loss, dtype: str) -> str | None:
    """A recommendation when ``loss`` is a NumPy scalar of another dtype than ``dtype``
    (a loss is compared as a number, so no verdict depends on it), or None."""
    if isinstance(loss, (np.ndarray, np.generic)) and loss.dtype != np.dtype(dtype):
        return (f"{what} is {loss.dtype} from a {dtype} model; recommended: compute it in "
                f"{dtype} (or return `float(loss)`)")
    return None


def dtype_violations(dtype: str, *, params: dict | None = None, logits=None,
                     grads: dict | None = None) -> list[tuple[str, str]]:
    """The rule: a model asked for ``dtype`` computes in it. ``(method, message)`` for
    parameters, logits (of input in ``dtype``) and gradients of another dtype: each can
    make a verdict wrong, since the tolerances of one precision would judge another."""
    out = []
    if params is not None:
        got = {np.asarray(v).dtype.name for v in params.values()}
        if got != {dtype}:
            out.append(("get_params", f"returned {'/'.join(sorted(got))} parameters for a "
                                      f"{dtype} model"))
    if logits is not None and np.asarray(logits).dtype.name != dtype:
        out.append(("forward", f"returned {np.asarray(logits).dtype} logits for a {dtype} "
                               f"model"))
    if grads is not None:
        bad = sorted({np.asarray(g).dtype.name for g in grads.values()} - {dtype})
        if bad:
            out.append(("loss_and_grads", f"returned {'/'.join(bad)} gradients for a {dtype} "
                                          f"model"))
    return out


# ----------------------------------------------- the rules one call cannot see: copies, loss
def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def loss_tolerance(dtype: str) -> tuple[float, float]:
    """(rtol, atol) within which two losses of one model on one batch are "the same":
    ten times the dtype's equivalence tolerances (the loss of a step is recomputed in
    another order of operations by some classes)."""
    from harness.compare.equivalence import default_tolerances

    rtol, atol = default_tolerances(dtype)
    return 10 * rtol, 10 * max(atol, rtol)


def check_copies(call, broke, params: dict) -> None:
    """The rule: get_params hands out copies and set_params takes copies.

    ``call(method, *args)`` calls the model (and may raise to stop the checks);
    ``broke(method, message)`` records a broken rule; ``params`` is what ``get_params``
    has just returned. The model is restored after each broken rule.
    """
    snapshot = {k: np.array(v, copy=True) for k, v in params.items()}
    for v in params.values():  # the arrays get_params handed out, changed in place
        if v.flags.writeable:
            v += 1
    now = call("get_params")
    if not _same(now, snapshot):
        broke("get_params", "returned the model's own arrays, not copies: changing the "
                            "returned arrays changed the model (return `{k: v.copy() ...}`)")
        call("set_params", snapshot)
        now = call("get_params")
    given = {k: np.array(v, copy=True) for k, v in snapshot.items()}
    call("set_params", given)
    for v in given.values():
        v += 1
    given.clear()
    after = call("get_params")
    if not _same(after, snapshot):
        broke("set_params", "kept the arrays it was given, not copies: changing them after "
                            "the call changed the model (copy them in: `v.copy()`)")
        call("set_params", snapshot)


def check_train_step_loss(call, broke, x, y, loss_before, dtype: str) -> None:
    """The rule: train_step returns the batch loss before its update.

    ``loss_before`` is the loss ``loss_and_grads`` gave on ``(x, y)`` at the current
    parameters; the returned loss must be within :func:`loss_tolerance` of it. A model
    whose loss changes from one call to the next at the same parameters (dropout masks
    of its own) cannot be held to it, and is not; the gradient check says why. ``call``
    and ``broke`` as in :func:`check_copies`.
    """
    rtol, atol = loss_tolerance(dtype)
    params = call("get_params")
    again = float(np.asarray(call("loss_and_grads", x, y)[0]).reshape(()))
    before = float(np.asarray(loss_before).reshape(()))
    if not abs(again - before) <= atol + rtol * abs(before):
        return  # a loss that changes from call to call (its own dropout masks): no rule
    step = call("train_step", x, y)
    step_loss = float(np.asarray(step).reshape(()))
    if abs(step_loss - before) <= atol + rtol * abs(before):
        return
    after, _ = call("loss_and_grads", x, y)
    after = float(np.asarray(after).reshape(()))
    moved = not _same(call("get_params"), params)
    if moved and abs(step_loss - after) <= atol + rtol * abs(after):
        broke("train_step", f"returned the loss after its update ({step_loss:.6g}); expected "
                            f"the loss before it ({before:.6g}), as loss_and_grads gives on "
                            f"the same batch")
    else:
        broke("train_step", f"returned {step_loss:.6g}; expected the batch loss before the "
                            f"update, {before:.6g}, as loss_and_grads gives on the same batch")


# ------------------------------------------- what set_params must refuse, and how badly
def refusal_cases(good: dict) -> list[tuple[str, str, dict, bool]]:
    """The bad inputs ``set_params`` is offered: ``(what, name, params, harmful)``.

    ``harmful`` marks the one whose silent acceptance can make a verdict wrong (a wrong
    shape taken as it is: a transposed weight that broadcasts); the others (a missing
    or an extra name, a NaN) are never handed to a model by the harness, so accepting
    them is a recommendation, not a failure.
    """
    first = next(iter(good))
    return [
        (f"a missing parameter ({first})", first,
         {k: v for k, v in good.items() if k != first}, False),
        ("an extra parameter (W99)", "W99",
         {**good, "W99": np.zeros((1, 1), good[first].dtype)}, False),
        (f"a wrong shape ({first} transposed)", first,
         {**good, first: np.ascontiguousarray(good[first].T)}, True),
        (f"a NaN in {first}", first, {**good, first: np.full_like(good[first], np.nan)}, False),
    ]


def names_it(exc: BaseException, name: str) -> bool:
    """Whether a refusal says which parameter: a ValueError or a KeyError (the Python
    idioms), or any exception whose message names ``name``."""
    return isinstance(exc, (ValueError, KeyError)) or name in str(exc)


def check_refusals(set_params, get_params, broke, recommend, good: dict) -> None:
    """The rule: ``set_params`` refuses what does not fit, and leaves the model as it was.

    ``set_params`` and ``get_params`` call the model itself (exceptions reach here);
    ``broke(message)`` records a FAIL (a wrong shape accepted silently);
    ``recommend(message)`` a WARN line with the fix (any other input accepted, a
    refusal that does not name the parameter). ``good`` is the model's parameters;
    they are restored after each case.
    """
    for what, name, bad, harmful in refusal_cases(good):
        try:
            set_params(bad)
        except Exception as exc:  # noqa: BLE001 - any refusal is a refusal
            if not names_it(exc, name):
                recommend(f"set_params with {what} raised {type(exc).__name__}: {exc}; "
                          f"recommended: a ValueError that names {name}")
            after = get_params()
            if not _same(after, good):
                (broke if harmful else recommend)(
                    f"set_params with {what} raised but changed the parameters first; "
                    f"check every name, shape and value before copying any in")
                set_params(good)
            continue
        if harmful:
            broke(f"set_params accepted {what} silently; a parameter of the wrong shape "
                  f"must be refused (raise a ValueError naming {name}), or a transposed "
                  f"weight is compared as if it were right")
        else:
            fix = ("check `np.all(np.isfinite(v))`" if "NaN" in what
                   else "compare the names given with your own")
            recommend(f"set_params accepted {what}; recommended: refuse it with a ValueError "
                      f"naming {name} ({fix} before copying in)")
        set_params(good)

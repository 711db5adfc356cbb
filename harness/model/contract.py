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
"""

from __future__ import annotations

import inspect
import math
import os

import numpy as np


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

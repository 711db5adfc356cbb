"""The arithmetic of a model under a gradient check: float64 copies, and the dtype it computes in.

Central differences need float64 (:mod:`harness.gradients.finite_diff`, "Precision"):
:func:`float64_copy` makes an independent float64 copy of a float32 model where its
class allows, and :func:`arithmetic_problem` tells when a model does not compute in
the dtype its parameters claim (its finite differences would then be rounding noise).
"""

from __future__ import annotations

from typing import Any

import math

import numpy as np

from harness.compare.equivalence import model_dtype
from harness.model.conventions import loss_conventions
from harness.errors import ProtocolError

#: a float64 loss whose five-point probe deviates from a parabola by more than this
#: times ``scale`` is computed in lower precision (float64 rounding: ~1e-16 x scale;
#: float32 arithmetic: ~1e-7 x scale)
NOISE_LIMIT_FLOAT64 = 1e-11


def float64_copy(model) -> tuple[Any, str] | None:
    """An independent float64 copy of ``model`` and how it was made, or None.

    Uses the ``as_float64()`` hook when the class defines it; rebuilds the built-in
    classes (exact types) with the model's loss conventions (loss reduction, L2 term
    in the loss and what it covers); returns None for anything else.
    """
    hook = getattr(model, "as_float64", None)
    if callable(hook):
        copy = hook()
        if model_dtype(copy) != np.float64 or tuple(copy.dims) != tuple(model.dims):
            raise ProtocolError(
                f"as_float64() of {type(model).__name__} must return a float64 model with dims "
                f"{tuple(model.dims)}, got {model_dtype(copy).name} with dims "
                f"{tuple(getattr(copy, 'dims', ()))}")
        return copy, "float64 copy via the class's as_float64()"
    from harness.model.registry import builtin_float64_copy

    return builtin_float64_copy(model, loss_conventions(model))


def arithmetic_problem(model, x, y, params, dtype, eps: float = 1e-6) -> str | None:
    """Why ``model`` does not compute in ``dtype`` (its parameters' dtype), or None.

    Looks at the dtypes of the logits, the gradients and the loss (a Python float is
    fine); in float64, also at five losses at ``b_L + k eps`` (k = -2..2, the output
    bias moves no hidden pre-activation, so the loss is smooth there): their distance
    from the best parabola through them is rounding noise, about 1e-16 x scale in
    float64 and 1e-7 x scale in float32 arithmetic.

    Parameters
    ----------
    model : Classifier
    x : ndarray of shape (N, d_0), y : ndarray of int, shape (N,)
    params : dict of ndarray
        The model's parameters; restored before returning.
    dtype : dtype
        What the model claims.
    eps : float
        Spacing of the five-point probe.
    """
    claimed = np.dtype(dtype)
    loss, grads = model.loss_and_grads(x, y)
    again = model.loss_and_grads(x, y)[0]
    if _differs(loss, again):
        return (f"the loss changes from call to call at the same parameters ({float(loss)!r}, "
                f"then {float(again)!r}): finite differences need a loss that is a function "
                f"of the parameters (randomness in loss_and_grads, such as a dropout mask "
                f"drawn from a generator of the class's own, or state kept between calls)")
    logits = np.asarray(model.forward(x))
    found = []
    if logits.dtype != claimed:
        found.append(f"logits {logits.dtype}")
    if isinstance(grads, dict):
        bad = sorted({str(np.asarray(g).dtype) for g in grads.values()
                      if np.asarray(g).dtype != claimed})
        if bad:
            found.append(f"gradients {', '.join(bad)}")
    if isinstance(loss, (np.ndarray, np.generic)) and np.asarray(loss).dtype.kind == "f" \
            and np.asarray(loss).dtype.itemsize < claimed.itemsize:
        found.append(f"loss {np.asarray(loss).dtype}")
    if found:
        return (f"the model claims {claimed.name} (its parameters) but returns "
                f"{'; '.join(found)}: finite differences would measure rounding noise")
    if claimed != np.float64:
        return None
    key = f"b{len(model.dims) - 2}"
    if key not in params or not np.size(params[key]):
        return None
    work = {k: np.array(v, copy=True) for k, v in params.items()}
    base = work[key].reshape(-1)
    orig = float(base[0])
    losses = []
    try:
        for k in (-2, -1, 0, 1, 2):
            base[0] = orig + k * eps
            model.set_params(work)
            losses.append(float(model.loss_and_grads(x, y)[0]))
    finally:
        model.set_params(params)
    losses = np.array(losses)
    if not np.all(np.isfinite(losses)):
        return None
    ks = np.arange(-2.0, 3.0)
    fit = np.polyval(np.polyfit(ks, losses, 2), ks)
    noise = float(np.abs(losses - fit).max())
    scale = max(1.0, float(np.abs(losses).max()), float(np.abs(np.asarray(
        logits, dtype=np.float64)[np.isfinite(logits)]).max(initial=0.0)))
    if noise > NOISE_LIMIT_FLOAT64 * scale:
        return (f"the model claims float64 but its loss is not computed in float64: five "
                f"losses {eps:g} apart deviate from a parabola by {noise:.2e} (float64 "
                f"rounding: about {1e-16 * scale:.0e}); finite differences would measure "
                f"rounding noise, so nothing was checked")
    return None


def _differs(a, b) -> bool:
    """Whether two losses at the same parameters differ (NaNs compared as equal)."""
    try:
        fa, fb = float(np.asarray(a).reshape(())), float(np.asarray(b).reshape(()))
    except (TypeError, ValueError):
        return False
    return not (fa == fb or (math.isnan(fa) and math.isnan(fb)))

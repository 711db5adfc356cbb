"""Element-wise comparison of two arrays under a relative and an absolute tolerance.

A quantity passes when every element satisfies (as ``numpy.isclose`` computes it)

    |actual - expected| <= atol * max(1, max|expected|) + rtol * |expected|

so ``atol`` is absolute for quantities of order one and relative to the quantity's
largest magnitude for bigger ones. Shape and dtype are compared first, then values;
NaN or inf anywhere is a mismatch. :mod:`harness.compare` builds the equivalence
check on it, :mod:`harness.localize` the layer-by-layer search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Comparison:
    """The verdict on one compared quantity (a row of an equivalence table)."""

    quantity: str
    shape: tuple[int, ...]
    passed: bool
    max_abs_err: float
    max_rel_err: float
    worst_index: tuple[int, ...] | None
    atol: float
    rtol: float
    n_mismatched: int = 0
    n_elements: int = 0
    message: str = ""
    n_ignored: int = 0

    def row(self) -> dict[str, Any]:
        return {
            "quantity": self.quantity,
            "shape": str(self.shape),
            "max_abs_err": self.max_abs_err,
            "max_rel_err": self.max_rel_err,
            "worst_index": "" if self.worst_index is None else str(self.worst_index),
            "atol": self.atol,
            "rtol": self.rtol,
            "mismatched": self.n_mismatched,
            "passed": self.passed,
        }


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def compare(quantity: str, actual, expected, *, rtol: float, atol: float,
            check_dtype: bool = True, ignore=None) -> Comparison:
    """Compare ``actual`` with ``expected`` like torch.testing.assert_close, without raising.

    Parameters
    ----------
    quantity : str
        Path of the quantity for messages, e.g. ``"grads['W1']"``.
    actual, expected : array_like or float
    rtol, atol : float
        See the module docstring for how ``atol`` scales.
    ignore : ndarray of bool, optional
        Same shape; True marks elements whose values are not compared (they must
        still be finite). Those that would have failed are counted in ``n_ignored``.
    """
    a = np.asarray(actual)
    e = np.asarray(expected)
    shape = tuple(e.shape)

    def fail(message: str, **kw) -> Comparison:
        fields = dict(max_abs_err=math.inf, max_rel_err=math.inf, worst_index=None,
                      n_mismatched=int(e.size), n_elements=int(e.size))
        fields.update(kw)
        return Comparison(quantity, shape, False, atol=atol, rtol=rtol,
                          message=f"{quantity}: {message}", **fields)

    if a.shape != e.shape:
        return fail(f"shape mismatch: expected {e.shape}, got {a.shape}")
    if check_dtype and a.dtype != e.dtype:
        return fail(f"dtype mismatch: expected {e.dtype}, got {a.dtype}")
    if a.dtype.kind not in "fiu" or e.dtype.kind not in "fiu":
        return fail(f"not numeric: dtypes {e.dtype} and {a.dtype}")
    a64 = a.astype(np.float64).reshape(-1)
    e64 = e.astype(np.float64).reshape(-1)
    finite = np.isfinite(a64) & np.isfinite(e64)
    if not finite.all():
        flat = int(np.argmin(finite))
        idx = _index(flat, shape)
        return fail(f"non-finite value at index {idx}: expected {e64[flat]}, got {a64[flat]}",
                    n_mismatched=int((~finite).sum()), worst_index=idx)
    if e.size == 0:
        return Comparison(quantity, shape, True, 0.0, 0.0, None, atol, rtol, 0, 0)
    scale = max(1.0, float(np.abs(e64).max()))
    atol_eff = atol * scale
    close = np.isclose(a64, e64, rtol=rtol, atol=atol_eff, equal_nan=False)
    diff = np.abs(a64 - e64)
    n_ignored = 0
    if ignore is not None:
        skip = np.broadcast_to(np.asarray(ignore, dtype=bool), shape).reshape(-1)
        n_ignored = int((skip & ~close).sum())  # only those that would have failed
        close = close | skip
        diff = np.where(skip, 0.0, diff)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.abs(e64))  # inf where expected is 0
    # the worst element is the one furthest beyond its own bound
    excess = diff / (atol_eff + rtol * np.abs(e64) + np.finfo(np.float64).tiny)
    worst_flat = int(np.argmax(excess))
    abs_flat, rel_flat = int(np.argmax(diff)), int(np.argmax(rel))
    n_bad = int((~close).sum())
    result = Comparison(
        quantity, shape, n_bad == 0,
        max_abs_err=float(diff[abs_flat]), max_rel_err=float(rel[rel_flat]),
        worst_index=_index(worst_flat, shape), atol=atol, rtol=rtol,
        n_mismatched=n_bad, n_elements=int(e.size), n_ignored=n_ignored,
    )
    if n_bad:
        i_abs, i_rel = _index(abs_flat, shape), _index(rel_flat, shape)
        bound_abs = atol_eff + rtol * abs(float(e64[abs_flat]))
        result.message = (
            f"{quantity}: {n_bad} / {e.size} elements mismatched ({100.0 * n_bad / e.size:.1f}%)\n"
            f"  greatest absolute difference: {result.max_abs_err:.3e} at index {i_abs} "
            f"(allowed {bound_abs:.3e} there = atol {atol:g} x scale {scale:.3g} "
            f"+ rtol {rtol:g} x |expected|)\n"
            f"  greatest relative difference: {result.max_rel_err:.3e} at index {i_rel} "
            f"(rtol {rtol:g})"
        )
    return result

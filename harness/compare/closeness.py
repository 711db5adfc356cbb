"""Element-wise comparison of two arrays under a relative and an absolute tolerance.

A quantity passes when every element satisfies (as ``numpy.isclose`` computes it)

    |actual - expected| <= atol * max(1, max|expected|) + rtol * |expected|

so ``atol`` is absolute for quantities of order one and relative to the quantity's
largest magnitude for bigger ones. Shape and dtype are compared first, then values;
NaN or inf anywhere is a mismatch. :mod:`harness.compare.equivalence` builds the equivalence
check on it, :mod:`harness.diagnose.localize` the layer-by-layer search.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


#: an arbitrated float32 entry may be this many times further from the float64 value
#: than the float32 reference is (at least its RMS distance over the quantity): two
#: correct float32 computations round differently; ``nn-harness calibrate`` measures
#: the false alarms and the detection this choice gives
ARBITER_MULTIPLIER = 8.0
#: ... plus this many float32 units of roundoff of the quantity's largest magnitude, for
#: quantities the float32 reference gets (nearly) exactly right
ARBITER_FLOOR_ULPS = 16.0
RULE_TOLERANCE = "tolerance"
RULE_ARBITER = "arbiter"


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
    n_excused: int = 0
    rule: str = RULE_TOLERANCE
    n_rel_defined: int | None = None

    @property
    def excused_share(self) -> float:
        """Excused entries as a share of the entries compared (0 for an empty quantity)."""
        return self.n_excused / self.n_elements if self.n_elements else 0.0

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
            "n_elements": self.n_elements,
            "n_excused": self.n_excused,
            "rule": self.rule,
        }


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def _as_scalar_loss(value) -> np.ndarray | None:
    """A loss as a 0-d float64 array when it is a Python float or a 0-d float array/scalar."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (float, int)):
        return np.asarray(float(value))
    arr = np.asarray(value)
    if arr.ndim == 0 and arr.dtype.kind == "f":
        return arr.astype(np.float64)
    return None


def compare(quantity: str, actual, expected, *, rtol: float, atol: float,
            check_dtype: bool = True, ignore=None, arbiter=None, arbiter_scale=None,
            scalar: bool = False) -> Comparison:
    """Compare ``actual`` with ``expected`` like torch.testing.assert_close, without raising.

    Parameters
    ----------
    quantity : str
        Path of the quantity for messages, e.g. ``"grads['W1']"``.
    actual, expected : array_like or float
    rtol, atol : float
        See the module docstring for how ``atol`` scales.
    ignore : ndarray of bool, optional
        Same shape; True marks elements that are excused (they must still be finite).
        Those that would have failed are counted in ``n_excused``.
    arbiter : array_like, optional
        The float64 value of the quantity (same shape). When given, an element passes
        where ``|actual - arbiter| <= ARBITER_MULTIPLIER * |expected - arbiter| + floor``
        (module docstring) and the row's ``rule`` is ``"arbiter"``.
    arbiter_scale : float, optional
        The magnitude the arbiter's floor is taken from when larger than the quantity's
        own (the largest of its family, e.g. of all gradients: see ``compare_dicts``).
    scalar : bool
        A loss: ``actual`` and ``expected`` may each be a Python float or a 0-d float
        array or NumPy scalar of any float dtype; dtypes are not compared.

    The relative error is taken over the elements whose expected value is not 0
    (``n_rel_defined`` of them; NaN when there is none).
    """
    rule = RULE_TOLERANCE if arbiter is None else RULE_ARBITER
    if scalar:
        a_s, e_s = _as_scalar_loss(actual), _as_scalar_loss(expected)
        if a_s is None or e_s is None:
            return _not_a_scalar(quantity, actual, expected, e_s, rtol=rtol, atol=atol,
                                 rule=rule)
        actual, expected, check_dtype = a_s, e_s, False
    a = np.asarray(actual)
    e = np.asarray(expected)
    shape = tuple(e.shape)

    def fail(message: str, **kw) -> Comparison:
        fields = dict(max_abs_err=math.inf, max_rel_err=math.inf, worst_index=None,
                      n_mismatched=int(e.size), n_elements=int(e.size))
        fields.update(kw)
        return Comparison(quantity, shape, False, atol=atol, rtol=rtol, rule=rule,
                          message=f"{quantity}: {message}", **fields)

    problem = _kind_problem(a, e, check_dtype)
    if problem is not None:
        return fail(problem)
    a64 = a.astype(np.float64).reshape(-1)
    e64 = e.astype(np.float64).reshape(-1)
    finite = np.isfinite(a64) & np.isfinite(e64)
    if not finite.all():
        flat = int(np.argmin(finite))
        idx = _index(flat, shape)
        return fail(f"non-finite value at index {idx}: expected {e64[flat]}, got {a64[flat]}",
                    n_mismatched=int((~finite).sum()), worst_index=idx)
    if e.size == 0:
        return Comparison(quantity, shape, True, 0.0, 0.0, None, atol, rtol, 0, 0, rule=rule,
                          n_rel_defined=0)
    if arbiter is None:
        bounds = _tolerance_bounds(a64, e64, rtol=rtol, atol=atol)
    else:
        bounds = _arbiter_bounds(a64, e64, arbiter, arbiter_scale)
        if bounds is None:
            return fail("the float64 arbiter's value has another shape or is not finite")
    return _verdict(quantity, shape, e64, bounds, ignore, rtol=rtol, atol=atol, rule=rule)


def _not_a_scalar(quantity: str, actual, expected, e_s, *, rtol: float, atol: float,
                  rule: str) -> Comparison:
    """The failed row of a loss (``scalar=True``) that is not a float or a 0-d float array."""
    a = np.asarray(actual)
    e = np.asarray(expected) if e_s is None else e_s
    shape = tuple(np.shape(expected))
    return Comparison(quantity, shape, False, math.inf, math.inf, None, atol, rtol,
                      int(e.size), int(e.size), rule=rule, message=(
                          f"{quantity}: must be a float or a 0-d float array, got "
                          f"{type(actual).__name__} {getattr(a, 'dtype', '')} of shape "
                          f"{np.shape(actual)}" if e_s is not None else
                          f"{quantity}: the reference's value is not a float or a 0-d "
                          f"float array ({type(expected).__name__})"))


def _kind_problem(a: np.ndarray, e: np.ndarray, check_dtype: bool) -> str | None:
    """Why two arrays cannot be compared element-wise (shape, dtype, not numbers), or None."""
    if a.shape != e.shape:
        return f"shape mismatch: expected {e.shape}, got {a.shape}"
    if check_dtype and a.dtype != e.dtype:
        return f"dtype mismatch: expected {e.dtype}, got {a.dtype}"
    if a.dtype.kind not in "fiu" or e.dtype.kind not in "fiu":
        return f"not numeric: dtypes {e.dtype} and {a.dtype}"
    return None


@dataclass
class _Bounds:
    """Per element: the distance compared, the distance allowed, whether it passes; and
    ``allowed(flat)``, the message's account of the bound at flat index ``flat``."""

    diff: np.ndarray
    bound: np.ndarray
    close: np.ndarray
    allowed: Callable[[int], str]


def _tolerance_bounds(a64: np.ndarray, e64: np.ndarray, *, rtol: float,
                      atol: float) -> _Bounds:
    """The tolerance rule: ``|a - e| <= atol * max(1, max|e|) + rtol * |e|``."""
    scale = max(1.0, float(np.abs(e64).max()))
    atol_eff = atol * scale
    bound = atol_eff + rtol * np.abs(e64)

    def allowed(flat: int) -> str:
        return (f"allowed {float(bound[flat]):.3e} there = atol {atol:g} x scale "
                f"{scale:.3g} + rtol {rtol:g} x |expected|")

    return _Bounds(np.abs(a64 - e64), bound,
                   np.isclose(a64, e64, rtol=rtol, atol=atol_eff, equal_nan=False), allowed)


def _arbiter_bounds(a64: np.ndarray, e64: np.ndarray, arbiter,
                    arbiter_scale) -> _Bounds | None:
    """The arbiter rule (module docstring); None when the arbiter's value is unusable."""
    r64 = np.asarray(arbiter, dtype=np.float64).reshape(-1)
    if r64.shape != e64.shape or not np.all(np.isfinite(r64)):
        return None
    floor = arbiter_floor(r64 if arbiter_scale is None else
                          max(arbiter_scale, float(np.abs(r64).max())))
    own = np.abs(e64 - r64)
    # per entry, but never below the reference's typical (RMS) distance over the
    # quantity: an entry the float32 reference rounds right by luck is no standard
    typical = float(np.sqrt(np.mean(own * own)))
    bound = ARBITER_MULTIPLIER * np.maximum(own, typical) + floor
    diff = np.abs(a64 - r64)

    def allowed(flat: int) -> str:
        return (f"from the float64 arbiter's value; allowed {float(bound[flat]):.3e}"
                f" there = {ARBITER_MULTIPLIER:g} x the float32 reference's own "
                f"distance {abs(float(e64[flat] - r64[flat])):.3e} (at least "
                f"its RMS {typical:.3e} over the quantity) + floor {floor:.3e}")

    return _Bounds(diff, bound, diff <= bound, allowed)


def _verdict(quantity: str, shape: tuple[int, ...], e64: np.ndarray, bounds: _Bounds,
             ignore, *, rtol: float, atol: float, rule: str) -> Comparison:
    """The row of a comparison whose bounds are known: errors, worst entry, message."""
    diff, bound, close = bounds.diff, bounds.bound, bounds.close
    n_excused = 0
    judged = diff  # the statistics keep excused entries (the count says how many)
    if ignore is not None:
        skip = np.broadcast_to(np.asarray(ignore, dtype=bool), shape).reshape(-1)
        n_excused = int((skip & ~close).sum())  # only those that would have failed
        close = close | skip
        judged = np.where(skip, 0.0, diff)
    nonzero = e64 != 0
    rel = np.zeros_like(diff)
    np.divide(diff, np.abs(e64), out=rel, where=nonzero)
    n_rel = int(nonzero.sum())
    # the worst element is the one furthest beyond its own bound, excused ones aside
    excess = judged / (bound + np.finfo(np.float64).tiny)
    worst_flat = int(np.argmax(excess))
    abs_flat, rel_flat = int(np.argmax(diff)), int(np.argmax(rel))
    n_bad = int((~close).sum())
    result = Comparison(
        quantity, shape, n_bad == 0,
        max_abs_err=float(diff[abs_flat]),
        max_rel_err=float(rel[rel_flat]) if n_rel else math.nan,
        worst_index=_index(worst_flat, shape), atol=atol, rtol=rtol,
        n_mismatched=n_bad, n_elements=int(e64.size), n_excused=n_excused, rule=rule,
        n_rel_defined=n_rel,
    )
    if n_bad:  # the message: the largest differences among the entries that failed
        bad_abs = int(np.argmax(np.where(close, -1.0, diff)))
        bad_rel = int(np.argmax(np.where(close | ~nonzero, -1.0, rel)))
        i_abs, i_rel = _index(bad_abs, shape), _index(bad_rel, shape)
        rel_text = (f"  greatest relative difference: {float(rel[bad_rel]):.3e} at index "
                    f"{i_rel} (over the {n_rel} elements whose expected value is not 0)"
                    if n_rel else "  relative difference undefined: every expected value is 0")
        excused = (f"; {n_excused} more excused, included in the row's statistics"
                   if n_excused else "")
        result.message = (
            f"{quantity}: {n_bad} / {e64.size} elements mismatched "
            f"({100.0 * n_bad / e64.size:.1f}%){excused}\n"
            f"  greatest absolute difference: {float(diff[bad_abs]):.3e} at index {i_abs} "
            f"({bounds.allowed(bad_abs)})\n" + rel_text
        )
    return result


def arbiter_floor(value64) -> float:
    """The absolute floor of the arbiter rule for a quantity whose float64 value is given.

    ``ARBITER_FLOOR_ULPS`` float32 units of roundoff of the quantity's largest magnitude.
    """
    v = np.abs(np.asarray(value64, dtype=np.float64))
    scale = float(v.max()) if v.size else 0.0
    return ARBITER_FLOOR_ULPS * float(np.finfo(np.float32).eps) * max(scale, _TINY32)


_TINY32 = float(np.finfo(np.float32).tiny)


def compare_dicts(prefix: str, actual: dict, expected: dict, *, rtol: float, atol: float,
                  ignore: dict | None = None, arbiter: dict | None = None) -> list[Comparison]:
    """Compare two dicts of arrays key by key (expected's keys, in its order).

    ``ignore`` maps a key to a boolean mask of excused elements; ``arbiter`` maps a
    key to the float64 arbiter's value (see :func:`compare`). Under the arbiter, the
    floor of every entry is taken from the largest magnitude of the whole dict (all
    gradients, all parameters): a small quantity such as one bias gradient is a sum
    whose terms are as large as the others, and its float32 rounding is theirs.
    """
    rows = []
    rule = RULE_TOLERANCE if arbiter is None else RULE_ARBITER
    family = None
    if arbiter is not None:
        sizes = [float(np.max(np.abs(np.asarray(v, dtype=np.float64))))
                 for v in arbiter.values() if np.size(v)]
        family = max(sizes) if sizes else None
    for key in expected:
        name = f"{prefix}['{key}']"
        if key not in actual:
            rows.append(Comparison(name, tuple(np.shape(expected[key])), False, math.inf,
                                   math.inf, None, atol, rtol, rule=rule,
                                   message=f"{name}: missing"))
            continue
        rows.append(compare(name, actual[key], expected[key], rtol=rtol, atol=atol,
                            ignore=None if ignore is None else ignore.get(key),
                            arbiter=None if arbiter is None else arbiter.get(key),
                            arbiter_scale=family))
    for key in actual:
        if key not in expected:
            name = f"{prefix}['{key}']"
            rows.append(Comparison(name, tuple(np.shape(actual[key])), False, math.inf, math.inf,
                                   None, atol, rtol, rule=rule,
                                   message=f"{name}: unexpected key"))
    return rows


def scalar64(value) -> float:
    """A loss (Python float, 0-d array or NumPy scalar) as a float; NaN when it is not one."""
    v = _as_scalar_loss(value)
    return math.nan if v is None else float(v)

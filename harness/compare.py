"""Comparing two implementations: tolerances, per-quantity verdicts, the equivalence check.

A quantity passes when every element satisfies (as ``numpy.isclose`` computes it)

    |actual - expected| <= atol * max(1, max|expected|) + rtol * |expected|

so ``atol`` is absolute for quantities of order one and relative to the quantity's
largest magnitude for bigger ones (logits of size 1e4 get a proportionally larger
floor; rounding errors of sums scale with their terms, not with each result).
Shape and dtype are compared first, then values; NaN or inf anywhere is a mismatch.

Default tolerances (rtol, atol), per dtype:

* float64: (1e-7, 1e-12). Rounding differences between two correct float64
  implementations (different BLAS blockings, summation orders) are of order
  1e-16 * K for K-term sums, far below; a relative error of 1e-6 in any single
  gradient entry larger than about 1e-6 (times the quantity's scale) exceeds the bound.
* float32: (1e-4, 1e-5). float32 keeps about 7 digits; two correct
  implementations differ by a few units of 1e-7 per operation, amplified by
  depth, batch sums and near-ties in the softmax. These bounds pass correct
  implementations on every architecture the property-based tests generate and
  still catch gross errors (a wrong derivative, a missing mask, a factor of N).
  Use float64 to catch subtle ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.closeness import Comparison, compare
from harness.errors import ConfigError
from harness.util import jsonable

DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-12),
    "float32": (1e-4, 1e-5),
}


def default_tolerances(dtype) -> tuple[float, float]:
    """``(rtol, atol)`` for ``dtype`` (float32 or float64)."""
    name = np.dtype(dtype).name
    if name not in DEFAULT_TOLERANCES:
        raise ConfigError(
            f"no default tolerances for dtype {name!r}; choose one of "
            f"{', '.join(DEFAULT_TOLERANCES)} or pass rtol and atol"
        )
    return DEFAULT_TOLERANCES[name]


def resolve_tolerances(dtype, rtol: float | None, atol: float | None) -> tuple[float, float]:
    """Defaults for ``dtype`` where ``rtol`` or ``atol`` is None; validated.

    As with torch.testing.assert_close, give both or neither.
    """
    if (rtol is None) != (atol is None):
        raise ConfigError(f"give both `rtol` and `atol` or neither, got rtol={rtol}, atol={atol}")
    if rtol is None:
        return default_tolerances(dtype)
    for key, value in (("rtol", rtol), ("atol", atol)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"`{key}` must be a finite number >= 0, got {value!r}")
    return float(rtol), float(atol)


def compare_dicts(prefix: str, actual: dict, expected: dict, *, rtol: float, atol: float,
                  ignore: dict | None = None) -> list[Comparison]:
    """Compare two dicts of arrays key by key (expected's keys, in its order).

    ``ignore`` maps a key to a boolean mask of elements not to compare.
    """
    rows = []
    for key in expected:
        name = f"{prefix}['{key}']"
        if key not in actual:
            rows.append(Comparison(name, tuple(np.shape(expected[key])), False, math.inf,
                                   math.inf, None, atol, rtol, message=f"{name}: missing"))
            continue
        rows.append(compare(name, actual[key], expected[key], rtol=rtol, atol=atol,
                            ignore=None if ignore is None else ignore.get(key)))
    for key in actual:
        if key not in expected:
            name = f"{prefix}['{key}']"
            rows.append(Comparison(name, tuple(np.shape(actual[key])), False, math.inf, math.inf,
                                   None, atol, rtol, message=f"{name}: unexpected key"))
    return rows


def comparisons_table(rows: list[Comparison]):
    """The rows as a pandas DataFrame (one row per quantity)."""
    import pandas as pd

    columns = ["quantity", "shape", "max_abs_err", "max_rel_err", "worst_index", "atol",
               "rtol", "mismatched", "passed"]
    return pd.DataFrame([r.row() for r in rows], columns=columns)


def format_table(rows: list[Comparison]) -> str:
    """A fixed-width text table of the rows."""
    header = f"{'quantity':<28} {'shape':<12} {'max_abs_err':>11} {'max_rel_err':>11} " \
             f"{'worst_index':<12} {'verdict':>7}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.quantity:<28} {str(r.shape):<12} {r.max_abs_err:>11.3e} {r.max_rel_err:>11.3e} "
            f"{'' if r.worst_index is None else str(r.worst_index):<12} "
            f"{'PASS' if r.passed else 'FAIL':>7}"
        )
    return "\n".join(lines)


@dataclass
class EquivalenceReport:
    """Outcome of :func:`check_equivalence`.

    Attributes
    ----------
    passed : bool
    rows : list of Comparison, in the order compared
    rtol, atol : float, the tolerances used
    dtype : str
    divergence : dict or None
        Where the implementations first part, when both expose intermediates and
        something failed: ``quantity`` (e.g. ``"dz1"``), ``layer``, ``phase``
        (forward or backward), ``message``; ``localised`` is False (quantity None)
        when every intermediate agrees. See :func:`harness.localize.locate_divergence`.
    notes : list of str
        Extra lines for the text report (e.g. why no layer-level localisation was possible).
    """

    rows: list[Comparison]
    rtol: float
    atol: float
    dtype: str
    reference: str = "reference"
    candidate: str = "candidate"
    divergence: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def first_failure(self) -> Comparison | None:
        return next((r for r in self.rows if not r.passed), None)

    @property
    def table(self):
        return comparisons_table(self.rows)

    def __str__(self) -> str:
        lines = [
            f"equivalence: {self.candidate} against {self.reference} "
            f"({self.dtype}, rtol={self.rtol:g}, atol={self.atol:g})",
            format_table(self.rows),
        ]
        first = self.first_failure
        if first is None:
            lines.append(f"PASS: all {len(self.rows)} quantities agree")
        else:
            n_bad = sum(not r.passed for r in self.rows)
            lines.append(f"FAIL: {n_bad} of {len(self.rows)} quantities differ; "
                         f"first: {first.quantity}")
            lines.append(first.message)
            if self.divergence:
                lines.append(f"first divergence: {self.divergence['message']}")
        lines.extend(self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        first = self.first_failure
        return {
            "check": "equivalence",
            "passed": self.passed,
            "reference": self.reference,
            "candidate": self.candidate,
            "dtype": self.dtype,
            "rtol": self.rtol,
            "atol": self.atol,
            "first_failure": None if first is None else first.quantity,
            "first_failure_message": None if first is None else first.message,
            "divergence": self.divergence,
            "notes": list(self.notes),
            "rows": [jsonable(r.row()) for r in self.rows],
        }

    def _repr_html_(self) -> str:
        """The HTML form Jupyter shows (:mod:`harness.display`)."""
        from harness.display import to_html

        return to_html(self)


def model_dtype(model) -> np.dtype:
    """The dtype a model computes in, read off its parameters."""
    params = model.get_params()
    return np.asarray(next(iter(params.values()))).dtype


def validate_batch(x, y, dims: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Check a batch against a network's dims; return (x, y) as arrays."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ConfigError(f"`x` must be a non-empty 2-D array, got shape {x.shape}")
    if x.shape[1] != dims[0]:
        raise ConfigError(f"`x` has {x.shape[1]} features but dims[0] is {dims[0]}")
    if x.dtype.kind not in "fiu" or not np.all(np.isfinite(x)):
        raise ConfigError("`x` must hold finite numbers")
    if y.shape != (x.shape[0],):
        raise ConfigError(f"`y` must have shape ({x.shape[0]},), got {y.shape}")
    if y.dtype.kind not in "iu":
        raise ConfigError(f"`y` must hold integer class indices, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= dims[-1]):
        raise ConfigError(f"`y` must be in 0..{dims[-1] - 1} (dims[-1] classes), "
                          f"got values {y.min()}..{y.max()}")
    return x, y.astype(np.int64)


def noise_level_gradients(grads: dict, atol: float) -> dict:
    """Masks of gradient entries indistinguishable from zero at the tolerance ``atol``.

    An entry with |g| <= atol * max(1, max|g|) may be pure rounding noise, of either
    sign, in either implementation. Adam and AdamW divide by sqrt(v) + eps, so on
    their first step such an entry moves its parameter by about lr whatever its size:
    two correct float32 implementations can then differ there by up to 2 lr. The
    post-step comparison skips these entries (they are still checked for finiteness
    and counted in the report); the gradient rows above already compared them.
    """
    masks = {}
    for key, g in grads.items():
        g = np.abs(np.asarray(g, dtype=np.float64))
        if g.size:
            masks[key] = g <= atol * max(1.0, float(g.max()))
    return masks


def check_equivalence(reference, candidate, x, y, *, rtol: float | None = None,
                      atol: float | None = None, reference_name: str = "reference",
                      candidate_name: str = "candidate") -> EquivalenceReport:
    """Copy ``reference``'s parameters into ``candidate`` and compare everything.

    Compared, in order: the parameters after the copy, the logits, the loss, every
    gradient, the loss returned by one ``train_step`` of each, and every parameter
    after that step. Both models are changed: the candidate gets the reference's
    parameters, and each takes one optimizer step.

    Parameters
    ----------
    reference, candidate : Classifier
        Same ``dims``; compared in the reference's dtype.
    x : ndarray of shape (N, d_0)
    y : ndarray of int, shape (N,)
    rtol, atol : float, optional
        Both or neither; defaults from :data:`DEFAULT_TOLERANCES` by dtype.
    """
    from harness.params import copy_params

    if tuple(reference.dims) != tuple(candidate.dims):
        raise ConfigError(f"reference dims {tuple(reference.dims)} differ from candidate dims "
                          f"{tuple(candidate.dims)}")
    x, y = validate_batch(x, y, tuple(reference.dims))
    dtype = model_dtype(reference)
    rtol, atol = resolve_tolerances(dtype, rtol, atol)
    tol = dict(rtol=rtol, atol=atol)
    x = x.astype(dtype, copy=False)

    copy_params(reference, candidate)
    rows = compare_dicts("params", candidate.get_params(), reference.get_params(), **tol)
    rows.append(compare("logits", candidate.forward(x), reference.forward(x), **tol))
    loss_r, grads_r = reference.loss_and_grads(x, y)
    loss_c, grads_c = candidate.loss_and_grads(x, y)
    rows.append(compare("loss", loss_c, loss_r, **tol))
    rows.extend(compare_dicts("grads", grads_c, grads_r, **tol))

    divergence = None
    notes: list[str] = []
    if not all(r.passed for r in rows):
        from harness.localize import localisation_note, locate_divergence

        divergence = locate_divergence(reference, candidate, x, y, **tol,
                                       reference_name=reference_name,
                                       candidate_name=candidate_name)
        if divergence is None:
            notes.append(localisation_note(reference, candidate, reference_name,
                                           candidate_name))

    step_r = reference.train_step(x, y)
    step_c = candidate.train_step(x, y)
    rows.append(compare("train_step loss", step_c, step_r, **tol))
    noise = noise_level_gradients(grads_r, atol)
    after = compare_dicts("params after step", candidate.get_params(), reference.get_params(),
                          **tol, ignore=noise)
    n_noise = sum(r.n_ignored for r in after)
    if n_noise:
        notes.append(
            f"note: {n_noise} parameter entries differed after the step where the reference "
            f"gradient is zero within atol; they were let through, since an optimizer that "
            f"normalises the gradient (Adam) turns rounding noise there into a full step")
    rows.extend(after)
    return EquivalenceReport(rows, rtol, atol, dtype.name, reference_name, candidate_name,
                             divergence=divergence, notes=notes)

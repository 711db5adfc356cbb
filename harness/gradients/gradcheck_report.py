"""The report of a finite-difference gradient check: per parameter, then as a whole.

:func:`harness.gradients.finite_diff.gradcheck` fills a :class:`ParamCheck` per
parameter (entries checked, skipped at kinks, failed, the worst error) and returns a
:class:`GradcheckReport`: its verdict (PASS, FAIL or NOT CHECKED, as that module's
docstring, "Verdicts", defines them), its counts line, its text and its dict form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


from harness.compare.counts import format_counts, total
from harness.runtime.values import jsonable

PASS, FAIL, NOT_CHECKED = "PASS", "FAIL", "NOT CHECKED"
#: at most this share of a parameter's checked entries may be skipped as kinks; above it
#: the parameter is NOT CHECKED (a skip excuses an entry, and a parameter whose entries
#: are mostly excused has not been checked: noise in the gradient looks like kinks)
KINK_SHARE_LIMIT = 0.25
#: this many kinks a parameter may always have, whatever its share: one relu unit on its
#: kink is one of a 3-entry bias's entries (calibration configuration 6709)
KINKS_ALWAYS_ALLOWED = 1

@dataclass
class ParamCheck:
    """The verdict on one parameter (a row of the gradcheck table)."""

    name: str
    shape: tuple[int, ...]
    size: int
    checked: int = 0
    kinks: int = 0
    failed: int = 0
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    worst_index: tuple[int, ...] | None = None
    worst_analytic: float | None = None
    worst_numerical: float | None = None
    worst_allowed: float | None = None
    indices: list[tuple[int, ...]] = field(default_factory=list)
    kink_indices: list[tuple[int, ...]] = field(default_factory=list)
    failed_indices: list[tuple[int, ...]] = field(default_factory=list)
    message: str = ""

    @property
    def passed(self) -> bool:
        """PASS only: a NOT CHECKED parameter is not a pass."""
        return self.verdict == PASS

    @property
    def verified(self) -> int:
        """Entries checked that agree: neither skipped as kinks nor failed."""
        return self.checked - self.kinks - self.failed

    @property
    def too_many_kinks(self) -> bool:
        """More than :data:`KINK_SHARE_LIMIT` of the checked entries skipped as kinks,
        and more than :data:`KINKS_ALWAYS_ALLOWED`."""
        return (self.checked > 0 and self.kinks > KINK_SHARE_LIMIT * self.checked
                and self.kinks > KINKS_ALWAYS_ALLOWED)

    @property
    def verdict(self) -> str:
        if self.failed:
            return FAIL
        return NOT_CHECKED if not self.verified or self.too_many_kinks else PASS

    def row(self) -> dict[str, Any]:
        return {
            "parameter": self.name,
            "shape": str(self.shape),
            "entries": self.size,
            "checked": self.checked,
            "kinks_skipped": self.kinks,
            "failed": self.failed,
            "max_abs_err": self.max_abs_err,
            "max_rel_err": self.max_rel_err,
            "worst_index": "" if self.worst_index is None else str(self.worst_index),
            "verdict": self.verdict,
        }


@dataclass
class GradcheckReport:
    """Outcome of :func:`gradcheck`.

    Attributes
    ----------
    params : list of ParamCheck, one per parameter, canonical order
    eps, rtol, atol : float, what was used
    scale : float, the ``max(1, |L|, max|logits|)`` that multiplies ``atol``
    model_dtype : str, the dtype of the model given
    checked_dtype : str, the dtype the differences were computed in
    precision : str, how: ``"float64"``, ``"float64 copy (...)"`` or ``"float32 ..."``
    kink_detection : str, ``"pre-activations"``, ``"one-sided differences"`` or ``"none ..."``
    """

    params: list[ParamCheck]
    eps: float
    rtol: float
    atol: float
    scale: float
    loss: float
    n_samples: int
    model_dtype: str
    checked_dtype: str
    precision: str
    kink_detection: str
    name: str = "model"
    notes: list[str] = field(default_factory=list)
    arithmetic_problem: str | None = None

    @property
    def status(self) -> str:
        """PASS, FAIL or NOT CHECKED (module docstring, "Verdicts")."""
        if self.arithmetic_problem:
            return NOT_CHECKED
        verdicts = [p.verdict for p in self.params]
        if FAIL in verdicts:
            return FAIL
        if NOT_CHECKED in verdicts or not verdicts:
            return NOT_CHECKED
        return PASS

    @property
    def passed(self) -> bool:
        """True only when ``status`` is PASS."""
        return self.status == PASS

    @property
    def first_failure(self) -> ParamCheck | None:
        return next((p for p in self.params if p.verdict == FAIL), None)

    @property
    def n_params(self) -> int:
        return len(self.params)

    n_checked = total("params", "checked", "Entries checked (verified, failed or skipped).")
    n_skipped = total("params", "kinks", "Entries skipped at kinks.")
    n_failed = total("params", "failed", "Entries that differ.")

    @property
    def n_verified(self) -> int:
        """Entries checked that agree: ``n_checked = n_verified + n_failed + n_skipped``."""
        return self.n_checked - self.n_skipped - self.n_failed

    @property
    def n_excused(self) -> int:
        """Entries let through without a verdict: the kinks (same as ``n_skipped``)."""
        return self.n_skipped

    @property
    def counts_line(self) -> str:
        n_ok = sum(p.verdict == PASS for p in self.params)
        return format_counts(f"{n_ok} of {self.n_params} parameters verified", self.n_checked,
                           (self.n_verified, "verified"), (self.n_failed, "failed"),
                           (self.n_skipped, "skipped (kinks)"), verb="checked")

    @property
    def table(self):
        """One row per parameter as a pandas DataFrame."""
        import pandas as pd

        columns = ["parameter", "shape", "entries", "checked", "kinks_skipped", "failed",
                   "max_abs_err", "max_rel_err", "worst_index", "verdict"]
        return pd.DataFrame([p.row() for p in self.params], columns=columns)

    def format_table(self) -> str:
        header = (f"{'parameter':<10} {'shape':<10} {'checked':>12} {'kinks':>6} "
                  f"{'failed':>6} {'max_abs_err':>11} {'max_rel_err':>11} {'verdict':>7}")
        lines = [header, "-" * len(header)]
        for p in self.params:
            lines.append(
                f"{p.name:<10} {p.shape!s:<10} {f'{p.checked}/{p.size}':>12} "
                f"{p.kinks:>6} {p.failed:>6} {p.max_abs_err:>11.3e} {p.max_rel_err:>11.3e} "
                f"{p.verdict:>7}")
        return "\n".join(lines)

    def __str__(self) -> str:
        lines = [
            f"gradcheck: {self.name} ({self.precision}), {self.n_samples} samples, "
            f"eps={self.eps:g}, rtol={self.rtol:g}, atol={self.atol:g} x scale {self.scale:.3g}, "
            f"kinks by {self.kink_detection}",
            self.format_table(),
        ]
        checked, kinks = self.n_checked, self.n_skipped
        first = self.first_failure
        status = self.status
        if status == NOT_CHECKED:
            if self.arithmetic_problem:
                lines.append(f"NOT CHECKED: {self.arithmetic_problem}")
            else:
                unchecked = [p for p in self.params if p.verdict == NOT_CHECKED]
                capped = [f"{p.name} ({p.kinks} of {p.checked})" for p in unchecked
                          if p.verified]
                empty = [p.name for p in unchecked if not p.verified]
                why = []
                if empty:
                    why.append(f"nothing verified for {', '.join(empty)} (every checked "
                               f"entry sat on a kink)")
                if capped:
                    why.append(f"more than {KINK_SHARE_LIMIT:.0%} of the checked entries "
                               f"skipped as kinks for {', '.join(capped)}, too many to "
                               f"excuse")
                lines.append(f"NOT CHECKED: {'; '.join(why)}; {checked - kinks} of "
                             f"{checked} checked entries verified ({kinks} skipped "
                             f"at kinks). Not a pass: try another seed, more samples or a "
                             f"smaller eps")
        elif first is None:
            lines.append(f"PASS: {checked - kinks} of {checked} checked entries agree "
                         f"({kinks} skipped at kinks)")
        else:
            bad = [p for p in self.params if not p.passed]
            lines.append(f"FAIL: {len(bad)} of {len(self.params)} parameters differ "
                         f"({', '.join(p.name for p in bad)}); first: {first.name}")
            lines.append(first.message)
        lines.extend(self.notes)
        lines.append(self.counts_line)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        first = self.first_failure
        return {
            "check": "gradcheck",
            "passed": self.passed,
            "status": self.status,
            "arithmetic_problem": self.arithmetic_problem,
            "n_params": self.n_params,
            "n_checked": self.n_checked,
            "n_verified": self.n_verified,
            "n_failed": self.n_failed,
            "n_skipped": self.n_skipped,
            "skipped_because": "kinks",
            "name": self.name,
            "eps": self.eps,
            "rtol": self.rtol,
            "atol": self.atol,
            "scale": self.scale,
            "loss": jsonable(self.loss),
            "n_samples": self.n_samples,
            "model_dtype": self.model_dtype,
            "checked_dtype": self.checked_dtype,
            "precision": self.precision,
            "kink_detection": self.kink_detection,
            "first_failure": None if first is None else first.name,
            "first_failure_message": None if first is None else first.message,
            "notes": list(self.notes),
            "params": [
                {**{k: jsonable(v) for k, v in p.row().items()},
                 "shape": list(p.shape),
                 "worst_index": None if p.worst_index is None else list(p.worst_index),
                 "worst_analytic": jsonable(p.worst_analytic),
                 "worst_numerical": jsonable(p.worst_numerical),
                 "kink_indices": [list(i) for i in p.kink_indices],
                 "passed": p.passed,
                 "message": p.message}
                for p in self.params
            ],
        }

    def _repr_html_(self) -> str:
        """The HTML form Jupyter shows (:mod:`harness.compare.html`)."""
        from harness.compare.html import to_html

        return to_html(self)


# --------------------------------------------------------------------- checks

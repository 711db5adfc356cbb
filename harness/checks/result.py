"""Typed results of the checks: verdicts, findings, one dict form, one flat row, one text.

Statuses, from best to worst:

* ``PASS``: the check ran and everything it compared agrees.
* ``INFO``: a measurement (the benchmark); never a failure.
* ``WARN``: the check passed, but the agreement proves little (both trainings
  diverged the same way, most entries excused); exit code 0 with a warning.
* ``NOT CHECKED``: nothing could be compared (every entry skipped); not a pass.
* ``FAIL``: a mismatch, a non-finite value, or the code under test raised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from harness.runtime.values import jsonable

PASS, INFO, WARN, NOT_CHECKED, FAIL = "PASS", "INFO", "WARN", "NOT CHECKED", "FAIL"
STATUSES: tuple[str, ...] = (PASS, INFO, WARN, NOT_CHECKED, FAIL)
#: statuses that let a run exit 0
PASSING: frozenset[str] = frozenset({PASS, INFO, WARN})


def worst_status(statuses) -> str:
    """The worst of ``statuses`` (PASS for none)."""
    return max(statuses, key=STATUSES.index, default=PASS)


@dataclass
class Verdict:
    """One line of a run's verdicts: a check (or one backend's part of it) and its word."""

    name: str
    title: str
    status: str
    summary: str
    seconds: float | None = None

    @property
    def passed(self) -> bool:
        return self.status in PASSING

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "status": self.status,
                "passed": self.passed, "summary": self.summary,
                "seconds": None if self.seconds is None else round(self.seconds, 3)}


@dataclass
class Finding:
    """The code under test raised or returned something unusable: where, and what.

    ``where`` is ``file:line`` of the innermost frame in the user's own file (or of
    the backend's method when no such frame exists), ``source`` that line's text.
    """

    backend: str
    method: str
    error_type: str
    message: str
    where: str | None = None
    source: str | None = None

    def __str__(self) -> str:
        text = f"{self.backend}.{self.method} raised {self.error_type}: {self.message}"
        if self.where:
            text += f" (at {self.where}" + (f": `{self.source.strip()}`" if self.source else "") + ")"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "method": self.method, "error_type": self.error_type,
                "message": self.message, "where": self.where, "source": self.source}


# ------------------------------------------------------------------------ columns
#: per check, the flat columns its row holds beyond the common ones, with their
#: types ("bool", "int", "float", "str"); a sweep stores exactly these
_COLUMNS: dict[str, dict[str, str]] = {
    "equivalence": {
        "equivalence_first_failure": "str", "equivalence_max_abs_err": "float",
        "equivalence_max_rel_err": "float", "grad_max_abs_err": "float",
        "grad_max_rel_err": "float", "equivalence_quantities": "int",
        "equivalence_entries": "int", "equivalence_excused": "int",
        "equivalence_divergence": "str", "equivalence_localised": "str",
    },
    "gradcheck": {
        "gradcheck_first_failure": "str", "gradcheck_max_abs_err": "float",
        "gradcheck_max_rel_err": "float", "gradcheck_checked": "int",
        "gradcheck_skipped": "int", "gradcheck_localised": "str",
    },
    "training": {
        "training_steps": "int", "first_divergence_step": "int",
        "training_divergence": "str", "training_max_loss_diff": "float",
        "training_max_param_diff": "float", "training_caution": "str",
        "training_localised": "str",
    },
    "drift": {"drift_steps": "int", "drift_max_param_diff": "float",
              "drift_max_loss_diff": "float"},
    "cv": {"cv_agreement": "float", "cv_n_val": "int", "cv_n_identical": "int",
           "cv_witness_agreement": "float", "cv_max_val_acc_diff": "float"},
    "bench": {"bench_measurements": "int", "bench_ratio_to_torch": "float",
              "bench_disturbed": "bool"},
}
#: columns every check's row has, ``{check}`` replaced by its name
_COMMON = {"{check}_status": "str", "{check}_passed": "bool", "{check}_summary": "str",
           "{check}_hints": "str", "{check}_findings": "str", "t_{check}_s": "float"}


def columns(checks) -> dict[str, str]:
    """The flat columns (name -> type) of the rows of ``checks``, in a fixed order."""
    out: dict[str, str] = {}
    for check in checks:
        for key, kind in _COMMON.items():
            out[key.format(check=check)] = kind
        out.update(_COLUMNS.get(check, {}))
    return out


def _cell(value, kind: str):
    """``value`` as a column of type ``kind`` can hold it (None for missing or non-finite)."""
    if value is None:
        return None
    if kind == "float":
        value = float(value)
        return value if math.isfinite(value) else None
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    return str(value)


# ------------------------------------------------------------------------ results
@dataclass
class CheckResult:
    """The outcome of one check.

    Attributes
    ----------
    check : str
        One of :data:`harness.checks.CHECKS`.
    verdicts : list of Verdict
        One per part (a gradient check has one per backend); the check's status is
        the worst of them.
    report : object
        The underlying report (``EquivalenceReport``, ``GradcheckReport`` or a dict of
        them by backend, ``TrajectoryReport``, ``CVReport``, ``BenchResult``), or None
        when the code under test raised before one existed.
    settings : dict
        What was run (backends, dtype, optimizer, sizes): the header of every output.
    fields : dict
        Flat values for tables and sweep rows (see :func:`columns`).
    hints : list of str
        Likely causes of a failure, each with its evidence and the flags that would
        align the reference; empty for a pass.
    findings : list of Finding
        Exceptions and unusable return values of the code under test.
    notes : list of str
        Anything else worth a line.
    header : list of str
        The lines describing the configuration (model, optimizer, conventions).
    error : str, optional
        Why the check produced no report (a numerical failure before the end).
    """

    check: str
    verdicts: list[Verdict]
    report: Any = None
    settings: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    hints: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    #: the complete nearby setting (a harness.diagnose.search.Setting) under which the
    #: candidate passes this check, found by the convention search, and its hint
    passing: Any = None
    passing_hint: str | None = None

    @property
    def status(self) -> str:
        return worst_status(v.status for v in self.verdicts)

    @property
    def passed(self) -> bool:
        return self.status in PASSING

    @property
    def summary(self) -> str:
        return "; ".join(v.summary for v in self.verdicts)

    def report_dict(self) -> dict[str, Any]:
        """The underlying report's own dictionary form (empty when there is none)."""
        rep = self.report
        if rep is None:
            return {}
        if isinstance(rep, dict):
            return {"backends": {name: r.to_dict() for name, r in rep.items()}}
        return rep.to_dict()

    def to_dict(self, *, timings: bool = True) -> dict[str, Any]:
        """The report's own dict, and the verdicts, hints, findings and settings.

        ``timings=False`` leaves out every duration, so that the same run gives the
        same bytes (files meant to be compared across runs).
        """
        out = self.report_dict()
        if self.error is not None:
            out.setdefault("error", self.error)
        out.update({
            "check": self.check, "status": self.status, "passed": self.passed,
            "summary": self.summary, "verdicts": [v.to_dict() for v in self.verdicts],
            "hints": list(self.hints), "findings": [f.to_dict() for f in self.findings],
            "notes": list(out.get("notes", [])) + [n for n in self.notes
                                                  if n not in out.get("notes", [])],
            "header": list(self.header), "settings": self.settings,
            "fields": {k: v for k, v in self.row().items()},
            "seconds": round(self.seconds, 3),
        })
        if not timings:
            out.pop("seconds")
            out["fields"].pop(f"t_{self.check}_s", None)
            for v in out["verdicts"]:
                v.pop("seconds", None)
        return jsonable(out)

    def row(self) -> dict[str, Any]:
        """The flat row of this check: exactly the columns :func:`columns` declares."""
        c = self.check
        values = {f"{c}_status": self.status, f"{c}_passed": self.passed,
                  f"{c}_summary": self.summary, f"{c}_hints": " | ".join(self.hints) or None,
                  f"{c}_findings": " | ".join(map(str, self.findings)) or None,
                  f"t_{c}_s": self.seconds, **self.fields}
        return {key: _cell(values.get(key), kind) for key, kind in columns([c]).items()}

    def text(self) -> str:
        """What the command line prints: header, the report, findings, hints, verdict."""
        lines = list(self.header)
        if self.report is not None:
            if isinstance(self.report, dict):
                lines.extend(str(r) for r in self.report.values())
            else:
                lines.append(str(self.report))
        for f in self.findings:
            lines.append(f"FAIL: {f}")
        if self.hints:
            lines.append("likely causes:")
            lines.extend(f"  - {h}" for h in self.hints)
        for v in self.verdicts:
            if v.status != PASS or len(self.verdicts) > 1 or self.report is None:
                line = (f"{v.status}: {v.summary}" if len(self.verdicts) == 1
                        else f"{v.status} {v.name}: {v.summary}")
                shown = "\n".join(lines).splitlines()
                if line in shown:  # the report's own verdict line
                    continue
                # the report's verdict line that this one completes ("...; the parameters
                # part after step 1"): said once, whole, at the end
                lines = [ln for ln in shown if not (ln.startswith(f"{v.status}: ")
                                                    and line.startswith(ln))]
                lines.append(line)
        # notes last: a WARN's reason ends the output
        shown = "\n".join(lines)
        lines.extend(n for n in self.notes
                     if n not in shown and n.split(": ", 1)[-1] not in shown)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        """The HTML form Jupyter shows (:mod:`harness.compare.html`)."""
        from harness.compare.html import to_html

        return to_html(self)


@dataclass
class CheckRun:
    """The results of :func:`harness.checks.run_checks`, in the order they ran."""

    config: Any
    results: list[CheckResult]
    seconds: float = 0.0

    def __getitem__(self, check: str) -> CheckResult:
        for r in self.results:
            if r.check == check:
                return r
        raise KeyError(check)

    def __contains__(self, check: str) -> bool:
        return any(r.check == check for r in self.results)

    @property
    def verdicts(self) -> list[Verdict]:
        return [v for r in self.results for v in r.verdicts]

    @property
    def status(self) -> str:
        return worst_status(r.status for r in self.results)

    @property
    def passed(self) -> bool:
        return self.status in PASSING

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def row(self) -> dict[str, Any]:
        """Every result's flat row, merged (one sweep row)."""
        out: dict[str, Any] = {}
        for r in self.results:
            out.update(r.row())
        return out

    def table(self):
        """One row per verdict: check, name, status, summary, seconds (a DataFrame)."""
        import pandas as pd

        return pd.DataFrame([{"check": r.check, **v.to_dict()} for r in self.results
                             for v in r.verdicts],
                            columns=["check", "name", "title", "status", "passed", "summary",
                                     "seconds"])

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"status": self.status, "passed": self.passed,
                         "config": self.config.to_dict(),
                         "results": {r.check: r.to_dict() for r in self.results},
                         "seconds": round(self.seconds, 3)})

    def _repr_html_(self) -> str:
        """The HTML form Jupyter shows (:mod:`harness.compare.html`)."""
        from harness.compare.html import to_html

        return to_html(self)

"""The summary of a sweep's results: pass rates per check, per factor, the worst cases first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import ConfigError
from harness.sweep.plan import CHECKS
from harness.runtime.values import isna

#: factors a summary can group by
FACTORS: tuple[str, ...] = ("dataset", "hidden", "dims", "layers", "input_shape", "loss",
                            "loss_outputs", "activation", "dtype", "optimizer", "lr",
                            "weight_decay", "momentum", "nesterov", "beta1", "beta2", "eps", "batch_size",
                            "seed")


@dataclass
class SweepSummary:
    """Pass rates of a results table.

    Attributes
    ----------
    counts : dict  configurations, passed, failed, errors
    checks : DataFrame  per check: configurations run, passed, pass rate
    by : tuple of str  the factors of ``cross``
    cross : DataFrame  pass rate per combination of ``by`` (one row each)
    factors : dict of DataFrame  pass rate per value of every factor that varies
    worst : DataFrame  errors first, then failures, then by largest gradient error
    pending : int or None  configurations of the latest plan without a row
    """

    counts: dict[str, int]
    checks: Any
    by: tuple[str, ...]
    cross: Any
    factors: dict[str, Any]
    worst: Any
    pending: int | None = None

    @property
    def passed(self) -> bool:
        return self.counts["failed"] == 0 and self.counts["errors"] == 0

    def text(self, *, worst: int = 10) -> str:
        c = self.counts
        n = c["configurations"]
        lines = [f"{n} configurations: {c['passed']} passed, {c['failed']} failed, "
                 f"{c['errors']} errors" + (f"; {self.pending} pending" if self.pending else "")]
        if n == 0:
            return lines[0]
        lines.append("")
        lines.append("per check:")
        for _, r in self.checks.iterrows():
            lines.append(f"  {r['check']:<12} {r['passed']:>5}/{r['run']:<5} passed "
                         f"({_pct(r['passed'], r['run'])})")
        lines.append("")
        lines.append(f"pass rate by {' x '.join(self.by)}:")
        lines.extend("  " + ln for ln in _cross_text(self.cross, self.by).splitlines())
        # factors with two or more values (not counting "n/a": the hyper-parameters of
        # the other optimizers); dims only adds the data's ends to hidden
        varying = {k: v for k, v in self.factors.items()
                   if v[k].map(lambda x: not isna(x)).sum() > 1 and k not in self.by
                   and not (k == "dims" and "hidden" in self.factors)}
        if varying:
            lines.append("")
            lines.append("pass rate by factor:")
            for name, t in varying.items():
                cells = ", ".join(f"{_fmt(v)} {p}/{n_} ({_pct(p, n_)})" for v, p, n_ in
                                  zip(t[name], t["passed"], t["configurations"]))
                lines.append(f"  {name}: {cells}")
        bad = self.worst[self.worst["verdict"] != "pass"]
        if len(bad):
            lines.append("")
            lines.append(f"worst cases ({min(worst, len(bad))} of {len(bad)} not passing):")
            lines.extend("  " + ln for ln in _worst_text(bad.head(worst)).splitlines())
        return "\n".join(lines)


def _pct(p, n) -> str:
    return f"{100.0 * p / n:.0f}%" if n else "-"


def _fmt(v) -> str:
    if isna(v):
        return "n/a"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _verdicts(table):
    import pandas as pd

    status = table["status"].astype(object)
    passed = table["passed"].astype("boolean")
    return pd.Series(np.where(status == "error", "error",
                              np.where(passed.fillna(False).to_numpy(bool), "pass", "FAIL")),
                     index=table.index)


def summarize(table, *, by: tuple[str, ...] = ("activation", "dtype"),
              pending: int | None = None) -> SweepSummary:
    """Pass rates per check, per ``by`` combination and per factor; the worst cases first."""
    import pandas as pd

    for name in by:
        if name not in FACTORS:
            raise ConfigError(f"`--by` names an unknown factor {name!r}; choose from "
                              f"{', '.join(FACTORS)}")
    t = table.copy()
    t["verdict"] = _verdicts(t)
    t["_pass"] = t["verdict"] == "pass"
    counts = {"configurations": len(t), "passed": int(t["_pass"].sum()),
              "failed": int((t["verdict"] == "FAIL").sum()),
              "errors": int((t["verdict"] == "error").sum())}
    check_rows = []
    for check in CHECKS:
        col = t[f"{check}_passed"].astype("boolean")
        ran = col.notna()
        if ran.any():
            check_rows.append({"check": check, "run": int(ran.sum()),
                               "passed": int(col.fillna(False).sum())})
    checks = pd.DataFrame(check_rows, columns=["check", "run", "passed"])

    def rates(keys):
        if not len(t):
            return pd.DataFrame(columns=[*keys, "configurations", "passed", "failed", "errors",
                                         "pass_rate"])
        g = t.groupby(list(keys), dropna=False, sort=True)
        out = g.agg(configurations=("_pass", "size"), passed=("_pass", "sum"),
                    failed=("verdict", lambda v: int((v == "FAIL").sum())),
                    errors=("verdict", lambda v: int((v == "error").sum()))).reset_index()
        out["passed"] = out["passed"].astype(int)
        out["pass_rate"] = out["passed"] / out["configurations"]
        return out

    cross = rates(by)
    factors = {name: rates((name,)) for name in FACTORS if name in t.columns}
    rank = t["verdict"].map({"error": 0, "FAIL": 1, "pass": 2})
    err = pd.to_numeric(t["grad_max_abs_err"], errors="coerce").fillna(-1.0)
    worst = t.assign(_rank=rank, _err=err).sort_values(["_rank", "_err"],
                                                       ascending=[True, False], kind="stable")
    worst = worst.drop(columns=["_rank", "_err", "_pass"]).reset_index(drop=True)
    return SweepSummary(counts, checks, tuple(by), cross, factors, worst, pending)


def _cross_text(cross, by) -> str:
    if len(by) == 2 and len(cross):
        a, b = by
        cols = sorted(cross[b].unique(), key=_fmt)
        rows = sorted(cross[a].unique(), key=_fmt)
        width = max(12, *(len(_fmt(c)) + 2 for c in cols))
        head = f"{'':<14}" + "".join(f"{_fmt(c):>{width}}" for c in cols)
        lines = [head]
        for r in rows:
            cells = []
            for c in cols:
                m = cross[(cross[a].map(_fmt) == _fmt(r)) & (cross[b].map(_fmt) == _fmt(c))]
                cells.append("-" if not len(m) else
                             f"{int(m['passed'].iloc[0])}/{int(m['configurations'].iloc[0])}"
                             f" {_pct(m['passed'].iloc[0], m['configurations'].iloc[0]):>4}")
            lines.append(f"{_fmt(r):<14}" + "".join(f"{s:>{width}}" for s in cells))
        return "\n".join(lines)
    lines = []
    for _, r in cross.iterrows():
        key = ", ".join(f"{k}={_fmt(r[k])}" for k in by)
        lines.append(f"{key}: {int(r['passed'])}/{int(r['configurations'])} "
                     f"({_pct(r['passed'], r['configurations'])})")
    return "\n".join(lines)


def _worst_text(rows) -> str:
    lines = []
    for _, r in rows.iterrows():
        opt = f"{r['optimizer']} lr={_fmt(r['lr'])}"
        head = (f"{r['verdict']:<5} {r['config_hash']}  {r['dataset']} {r['dims']} "
                f"{r['activation']} {r['dtype']} {opt} bs={r['batch_size']} seed={r['seed']}")
        if r["verdict"] == "error":
            detail = f"{r['error']}"
        else:
            failing = [c for c in CHECKS
                       if not isna(r.get(f"{c}_passed")) and not bool(r[f"{c}_passed"])]
            parts = [f"failed: {', '.join(failing)}"]
            if r["equivalence_first_failure"] is not None and not isna(
                    r["equivalence_first_failure"]):
                parts.append(f"first: {r['equivalence_first_failure']}")
            if not isna(r["grad_max_abs_err"]):
                parts.append(f"grad err {r['grad_max_abs_err']:.3e}")
            if not isna(r["gradcheck_first_failure"]):
                parts.append(f"gradcheck: {r['gradcheck_first_failure']}")
            if not isna(r["gradcheck_max_abs_err"]):
                parts.append(f"gradcheck err {r['gradcheck_max_abs_err']:.3e}")
            if not isna(r["training_divergence"]):
                parts.append(f"training: {r['training_divergence']}")
            detail = "; ".join(parts)
        lines.append(head)
        lines.append(f"      {detail}")
    return "\n".join(lines)


#: :func:`summarize` under the name ``harness`` exports it as
summarize_sweep = summarize

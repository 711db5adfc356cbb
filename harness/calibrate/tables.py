"""The calibration's figures: the whole run, its targets, tables and files.

:func:`calibrate` runs the three parts (:mod:`harness.calibrate.run`) and returns a
:class:`Calibration`: the row tables (pandas), the per-check and per-bug tables, the
targets met or missed (with the configurations or bugs that missed them) and a JSON
summary; :meth:`Calibration.write` writes one CSV per part and ``summary.json`` into a
folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.calibrate import run as R
from harness.calibrate.entries import CATALOGUE
from harness.calibrate.configs import CHECKS, PAIRS

SCHEMA = "nn-harness-calibrate"
SCHEMA_VERSION = 1
_PASSING = ("PASS", "INFO", "WARN")


@dataclass
class Calibration:
    """Everything one calibration measured.

    Attributes
    ----------
    false_alarm_rows : DataFrame
        One row per (configuration, pair, check): the configuration and the verdict.
    detection_rows : DataFrame
        One row per (bug, case, dtype, check): ``caught`` and the verdict.
    resolution : list of dict
        One per dtype: the bisection's bracket and what the tolerance predicts.
    settings : dict
        Seed, configurations, quick, threads, workers, the command.
    seconds : dict
        Wall time of each part.
    """

    false_alarm_rows: pd.DataFrame
    detection_rows: pd.DataFrame
    resolution: list[dict[str, Any]]
    settings: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)

    # -------------------------------------------------------------- tables
    def false_alarm_table(self) -> pd.DataFrame:
        """Per pair, check and dtype: configurations run, FAIL, NOT CHECKED, errors, WARN."""
        df = self.false_alarm_rows
        cols = ["pair", "check", "dtype", "runs", "false_alarms", "not_checked", "errors",
                "warned"]
        if df.empty:
            return pd.DataFrame(columns=cols)
        g = df.groupby(["pair", "check", "dtype"], sort=False)["status"]
        table = g.agg(runs="size", false_alarms=lambda s: int((s == "FAIL").sum()),
                      not_checked=lambda s: int((s == "NOT CHECKED").sum()),
                      errors=lambda s: int((s == "ERROR").sum()),
                      warned=lambda s: int((s == "WARN").sum())).reset_index()
        return table[cols]

    def detection_table(self) -> pd.DataFrame:
        """Per bug and dtype: cases caught by each check, what was expected, the target."""
        df = self.detection_rows
        if df.empty:
            return pd.DataFrame(columns=["bug", "dtype", "expect", "cases", *CHECKS, "target"])
        out = []
        for (bug, dtype), g in df.groupby(["bug", "dtype"], sort=False):
            expect = g["expect"].iloc[0]
            cases = g.groupby(["dataset", "dims"]).ngroups
            row = {"bug": bug, "dtype": dtype, "expect": expect, "cases": cases}
            for check in CHECKS:
                row[check] = int(g.loc[g["check"] == check, "caught"].sum())
            row["target"] = "met" if not _missed(g, dtype, expect) else "MISSED"
            out.append(row)
        return pd.DataFrame(out)

    # -------------------------------------------------------------- targets
    def targets(self) -> dict[str, Any]:
        """Each target, met or not, with what missed it."""
        fa = self.false_alarm_rows
        bad = fa[~fa["status"].isin(_PASSING)] if not fa.empty else fa
        def listed(rows) -> list[dict[str, Any]]:
            return [{"index": int(r["index"]), "pair": r["pair"], "check": r["check"],
                     "dtype": r["dtype"], "status": r["status"], "summary": r["summary"]}
                    for _, r in rows.iterrows()]

        alarms = listed(bad)
        warned = listed(fa[fa["status"] == "WARN"]) if not fa.empty else []
        missed = []
        det = self.detection_rows
        if not det.empty:
            for (bug, dataset, dims, dtype), g in det.groupby(
                    ["bug", "dataset", "dims", "dtype"], sort=False):
                why = _missed(g, dtype, g["expect"].iloc[0])
                if why:
                    missed.append({"bug": bug, "dataset": dataset, "dims": dims,
                                   "dtype": dtype, "why": why})
        res = {r["dtype"]: r.get("smallest_caught") for r in self.resolution}
        return {
            "no_false_alarms": {"met": not alarms, "configurations": int(fa["index"].nunique())
                                if not fa.empty else 0, "false_alarms": alarms,
                                "warned": warned},
            "every_bug_caught": {"met": not missed, "missed": missed},
            "smallest_relative_error_caught": res,
        }

    def summary(self) -> dict[str, Any]:
        """The JSON summary: settings, timings, tables, targets."""
        n = self.settings.get("configs", 0)
        t_fa = self.seconds.get("false_alarms", 0.0)
        return {
            "schema": SCHEMA, "schema_version": SCHEMA_VERSION, **self.settings,
            "seconds": self.seconds,
            "configs_per_second": (n / t_fa) if t_fa > 0 and n else None,
            "false_alarms": self.false_alarm_table().to_dict("records"),
            "detection": self.detection_table().to_dict("records"),
            "resolution": self.resolution,
            "targets": self.targets(),
        }

    @property
    def passed(self) -> bool:
        t = self.targets()
        return t["no_false_alarms"]["met"] and t["every_bug_caught"]["met"]

    # -------------------------------------------------------------- output
    def text(self) -> str:
        """The tables as the command prints them."""
        s = self.settings
        rows = self.detection_rows
        n_bugs = rows["bug"].nunique() if not rows.empty else 0
        lines = [f"calibration, seed {s['seed']}: {s['configs']} random correct "
                 f"configurations x {len(PAIRS)} pairs; {n_bugs} catalogue entries", ""]
        fa = self.false_alarm_table()
        lines.append("False alarms (FAIL on a correct pair) per check and dtype:")
        lines.append(_frame_text(fa) if not fa.empty else "  (no configurations)")
        lines += ["", "Detection (cases caught of cases run, per check):"]
        det = self.detection_table()
        lines.append(_frame_text(det) if not det.empty else "  (no bugs)")
        lines += ["", "Smallest relative error of one gradient entry the equivalence check "
                      "catches:"]
        for r in self.resolution:
            got = r.get("smallest_caught")
            lines.append(
                f"  {r['dtype']}: {got:.3g} (entry {r['entry_magnitude']:.3g} of "
                f"{r['gradient']} on {r['dataset']} {r['dims']}; the tolerance predicts "
                f"{r['predicted_by_tolerance']:.3g})" if got is not None else
                f"  {r['dtype']}: not bracketed (caught at {r['bracket_lo']:g}: "
                f"{r['caught_at_lo']}, at {r['bracket_hi']:g}: {r['caught_at_hi']})")
        t = self.targets()
        lines += ["", "Targets:",
                  f"  no false alarms: {'met' if t['no_false_alarms']['met'] else 'MISSED'} "
                  f"({len(t['no_false_alarms']['false_alarms'])} false alarms)",
                  f"  every bug caught where it can show: "
                  f"{'met' if t['every_bug_caught']['met'] else 'MISSED'}"]
        for a in t["no_false_alarms"]["false_alarms"][:20]:
            lines.append(f"    false alarm: configuration {a['index']} {a['pair']} "
                         f"{a['check']} {a['dtype']}: {a['summary']}")
        warned = t["no_false_alarms"]["warned"]
        if warned:
            lines.append(f"  {len(warned)} WARN verdicts (passed, with a caution; not false "
                         f"alarms):")
            for a in warned[:10]:
                lines.append(f"    warned: configuration {a['index']} {a['pair']} "
                             f"{a['check']} {a['dtype']}: {a['summary']}")
        for m in t["every_bug_caught"]["missed"]:
            lines.append(f"    missed: {m['bug']} on {m['dataset']} {m['dims']} {m['dtype']}: "
                         f"{m['why']}")
        secs = ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())
        lines += ["", f"time: {secs}; {s['command']}"]
        return "\n".join(lines)

    def write(self, folder: str | Path) -> list[str]:
        """``false_alarms.csv``, ``detection.csv``, ``resolution.csv``, ``summary.json``."""
        from harness.data.atomic import atomic_write_json, atomic_write_text

        folder = Path(folder)
        files = {"false_alarms.csv": self.false_alarm_rows,
                 "detection.csv": self.detection_rows,
                 "resolution.csv": pd.DataFrame(self.resolution)}
        for name, frame in files.items():
            atomic_write_text(folder / name, frame.to_csv(index=False))
        atomic_write_json(folder / "summary.json", self.summary())
        return [*files, "summary.json"]


def _frame_text(frame: pd.DataFrame) -> str:
    return "\n".join("  " + line for line in frame.to_string(index=False).splitlines())


def _missed(g: pd.DataFrame, dtype: str, expect: str) -> str | None:
    """Why a bug's rows (one case and dtype, or several cases) miss the target, or None."""
    caught = {c: bool(g.loc[g["check"] == c, "caught"].all()) for c in CHECKS}
    any_caught = {c: bool(g.loc[g["check"] == c, "caught"].any()) for c in CHECKS}
    if expect == "unseen":
        return None
    if expect == "none":
        fired = [c for c in CHECKS if any_caught[c]]
        return f"a control, yet {', '.join(fired)} failed" if fired else None
    if expect in ("trajectory", "late"):
        return None if caught["training"] else "the trajectory did not catch it"
    if dtype == "float64":
        return None if caught["equivalence"] else "the one-step check did not catch it"
    ok = (g[g["check"].isin(("equivalence", "training"))].groupby(["dataset", "dims"])["caught"]
          .any().all())
    return None if ok else "neither the one-step check nor the trajectory caught it"


def calibrate(configs: int, seed: int, *, quick: bool = False, threads: int = 1,
              workers: int = 1, command: str = "", bugs: Sequence | None = None,
              log: Callable[[str], None] | None = None,
              checks: Sequence[str] = CHECKS) -> Calibration:
    """Run the three parts; ``quick``: the catalogue on one case, a coarse bisection;
    ``checks``: those the configurations go through."""
    settings = {"seed": seed, "configs": configs, "quick": quick, "threads": threads,
                "workers": workers, "command": command,
                "pairs": {k: list(v) for k, v in PAIRS.items()}, "checks": list(checks),
                "cases": [list(c[:1]) + ["-".join(map(str, c[1]))]
                          for c in (R.CASES[:1] if quick else R.CASES)]}
    seconds = {}
    t0 = time.perf_counter()
    fa = R.false_alarms(configs, seed, threads=threads, workers=workers, log=log,
                        checks=tuple(checks))
    seconds["false_alarms"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    det = R.detections(CATALOGUE if bugs is None else bugs,
                       cases=R.CASES[:1] if quick else R.CASES, seed=seed, threads=threads,
                       log=log)
    seconds["detection"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = [R.resolution(d, seed=seed, threads=threads, steps=12 if quick else 24)
           for d in ("float64", "float32")]
    seconds["resolution"] = time.perf_counter() - t0
    if log is not None:
        log("resolution: done")
    return Calibration(pd.DataFrame(fa), pd.DataFrame(det), res, settings, seconds)

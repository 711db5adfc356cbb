"""How far a benchmark run can be trusted: a disturbed machine, noisy rows, rows
above the measured peak, and differences between two runs that a comparison mixes
into its changes."""

from __future__ import annotations

import math
from typing import Any

from harness.runtime.values import isna

#: warn when other processes used more than this share of the CPU during a run
OTHER_LOAD_WARNING = 0.05

#: the flags of a row, and what each means
ROW_FLAGS = {
    "noisy": "its interquartile range exceeds its median: the timings scatter too much "
             "to trust the median",
    "above peak": "faster than the matmul peak measured in this run: the peak is one "
                  "large matmul measured once per run, which a small network whose data "
                  "stays in cache can beat, and which a disturbed run measures too low",
}


def other_share(machine: dict[str, Any]) -> float | None:
    """The other processes' share of the CPU during the run, None when not measured."""
    share = machine.get("other_processes_cpu_share")
    try:
        share = float(share)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(share) else share


def disturbed(machine: dict[str, Any]) -> bool:
    """Whether other processes kept the cores busy during the run."""
    share = other_share(machine)
    return share is not None and share > OTHER_LOAD_WARNING


def disturbance_message(machine: dict[str, Any]) -> str | None:
    """The warning for a disturbed run, None for an undisturbed one."""
    if not disturbed(machine):
        return None
    return (f"other processes used {100 * other_share(machine):.0f}% of the machine's CPU "
            f"time during this run; the timings are disturbed (rerun on an idle machine)")


def row_flags(row) -> list[str]:
    """The :data:`ROW_FLAGS` keys that apply to one row of a run's table."""
    flags = []
    med, iqr = row.get("median_s"), row.get("iqr_s")
    if not (isna(med) or isna(iqr)) and float(iqr) > float(med):
        flags.append("noisy")
    frac = row.get("fraction_of_peak")
    if not isna(frac) and math.isfinite(float(frac)) and float(frac) > 1.0:
        flags.append("above peak")
    return flags


def add_flags(table):
    """``table`` with a ``flags`` column: the row's flags joined by ", " ("" for none)."""
    table = table.copy()
    table["flags"] = [", ".join(row_flags(r)) for r in table.to_dict(orient="records")] \
        if len(table) else []
    return table


def assess(result) -> dict[str, Any]:
    """The trust of a run (a :class:`~harness.bench.store.BenchResult`) as data.

    Keys: ``disturbed``, ``other_processes_cpu_share``, ``warning`` (text or None),
    ``n_noisy``, ``n_above_peak``, ``flags`` (the meaning of each row flag).
    """
    rows = result.table.to_dict(orient="records") if len(result.table) else []
    flags = [row_flags(r) for r in rows]
    return {"disturbed": disturbed(result.machine),
            "other_processes_cpu_share": other_share(result.machine),
            "warning": disturbance_message(result.machine),
            "n_noisy": sum("noisy" in f for f in flags),
            "n_above_peak": sum("above peak" in f for f in flags),
            "flags": dict(ROW_FLAGS)}


#: what must match for a comparison of two runs to show the code's change alone:
#: (where, key, name)
_COMPARABLE = (
    ("config", "threads", "threads"),
    ("config", "epoch_samples", "epoch samples"),
    ("config", "optimizer", "optimizer"),
    ("config", "repeats", "repeats"),
    ("config", "min_time", "min time"),
    ("machine", "cpu_model", "CPU"),
    ("machine", "usable_cores", "usable cores"),
    ("machine", "numpy_version", "NumPy version"),
    ("machine", "numpy_blas", "NumPy's BLAS"),
    ("machine", "torch_version", "torch version"),
    ("machine", "python_version", "Python version"),
)


def run_differences(old, new) -> list[str]:
    """What differs between two runs beside the code: settings, machine, versions, load.

    Each entry reads like ``"threads: 1 (old) vs 2 (new)"``; a disturbed run is
    named too. Empty when the runs are comparable.
    """
    out = []
    for where, key, name in _COMPARABLE:
        a, b = getattr(old, where).get(key), getattr(new, where).get(key)
        if a is not None and b is not None and a != b:
            out.append(f"{name}: {a} (old) vs {b} (new)")
    for label, run in (("old", old), ("new", new)):
        if disturbed(run.machine):
            out.append(f"the {label} run was disturbed: other processes used "
                       f"{100 * other_share(run.machine):.0f}% of the CPU")
    return out

"""A benchmark run as data (:class:`BenchResult`), kept on disk and compared.

:func:`save_run` keeps every run in its own time-stamped folder (never
overwritten) as ``bench.csv`` and ``bench.json``; :func:`load_run` reads one back;
:func:`compare_runs` lines two runs up row by row. Figures are drawn by the layer
above (:func:`harness.plots.bench.plot_all`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError
from harness.runtime.values import jsonable

FORMAT = "nn-harness-bench/1"
KEY = ["backend", "device", "dims", "batch_size", "dtype", "op"]


@dataclass
class BenchResult:
    """A benchmark run: the tidy table, the machine, the peaks, the targets."""

    table: Any  # pandas.DataFrame, one row per (backend, device, dims, batch, dtype, op)
    machine: dict[str, Any]
    config: dict[str, Any]
    peaks: list[dict[str, Any]]
    targets: list[dict[str, Any]] = field(default_factory=list)
    times: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self, *, targets: bool = True) -> dict[str, Any]:
        """The run as JSON-ready values; the table's missing values become null.

        ``quality`` is :func:`harness.bench.quality.assess`; ``targets`` (the scratch
        backend's own goals) only with ``targets``.
        """
        from harness.bench.quality import assess

        rows = json.loads(self.table.to_json(orient="records"))
        out = {"format": FORMAT, "machine": self.machine, "config": self.config,
               "quality": assess(self), "matmul_peaks": self.peaks, "rows": rows,
               "times_s": self.times}
        if targets:
            out["targets"] = self.targets
        return jsonable(out)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchResult:
        import pandas as pd

        if d.get("format") != FORMAT:
            raise ConfigError(f"not a bench result (format {d.get('format')!r}, "
                              f"expected {FORMAT!r})")
        return cls(pd.DataFrame(d["rows"]), d.get("machine", {}), d.get("config", {}),
                   d.get("matmul_peaks", []), d.get("targets", []), d.get("times_s", {}))

    def _repr_html_(self) -> str:
        """The HTML form Jupyter shows (:mod:`harness.compare.html`)."""
        from harness.compare.html import to_html

        return to_html(self)



def new_run_dir(root: str | os.PathLike, now: _dt.datetime | None = None) -> Path:
    """Create and return ``root/bench-YYYYmmdd-HHMMSS`` (``-2``, ``-3``... if taken).

    The folder is created with ``os.mkdir``, which fails on an existing one, so two
    runs can never write into the same folder.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"`--out` {str(root)!r} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    stamp = (now or _dt.datetime.now()).strftime("bench-%Y%m%d-%H%M%S")
    for k in range(1, 10_000):
        path = root / (stamp if k == 1 else f"{stamp}-{k}")
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        return path
    raise ConfigError(f"cannot find a free run folder name under {str(root)!r}")


def save_run(result: BenchResult, root: str | os.PathLike) -> Path:
    """Write ``bench.csv`` and ``bench.json`` into a new folder under ``root``; return it.

    The figures are the caller's (:func:`harness.plots.bench.plot_all` into the
    returned folder), so that this layer never imports the plots.
    """
    from harness.data.atomic import atomic_write_json, atomic_write_text

    path = new_run_dir(root)
    atomic_write_text(path / "bench.csv", result.table.to_csv(index=False))
    atomic_write_json(path / "bench.json", result.to_dict())
    return path


def load_run(path: str | os.PathLike) -> BenchResult:
    """A saved run, from its ``bench.json`` (or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "bench.json"
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"bench result {str(path)!r} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read bench result {str(path)!r}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{str(path)!r} is not a bench result")
    return BenchResult.from_dict(data)


def compare_runs(old: BenchResult, new: BenchResult):
    """Row-by-row change of the median time between two runs.

    Returns a DataFrame with the key columns, ``old_s``, ``new_s``, ``change``
    (new/old - 1) and ``verdict``: "faster"/"slower" when the medians differ by more
    than half the sum of the two interquartile ranges, else "same". Rows present in
    only one run are listed with NaN on the other side.
    """
    import pandas as pd

    cols = KEY + ["median_s", "iqr_s"]
    a = old.table[cols].rename(columns={"median_s": "old_s", "iqr_s": "old_iqr_s"})
    b = new.table[cols].rename(columns={"median_s": "new_s", "iqr_s": "new_iqr_s"})
    merged = pd.merge(a, b, on=KEY, how="outer", sort=False)
    # the new run's row order, then what only the old run has
    order = {k: i for i, k in enumerate(dict.fromkeys(
        [tuple(r) for r in b[KEY].itertuples(index=False)]
        + [tuple(r) for r in a[KEY].itertuples(index=False)]))}
    merged["_order"] = [order[tuple(r)] for r in merged[KEY].itertuples(index=False)]
    merged = merged.sort_values("_order", kind="stable").reset_index(drop=True)
    merged["change"] = merged["new_s"] / merged["old_s"] - 1
    noise = (merged["old_iqr_s"] + merged["new_iqr_s"]) / 2
    diff = merged["new_s"] - merged["old_s"]
    merged["verdict"] = np.where(merged["old_s"].isna() | merged["new_s"].isna(), "only one",
                                 np.where(diff > noise, "slower",
                                          np.where(-diff > noise, "faster", "same")))
    return merged[KEY + ["old_s", "new_s", "change", "verdict"]]


"""The speed and memory targets the fast scratch backend is held to (issue 6), and
their evaluation on a run's table."""

from __future__ import annotations

import math
from typing import Any

from harness.bench.arithmetic import parse_dims_label
from harness.bench.config import BACKEND_LIBRARY
from harness.runtime.values import isna

#: the targets the fast scratch backend is held to (issue 6)
SMALL_POINT = ((64, 32, 10), 64, "float32")
SMALL_RATIO_LIMIT = 0.25
RATIO_LIMIT = 1.0
LARGE_POINT = ((2048, 2048, 2048, 10), 1024, "float32")
PEAK_FRACTION_LIMIT = 0.90
MEMORY_RATIO_LIMIT = 1.2
#: the memory target is judged where the need is at least this: below, fixed costs
#: of some tens of kB (NumPy's casting buffers, per-sample work vectors, the
#: optimizer's work block) dominate
MEMORY_TARGET_MIN_NEED = 2**20


def evaluate_targets(table, backend: str = "scratch") -> list[dict[str, Any]]:
    """The issue's targets for ``backend``, judged on the points the table holds."""
    out: list[dict[str, Any]] = []
    if table.empty:
        return out
    mine = table[(table["backend"] == backend) & (table["device"] == "cpu")
                 & (table["op"] == "train_step")]
    point_key = ["dims", "batch_size", "dtype"]
    # the backend's matrix products alone, where measured: the floor its BLAS sets
    mats = table[(table["backend"] == backend) & (table["device"] == "cpu")
                 & (table["op"] == "matmuls")].set_index(point_key)
    for _, row in mine.iterrows():
        point = (parse_dims_label(row["dims"]), int(row["batch_size"]), row["dtype"])
        ratio = row["ratio_to_torch_cpu"]
        if isna(ratio) or not math.isfinite(ratio):
            continue
        limit = SMALL_RATIO_LIMIT if point == SMALL_POINT else RATIO_LIMIT
        target = {"target": f"train_step time {backend}/torch",
                  "point": f"{row['dims']} batch {row['batch_size']} {row['dtype']}",
                  "value": float(ratio), "limit": limit, "kind": "at most",
                  "passed": bool(ratio <= limit)}
        key = (row["dims"], row["batch_size"], row["dtype"])
        if key in mats.index:
            floor = float(mats.loc[key, "median_s"]) / (row["median_s"] / ratio)
            target["note"] = f"its matrix products alone take {floor:.3f} of torch's train_step"
        out.append(target)
    for _, row in mine.iterrows():
        point = (parse_dims_label(row["dims"]), int(row["batch_size"]), row["dtype"])
        if point == LARGE_POINT and math.isfinite(row["fraction_of_peak"]):
            target = {"target": f"train_step GFLOP/s of {backend} / float32 matmul peak",
                      "point": f"{row['dims']} batch {row['batch_size']} {row['dtype']}",
                      "value": float(row["fraction_of_peak"]), "limit": PEAK_FRACTION_LIMIT,
                      "kind": "at least",
                      "passed": bool(row["fraction_of_peak"] >= PEAK_FRACTION_LIMIT)}
            notes = []
            own = row.get("fraction_of_library_peak", math.nan)
            if not isna(own) and math.isfinite(own):
                notes.append(f"{own:.3f} of the peak of its own library "
                             f"({BACKEND_LIBRARY.get((backend, 'cpu'))})")
            key = (row["dims"], row["batch_size"], row["dtype"])
            if key in mats.index and math.isfinite(mats.loc[key, "fraction_of_peak"]):
                notes.append(f"its matrix products alone reach "
                             f"{float(mats.loc[key, 'fraction_of_peak']):.3f}")
            if notes:
                target["note"] = "; ".join(notes)
            out.append(target)
    for _, row in mine.iterrows():
        ratio, need = row.get("mem_ratio"), row.get("need_mem_bytes")
        if isna(ratio) or isna(need) or not math.isfinite(ratio) or not math.isfinite(need):
            continue
        if need < MEMORY_TARGET_MIN_NEED:
            continue
        out.append({"target": f"train_step peak memory of {backend} / need",
                    "point": f"{row['dims']} batch {row['batch_size']} {row['dtype']}",
                    "value": float(ratio), "limit": MEMORY_RATIO_LIMIT, "kind": "at most",
                    "passed": bool(ratio <= MEMORY_RATIO_LIMIT)})
    return out


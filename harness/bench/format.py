"""A benchmark run and a comparison of two runs as text."""

from __future__ import annotations

import math
import sys
from typing import Any

from harness.bench.arithmetic import beyond_matmuls
from harness.bench.config import series_label
from harness.bench.quality import OTHER_LOAD_WARNING, ROW_FLAGS, disturbance_message, row_flags
from harness.bench.store import BenchResult
from harness.runtime.values import isna

__all__ = ["OTHER_LOAD_WARNING", "format_comparison", "format_result"]


def _fmt_time(s: float) -> str:
    if isna(s) or not math.isfinite(s):
        return "-"
    if s < 0:  # a difference of two medians can be
        return "-" + _fmt_time(-s)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def _fmt(v: float, spec: str = ".2f") -> str:
    return "-" if isna(v) or not math.isfinite(float(v)) else format(float(v), spec)


def _network_line(config: dict) -> list[str]:
    """What was measured when it is a layer network rather than the grid's MLPs."""
    layers = (config or {}).get("layers")
    if not layers:
        return []
    shape = (config or {}).get("input_shape")
    if shape:
        return [f"network: layers {layers} on images (N, {', '.join(map(str, shape))}) "
                f"(seeded normal data; GFLOP/s count the products of the linear and conv2d "
                f"layers, im2col's; no matmuls rows)"]
    return [f"network: layers {layers} (each backend draws its own dropout masks; GFLOP/s "
            f"and the matmuls rows count the linear layers only)"]


def format_result(result: BenchResult, *, targets: bool = False) -> str:
    """The run as text: machine, peaks, the table, ratios, memory; with ``targets``
    also the scratch backend's own speed goals (the project's, not a user's question).

    Rows that cannot be trusted carry a flag (:data:`harness.bench.quality.ROW_FLAGS`),
    and a disturbed run a warning, at the top and again at the end.
    """
    t = result.table
    m = result.machine
    lines = [
        (f"machine: {m.get('cpu_model')}, {m.get('usable_cores')} usable cores "
         f"({m.get('physical_cores')} physical), {m.get('threads')} threads"),
        (f"numpy {m.get('numpy_version')} with {m.get('numpy_blas')} "
         f"(core type {m.get('numpy_blas_core_type')}); torch {m.get('torch_version')} "
         f"with {m.get('torch_blas')}; {m.get('date')}"),
        (f"load average before/after: {m.get('load_average_before')} / "
         f"{m.get('load_average_after')}; other processes' share of the CPU during the "
         f"run: {_fmt(100 * (m.get('other_processes_cpu_share') or math.nan), '.0f')}%"),
        *_load_warning(m),
        "matmul peak: " + ", ".join(
            f"{p['library']} {p['dtype']} {p['size']}^3: {p['gflops']:.1f} GFLOP/s"
            for p in result.peaks),
        *_network_line(result.config),
        "",
    ]
    if t.empty:
        return "\n".join(lines + ["no measurements"])
    header = (f"{'op':<15}{'dims':<20}{'batch':>6} {'dtype':<8}{'backend':<12}"
              f"{'median':>10}{'IQR':>10}{'GFLOP/s':>9}{'% peak':>8}{'% own':>7}{'x torch':>9}"
              f"  flags")
    lines += [header, "-" * len(header)]
    for _, r in t.iterrows():
        own = r.get("fraction_of_library_peak", math.nan)
        lines.append(
            f"{r['op']:<15}{r['dims']:<20}{r['batch_size']:>6} {r['dtype']:<8}"
            f"{series_label(r['backend'], r['device']):<12}{_fmt_time(r['median_s']):>10}"
            f"{_fmt_time(r['iqr_s']):>10}{_fmt(r['gflops'], '.1f'):>9}"
            f"{_fmt(100 * r['fraction_of_peak'], '.0f'):>8}{_fmt(100 * own, '.0f'):>7}"
            f"{_fmt(r['ratio_to_torch_cpu'], '.3f'):>9}  {', '.join(row_flags(r))}".rstrip())
    lines += ["", "% peak: of the best matmul measured above; % own: of the matmul of the "
              "backend's own library (NumPy's BLAS for scratch)"]
    used = {f for _, r in t.iterrows() for f in row_flags(r)}
    lines += [f"flag {name!r}: {ROW_FLAGS[name]}" for name in ROW_FLAGS if name in used]
    lines += _beyond_matmuls(t)
    mem = t[(t["op"] == "train_step") & t["peak_mem_bytes"].notna()]
    if not mem.empty:
        lines += ["", "peak memory of a train_step (MiB): measured / needed = ratio"]
        for _, r in mem.iterrows():
            lines.append(f"  {r['dims']:<20} batch {r['batch_size']:>5} {r['dtype']:<8} "
                         f"{series_label(r['backend'], r['device']):<12}"
                         f"{r['peak_mem_bytes'] / 2**20:>10.2f} / "
                         f"{r['need_mem_bytes'] / 2**20:<10.2f} = {_fmt(r['mem_ratio'])}")
    if targets and result.targets:
        lines += ["", "targets of the scratch backend (the project's speed goals):"]
        for tg in result.targets:
            note = f"; {tg['note']}" if tg.get("note") else ""
            lines.append(f"  {'PASS' if tg['passed'] else 'FAIL'}  {tg['target']} at "
                         f"{tg['point']}: {tg['value']:.3f} ({tg['kind']} {tg['limit']:g}{note})")
    lines += ["", *_load_warning(m)] if _load_warning(m) else []
    return "\n".join(lines)



def _beyond_matmuls(table) -> list[str]:
    rows = beyond_matmuls(table)
    if rows.empty:
        return []
    lines = ["", "train_step = its matrix products alone + everything else (median times):"]
    for _, r in rows.iterrows():
        lines.append(f"  {r['dims']:<20} batch {r['batch_size']:>5} {r['dtype']:<8} "
                     f"{series_label(r['backend'], r['device']):<12}{_fmt_time(r['train_step_s']):>10}"
                     f" = {_fmt_time(r['matmuls_s']):>9} + {_fmt_time(r['rest_s']):>9}")
    return lines


def _load_warning(machine: dict[str, Any]) -> list[str]:
    """A warning line when other processes kept the cores busy during the run."""
    message = disturbance_message(machine)
    return [f"warning: {message}"] if message else []


def format_comparison(table, differences: list[str] | None = None) -> str:
    """The comparison of :func:`~harness.bench.store.compare_runs` as text; the
    ``differences`` of :func:`~harness.bench.quality.run_differences` come first, as
    warnings, since they change the times as much as the code does."""
    lines = []
    if differences:
        lines += ["warning: the runs differ beside the code, so a change below mixes these "
                  "in:"] + [f"  {d}" for d in differences] + [""]
    header = (f"{'op':<15}{'dims':<20}{'batch':>6} {'dtype':<8}{'backend':<12}"
              f"{'old':>10}{'new':>10}{'change':>9}  verdict")
    lines += [header, "-" * len(header)]
    for _, r in table.iterrows():
        change = "-" if not math.isfinite(r["change"]) else f"{100 * r['change']:+.1f}%"
        lines.append(
            f"{r['op']:<15}{r['dims']:<20}{r['batch_size']:>6} {r['dtype']:<8}"
            f"{series_label(r['backend'], r['device']):<12}{_fmt_time(r['old_s']):>10}"
            f"{_fmt_time(r['new_s']):>10}{change:>9}  {r['verdict']}")
    return "\n".join(lines)


def _log_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

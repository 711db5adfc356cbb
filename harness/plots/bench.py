"""Figures of a benchmark run (:mod:`harness.bench`).

* ``times.png``: train_step time per grid point, one bar per backend;
* ``time_vs_batch.png``: train_step time against batch size, one panel per network
  measured at two or more batch sizes (not drawn when there is none);
* ``ratio.png``: the time of every other backend over torch's, per grid point (with
  the scratch backend's smallest-size target only when asked for);
* ``gflops.png``: achieved GFLOP/s of train_step against the measured matmul peak;
* ``memory.png``: peak memory of a train_step per backend, and what it needs;
* ``breakdown.png``: each train_step split into its matrix products and the rest.
"""

from __future__ import annotations

import math
from pathlib import Path

from harness.bench import beyond_matmuls, disturbance_message
from harness.plots import HATCHES, MARKERS, pyplot, save, style


def _series(table):
    """(backend, device) pairs in order of appearance, torch on the CPU last."""
    pairs = list(dict.fromkeys(zip(table["backend"], table["device"])))
    return pairs


def _name(backend: str, device: str) -> str:
    return backend if device == "cpu" else f"{backend} ({device})"


def _tick(dims: str, batch, dtype: str | None = None) -> str:
    """A tick label, the dims broken over lines so that neighbours do not overlap."""
    lines, line = [], ""
    for part in str(dims).split("-"):
        if line and len(line) + len(part) + 1 > 10:
            lines.append(line + "-")
            line = part
        else:
            line = f"{line}-{part}" if line else part
    lines.append(line)
    lines.append(f"batch {batch}")
    if dtype:
        lines.append(dtype)
    return "\n".join(lines)


def _points(table):
    """Grid points (dims, batch, dtype) in the order measured."""
    return list(dict.fromkeys(zip(table["dims"], table["batch_size"], table["dtype"])))


def _multi_batch_nets(table) -> list[str]:
    """Networks measured at two or more batch sizes (a line against batch size fits)."""
    sizes = table.groupby("dims")["batch_size"].nunique()
    return [d for d in dict.fromkeys(table["dims"]) if sizes.get(d, 0) >= 2]


def times_figure(table, op: str = "train_step"):
    """Median time of ``op`` per grid point, one bar per backend and point, log axis,
    the interquartile range as error bars; a noisy bar (IQR above its median) is
    hatched and marked "noisy". Returns the Figure."""
    plt = pyplot()
    t = table[table["op"] == op]
    points = _points(t)
    series = _series(t)
    fig, ax = plt.subplots(figsize=(max(6.5, 1.3 * len(points) + 2.5), 4.4))
    width = 0.8 / max(1, len(series))
    for i, (backend, device) in enumerate(series):
        xs, ys, lo, hi, noisy = [], [], [], [], []
        for k, (dims, batch, dtype) in enumerate(points):
            s = t[(t["dims"] == dims) & (t["batch_size"] == batch) & (t["dtype"] == dtype)
                  & (t["backend"] == backend) & (t["device"] == device)]
            if s.empty:
                continue
            r = s.iloc[0]
            xs.append(k + (i - (len(series) - 1) / 2) * width)
            ys.append(float(r["median_s"]) * 1e3)
            lo.append(max(0.0, float(r["median_s"] - r["q25_s"])) * 1e3)
            hi.append(max(0.0, float(r["q75_s"] - r["median_s"])) * 1e3)
            noisy.append(float(r["iqr_s"]) > float(r["median_s"]))
        bars = ax.bar(xs, ys, width=width, color=style(i)["color"],
                      hatch=HATCHES[i % len(HATCHES)], edgecolor="black", linewidth=0.5,
                      yerr=[lo, hi], capsize=2, label=_name(backend, device))
        for bar, y, bad in zip(bars, ys, noisy):
            ax.annotate("noisy" if bad else _ms(y), (bar.get_x() + bar.get_width() / 2, y),
                        ha="center", va="bottom", fontsize=7, color="#b00020" if bad else "black",
                        xytext=(0, 2), textcoords="offset points")
    ax.set_yscale("log")
    ax.set_xticks(range(len(points)))
    ax.set_xticklabels([_tick(d, b, dt) for d, b, dt in points], fontsize=8)
    ax.set_ylabel(f"{op} time per call (ms, log scale)")
    ax.set_title(f"{op}: median time per call and interquartile range (lower is faster)",
                 fontsize=10)
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="backend")
    fig.tight_layout()
    return fig


def _ms(y: float) -> str:
    return f"{y:.3g}"


def plot_times(table, path, op: str = "train_step", *, warning: str | None = None) -> Path:
    """:func:`times_figure` saved as PNG at ``path``."""
    save(times_figure(table, op), path, warning=warning)
    return Path(path)


def plot_time_vs_batch(table, path, op: str = "train_step", *,
                       warning: str | None = None) -> Path | None:
    """Median time of ``op`` against batch size, one panel per network measured at two
    or more batch sizes, log-log; None (nothing written) when there is no such network."""
    plt = pyplot()
    from matplotlib.ticker import FixedLocator, NullLocator

    t = table[table["op"] == op]
    nets = _multi_batch_nets(t)
    if not nets:
        return None
    fig, axes = plt.subplots(1, len(nets), figsize=(4.6 * len(nets) + 1.5, 3.8), squeeze=False)
    dtypes = list(dict.fromkeys(t["dtype"]))
    for ax, dims in zip(axes[0], nets):
        for i, (backend, device) in enumerate(_series(t)):
            for j, dtype in enumerate(dtypes):
                s = t[(t["dims"] == dims) & (t["backend"] == backend) & (t["device"] == device)
                      & (t["dtype"] == dtype)].sort_values("batch_size")
                if s.empty:
                    continue
                st = style(i)
                st["marker"] = MARKERS[j % len(MARKERS)]
                ax.errorbar(s["batch_size"], s["median_s"] * 1e3,
                            yerr=[(s["median_s"] - s["q25_s"]).clip(lower=0) * 1e3,
                                  (s["q75_s"] - s["median_s"]).clip(lower=0) * 1e3],
                            label=f"{_name(backend, device)}, {dtype}", capsize=2, **st)
        sizes = sorted(set(t.loc[t["dims"] == dims, "batch_size"]))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(FixedLocator(sizes))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(b) for b in sizes])
        ax.set_title(f"dims {dims}", fontsize=9)
        ax.set_xlabel("batch size")
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel(f"{op} time (ms), median and IQR")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(f"{op}: time per call against batch size")
    fig.tight_layout()
    save(fig, path, warning=warning)
    return Path(path)


def ratio_figure(table, op: str = "train_step", *, targets: bool = False):
    """Time of each non-reference backend over torch on the CPU, per grid point; with
    ``targets``, the scratch backend's smallest-size goal as a dashed line."""
    plt = pyplot()
    t = table[(table["op"] == op) & ~((table["backend"] == "torch") & (table["device"] == "cpu"))]
    points = _points(t)
    series = _series(t)
    fig, ax = plt.subplots(figsize=(max(6.5, 1.3 * len(points) + 2.5), 4.2))
    width = 0.8 / max(1, len(series))
    for i, (backend, device) in enumerate(series):
        xs, ys = [], []
        for k, (dims, batch, dtype) in enumerate(points):
            s = t[(t["dims"] == dims) & (t["batch_size"] == batch) & (t["dtype"] == dtype)
                  & (t["backend"] == backend) & (t["device"] == device)]
            if not s.empty and math.isfinite(s["ratio_to_torch_cpu"].iloc[0]):
                xs.append(k + (i - (len(series) - 1) / 2) * width)
                ys.append(float(s["ratio_to_torch_cpu"].iloc[0]))
        bars = ax.bar(xs, ys, width=width, color=style(i)["color"], hatch=HATCHES[i % len(HATCHES)],
                      edgecolor="black", linewidth=0.5, label=_name(backend, device))
        for bar, y in zip(bars, ys):
            ax.annotate(f"{y:.3g}", (bar.get_x() + bar.get_width() / 2, y), ha="center",
                        va="bottom", fontsize=8)
    ax.axhline(1.0, color="black", linewidth=1, label="torch (CPU) = 1")
    if targets:
        from harness.bench.targets import SMALL_RATIO_LIMIT

        ax.axhline(SMALL_RATIO_LIMIT, color="gray", linestyle="--", linewidth=1,
                   label=f"{SMALL_RATIO_LIMIT:g} (smallest-size target)")
    ax.set_xticks(range(len(points)))
    ax.set_xticklabels([_tick(d, b, dt) for d, b, dt in points], fontsize=8)
    ax.set_ylabel(f"{op} time / torch's")
    ax.set_title(f"{op}: time relative to torch eager on the CPU (lower is faster)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def plot_ratio(table, path, op: str = "train_step", *, targets: bool = False,
               warning: str | None = None) -> Path:
    """:func:`ratio_figure` saved as PNG at ``path``."""
    save(ratio_figure(table, op, targets=targets), path, warning=warning)
    return Path(path)


def gflops_figure(table, peaks: list[dict], op: str = "train_step"):
    """Achieved GFLOP/s of ``op`` per backend, one panel per dtype, the matmul peaks
    measured in the run as horizontal lines. A bar above the best peak is marked with
    its percentage of it ("above peak"); the legend sits below the panels, clear of
    the lines."""
    plt = pyplot()
    t = table[table["op"] == op]
    dtypes = list(dict.fromkeys(t["dtype"]))
    fig, axes = plt.subplots(1, max(1, len(dtypes)), figsize=(6.0 * max(1, len(dtypes)), 4.2),
                             squeeze=False)
    series = _series(t)
    width = 0.8 / max(1, len(series))
    for ax, dtype in zip(axes[0], dtypes):
        td = t[t["dtype"] == dtype]
        points = list(dict.fromkeys(zip(td["dims"], td["batch_size"])))
        mine = [x for x in peaks if x["dtype"] == dtype]
        best = max((p["gflops"] for p in mine), default=math.nan)
        for i, (backend, device) in enumerate(series):
            xs, ys = [], []
            for k, (dims, batch) in enumerate(points):
                s = td[(td["dims"] == dims) & (td["batch_size"] == batch)
                       & (td["backend"] == backend) & (td["device"] == device)]
                if not s.empty:
                    xs.append(k + (i - (len(series) - 1) / 2) * width)
                    ys.append(float(s["gflops"].iloc[0]))
            bars = ax.bar(xs, ys, width=width, color=style(i)["color"],
                          hatch=HATCHES[i % len(HATCHES)], edgecolor="black", linewidth=0.5,
                          label=_name(backend, device))
            for bar, y in zip(bars, ys):
                if math.isfinite(best) and y > best:
                    ax.annotate(f"above peak\n{100 * y / best:.0f}%",
                                (bar.get_x() + bar.get_width() / 2, y), ha="center",
                                va="bottom", fontsize=7, color="#b00020",
                                xytext=(0, 2), textcoords="offset points")
        for j, p in enumerate(mine):
            ax.axhline(p["gflops"], color="black", linestyle=["-", "--", ":"][j % 3], linewidth=1,
                       label=f"matmul peak, {p['library']} ({p['size']}\u00b3): "
                             f"{p['gflops']:.0f}")
        ax.set_xticks(range(len(points)))
        ax.set_xticklabels([_tick(d, b) for d, b in points], fontsize=8)
        ax.set_title(f"{op}, {dtype}", fontsize=9)
        ax.set_ylabel("GFLOP/s")
        ax.margins(y=0.15)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2,
                  frameon=False)
    fig.suptitle("achieved GFLOP/s against the matmul peak measured in this run "
                 "(the peak is a measurement too: a small network can beat it)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_gflops(table, peaks: list[dict], path, op: str = "train_step", *,
                warning: str | None = None) -> Path:
    """:func:`gflops_figure` saved as PNG at ``path``."""
    save(gflops_figure(table, peaks, op), path, warning=warning)
    return Path(path)


def plot_breakdown(table, path, *, warning: str | None = None) -> Path:
    """:func:`breakdown_figure` saved as PNG at ``path``."""
    save(breakdown_figure(table), path, warning=warning)
    return Path(path)


def breakdown_figure(table):
    """train_step of each backend split into its matrix products and everything else,
    per grid point, as a fraction of torch's train_step there (the matmuls solid, the
    rest lighter and hatched); a point whose split is not resolved (see
    :func:`~harness.bench.arithmetic.beyond_matmuls`) is its whole step, an empty dashed
    outline marked "noisy". Returns the Figure."""
    plt = pyplot()
    split = beyond_matmuls(table)
    split = split[split["device"] == "cpu"]
    points = list(dict.fromkeys(zip(split["dims"], split["batch_size"], split["dtype"])))
    series = list(dict.fromkeys(split["backend"]))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(points) + 2), 4.2))
    width = 0.8 / max(1, len(series))
    for i, backend in enumerate(series):
        xs, mats, rests, unsplit = [], [], [], []
        for k, (dims, batch, dtype) in enumerate(points):
            at = split[(split["dims"] == dims) & (split["batch_size"] == batch)
                       & (split["dtype"] == dtype)]
            mine, ref = at[at["backend"] == backend], at[at["backend"] == "torch"]
            if mine.empty or ref.empty:
                continue
            scale = float(ref["train_step_s"].iloc[0])
            x = k + (i - (len(series) - 1) / 2) * width
            row = mine.iloc[0]
            if not bool(row["resolved"]):
                unsplit.append((x, float(row["train_step_s"]) / scale))
                continue
            xs.append(x)
            mats.append(float(row["matmuls_s"]) / scale)
            rests.append(float(row["rest_s"]) / scale)
        color = style(i)["color"]
        ax.bar(xs, mats, width=width, color=color, edgecolor="black", linewidth=0.5,
               label=f"{backend}: matrix products")
        ax.bar(xs, rests, width=width, bottom=mats, color=color, alpha=0.35, hatch="//",
               edgecolor="black", linewidth=0.5, label=f"{backend}: everything else")
        _unsplit_bars(ax, unsplit, width, color)
    ax.axhline(1.0, color="black", linewidth=1, label="torch's train_step = 1")
    ax.set_xticks(range(len(points)))
    ax.set_xticklabels([_tick(d, b, dt) for d, b, dt in points], fontsize=7)
    ax.set_ylabel("time / torch's train_step")
    ax.set_title("train_step: its matrix products and everything else (activations, loss, "
                 "optimizer, Python)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def _unsplit_bars(ax, bars: list[tuple[float, float]], width: float, color) -> None:
    """The whole train_step of each point whose split is not resolved, as an empty
    outline marked "noisy": never a split drawn from a negative or noisy difference."""
    for x, y in bars:
        ax.bar([x], [y], width=width, fill=False, edgecolor=color, linewidth=1.0,
               linestyle="--")
        ax.annotate("noisy:\nnot split", (x, y), ha="center", va="bottom", fontsize=6,
                    color="#b00020", xytext=(0, 2), textcoords="offset points")


def plot_memory(table, path, *, warning: str | None = None) -> Path:
    """Peak memory of a train_step per backend, with the need as a black tick."""
    plt = pyplot()
    t = table[(table["op"] == "train_step") & table["peak_mem_bytes"].notna()]
    points = _points(t)
    series = _series(t)
    fig, ax = plt.subplots(figsize=(max(6.5, 1.3 * len(points) + 2.5), 4.2))
    width = 0.8 / max(1, len(series))
    for i, (backend, device) in enumerate(series):
        xs, ys, needs = [], [], []
        for k, (dims, batch, dtype) in enumerate(points):
            s = t[(t["dims"] == dims) & (t["batch_size"] == batch) & (t["dtype"] == dtype)
                  & (t["backend"] == backend) & (t["device"] == device)]
            if not s.empty:
                xs.append(k + (i - (len(series) - 1) / 2) * width)
                ys.append(float(s["peak_mem_bytes"].iloc[0]) / 2**20)
                needs.append(float(s["need_mem_bytes"].iloc[0]) / 2**20)
        bars = ax.bar(xs, ys, width=width, color=style(i)["color"],
                      hatch=HATCHES[i % len(HATCHES)], edgecolor="black", linewidth=0.5,
                      label=_name(backend, device))
        ax.scatter(xs, needs, marker="_", s=300, color="black",
                   label="needed (params, grads, state, activations)" if i == 0 else None)
        for bar, y, need in zip(bars, ys, needs):
            ax.annotate(f"{y / need:.2f}x", (bar.get_x() + bar.get_width() / 2, y),
                        ha="center", va="bottom", fontsize=6)
    ax.set_yscale("log")
    ax.set_xticks(range(len(points)))
    ax.set_xticklabels([_tick(d, b, dt) for d, b, dt in points], fontsize=8)
    ax.set_ylabel("peak memory of a train_step (MiB)")
    ax.set_title("memory of one training step (label: measured / needed)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    save(fig, path, warning=warning)
    return Path(path)


def plot_all(result, folder, *, targets: bool = False) -> list[Path]:
    """Every figure of ``result`` (a BenchResult) into ``folder``; the scratch backend's
    targets only with ``targets``."""
    folder = Path(folder)
    table = result.table
    out = []
    if table.empty:
        return out
    op = "train_step" if (table["op"] == "train_step").any() else table["op"].iloc[0]
    warning = disturbance_message(result.machine or {})
    out.append(plot_times(table, folder / "times.png", op, warning=warning))
    against_batch = plot_time_vs_batch(table, folder / "time_vs_batch.png", op, warning=warning)
    if against_batch is not None:
        out.append(against_batch)
    out.append(plot_ratio(table, folder / "ratio.png", op, targets=targets, warning=warning))
    out.append(plot_gflops(table, result.peaks, folder / "gflops.png", op, warning=warning))
    if table["peak_mem_bytes"].notna().any():
        out.append(plot_memory(table, folder / "memory.png", warning=warning))
    if (table["op"] == "matmuls").any() and (table["op"] == "train_step").any() and (
            table["backend"] == "torch").any():
        out.append(plot_breakdown(table, folder / "breakdown.png", warning=warning))
    return out

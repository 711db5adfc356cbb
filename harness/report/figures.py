"""Figures of the report that no other module draws: float64 against float32 drift."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.plots import MARKERS, pyplot, save, style

_DIFFERENCE = "difference"  # harness.training.trajectory.DIFFERENCE
_QUANTITIES = ("loss_diff", "param_diff", "loss_bound", "param_bound")


def drift_table(reports: dict):
    """The difference rows of every trajectory: columns dtype, step, epoch, quantity, value."""
    import pandas as pd

    frames = []
    for dtype, report in reports.items():
        h = report.history
        part = h[(h["backend"] == _DIFFERENCE) & h["quantity"].isin(_QUANTITIES)]
        part = part[["step", "epoch", "quantity", "value"]].copy()
        part.insert(0, "dtype", dtype)
        frames.append(part)
    if not frames:
        return pd.DataFrame(columns=["dtype", "step", "epoch", "quantity", "value"])
    return pd.concat(frames, ignore_index=True)


def _positive(values) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64).copy()
    out[~(out > 0) | ~np.isfinite(out)] = np.nan
    return out


def drift_figure(reports: dict, path) -> tuple[Path, object]:
    """Loss and parameter differences of trajectories in several dtypes on one log axis.

    ``reports`` maps a dtype name to its :class:`harness.training.trajectory.TrajectoryReport`.
    Each dtype has its colour; the parameter difference (per epoch) is a solid line
    with markers, the loss difference (per step) a thinner dashed line, and each
    dtype's tolerance of the parameter difference a dotted line in its colour. Returns the path and the
    table drawn from (:func:`drift_table`).
    """
    plt = pyplot()
    table = drift_table(reports)
    fig, ax = plt.subplots(figsize=(9, 5.2))
    zeros = 0
    drawn = False
    for i, dtype in enumerate(reports):
        part = table[table["dtype"] == dtype]
        st = style(i)
        loss = part[part["quantity"] == "loss_diff"].sort_values("step")
        params = part[part["quantity"] == "param_diff"].sort_values("step")
        zeros += int((loss["value"] == 0).sum() + (params["value"] == 0).sum())
        if len(loss):
            ax.plot(loss["step"], _positive(loss["value"]), color=st["color"],
                    linestyle=(0, (4, 2)), linewidth=1.1, alpha=0.9,
                    label=f"{dtype}: |loss difference| per step")
            drawn = True
        if len(params):
            ax.plot(params["step"], _positive(params["value"]), color=st["color"],
                    linestyle="-", linewidth=2.0, marker=MARKERS[i % len(MARKERS)],
                    markersize=4, markevery=max(1, len(params) // 20),
                    label=f"{dtype}: largest parameter difference per epoch")
            drawn = True
        bound = part[part["quantity"] == "param_bound"].sort_values("step")
        if len(bound):
            ax.plot(bound["step"], bound["value"], color=st["color"], linestyle=(0, (1, 1.5)),
                    linewidth=1.6, label=f"{dtype}: allowed parameter difference")
            drawn = True
    if drawn:
        ax.set_yscale("log")
    title = "How far the two backends' trajectories drift apart"
    if zeros:
        title += f" ({zeros} exact zeros not drawn)"
    ax.set(title=title, xlabel="optimizer step", ylabel="absolute difference (log scale)")
    ax.grid(alpha=0.3, which="both")
    if ax.get_lines():
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize="small",
                  frameon=False)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save(fig, path)
    return Path(path), table

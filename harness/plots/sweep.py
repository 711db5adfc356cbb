"""Sweep plots: the largest gradient error against network size, one series per dtype."""

from __future__ import annotations

from pathlib import Path

from harness.plots import MARKERS, pyplot, save, style

#: errors of exactly zero are drawn at this floor (log axis)
ZERO_FLOOR = 1e-18

_METRICS = {
    "grad_max_abs_err": "largest |gradient difference|, backend vs backend",
    "gradcheck_max_abs_err": "largest |analytic - finite difference|",
}


def _atol(rows, dtype: str) -> float | None:
    """The absolute tolerance the rows were judged with: their ``atol`` column when set
    (and one value), else the dtype's default."""
    if "atol" in rows.columns:
        values = rows["atol"].dropna().unique()
        if len(values) == 1:
            return float(values[0])
        if len(values) > 1:
            return None
    from harness.compare.equivalence import default_tolerances

    try:
        return float(default_tolerances(dtype)[1])
    except Exception:  # noqa: BLE001 - an unknown dtype: no line
        return None


def plot_grad_error_vs_size(table, path) -> Path | None:
    """Scatter of the largest gradient error against the number of parameters, per dtype.

    One panel per error the table holds (between the two backends; against finite
    differences when the sweep ran the gradient check). Passing configurations are
    filled markers, failing ones hollow, and each dtype has its own colour and marker;
    the backend-vs-backend panel draws each dtype's absolute tolerance (an entry near
    1 in size may differ by that much; larger entries by proportionally more). Legend
    entries with no point are left out.
    Error rows (no verdict) are left out. Returns the PNG path, or None when no row has
    a gradient error to draw.
    """
    metrics = [m for m in _METRICS if m in table.columns and table[m].notna().any()]
    rows = table[table["status"] == "ok"] if "status" in table.columns else table
    metrics = [m for m in metrics if rows[m].notna().any()]
    if not metrics:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.2 * len(metrics), 4.4), squeeze=False,
                             layout="constrained")
    dtypes = sorted(rows["dtype"].dropna().unique())
    for ax, metric in zip(axes[0], metrics):
        for i, dtype in enumerate(dtypes):
            sub = rows[(rows["dtype"] == dtype) & rows[metric].notna()]
            if not len(sub):
                continue
            x = sub["n_params"].astype(float).to_numpy()
            y = sub[metric].astype(float).clip(lower=ZERO_FLOOR).to_numpy()
            ok = sub["passed"].astype("boolean").fillna(False).to_numpy(bool)
            st = style(i)
            marker = MARKERS[i % len(MARKERS)]
            if ok.any():
                ax.scatter(x[ok], y[ok], marker=marker, color=st["color"], s=28, alpha=0.8,
                           label=f"{dtype} pass ({int(ok.sum())})")
            if (~ok).any():
                ax.scatter(x[~ok], y[~ok], marker=marker, facecolors="none",
                           edgecolors=st["color"], s=48, linewidths=1.4,
                           label=f"{dtype} fail ({int((~ok).sum())})")
            if metric == "grad_max_abs_err":
                atol = _atol(sub, dtype)
                if atol is not None:
                    ax.axhline(atol, color=st["color"], linestyle=(0, (4, 2)), linewidth=1.2,
                               label=f"{dtype} tolerance: atol {atol:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("network size (parameters)")
        ax.set_ylabel(_METRICS[metric])
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    n = len(rows)
    fig.suptitle(f"largest gradient error vs network size ({n} configuration"
                 f"{'s' if n != 1 else ''}; zero drawn at {ZERO_FLOOR:g})", fontsize=10)
    out = Path(path)
    save(fig, out)
    return out

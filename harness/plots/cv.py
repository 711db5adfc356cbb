"""Figures of a cross-validation run (:class:`harness.training.cv.CVReport`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from harness.plots import HATCHES, MARKERS, pyplot, save, style


def plot_fold_accuracy(report, path) -> Path:
    """Validation accuracy per fold, one bar per backend side by side, then a last
    group with each backend's mean and its standard deviation (error bar) over folds;
    each backend's mean is also drawn as a horizontal line across the folds.

    Backends differ by colour, hatch and line style, so the figure reads in grey.
    """
    plt = pyplot()
    table = report.table
    names = list(report.backends)
    k = report.folds
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 + 0.9 * (k + 1)), 4.2))
    x = np.arange(1, k + 1, dtype=float)
    lows = []
    for i, name in enumerate(names):
        st = style(i)
        part = table[table["backend"] == name].sort_values("fold")
        acc = part["val_acc"].to_numpy(dtype=float)
        mean = float(acc.mean())
        std = float(acc.std(ddof=1)) if len(acc) > 1 else 0.0
        offset = (i - (len(names) - 1) / 2) * width
        ax.bar(x + offset, acc, width, color=st["color"], alpha=0.85, hatch=HATCHES[i % 4],
               edgecolor="black", linewidth=0.6, label=f"{name}: {mean:.4f} +- {std:.4f}")
        ax.bar(k + 1.5 + offset, mean, width, yerr=std, capsize=4, color=st["color"],
               alpha=0.85, hatch=HATCHES[i % 4], edgecolor="black", linewidth=0.6)
        ax.hlines(mean, 0.5, k + 0.5, colors=st["color"], linestyles=st["linestyle"],
                  linewidth=1.4, label=f"{name}: mean over folds")
        lows.append(float(acc.min()) - std)
    ax.set_xticks(list(x) + [k + 1.5])
    ax.set_xticklabels([str(i) for i in range(1, k + 1)] + ["mean\n+- std"])
    ax.set_xlabel("fold")
    low = max(0.0, min(lows) - 0.05)
    bottom = math.floor(low * 20) / 20
    ax.set_ylim(bottom, 1.0)
    ax.set_ylabel("validation accuracy" + (f" (axis starts at {bottom:.2f})" if bottom > 0
                                            else ""))
    if bottom > 0:  # a broken-axis mark at the foot of the y axis
        ax.plot([0, 0], [0, 0.02], transform=ax.transAxes, color="white", linewidth=3,
                clip_on=False, zorder=5)
        ax.text(0, 0.01, "\u2248", transform=ax.transAxes, ha="center", va="center",
                fontsize=12, clip_on=False, zorder=6)
    ax.set_xlim(0.4, k + 2.1)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{k}-fold cross-validation: validation accuracy per fold")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2,
              fontsize=8, title="bars: backend, mean +- std of validation accuracy; "
                                "lines: its mean",
              title_fontsize=8, frameon=False)
    save(fig, path)
    return Path(path)


def plot_loss_curves(report, path, *, ncols: int = 3) -> Path:
    """Training loss (lines) and validation loss (lines with markers) per epoch, one
    panel per fold, every backend in each panel; log scale when the losses span more
    than a factor of ten."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    curves = report.curves
    names = list(report.backends)
    k = report.folds
    ncols = max(1, min(ncols, k))
    nrows = math.ceil(k / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.0 * nrows), sharey=True,
                             squeeze=False)
    log_scale = _spans_decade(curves)
    for fold in range(1, k + 1):
        ax = axes[(fold - 1) // ncols][(fold - 1) % ncols]
        for i, name in enumerate(names):
            st = style(i)
            part = curves[(curves["fold"] == fold) & (curves["backend"] == name)]
            epochs = part["epoch"].to_numpy()
            every = max(1, len(epochs) // 8)
            ax.plot(epochs, part["train_loss"], color=st["color"], linestyle=st["linestyle"],
                    linewidth=1.4, label=f"{name} training")
            ax.plot(epochs, part["val_loss"], color=st["color"], linestyle=st["linestyle"],
                    linewidth=0.9, marker=MARKERS[i % 4], markevery=every, markersize=4,
                    markerfacecolor="none", label=f"{name} validation")
        if log_scale:
            ax.set_yscale("log")
            _readable_log_ticks(ax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=9)
        ax.set_title(f"fold {fold}", fontsize=10)
        ax.grid(alpha=0.3)
        if (fold - 1) % ncols == 0:
            ax.set_ylabel("cross-entropy")
        if fold > k - ncols:
            ax.set_xlabel("epoch")
    for j in range(k, nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.suptitle("loss per epoch in each fold", fontsize=11)
    fig.tight_layout()
    fig.legend(handles, labels, loc="upper center", ncol=min(4, len(labels)), fontsize=9,
               bbox_to_anchor=(0.5, 0.0), frameon=False)
    save(fig, path)
    return Path(path)


def _readable_log_ticks(ax) -> None:
    """Log-axis ticks at 1, 2, 5 times powers of ten, labelled in plain numbers, so that
    an axis spanning little more than a decade still carries several labels."""
    from matplotlib.ticker import LogLocator, NullFormatter, NullLocator, StrMethodFormatter

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:.3g}"))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_formatter(NullFormatter())


def _spans_decade(curves) -> bool:
    values = curves[["train_loss", "val_loss"]].to_numpy(dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    return values.size > 0 and float(values.max()) > 10 * float(values.min())

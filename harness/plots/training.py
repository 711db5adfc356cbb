"""Figures of a training comparison, drawn from its tidy history alone.

Every function takes the history DataFrame of :func:`harness.training.side_by_side.compare_training`
(or :attr:`harness.training.side_by_side.TrainingLog.history`; columns ``step, epoch, backend,
quantity, value``) and returns a matplotlib Figure, so what is drawn can be checked
against the recorded numbers. :func:`write_training_plots` saves them as PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.errors import ConfigError
from harness.plots import MARKERS, pyplot, save, style

#: file names written by :func:`write_training_plots`
PLOT_FILES = {"loss": "loss.png", "accuracy": "accuracy.png", "differences": "differences.png"}

_DIFFERENCE = "difference"  # harness.training.trajectory.DIFFERENCE, without importing pandas here


def _check(history) -> None:
    missing = [c for c in ("step", "epoch", "backend", "quantity", "value")
               if c not in getattr(history, "columns", ())]
    if missing:
        raise ConfigError(f"history lacks column(s) {', '.join(missing)}")


def backends_of(history) -> list[str]:
    """Backend names in the order they first appear (the comparison rows excluded)."""
    _check(history)
    names = history.loc[history["backend"] != _DIFFERENCE, "backend"]
    return list(dict.fromkeys(names))


def series(history, quantity: str, backend: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(step, epoch, value)`` arrays of one quantity of one backend, in step order."""
    sel = history[(history["backend"] == backend) & (history["quantity"] == quantity)]
    sel = sel.sort_values("step", kind="stable")
    return (sel["step"].to_numpy(), sel["epoch"].to_numpy(),
            sel["value"].to_numpy(dtype=np.float64))


def _line(ax, x, y, i: int, label: str, *, marker: bool = False, **kw):
    s = style(i)
    if marker:
        s["marker"] = MARKERS[i % len(MARKERS)]
        s["markersize"] = 4
        s["markevery"] = max(1, len(x) // 25)
    s.update(kw)
    return ax.plot(x, y, label=label, **s)[0]


def _integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def loss_figure(history):
    """Training loss of every backend: per step (left) and per-epoch mean (right)."""
    plt = pyplot()
    names = backends_of(history)
    fig, (ax_step, ax_epoch) = plt.subplots(1, 2, figsize=(11, 4))
    for i, name in enumerate(names):
        step, _, loss = series(history, "loss", name)
        _line(ax_step, step, loss, i, name, linewidth=1.0)
        _, epoch, mean = series(history, "epoch_loss", name)
        _line(ax_epoch, epoch, mean, i, name, marker=True, linewidth=1.5)
    ax_step.set(title="Batch loss per step", xlabel="optimizer step",
                ylabel="cross-entropy (batch)")
    ax_epoch.set(title="Mean training loss per epoch", xlabel="epoch",
                 ylabel="cross-entropy (mean over the epoch's batches)")
    _integer_ticks(ax_epoch)
    for ax in (ax_step, ax_epoch):
        ax.grid(alpha=0.3)
        if names:
            ax.legend(title="backend")
    fig.suptitle("Training loss, " + " vs ".join(names))
    fig.tight_layout()
    return fig


def accuracy_figure(history):
    """Validation accuracy of every backend per epoch (training accuracy without one)."""
    plt = pyplot()
    names = backends_of(history)
    has_val = bool(((history["quantity"] == "val_accuracy")
                    & (history["backend"] != _DIFFERENCE)).any())
    quantity, which = ("val_accuracy", "Validation") if has_val else \
        ("train_accuracy", "Training (no validation set)")
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, name in enumerate(names):
        _, epoch, acc = series(history, quantity, name)
        _line(ax, epoch, acc, i, name, marker=True, linewidth=1.5)
    ax.set(title=f"{which} accuracy per epoch", xlabel="epoch", ylabel="accuracy")
    _integer_ticks(ax)
    ax.grid(alpha=0.3)
    if names:
        ax.legend(title="backend")
    fig.tight_layout()
    return fig


def _positive(values: np.ndarray) -> np.ndarray:
    """Values for a log axis: zeros and non-finite values become gaps (NaN)."""
    out = np.asarray(values, dtype=np.float64).copy()
    out[~(out > 0) | ~np.isfinite(out)] = np.nan
    return out


def first_divergence_step(history) -> int | None:
    """The first step at which the loss difference or the parameter difference exceeds
    its allowed difference in ``history``; None when neither does (or none is recorded)."""
    steps = []
    for diff, bound in (("loss_diff", "loss_bound"), ("param_diff", "param_bound")):
        d = history[(history["backend"] == _DIFFERENCE) & (history["quantity"] == diff)]
        b = history[(history["backend"] == _DIFFERENCE) & (history["quantity"] == bound)]
        if d.empty or b.empty:
            continue
        both = d[["step", "value"]].merge(b[["step", "value"]], on="step",
                                          suffixes=("", "_bound"))
        over = both[~(both["value"] <= both["value_bound"])]  # NaN counts as over
        if len(over):
            steps.append(int(over["step"].min()))
    return min(steps) if steps else None


def difference_figure(history):
    """|loss difference| per step and largest parameter difference per epoch, log scale.

    Each allowed difference is drawn dashed in the colour of its quantity and named in
    the legend; a vertical line marks the first divergence
    (:func:`first_divergence_step`). Exact zeros cannot be drawn on a log axis; they
    are left out and counted in the title.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    step, _, loss_diff = series(history, "loss_diff", _DIFFERENCE)
    pstep, _, param_diff = series(history, "param_diff", _DIFFERENCE)
    drawn = 0
    if len(step):
        _line(ax, step, _positive(loss_diff), 0, "|loss difference| (per step)",
              linewidth=1.2)
        drawn += int(np.isfinite(_positive(loss_diff)).sum())
    if len(pstep):
        _line(ax, pstep, _positive(param_diff), 1, "largest parameter difference (per epoch)",
              marker=True, linewidth=1.6, linestyle="-")
        drawn += int(np.isfinite(_positive(param_diff)).sum())
    bstep, _, loss_bound = series(history, "loss_bound", _DIFFERENCE)
    if len(bstep):
        ax.plot(bstep, loss_bound, color=style(0)["color"], linestyle=(0, (5, 3)),
                linewidth=1.1, alpha=0.8, label="allowed loss difference")
    qstep, _, param_bound = series(history, "param_bound", _DIFFERENCE)
    if len(qstep):
        ax.plot(qstep, param_bound, color=style(1)["color"], linestyle=(0, (1, 1.5)),
                linewidth=1.6, alpha=0.9, label="allowed parameter difference")
    first = first_divergence_step(history)
    if first is not None:
        ax.axvline(first, color="#b00020", linewidth=1.4, linestyle="-",
                   label=f"first divergence: step {first}")
    if drawn or len(bstep) or len(qstep):
        ax.set_yscale("log")
    zeros = int(np.sum(loss_diff == 0) + np.sum(param_diff == 0))
    title = "Differences between the backends"
    if zeros:
        title += f" ({zeros} exact zeros not drawn)"
    ax.set(title=title, xlabel="optimizer step", ylabel="absolute difference (log scale)")
    ax.grid(alpha=0.3, which="major")
    if ax.get_lines():
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.tight_layout()
    return fig


def write_training_plots(history, out_dir) -> dict[str, Path]:
    """Save the loss, accuracy and difference figures as PNG in ``out_dir``.

    Returns the paths by kind (``loss``, ``accuracy``, ``differences``). The
    difference figure is written only when the history compares two backends.
    """
    out_dir = Path(out_dir)
    figures = {"loss": loss_figure, "accuracy": accuracy_figure}
    if (history["backend"] == _DIFFERENCE).any():
        figures["differences"] = difference_figure
    paths = {}
    for kind, make in figures.items():
        paths[kind] = out_dir / PLOT_FILES[kind]
        save(make(history), paths[kind])
    return paths

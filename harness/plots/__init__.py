"""Plots (matplotlib, Agg backend, PNG). One module per area; shared style here.

Backends are told apart by line style and marker as well as colour, so the
figures read in grey print.
"""

from __future__ import annotations

STYLES = [
    dict(color="#1f4e9c", linestyle="-", marker=None),
    dict(color="#d1495b", linestyle="--", marker=None),
    dict(color="#2a9d5c", linestyle=":", marker=None),
    dict(color="#6c3d91", linestyle="-.", marker=None),
]
MARKERS = ["o", "s", "^", "D"]
HATCHES = ["", "//", "..", "xx"]


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def style(i: int) -> dict:
    """Line style of the i-th backend: colour, dash pattern."""
    return dict(STYLES[i % len(STYLES)])


def save(fig, path, *, warning: str | None = None) -> None:
    """Save ``fig`` as PNG at ``path`` and close it; a ``warning`` (a disturbed run, ...)
    is written on the figure itself, in red below the axes, so that it travels with it."""
    from pathlib import Path

    if warning:
        import textwrap

        fig.text(0.5, -0.02, textwrap.fill(f"warning: {warning}", 110), ha="center", va="top",
                 fontsize=8, color="#b00020")

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)

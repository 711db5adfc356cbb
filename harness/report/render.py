"""Rendering the report's page and Markdown from Jinja2 templates.

The HTML page is self-contained: its stylesheet is inline, every image is a
``data:image/png;base64,...`` URI, it has no script, and its Content-Security-Policy
forbids loading anything else, so it opens offline and never touches the network.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

#: how each verdict is shown: a symbol (reads without colour) and a CSS class
VERDICT_SYMBOLS = {"PASS": "\u2714", "FAIL": "\u2718", "INFO": "\u2139", "SKIPPED": "\u2013",
                   "WARN": "\u26a0", "NOT CHECKED": "\u2205"}


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("harness.report", "templates"),
        autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(sci=sci, fixed=fixed, pct=pct, secs=secs, md=md, symbol=symbol,
                       vclass=vclass, step=step_text, mib=mib, yesno=yesno)
    from harness.compare.closeness import ARBITER_FLOOR_ULPS, ARBITER_MULTIPLIER
    from harness.training.trajectory import SPREAD_MULTIPLIER

    env.globals.update(arbiter_multiplier=f"{ARBITER_MULTIPLIER:g}",
                       spread_multiplier=f"{SPREAD_MULTIPLIER:g}",
                       arbiter_floor_ulps=f"{ARBITER_FLOOR_ULPS:g}")
    return env


# ------------------------------------------------------------------- filters
def _finite(x) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v


def sci(x, digits: int = 2) -> str:
    """1.23e-16 style; 0 as "0"; None as an en dash; nan/inf spelled out."""
    v = _finite(x)
    if v is None:
        return "\u2013" if x is None else str(x)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    return f"{v:.{digits}e}"


def fixed(x, digits: int = 4) -> str:
    v = _finite(x)
    if v is None:
        return "\u2013" if x is None else str(x)
    if not math.isfinite(v):
        return sci(v)
    return f"{v:.{digits}f}"


def pct(x, digits: int = 2) -> str:
    v = _finite(x)
    if v is None or not math.isfinite(v):
        return sci(x)
    return f"{100 * v:.{digits}f}%"


def secs(x) -> str:
    """Seconds in a readable unit: 61.2 s, 350 ms, 12.3 µs."""
    v = _finite(x)
    if v is None or not math.isfinite(v):
        return "\u2013"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("\u00b5s", 1e-6)):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {unit}" if unit != "s" or v < 100 else f"{v:.0f} s"
    return f"{v / 1e-9:.3g} ns"


def mib(x) -> str:
    v = _finite(x)
    if v is None or not math.isfinite(v):
        return "\u2013"
    return f"{v / 2**20:.2f}"


def md(text) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def symbol(verdict: str) -> str:
    return VERDICT_SYMBOLS.get(str(verdict), "")


def vclass(verdict: str) -> str:
    return {"PASS": "pass", "FAIL": "fail", "INFO": "info", "WARN": "info",
            "NOT CHECKED": "fail"}.get(str(verdict), "skip")


def step_text(value) -> str:
    return "never" if value is None else str(value)


def yesno(value) -> str:
    return "yes" if value else "no"


# ------------------------------------------------------------------- images
def data_uri(path: str | Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    raw = Path(path).read_bytes()
    if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError(f"{path} is not a PNG file")
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii")


def _embed(stages: dict[str, Any], folder: Path) -> None:
    for view in stages.values():
        if not isinstance(view, dict):
            continue
        for fig in view.get("figures", ()):
            fig["uri"] = data_uri(folder / fig["path"])


# ------------------------------------------------------------------- pages
def render_html(context: dict[str, Any], folder: str | Path) -> str:
    """The page, with every figure of ``context`` embedded from ``folder``."""
    _embed(context["stages"], Path(folder))
    return _environment().get_template("index.html.j2").render(**context)


def render_markdown(context: dict[str, Any]) -> str:
    """The same report in Markdown; figures are links to the PNG files beside it."""
    return _environment().get_template("report.md.j2").render(**context)

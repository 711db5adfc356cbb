"""HTML forms of the results, for Jupyter: verdict first, failing rows first, text escaped.

Each result class's ``_repr_html_`` delegates here (:func:`to_html`): a
:class:`~harness.checks.CheckResult` or :class:`~harness.checks.CheckRun`, and the
reports under them (``EquivalenceReport``, ``GradcheckReport``, ``TrajectoryReport``,
``CVReport``, ``BenchResult``), and a conformance run. Everything shown is escaped
with :func:`html.escape`: names, messages and hints come from the code under test.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

_COLOURS = {"PASS": "#1a7f37", "INFO": "#0969da", "WARN": "#9a6700", "NOT CHECKED": "#6e7781",
            "FAIL": "#cf222e", "SKIP": "#6e7781"}
_STYLE = "border-collapse:collapse;font-family:monospace;font-size:12px"
_CELL = "border:1px solid #d0d7de;padding:2px 6px;text-align:left"


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def badge(status: str) -> str:
    """The status word, coloured."""
    colour = _COLOURS.get(status, "#24292f")
    return f'<b style="color:{colour}">{_e(status)}</b>'


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.3g}" if value == 0 else \
            f"{value:.3e}"
    if isinstance(value, bool):
        return "PASS" if value else "FAIL"
    return "" if value is None else str(value)


def table(rows: list[dict[str, Any]], columns: list[str], *, failed=None) -> str:
    """An HTML table of ``rows`` (dicts) in ``columns``; rows where ``failed(row)`` first."""
    if failed is not None:
        rows = sorted(rows, key=lambda r: not failed(r))  # stable: failing rows first
    head = "".join(f'<th style="{_CELL}">{_e(c)}</th>' for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            text = _fmt(r.get(c))
            cell = badge(text) if text in _COLOURS else _e(text)
            cells.append(f'<td style="{_CELL}">{cell}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table style="{_STYLE}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _lines(lines, tag: str = "div") -> str:
    return "".join(f"<{tag}>{_e(line)}</{tag}>" for line in lines if line)


def _pre(text: str) -> str:
    return f'<pre style="font-size:11px">{_e(text)}</pre>'


# ------------------------------------------------------------------ reports
def equivalence_html(report) -> str:
    rows = report.rows
    n_bad = sum(not r.passed for r in rows)
    status = "PASS" if report.passed else "FAIL"
    first = report.first_failure
    head = (f"{badge(status)} equivalence: {_e(report.candidate)} against "
            f"{_e(report.reference)} ({_e(report.dtype)}, rtol={report.rtol:g}, "
            f"atol={report.atol:g}): {len(rows) - n_bad} of {len(rows)} quantities agree")
    parts = [f"<div>{head}</div>"]
    if first is not None:
        parts.append(f"<div>first: {_e(first.message or first.quantity)}</div>")
    if report.divergence and report.divergence.get("message"):
        parts.append(f"<div>first divergence: {_e(report.divergence['message'])}</div>")
    parts.append(table([dict(r.row(), verdict="PASS" if r.passed else "FAIL") for r in rows],
                       ["quantity", "shape", "max_abs_err", "max_rel_err", "worst_index",
                        "mismatched", "verdict"], failed=lambda r: r["verdict"] != "PASS"))
    parts.append(_lines(report.notes))
    return "".join(parts)


def gradcheck_html(report) -> str:
    status = getattr(report, "status", None) or ("PASS" if report.passed else "FAIL")
    bad = [p.name for p in report.params if not p.passed]
    head = (f"{badge(status)} gradcheck: {_e(report.name)} ({_e(report.precision)}), "
            f"{report.n_samples} samples: "
            + (f"{len(bad)} of {len(report.params)} parameters differ ({_e(', '.join(bad))})"
               if bad else f"all {len(report.params)} parameters agree"))
    rows = [p.row() for p in report.params]
    columns = list(rows[0]) if rows else []
    return (f"<div>{head}</div>"
            + table(rows, columns, failed=lambda r: r.get("verdict") not in ("PASS", None))
            + _lines(report.notes))


def trajectory_html(report) -> str:
    status = "PASS" if report.passed else "FAIL"
    if report.error is not None:
        what = f"numerical failure: {report.error}"
    elif report.first_divergence is not None:
        what = f"first divergence at {report.first_divergence}"
    else:
        what = f"within tolerance for all {report.steps} steps"
    head = (f"{badge(status)} training: {_e(report.candidate)} against {_e(report.reference)}"
            f" ({_e(report.dtype)}, {report.epochs_done} of {report.epochs} epochs): {_e(what)}")
    rows = [{"quantity": "largest loss difference", "value": report.max_loss_diff},
            {"quantity": "largest parameter difference", "value": report.max_param_diff},
            {"quantity": "steps", "value": report.steps}]
    return f"<div>{head}</div>" + table(rows, ["quantity", "value"]) + _pre(str(report))


def _frame_html(frame) -> str:
    return frame.to_html(escape=True, index=False, max_rows=60, border=0)


def cv_html(report) -> str:
    multi = len(report.backends) > 1
    head = f"{report.folds}-fold cross-validation of {', '.join(report.backends)}"
    if multi:
        head += f": {report.agreement_fraction:.2%} of validation predictions identical"
    return f"<div><b>{_e(head)}</b></div>" + _frame_html(report.summary)


def bench_html(result) -> str:
    return (f"<div><b>{badge('INFO')} benchmark: {len(result.table)} measurements, a "
            f"measurement and not a check</b></div>" + _frame_html(result.table))


_REPORTS = {"EquivalenceReport": equivalence_html, "GradcheckReport": gradcheck_html,
            "TrajectoryReport": trajectory_html, "CVReport": cv_html,
            "BenchResult": bench_html}


def report_html(report) -> str:
    """The HTML of one underlying report (escaped text for a kind not known here)."""
    render = _REPORTS.get(type(report).__name__)
    return render(report) if render is not None else _pre(str(report))


# ------------------------------------------------------------------ results
def check_result_html(result) -> str:
    """A CheckResult: verdict, the configuration, hints, findings, then the report(s)."""
    parts = [f"<div>{badge(result.status)} <b>{_e(result.check)}</b>: {_e(result.summary)}"
             f"</div>"]
    if len(result.verdicts) > 1:
        parts.append(table([v.to_dict() for v in result.verdicts],
                           ["name", "status", "summary"], failed=lambda r: not r["passed"]))
    if result.hints:
        parts.append("<div>likely causes:</div><ul>" + _lines(result.hints, "li") + "</ul>")
    if result.findings:
        parts.append("<ul>" + _lines((f"FAIL: {f}" for f in result.findings), "li") + "</ul>")
    parts.append(f'<div style="color:#57606a">{"<br>".join(map(_e, result.header))}</div>')
    reports = result.report
    if isinstance(reports, dict):
        items = sorted(reports.items(), key=lambda kv: bool(getattr(kv[1], "passed", True)))
        parts.extend(f"<div><i>{_e(name)}</i></div>{report_html(r)}" for name, r in items)
    elif reports is not None:
        parts.append(report_html(reports))
    parts.append(_lines(result.notes))
    return '<div class="nn-harness">' + "".join(parts) + "</div>"


def check_run_html(run) -> str:
    """A CheckRun: the overall verdict, one row per verdict (failing first), each result."""
    rows = [{"check": r.check, **v.to_dict()} for r in run.results for v in r.verdicts]
    parts = [f"<div>{badge(run.status)} <b>{len(run.results)} checks</b></div>",
             table(rows, ["check", "name", "status", "summary"],
                   failed=lambda r: not r["passed"])]
    for r in sorted(run.results, key=lambda r: r.passed):
        parts.append(f"<details{'' if r.passed else ' open'}><summary>{badge(r.status)} "
                     f"{_e(r.check)}</summary>{check_result_html(r)}</details>")
    return '<div class="nn-harness">' + "".join(parts) + "</div>"


def conformance_html(run) -> str:
    """A conformance run: the verdict and counts, then one row per check (failing first)."""
    c = run.counts()
    status = "PASS" if run.passed else "FAIL"
    rows = []
    for o in run.outcomes:
        detail = o.reason if o.status == "SKIP" else (
            "" if o.result is None or o.result.status == "PASS" else
            o.result.summary if o.result.passed else  # WARN: the recommendation
            (o.result.hints[0] if o.result.hints else o.result.summary))
        rows.append({"check": o.id, "status": o.status, "detail": detail})
    return ('<div class="nn-harness">'
            f"<div>{badge(status)} <b>conformance: {_e(run.target)}</b>: {c['PASS']} passed, "
            f"{c['FAIL']} failed, {c['SKIP']} skipped</div>"
            + table(rows, ["check", "status", "detail"],
                    failed=lambda r: r["status"] not in ("PASS", "WARN", "INFO", "SKIP"))
            + "</div>")


def to_html(obj) -> str:
    """The HTML of any result object of the harness."""
    name = type(obj).__name__
    if name == "CheckResult":
        return check_result_html(obj)
    if name == "CheckRun":
        return check_run_html(obj)
    if name == "ConformanceRun":
        return conformance_html(obj)
    return report_html(obj)

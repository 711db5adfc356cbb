"""The report page in a real browser: headless Chromium, from disk, network off.

Driven over the DevTools protocol (tests/browser.py): console errors, uncaught
exceptions and the browser's own error log are collected, every request is recorded,
and every image is decoded. Skipped when no Chromium is installed (`.ci/run` installs
Debian's chromium when it is missing). Screenshots go to tests/artifacts/ (not in git).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tests.browser import find_chromium, inspect_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium() is None,
                       reason="no chromium: install it (apt-get install chromium, as .ci/run "
                              "does) or point NN_HARNESS_CHROMIUM at one"),
]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

#: per verdict badge: its text, box, place and the styles that carry it in grey print
PROBE = """
(() => {
  const rows = Array.from(document.querySelectorAll('tr.verdict-row')).map(tr => {
    const badge = tr.querySelector('.verdict');
    const r = badge.getBoundingClientRect();
    const s = getComputedStyle(badge);
    return {check: tr.dataset.check, verdict: tr.dataset.verdict, text: badge.innerText.trim(),
            width: r.width, height: r.height, top: r.top, visibility: s.visibility,
            display: s.display, opacity: s.opacity, color: s.color,
            background: s.backgroundColor, border: s.borderTopStyle,
            borderWidth: s.borderTopWidth};
  });
  const overall = document.querySelector('#overall .verdict');
  const table = document.querySelector('#verdicts').getBoundingClientRect();
  return {rows: rows, overall: overall.innerText.trim(), verdicts_top: table.top,
          viewport: window.innerHeight, fonts: document.fonts.status,
          elapsed: document.querySelector('#elapsed').innerText,
          overflowing: Array.from(document.querySelectorAll('div.scroll'))
            .filter(d => d.scrollWidth > d.clientWidth + 1)
            .map(d => (d.querySelector('table') || {}).id || '(a table)'),
          bench_all_open: (document.querySelector('#bench-all') || {}).open,
          details: Object.fromEntries(Array.from(document.querySelectorAll('details[id]'))
            .map(d => [d.id, d.open])),
          page_height: document.documentElement.scrollHeight,
          disturbed_box: !!document.querySelector('#bench-disturbed')};
})()
"""


def png_size(path: Path) -> tuple[int, int]:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", raw[16:24])


def check_page(index: Path, screenshot: Path):
    doc = json.loads((index.parent / "results.json").read_text())
    page = inspect_page(index, screenshot=screenshot, probe=PROBE, width=1280, height=900)
    assert page.console_errors == []
    assert page.external_requests == []  # the file itself and data: URIs only
    assert page.requests and page.requests[0] == index.resolve().as_uri()
    pngs = [f for f in doc["files"] if f.endswith(".png")]
    assert len(page.images) == len(pngs)
    for img in page.images:
        assert img["decoded"], img
        assert img["natural_width"] > 0 and img["natural_height"] > 0, img
    assert page.broken_images == []
    probe = page.probe
    assert [(r["check"], r["verdict"]) for r in probe["rows"]] == [
        (v["key"], v["verdict"]) for v in doc["verdicts"]]
    for r in probe["rows"]:
        assert r["text"].endswith(r["verdict"])  # the word, beside its symbol
        assert r["width"] > 0 and r["height"] > 0
        assert r["visibility"] == "visible" and r["display"] != "none" and r["opacity"] == "1"
        assert r["top"] < probe["viewport"]  # above the fold: the verdicts come first
    assert probe["verdicts_top"] < probe["viewport"] / 2
    assert probe["overall"].endswith("PASS" if doc["passed"] else "FAIL")
    assert probe["fonts"] == "loaded"
    assert probe["elapsed"].endswith(" s")
    assert probe["overflowing"] == []  # every table fits the 1280 px window
    if doc["stages"].get("bench"):  # every measurement is there, collapsed
        assert probe["bench_all_open"] is False
        assert probe["disturbed_box"] == doc["stages"]["bench"]["quality"]["disturbed"]
    assert page.screenshot == screenshot and png_size(screenshot)[0] == 1280
    assert page.title.startswith("PASS" if doc["passed"] else "FAIL")
    return page, probe


def test_the_report_page_loads_offline_without_errors(tmp_path_factory):
    from tests.test_report import make_small_report

    index = make_small_report(tmp_path_factory.mktemp("report")) / "index.html"
    page, probe = check_page(index, ARTIFACTS / "report.png")
    styles = {r["verdict"]: (r["border"], r["color"], r["background"]) for r in probe["rows"]}
    assert styles["PASS"][0] == "solid" and styles["INFO"][0] == "dotted"
    assert styles["PASS"][1] != styles["INFO"][1]
    assert len(page.images) >= 8
    # detail tables are folded on a passing page, so the figures need not be shrunk
    assert probe["details"]["equivalence-details"] is False
    assert probe["details"]["cv-details"] is False


def test_a_failing_report_reads_as_failing(tmp_path):
    from harness.cli import main

    out = tmp_path / "broken"
    code = main(["report", "--dataset", "iris", "--dims", "4,8,3", "--epochs", "2", "--folds",
                 "2", "--samples", "16", "--max-entries", "4", "--no-bench", "--no-drift",
                 "--quiet", "--out", str(out), "--backends",
                 "torch,tests.test_equivalence:BiasGradAveragedPlugin"])
    assert code == 1
    _, probe = check_page(out / "index.html", ARTIFACTS / "report-fail.png")
    rows = {r["check"]: r for r in probe["rows"]}
    fail, ok = rows["equivalence"], rows["gradcheck:torch"]
    assert fail["verdict"] == "FAIL" and ok["verdict"] == "PASS"
    # in grey print FAIL still differs from PASS: a double, thicker border and its word
    assert fail["border"] == "double" and ok["border"] == "solid"
    assert float(fail["borderWidth"].rstrip("px")) > float(ok["borderWidth"].rstrip("px"))
    assert fail["color"] != ok["color"] and fail["background"] != ok["background"]
    # what failed is open: its table shows without a click; what passed stays folded
    assert probe["details"]["equivalence-details"] is True
    assert probe["details"]["cv-details"] is False


def test_the_checker_catches_errors_broken_images_and_network_use(tmp_path):
    """The negative control: every kind of failure the page test guards against is seen."""
    bad = tmp_path / "bad.html"
    bad.write_text("""<!DOCTYPE html><html><head><meta charset="utf-8"><title>bad</title></head>
<body><p>bad page</p>
<img alt="corrupt" src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB">
<img alt="remote" src="http://example.invalid/x.png">
<script>console.error("logged error"); undefinedFunction();</script>
</body></html>""", encoding="utf-8")
    page = inspect_page(bad)
    errors = "\n".join(page.console_errors)
    assert "console.error: logged error" in errors
    assert "uncaught exception: ReferenceError: undefinedFunction is not defined" in errors
    assert "http://example.invalid/x.png" in page.external_requests
    assert len(page.broken_images) == 2
    assert page.title == "bad"

"""HTML forms of the results: the docs' notebook example runs, verdict first, escaped."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from harness.checks.result import FAIL, PASS, CheckResult, Finding, Verdict

TESTING_DOC = Path(__file__).resolve().parents[1] / "docs" / "testing.md"


def _notebook_block() -> str:
    text = TESTING_DOC.read_text()
    section = text[text.index("## In a notebook"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_docs_notebook_example_renders_html():
    code = _notebook_block()
    assert len(code.strip().splitlines()) == 4
    namespace: dict = {}
    exec(compile(code, "docs/testing.md", "exec"), namespace)  # what a notebook cell runs
    run = namespace["run"]
    html = run._repr_html_()
    assert html.startswith('<div class="nn-harness"><div><b style="color:#1a7f37">PASS</b>')
    assert "<table" in html and "equivalence" in html and "gradcheck" in html
    single = run["equivalence"]._repr_html_()
    assert single.index("PASS") < single.index("<table")
    assert "grads[&#x27;W0&#x27;]" in single  # the report's rows, escaped
    for report in (run["equivalence"].report, *run["gradcheck"].report.values()):
        assert "<table" in report._repr_html_()


def test_failing_rows_come_first_and_text_is_escaped():
    from harness.compare.equivalence import check_equivalence
    from harness.model.specs import ModelSpec, OptimizerSpec
    from harness.model.registry import make_backend
    from tests.test_conformance import SummedLoss

    spec = ModelSpec((5, 7, 3))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 5)), np.arange(6) % 3
    report = check_equivalence(make_backend("scratch", spec),
                               SummedLoss(spec, OptimizerSpec("sgd", lr=0.01, weight_decay=0.0)),
                               x, y)
    html = report._repr_html_()
    assert html.index("FAIL") < html.index("<table")
    body = html[html.index("<tbody>"):]
    assert body.index(">loss<") < body.index("params[")  # the failing row first
    bad = CheckResult("equivalence", [Verdict("equivalence", "t", FAIL, "<b>x</b> & y")],
                      hints=["<script>alert(1)</script>"],
                      findings=[Finding("m:<C>", "forward", "ValueError", "<oops>")])
    html = bad._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;oops&gt;" in html and "&lt;b&gt;x&lt;/b&gt; &amp; y" in html
    ok = CheckResult("gradcheck", [Verdict("gradcheck", "t", PASS, "fine")])
    assert ok._repr_html_().count("PASS") == 1


def test_conformance_and_trajectory_html():
    from harness.testing import assert_trains_alike, check_network
    from tests.test_conformance import Undeclared

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 5)), np.arange(8) % 3
    result = assert_trains_alike("scratch", "torch", x, y, epochs=1, batch_size=4, dims=(5, 4, 3))
    assert "largest parameter difference" in result._repr_html_()
    run = check_network(Undeclared)
    html = run._repr_html_()
    assert "conformance:" in html and "SKIP" in html and "does not declare" in html

"""`nn-harness report`: the folder, results.json, the page, the Markdown, staging, the CLI.

One small report (iris, a 4-8-3 network, a few epochs, 2 folds, a tiny benchmark) is
built once and shared; the command-line tests run smaller ones without a benchmark.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main

SMALL = ["--dataset", "iris", "--dims", "4,8,3", "--epochs", "2", "--folds", "2",
         "--samples", "24", "--max-entries", "8", "--no-bench"]

_SHARED: dict[str, Path] = {}


# ------------------------------------------------------------------ helpers
def make_small_report(root: Path) -> Path:
    """The shared report (built once per test session): every stage, a tiny benchmark."""
    if "small" in _SHARED:
        return _SHARED["small"]
    from harness.bench import BenchConfig
    from harness.data.datasets import load_dataset
    from harness.report import ReportSettings, build_report
    from harness.model.specs import ModelSpec, OptimizerSpec

    data = load_dataset("iris")
    bench = BenchConfig(grid=(((4, 8, 3), 16),), dtypes=("float32",), repeats=1,
                        min_time=0.002, ops=("forward", "train_step"), peak_size=64,
                        epoch_samples=32)
    settings = ReportSettings(
        spec=ModelSpec((4, 8, 3), "relu", "float64", 0),
        optimizer=OptimizerSpec("adam", lr=1e-3, weight_decay=1e-4), epochs=3, folds=2,
        gradcheck_samples=32, gradcheck_max_entries=12, bench=bench)
    outcome = build_report(data, settings, root / "small", quiet=True,
                           command=["nn-harness", "report", "--dataset", "iris"])
    _SHARED["small"] = outcome.path
    return outcome.path


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return make_small_report(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def results(small) -> dict:
    return strict_json((small / "results.json").read_text())


def strict_json(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def tree(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: its sha256 and modification time (ns)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = (hashlib.sha256(p.read_bytes()).hexdigest(),
                                               p.stat().st_mtime_ns)
    return out


def png_size(raw: bytes) -> tuple[int, int]:
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert raw[12:16] == b"IHDR"
    return struct.unpack(">II", raw[16:24])


class Page(HTMLParser):
    """What the tests need from the page: tags, images, verdict rows, links, metas."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[str] = []
        self.images: list[dict] = []
        self.links: list[str] = []
        self.metas: list[dict] = []
        self.verdict_rows: list[dict] = []
        self.badges: list[str] = []
        self._badge: list[str] | None = None  # text of the open badge
        self._depth = 0  # spans open inside it
        self._ids: dict[str, str] = {}
        self._capture: tuple[str, str] | None = None  # (id, tag) whose text is collected
        self._text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(a)
        elif tag == "a" and "href" in a:
            self.links.append(a["href"])
        elif tag == "meta":
            self.metas.append(a)
        elif tag == "tr" and "verdict-row" in (a.get("class") or ""):
            self.verdict_rows.append({"check": a["data-check"], "verdict": a["data-verdict"],
                                      "badge": None})
        if tag == "span" and self._badge is not None:
            self._depth += 1
        elif tag == "span" and "verdict" in (a.get("class") or "").split():
            self._badge, self._depth = [], 0
        if a.get("id") in ("elapsed", "overall", "bench-disturbed"):
            self._capture, self._text = (a["id"], tag), []

    def handle_endtag(self, tag):
        if tag == "span" and self._badge is not None:
            if self._depth:
                self._depth -= 1
            else:
                text = " ".join("".join(self._badge).split())
                self.badges.append(text)
                if self.verdict_rows and self.verdict_rows[-1]["badge"] is None:
                    self.verdict_rows[-1]["badge"] = text
                self._badge = None
        if self._capture and tag == self._capture[1]:
            self._ids[self._capture[0]] = " ".join("".join(self._text).split())
            self._capture = None

    def handle_data(self, data):
        if self._badge is not None:
            self._badge.append(data)
        if self._capture:
            self._text.append(data)

    def text_of(self, id_: str) -> str:
        return self._ids[id_]


# ------------------------------------------------------------------ the folder
def test_the_folder_holds_the_page_the_markdown_the_json_and_every_file_listed(small, results):
    files = {str(p.relative_to(small)) for p in small.rglob("*") if p.is_file()}
    assert files == set(results["files"])
    assert {"index.html", "report.md", "results.json"} <= files
    for stage in ("equivalence", "gradcheck", "training", "drift", "cv", "bench"):
        assert results["stages"][stage] is not None
        for f in results["stages"][stage]["files"]:
            assert (small / f).is_file(), f
    # the CSV and PNG behind every figure and table
    for f in ("equivalence/equivalence.csv", "gradcheck/scratch.csv", "gradcheck/torch.csv",
              "training/history.csv", "training/loss.png", "drift/drift.png",
              "drift/differences.csv", "cv/folds.csv", "cv/cv_accuracy.png", "bench/bench.csv"):
        assert f in files, f
    # staged: nothing but the report itself beside it, and readable like any file
    assert sorted(p.name for p in small.parent.iterdir()) == ["small"]
    umask = os.umask(0)
    os.umask(umask)
    assert (small / "index.html").stat().st_mode & 0o777 == 0o666 & ~umask
    assert small.stat().st_mode & 0o777 == 0o777 & ~umask


def test_results_json_has_a_schema_version_and_the_verdicts_follow_the_results(results):
    from harness.report import SCHEMA, SCHEMA_VERSION

    assert results["schema"] == SCHEMA and results["schema_version"] == SCHEMA_VERSION == 1
    assert results["elapsed_s"] > 0 and results["machine"]["python_version"]
    assert results["settings"]["model"]["dims"] == [4, 8, 3]
    assert results["data"]["name"] == "iris" and results["data"]["n_samples"] == 150
    verdicts = {v["key"]: v for v in results["verdicts"]}
    assert list(verdicts) == ["equivalence", "gradcheck:scratch", "gradcheck:torch", "training",
                              "drift", "cv", "bench"]
    st = results["stages"]
    # each verdict is what the stage's own numbers say
    eq_rows = st["equivalence"]["rows"]
    assert len(eq_rows) == 28
    assert verdicts["equivalence"]["verdict"] == ("PASS" if all(r["passed"] for r in eq_rows)
                                                  else "FAIL")
    for name in ("scratch", "torch"):
        params = st["gradcheck"]["backends"][name]["params"]
        assert sum(p["checked"] for p in params) > 0
        want = "PASS" if all(p["failed"] == 0 for p in params) else "FAIL"
        assert verdicts[f"gradcheck:{name}"]["verdict"] == want
    for key, dtype in (("training", "float64"), ("drift", "float32")):
        t = st[key]
        assert t["dtype"] == dtype and t["steps"] == 3 * 2  # 120 samples, batch 64, 3 epochs
        ok = t["first_divergence"] is None and t["error"] is None
        assert verdicts[key]["verdict"] == ("PASS" if ok else "FAIL")
    cv = st["cv"]
    assert cv["n_identical"] == sum(r["n_identical"] for r in cv["agreement"])
    assert verdicts["cv"]["verdict"] == ("PASS" if cv["agreement_fraction"] >= cv["min_agreement"]
                                         else "FAIL")
    assert verdicts["bench"]["verdict"] == "INFO" and verdicts["bench"]["counts"] is False
    counted = [v for v in results["verdicts"] if v["counts"]]
    assert results["passed"] == all(v["verdict"] == "PASS" for v in counted)
    assert results["exit_code"] == (0 if results["passed"] else 1)
    # two correct backends: everything passes in float64
    assert results["passed"] is True
    assert st["training"]["max_param_diff"] < 1e-12


def test_the_csv_files_hold_the_numbers_of_the_json(small, results):
    st = results["stages"]
    folds = pd.read_csv(small / "cv" / "folds.csv")
    assert len(folds) == 2 * 2
    assert folds["val_acc"].tolist() == pytest.approx([r["val_acc"] for r in st["cv"]["folds"]])
    eq = pd.read_csv(small / "equivalence" / "equivalence.csv")
    assert eq["quantity"].tolist() == [r["quantity"] for r in st["equivalence"]["rows"]]
    history = pd.read_csv(small / "training" / "history.csv")
    loss_diff = history[(history["backend"] == "difference") & (history["quantity"] == "loss_diff")]
    assert loss_diff["value"].max() == pytest.approx(st["training"]["max_loss_diff"], abs=1e-300)
    differences = pd.read_csv(small / "drift" / "differences.csv")
    assert set(differences["dtype"]) == {"float64", "float32"}
    bench = pd.read_csv(small / "bench" / "bench.csv")
    assert len(bench) == len(st["bench"]["rows"]) == 4  # 2 ops x 2 backends


# ------------------------------------------------------------------ the page
def test_the_page_is_self_contained_and_embeds_every_figure(small, results):
    text = (small / "index.html").read_text(encoding="utf-8")
    page = Page(text)
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    csp = [m for m in page.metas if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"] and "img-src data:" in csp[0]["content"]
    assert "http://" not in text and "https://" not in text
    pngs = sorted(f for f in results["files"] if f.endswith(".png"))
    assert len(page.images) == len(pngs) >= 8
    embedded = []
    for img in page.images:
        src = img["src"]
        assert src.startswith("data:image/png;base64,")
        raw = base64.b64decode(src.split(",", 1)[1], validate=True)
        w, h = png_size(raw)
        assert w > 0 and h > 0
        assert img.get("alt")
        embedded.append(raw)
    # every PNG of the folder is on the page, byte for byte
    assert sorted(hashlib.sha256(r).hexdigest() for r in embedded) == sorted(
        hashlib.sha256((small / p).read_bytes()).hexdigest() for p in pngs)
    # links go to files of the folder (or anchors on the page)
    for href in page.links:
        assert href.startswith("#") or (small / href).is_file(), href


def test_the_page_shows_a_verdict_per_check_in_words_at_the_top(small, results):
    text = (small / "index.html").read_text(encoding="utf-8")
    page = Page(text)
    rows = [{"check": r["check"], "verdict": r["verdict"]} for r in page.verdict_rows]
    assert rows == [{"check": v["key"], "verdict": v["verdict"]} for v in results["verdicts"]]
    symbols = {"PASS": "\u2714", "FAIL": "\u2718", "INFO": "\u2139", "SKIPPED": "\u2013"}
    for r in page.verdict_rows:  # a word and a symbol, not colour alone
        assert r["badge"] == f"{symbols[r['verdict']]} {r['verdict']}"
    assert page.text_of("overall") == "\u2714 PASS"
    # the verdicts come before every other section
    assert text.index('id="verdicts"') < text.index('id="configuration"') < text.index(
        'id="equivalence"') < text.index('id="gradcheck"') < text.index('id="training"') < \
        text.index('id="drift"') < text.index('id="cv"') < text.index('id="bench"') < \
        text.index('id="machine"')
    # the grey-print cues: each verdict class has its own border style
    assert ".verdict.pass" in text and "solid" in text and "double" in text and "dotted" in text
    assert "@media print" in text


def test_the_page_states_its_run_time_and_the_machine(small, results):
    from harness.report.render import secs

    page = Page((small / "index.html").read_text(encoding="utf-8"))
    text = (small / "index.html").read_text(encoding="utf-8")
    assert page.text_of("elapsed") == secs(results["elapsed_s"])
    m = results["machine"]
    for fact in (m["python_version"], m["numpy_version"], m["torch_version"], m["cpu_model"]):
        assert fact and str(fact) in text
    assert str(m["numpy_blas"]) in text
    assert results["command"] == ["nn-harness", "report", "--dataset", "iris"]
    assert "nn-harness report --dataset iris" in text


def test_report_md_has_the_tables_and_links_to_the_figures(small, results):
    md = (small / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# torch against scratch on iris: **PASS**")
    for v in results["verdicts"]:
        assert f"| **{v['verdict']}** " in md
    assert "data:image" not in md
    import re

    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted(images) == sorted(f for f in results["files"] if f.endswith(".png"))
    for link in re.findall(r"\]\(([^)#]+)\)", md):
        assert (small / link).is_file(), link
    # every table row has as many cells as its header
    lines = md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(("|---", "|--:")):
            n = lines[i - 1].count(" | ")
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert lines[j].replace("\\|", "").count(" | ") == n, lines[j]
                j += 1


def test_each_trajectory_section_states_the_rule_that_judged_it(small, results):
    """float64 training: the tolerances; the float32 drift run: the arbiter and witnesses."""
    import html

    assert results["stages"]["training"]["rule"] == "tolerance"
    drift = results["stages"]["drift"]
    assert drift["rule"] == "arbiter" and drift["witnesses"] == 4
    page = html.unescape((small / "index.html").read_text(encoding="utf-8"))
    training = page[page.index('<section id="training">'):page.index('<section id="drift">')]
    drift_html = page[page.index('<section id="drift">'):page.index('<section id="cv">')]
    assert "tolerance at step t" in training and "rule at step t" not in training
    assert "rule at step t" in drift_html and "tolerance at step t" not in drift_html
    assert "the reference and its 4 witnesses" in drift_html and "32 ×" in drift_html
    md = (small / "report.md").read_text(encoding="utf-8")
    assert md.count("| rule at step t |") == 1 and md.count("| tolerance at step t |") == 1


# ------------------------------------------------------------------ the command line
def run_cli(*args, timeout=240):
    proc = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_cli_writes_a_report_shows_progress_and_names_the_page(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["report", *SMALL, "--no-drift", "--out", str(out)]) == 0
    stdout, stderr = capsys.readouterr()
    assert stdout.strip().splitlines()[-1] == \
        f"PASS: report written to {out / 'index.html'} ({_elapsed(out):.1f} s)"
    steps = [line for line in stderr.splitlines() if line.startswith("[")]
    assert steps[0] == "[1/4] equivalence check ..."
    assert steps[-1].startswith("[4/4] 2-fold cross-validation, 2 epochs per fold: PASS (")
    doc = strict_json((out / "results.json").read_text())
    assert doc["stages"]["drift"] is None and doc["stages"]["bench"] is None
    skipped = {v["key"]: v for v in doc["verdicts"] if v["verdict"] == "SKIPPED"}
    assert set(skipped) == {"drift", "bench"} and not skipped["bench"]["counts"]
    # the recorded command reproduces the settings
    from harness.cli import build_parser

    again = build_parser().parse_args(doc["command"][1:])
    assert (again.epochs, again.folds, again.samples, again.bench, again.drift) == \
        (2, 2, 24, False, False)
    assert tuple(again.dims) == (4, 8, 3)


def _elapsed(out: Path) -> float:
    return strict_json((out / "results.json").read_text())["elapsed_s"]


def test_quiet_prints_only_the_final_line_and_json_prints_the_verdicts(tmp_path, capsys,
                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", *SMALL, "--no-drift", "--quiet", "--json"]) == 0
    stdout, stderr = capsys.readouterr()
    assert stderr == ""
    doc = json.loads(stdout)
    path = Path(doc["path"])
    # the default name: reports/<data set>-<timestamp>
    assert path.parent == Path("reports") and path.name.startswith("iris-")
    assert len(path.name) == len("iris-20250101-120000")
    assert (tmp_path / path / "index.html").is_file()
    assert doc["passed"] is True and doc["exit_code"] == 0
    assert [v["key"] for v in doc["verdicts"]][:2] == ["equivalence", "gradcheck:scratch"]


def test_default_names_never_collide(tmp_path):
    from harness.report import default_out

    first = default_out("iris", tmp_path)
    first.mkdir()
    second = default_out("iris", tmp_path)
    assert second != first and second.name.startswith(first.name)
    assert default_out("my data.csv", tmp_path).name.startswith("my_data.csv-")


def test_a_mismatch_fails_the_report_with_exit_1_and_the_page_says_where(tmp_path, capsys):
    out = tmp_path / "broken"
    code = main(["report", *SMALL, "--no-drift", "--quiet", "--out", str(out), "--backends",
                 "torch,tests.test_equivalence:BiasGradAveragedPlugin"])
    stdout, _ = capsys.readouterr()
    assert code == 1
    assert stdout.startswith(f"FAIL: report written to {out / 'index.html'}")
    doc = strict_json((out / "results.json").read_text())
    verdicts = {v["key"]: v["verdict"] for v in doc["verdicts"]}
    plugin = "tests.test_equivalence:BiasGradAveragedPlugin"
    assert verdicts["equivalence"] == "FAIL" and verdicts[f"gradcheck:{plugin}"] == "FAIL"
    assert verdicts["gradcheck:torch"] == "PASS"
    assert doc["passed"] is False and doc["exit_code"] == 1
    assert doc["stages"]["equivalence"]["first_failure"] == "grads['b0']"
    assert (out / "gradcheck" / "tests.test_equivalence_BiasGradAveragedPlugin.csv").is_file()
    html = (out / "index.html").read_text(encoding="utf-8")
    page = Page(html)
    assert page.text_of("overall") == "\u2718 FAIL"
    assert {"check": "equivalence", "verdict": "FAIL", "badge": "\u2718 FAIL"} in page.verdict_rows
    assert "grads[&#39;b0&#39;]: " in html  # the first failure's message, escaped
    assert "**FAIL**" in (out / "report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--folds", "1"], "`--folds` must be >= 2, got 1"),
        (["--folds", "60"], "class 'setosa' has 50 members, fewer than the 60 folds"),
        (["--min-agreement", "1.5"], "`--min-agreement` must be between 0 and 1, got 1.5"),
        (["--val-fraction", "1"], "`--val-fraction` must be in [0, 1), got 1.0"),
        (["--samples", "0"], "`--samples` must be >= 1, got 0"),
        (["--epochs", "0"], "`--epochs` must be >= 1, got 0"),
        (["--backends", "scratch"], "`--backends` needs at least 2 names"),
        (["--backends", "scratch,torch,scratch"], "`--backends` names a backend twice"),
        (["--backends", "scratch,tests.user_models:WrappedScratch,torch"],
         "`--backends` for report takes exactly two names"),
        (["--dims", "4,8,4"], "`--dims` must end with the number of classes of iris (3)"),
        (["--rtol", "1e-3"], "give both `--rtol` and `--atol` or neither"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys,
                                                             args, message):
    monkeypatch.chdir(tmp_path)
    code = main(["report", *SMALL, *args])
    _, err = capsys.readouterr()
    assert code == 2
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_report_is_kept_byte_identical_without_force(tmp_path, small, capsys):
    import shutil

    out = tmp_path / "kept"
    shutil.copytree(small, out)
    before = tree(out)
    code = main(["report", *SMALL, "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.strip() == (f"nn-harness report: error: `--out` {str(out)!r} already exists and "
                           f"is not empty; choose another folder or pass --force to replace it")
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]


def test_force_replaces_the_report_whole(tmp_path, small, capsys):
    import shutil

    out = tmp_path / "replaced"
    shutil.copytree(small, out)
    assert main(["report", *SMALL, "--no-drift", "--quiet", "--force", "--out", str(out)]) == 0
    doc = strict_json((out / "results.json").read_text())
    assert doc["stages"]["bench"] is None  # the new report, not the old one
    assert not (out / "bench").exists()  # nothing of the old one mixed in
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == set(doc["files"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replaced"]


@pytest.mark.parametrize("force", [False, True])
def test_an_interrupted_run_leaves_no_half_report(tmp_path, small, capsys, monkeypatch, force):
    import shutil

    from harness.report import stages

    calls = []

    def interrupted(self):
        calls.append(1)
        (self.tmp / "cv").mkdir(exist_ok=True)
        (self.tmp / "cv" / "half.csv").write_text("fold\n1\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(stages._Run, "cv", interrupted)
    out = tmp_path / "r"
    if force:  # an existing report survives an interrupted --force run untouched
        shutil.copytree(small, out)
    before = tree(out) if force else None
    code = main(["report", *SMALL, "--quiet", "--out", str(out), *(["--force"] if force else [])])
    _, err = capsys.readouterr()
    assert calls and code == 130
    assert err.strip() == "nn-harness report: interrupted"
    if force:
        assert tree(out) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    else:
        assert list(tmp_path.iterdir()) == []  # no report, no .partial, no temporary


def test_a_folder_made_meanwhile_is_kept_and_the_run_refused(tmp_path, capsys, monkeypatch):
    from harness.report import stages

    out = tmp_path / "r"
    original = stages._Run.cv

    def someone_else_writes(self):
        out.mkdir()
        (out / "theirs.txt").write_text("mine\n")
        return original(self)

    monkeypatch.setattr(stages._Run, "cv", someone_else_writes)
    code = main(["report", *SMALL, "--no-drift", "--quiet", "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2 and "was created by someone else while this report ran" in err
    assert [p.name for p in out.iterdir()] == ["theirs.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


class NaNAfterFourSteps:
    """The scratch backend, but every training step after the fourth returns NaN."""

    def __new__(cls, spec, optimizer):
        from scratch import MLP
        from scratch.optimizers import make_optimizer

        class Failing(MLP):
            steps = 0

            def train_step(self, x, y):
                self.steps += 1
                loss = super().train_step(x, y)
                return float("nan") if self.steps > 4 else loss

        return Failing(spec.dims, spec.activation, spec.dtype, spec.seed,
                       optimizer=make_optimizer(**optimizer.to_dict()))


def test_a_loss_that_becomes_nan_fails_training_and_cv_and_the_report_is_written(tmp_path,
                                                                                  capsys):
    out = tmp_path / "nan"
    code = main(["report", *SMALL, "--epochs", "4", "--quiet", "--out", str(out), "--backends",
                 "scratch,tests.test_report:NaNAfterFourSteps"])
    capsys.readouterr()
    assert code == 1
    doc = strict_json((out / "results.json").read_text())
    verdicts = {v["key"]: v for v in doc["verdicts"]}
    assert verdicts["equivalence"]["verdict"] == "PASS"  # one step: still fine
    for key in ("training", "drift", "cv"):
        assert verdicts[key]["verdict"] == "FAIL", key
        assert "numerical failure" in verdicts[key]["summary"]
    assert doc["stages"]["training"]["error"]["step"] == 5
    cv_error = doc["stages"]["cv"]["error"]
    assert "NaNAfterFourSteps" in cv_error and "nan" in cv_error
    html = (out / "index.html").read_text(encoding="utf-8")
    assert Page(html).text_of("overall") == "\u2718 FAIL"
    from markupsafe import escape  # as the page escapes

    assert escape(cv_error) in html
    assert escape(doc["stages"]["training"]["error"]["message"]) in html


class SlowTorch:
    """The torch backend, slowed down: 0.2 s per training step (for the signal test)."""

    def __new__(cls, spec, optimizer):
        from torch_impl import TorchClassifier

        class Slow(TorchClassifier):
            def train_step(self, x, y):
                time.sleep(0.2)
                return super().train_step(x, y)

        return Slow(spec, optimizer)


def _default_sigint():
    """SIGINT back to its default in the child: a shell running the tests in the
    background leaves it ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_run_leaves_nothing_behind(tmp_path, sig):
    out = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "report", *SMALL, "--out", str(out), "--backends",
         "scratch,tests.test_report:SlowTorch"], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env=env, preexec_fn=_default_sigint)
    try:
        for line in proc.stderr:  # wait until training is under way
            if line.startswith("[3/"):
                break
        else:
            pytest.fail(f"no training stage; exit code {proc.wait()}")
        deadline = time.monotonic() + 30  # staged meanwhile (later on a loaded machine)
        while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
            assert time.monotonic() < deadline and proc.poll() is None, "nothing staged"
            time.sleep(0.05)
        proc.send_signal(sig)
        rest = proc.stderr.read()
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130, rest
    assert "nn-harness report: interrupted" in rest
    assert list(tmp_path.iterdir()) == []


def test_a_float32_report_has_no_drift_run(tmp_path, capsys):
    out = tmp_path / "f32"
    assert main(["report", *SMALL, "--dtype", "float32", "--quiet", "--out", str(out)]) == 0
    doc = strict_json((out / "results.json").read_text())
    assert doc["stages"]["training"]["dtype"] == "float32" and doc["stages"]["drift"] is None
    drift = next(v for v in doc["verdicts"] if v["key"] == "drift")
    assert drift["verdict"] == "SKIPPED" and "float32" in drift["summary"]
    assert "the training section above is the float32 run" in (out / "index.html").read_text()


# ------------------------------------------------------------------ help and flags
def _subparsers():
    from harness.cli import SUBCOMMANDS, build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return parser, SUBCOMMANDS, action.choices


def test_report_is_the_front_door_and_every_subcommand_has_complete_help():
    parser, modules, choices = _subparsers()
    assert modules[0] == "harness.cli.report" and next(iter(choices)) == "report"
    assert "nn-harness report" in parser.epilog and "exit codes" in parser.epilog
    for name, sub in choices.items():
        help_text = sub.format_help()
        assert sub.epilog and "example" in sub.epilog, name
        assert f"nn-harness {name}" in sub.epilog, name
        assert sub.description, name
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help and action.help.strip(), f"{name} {action.option_strings}"
        assert "usage: nn-harness " + name in help_text
    report_help = choices["report"].format_help()
    for phrase in ("index.html", "report.md", "results.json", "--force", "exit codes: 0",
                   "--quiet", "--no-bench", "--min-agreement"):
        assert phrase in report_help


#: (flag, subcommand) pairs that differ in form on purpose, and why
SAME_MEANING_OTHER_FORM = {
    ("--dims", "bench"): "bench measures several networks: --dims may be repeated, each use "
                         "still gives the layer widths",
}


def test_the_same_flag_means_the_same_thing_in_every_subcommand():
    _, _, choices = _subparsers()
    seen: dict[str, tuple] = {}
    for name, sub in choices.items():
        for action in sub._actions:
            for flag in action.option_strings:
                if flag in ("-h", "--help") or (flag, name) in SAME_MEANING_OTHER_FORM:
                    continue
                stores = type(action).__name__.replace("_StoreExplicit", "_StoreAction")
                kind = (action.dest, stores, getattr(action.type, "__name__", action.type),
                        action.nargs)
                if flag in seen:
                    assert kind == seen[flag][0], (f"{flag}: {name} {kind} vs "
                                                   f"{seen[flag][1]} {seen[flag][0]}")
                else:
                    seen[flag] = (kind, name)
    # the report accepts the model, data, optimizer, training and CV flags of the others
    report = {f for a in choices["report"]._actions for f in a.option_strings}
    for flag in ("--backends", "--dataset", "--data", "--dims", "--activation", "--dtype",
                 "--seed", "--optimizer", "--lr", "--weight-decay", "--momentum", "--betas",
                 "--rtol", "--atol", "--epochs", "--batch-size", "--val-fraction", "--folds",
                 "--split-seed", "--min-agreement", "--samples", "--max-entries", "--out",
                 "--force", "--quiet", "--json"):
        assert flag in report, flag


def test_version_and_no_command():
    from harness import __version__

    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"nn-harness {__version__}"
    code, out, _ = run_cli()
    assert code == 2 and "report" in out


def test_cli_defaults_are_the_library_defaults():
    import harness.cli.report as cli
    import harness.report as lib

    assert (cli.EPOCHS, cli.BATCH_SIZE, cli.FOLDS, cli.SPLIT_SEED, cli.MIN_AGREEMENT,
            cli.SAMPLES, cli.MAX_ENTRIES) == (
        lib.DEFAULT_EPOCHS, lib.DEFAULT_BATCH_SIZE, lib.DEFAULT_FOLDS, lib.DEFAULT_SPLIT_SEED,
        lib.DEFAULT_MIN_AGREEMENT, lib.DEFAULT_GRADCHECK_SAMPLES,
        lib.DEFAULT_GRADCHECK_MAX_ENTRIES)


def test_templates_ship_with_the_package():
    import tomllib

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["harness"]
    templates = sorted(p.name for p in (root / "harness" / "report" / "templates").iterdir())
    assert templates == ["index.html.j2", "report.md.j2"]
    assert any(Path("report/templates/index.html.j2").match(p) for p in patterns)


# ------------------------------------------------------------------ benchmark and figures
def test_the_benchmark_section_shows_summary_rows_hides_targets_and_keeps_the_full_table(
        small, results):
    text = (small / "index.html").read_text(encoding="utf-8")
    section = text[text.index('id="bench"'):text.index('id="machine"')]
    assert 'id="bench-summary"' in section
    # the full table is collapsed, the CSV linked
    assert section.index("<details") < section.index('id="bench-table"')
    assert 'href="bench/bench.csv"' in section
    # the scratch backend's own goals are not the reader's question
    assert "target" not in section.lower()
    assert "targets" not in results["stages"]["bench"]
    quality = results["stages"]["bench"]["quality"]
    share = results["machine"]["other_processes_cpu_share"]
    assert quality["disturbed"] == (share is not None and share > 0.05)
    assert ('id="bench-disturbed"' in section) == quality["disturbed"]


def test_a_disturbed_benchmark_is_flagged_on_the_page_the_json_and_the_markdown(
        tmp_path, monkeypatch):
    from harness.bench import BenchConfig
    from harness.bench import timing
    from harness.data.datasets import load_dataset
    from harness.report import ReportSettings, build_report
    from harness.model.specs import ModelSpec, OptimizerSpec

    class Busy:  # other processes took 71.4% of the CPU during the run
        def start(self):
            return self

        def stop(self):
            return 0.714

    monkeypatch.setattr(timing, "CpuShare", Busy)
    bench = BenchConfig(grid=(((4, 8, 3), 16),), dtypes=("float32",), repeats=1,
                        min_time=0.002, ops=("train_step",), peak_size=64, epoch_samples=32,
                        memory=False)
    settings = ReportSettings(spec=ModelSpec((4, 8, 3), "relu", "float32", 0),
                              optimizer=OptimizerSpec("sgd", lr=0.1, weight_decay=0.0), epochs=1, folds=2,
                              gradcheck_samples=8, gradcheck_max_entries=4, bench=bench)
    out = build_report(load_dataset("iris"), settings, tmp_path / "busy", quiet=True).path
    doc = json.loads((out / "results.json").read_text())
    assert doc["passed"]  # a measurement never fails the report
    assert doc["stages"]["bench"]["quality"]["disturbed"] is True
    assert doc["machine"]["other_processes_cpu_share"] == 0.714
    bench_verdict = next(v for v in doc["verdicts"] if v["key"] == "bench")
    assert bench_verdict["summary"].startswith("DISTURBED: other processes used 71%")
    page = Page((out / "index.html").read_text(encoding="utf-8"))
    assert "71%" in page.text_of("bench-disturbed")
    assert "not reliable" in page.text_of("bench-disturbed")
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "Warning: disturbed benchmark" in md and "71%" in md


def _labels(ax) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def _history(diverge_at: int | None):
    rows = []
    for step in range(1, 11):
        loss = 1e-3 if diverge_at is not None and step >= diverge_at else 1e-9
        rows += [(step, 1, "difference", "loss_diff", loss),
                 (step, 1, "difference", "loss_bound", 1e-6)]
        if step % 2 == 0:
            rows += [(step, step // 2, "difference", "param_diff", 1e-10),
                     (step, step // 2, "difference", "param_bound", 1e-7)]
        for backend in ("torch", "scratch"):
            rows.append((step, 1, backend, "loss", 1.0))
    return pd.DataFrame(rows, columns=["step", "epoch", "backend", "quantity", "value"])


def test_the_difference_figure_names_both_allowances_and_marks_the_first_divergence():
    from harness.plots.training import difference_figure, first_divergence_step

    fig = difference_figure(_history(diverge_at=6))
    (ax,) = fig.axes
    labels = _labels(ax)
    assert "allowed loss difference" in labels and "allowed parameter difference" in labels
    assert "first divergence: step 6" in labels
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    loss_bound, param_bound = lines["allowed loss difference"], lines["allowed parameter difference"]
    assert loss_bound.get_color() != param_bound.get_color()
    assert first_divergence_step(_history(None)) is None
    assert not any("divergence" in t for t in _labels(difference_figure(_history(None)).axes[0]))


def test_the_drift_figure_draws_each_dtypes_tolerance(tmp_path):
    from types import SimpleNamespace
    from unittest import mock

    from harness.report.figures import drift_figure

    reports = {"float64": SimpleNamespace(history=_history(None)),
               "float32": SimpleNamespace(history=_history(None))}
    with mock.patch("harness.report.figures.save") as saved:
        drift_figure(reports, tmp_path / "d.png")
        fig = saved.call_args[0][0]
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    for dtype in ("float64", "float32"):
        assert f"{dtype}: allowed parameter difference" in lines
        assert lines[f"{dtype}: |loss difference| per step"].get_alpha() >= 0.9
    assert lines["float64: allowed parameter difference"].get_color() != \
        lines["float32: allowed parameter difference"].get_color()


def test_the_cv_accuracy_figure_names_its_axis_start_and_its_mean_lines(tmp_path):
    import matplotlib.pyplot as plt

    from harness.training.cv import cross_validate
    from harness.data.datasets import load_dataset
    from harness.plots.cv import plot_fold_accuracy
    from harness.model.specs import ModelSpec, OptimizerSpec

    data = load_dataset("iris")
    report = cross_validate(["torch", "scratch"], data.X, data.y,
                            spec=ModelSpec((4, 8, 3), "relu", "float64", 0),
                            optimizer=OptimizerSpec("adam", lr=0.05, weight_decay=0.0), folds=2, epochs=5,
                            batch_size=16, quiet=True)
    before = set(plt.get_fignums())
    plot_fold_accuracy(report, tmp_path / "acc.png")
    assert set(plt.get_fignums()) == before  # saved and closed
    # draw again without saving to inspect it
    from unittest import mock

    with mock.patch("harness.plots.cv.save") as saved:
        plot_fold_accuracy(report, tmp_path / "acc2.png")
        fig = saved.call_args[0][0]
    ax = fig.axes[0]
    labels = _labels(ax)
    assert "torch: mean over folds" in labels and "scratch: mean over folds" in labels
    bottom = ax.get_ylim()[0]
    if bottom > 0:
        assert f"axis starts at {bottom:.2f}" in ax.get_ylabel()


def test_the_sweep_plot_draws_the_tolerance_and_no_empty_legend_entries(tmp_path):
    from unittest import mock

    from harness.plots.sweep import plot_grad_error_vs_size

    table = pd.DataFrame({"status": ["ok"] * 3, "dtype": ["float32", "float64", "float64"],
                          "n_params": [10, 100, 1000], "grad_max_abs_err": [1e-7, 0.5, 1e-15],
                          "passed": [True, False, True]})
    with mock.patch("harness.plots.sweep.save") as saved:
        plot_grad_error_vs_size(table, tmp_path / "g.png")
        fig = saved.call_args[0][0]
    labels = _labels(fig.axes[0])
    assert not any("(0)" in t for t in labels)
    assert any(t.startswith("float32 tolerance: atol") for t in labels)
    assert any(t.startswith("float64 tolerance: atol") for t in labels)
    table["passed"] = [True, False, False]
    with mock.patch("harness.plots.sweep.save") as saved:
        plot_grad_error_vs_size(table, tmp_path / "g.png")
        labels = _labels(saved.call_args[0][0].axes[0])
    assert "float64 fail (2)" in labels and not any(t.startswith("float64 pass") for t in labels)

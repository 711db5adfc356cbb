"""What a newcomer meets first: the default thread count, the verdict of a run that
diverged, CSV files separated by something other than commas, NumPy's warnings,
the Python example of docs/protocol.md."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.data.datasets import load_data_file
from harness.errors import DataError
from harness.training.plausibility import divergence, training_sanity
from harness.runtime.threads import SMALL_WORKLOAD, default_threads, largest_product, usable_cores

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- threads
def test_small_networks_get_one_thread_and_large_ones_every_core(monkeypatch):
    monkeypatch.setattr("harness.runtime.threads.usable_cores", lambda: 2)
    assert largest_product((64, 32, 10), 64) == 64 * 32 * 64
    assert default_threads((64, 32, 10), 64) == 1          # the default network
    assert default_threads((64, 32, 10), 1797) == 1        # `check` on all of digits
    assert default_threads((784, 1024, 1024, 10), 256) == 2
    assert default_threads((512, 512, 10), 64) == 2        # 2**24: the threshold itself
    assert default_threads((512, 511, 10), 64) == 1
    assert default_threads() == 2 and default_threads((64, 32, 10)) == 2  # no workload given
    assert largest_product((512, 512, 10), 64) == SMALL_WORKLOAD


def test_more_threads_than_cores_are_cut_with_a_one_line_warning(capsys, monkeypatch):
    monkeypatch.setattr("harness.runtime.threads.usable_cores", lambda: 2)
    assert main(["check", "--dataset", "iris", "--threads", "64", "--json"]) == 0
    err = capsys.readouterr().err
    assert err == ("nn-harness check: warning: `--threads 64` is more than the 2 cores this "
                   "machine gives this process; using 2\n")


def test_train_reports_the_thread_count_it_chose(capsys):
    assert main(["train", "--dataset", "iris", "--epochs", "1", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["threads"] == 1
    cores = min(usable_cores(), 2)
    assert main(["train", "--dataset", "iris", "--epochs", "1", "--json", "--quiet",
                 "--threads", str(cores)]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["threads"] == cores


# ---------------------------------------------------------------- sanity
def test_divergence_of_one_trajectory():
    assert divergence([2.3, 1.9, 1.2, 0.8]) is None
    assert divergence([2.3, 5.0, 3.0]) is None                       # a bump is not divergence
    assert divergence([2.3, 40.0, 4.8e20]) == "loss 4.8e+20 at the end, 2.3 at the start"
    assert divergence([2.3, 300.0, 1.0]) == "loss reached 3e+02 at step 2, 2.3 at the start"
    assert divergence([2.3, np.nan]) == "loss nan at step 2, 2.3 at the start"
    assert divergence([1e-3, 2e6]) == "loss 2e+06 at the end, 0.001 at the start"
    assert divergence([]) is None


def test_two_runs_that_diverged_identically_are_flagged():
    losses = [2.3, 1e3, 4.8e20]
    found = training_sanity(losses, losses, agreed=True)
    assert not found.ok
    assert found.reason == ("both backends diverged identically (loss 4.8e+20 at the end, "
                            "2.3 at the start): agreement here shows nothing")
    assert training_sanity([2.3, 1.0], [2.3, 1.0], agreed=True).ok


def test_a_candidate_that_scores_better_while_the_comparison_failed_is_cautioned():
    found = training_sanity([2.3, 1.0], [2.3, 0.5], agreed=False, reference_accuracy=0.80,
                            candidate_accuracy=0.95, reference="scratch", candidate="mine")
    assert "mine reaches accuracy 0.950 against scratch's 0.800" in found.reason
    assert training_sanity([2.3, 1.0], [2.3, 0.5], agreed=True, reference_accuracy=0.8,
                           candidate_accuracy=0.95).ok   # agreed: no caution
    assert training_sanity([2.3, 1.0], [2.3, 0.5], agreed=False, reference_accuracy=0.8,
                           candidate_accuracy=0.82).ok   # not much better


def test_train_says_warn_when_both_backends_diverged_identically(capsys):
    argv = ["train", "--dataset", "iris", "--lr", "100", "--epochs", "5", "--quiet"]
    assert main(argv + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["passed"] is True and out["verdict"] == "WARN"
    assert re.fullmatch(r"both backends diverged identically \(loss \S+ at the end, 1\.1 at "
                        r"the start\): agreement here shows nothing; lower --lr",
                        out["caution"]), out["caution"]
    assert main(argv) == 0
    last = capsys.readouterr().out.splitlines()[-1]  # the reason ends the output, once
    assert last.startswith("WARN: ") and "both backends diverged identically" in last
    assert main(["train", "--dataset", "iris", "--epochs", "2", "--quiet", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "PASS" and out["caution"] is None


def test_a_blow_up_prints_no_numpy_warning_and_no_traceback(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "train", "--lr", "1e6", "--optimizer", "sgd",
         "--epochs", "2", "--quiet", "--threads", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1
    assert "RuntimeWarning" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "numerical failure" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["error"] is not None and summary["verdict"] == "FAIL"


# ---------------------------------------------------------------- CSV separators
ROWS = [("1.5", "2", "x"), ("3", "4.25", "y"), ("5", "6", "x"), ("7", "8", "y")]


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_a_csv_file_with_one_other_separator_is_read_with_it(tmp_path, sep):
    path = tmp_path / "mine.csv"
    path.write_text("\n".join(sep.join(r) for r in [("a", "b", "label"), *ROWS]) + "\n")
    data = load_data_file(path, target="label")
    assert data.feature_names == ["a", "b"] and data.class_names == ["x", "y"]
    np.testing.assert_array_equal(data.X, [[1.5, 2], [3, 4.25], [5, 6], [7, 8]])


def test_a_csv_header_with_two_other_separators_is_refused(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("a;b\tlabel\n1;2\tx\n3;4\ty\n")
    with pytest.raises(DataError, match=r"mine.csv has one column; its header holds ';' and "
                                        r"'\\t', so the separator is ambiguous"):
        load_data_file(path)


def test_a_comma_separated_file_is_unchanged(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("a;x,b,label\n" + "".join(f"{a},{b},{c}\n" for a, b, c in ROWS))
    assert load_data_file(path).feature_names == ["a;x", "b"]


# ------------------------------------------------------- docs/protocol.md
def _protocol_page_block(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "protocol.md").read_text(), re.S)
    (block,) = [b for b in blocks if marker in b]
    return block


def test_the_protocol_page_python_example_runs(capsys):
    namespace: dict = {}
    exec(compile(_protocol_page_block("check_equivalence(scratch"), "docs/protocol.md", "exec"), namespace)
    assert namespace["report"].passed
    assert namespace["x"].shape == (1797, 64)
    assert "PASS" in capsys.readouterr().out


def test_the_sweep_folder_is_named_after_the_grid_without_a_sweep_prefix():
    from harness.cli.sweep import _default_out

    assert _default_out("examples/sweep_small.toml") == str(Path("reports/sweep-small"))
    assert _default_out("grids/big.toml") == str(Path("reports/sweep-big"))
    assert _default_out("sweep.toml") == str(Path("reports/sweep"))

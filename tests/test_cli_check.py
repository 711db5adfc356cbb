"""`nn-harness check`: output, JSON, and exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.cli import main


def run_cli(*args):
    """Run the real console entry point in a subprocess: (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_check_default_passes_and_prints_the_table():
    code, out, err = run_cli("check", "--dataset", "iris")
    assert code == 0, err
    assert "data: iris (150 samples, standardised), dims (4, 32, 3)" in out
    assert "grads['W1']" in out and "PASS: all 28 quantities agree" in out


def test_check_json(capsys):
    assert main(["check", "--dataset", "wine", "--dims", "13,16,3", "--dtype", "float32",
                 "--activation", "gelu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passed"] is True and result["dtype"] == "float32"
    assert result["config"]["dims"] == [13, 16, 3] and result["config"]["activation"] == "gelu"
    assert len(result["rows"]) == 28 and result["first_failure"] is None


def test_check_exits_1_on_a_mismatch_and_names_the_quantity(capsys):
    code = main(["check", "--dataset", "iris", "--backends",
                 "torch,tests.test_equivalence:BiasGradAveragedPlugin"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL:" in out and "first: grads['b0']" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backends", "scratch,jax"], "unknown backend 'jax'; choose one of scratch, torch"),
        (["--dataset", "mnist"], "unknown dataset 'mnist'; choose one of digits, iris"),
        (["--dims", "60,32,10"], "`--dims` must start with the number of features of digits (64)"),
        (["--dims", "64,32,9"], "`--dims` must end with the number of classes of digits (10)"),
        (["--dtype", "float16"], "`--dtype` must be one of float32, float64, got 'float16'"),
        (["--activation", "swish"], "`--activation` must be one of relu, tanh, sigmoid"),
        (["--dims", "64,x,10"], "expected comma-separated integers"),
        (["--lr", "-1"], "`--lr` must be > 0, got -1"),
        (["--backends", "scratch"], "`--backends` needs at least 2 names"),
    ],
)
def test_check_bad_input_exits_2_with_one_line(args, message):
    code, out, err = run_cli("check", *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert out == ""

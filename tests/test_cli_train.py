"""`nn-harness train`: files written, summary, exit codes 0 / 1 / 2, warnings, progress."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from harness.cli import main
from scratch import MLP
from tests.test_training import AdamWithoutBiasCorrection


class ScratchWithoutBiasCorrection(MLP):
    """A plug-in backend ("tests.test_cli_train:ScratchWithoutBiasCorrection") with a bug."""

    def __init__(self, spec, optimizer):
        super().__init__(spec.dims, spec.activation, spec.dtype, spec.seed,
                         optimizer=AdamWithoutBiasCorrection(
                             lr=optimizer.lr, betas=optimizer.betas, eps=optimizer.eps,
                             weight_decay=optimizer.weight_decay))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


IRIS = ["train", "--dataset", "iris", "--epochs", "6", "--batch-size", "16"]


def test_train_writes_history_plots_and_summary(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*IRIS, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # no progress bar: stderr is not a terminal here
    assert "data: iris (120 training, 30 validation samples, standardised)" in captured.out
    assert ("optimizer: adam (lr 0.001, betas (0.9, 0.999), eps 1e-08, weight decay 0.0001 in "
            "the optimizer, on all parameters)") in captured.out
    assert "PASS: the trajectories agree within tolerance for all 48 steps" in captured.out
    assert sorted(p.name for p in out.iterdir()) == [
        "accuracy.png", "differences.png", "history.csv", "loss.png", "summary.json"]
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns) == ["step", "epoch", "backend", "quantity", "value"]
    assert set(history["backend"]) == {"scratch", "torch", "difference"}
    losses = history[(history.backend == "scratch") & (history.quantity == "loss")]
    assert list(losses["step"]) == list(range(1, 49))  # ceil(120 / 16) = 8 steps x 6 epochs
    val = history[(history.backend == "torch") & (history.quantity == "val_accuracy")]
    assert len(val) == 6 and val["value"].between(0, 1).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] is True and summary["steps"] == 48 and summary["epochs_done"] == 6
    assert (summary["reference"], summary["candidate"]) == ("scratch", "torch")
    assert summary["config"]["n_train"] == 120 and summary["config"]["n_val"] == 30
    assert summary["config"]["stratified"] is True
    assert summary["config"]["optimizer"]["name"] == "adam"
    assert summary["files"] == ["history.csv", "loss.png", "accuracy.png", "differences.png",
                                "summary.json"]
    assert summary["drift"][0] == {"threshold": 1e-14, "loss_diff_step": None,
                                   "param_diff_step": None}  # float64: never that far apart
    assert summary["final"]["scratch"]["val_accuracy"] == summary["final"]["torch"][
        "val_accuracy"]


def test_json_summary_without_out_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*IRIS, "--json", "--val-fraction", "0", "--no-shuffle", "--optimizer",
                 "sgd", "--lr", "0.1", "--momentum", "0.9", "--nesterov"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["passed"] is True and summary["shuffle"] is False
    assert summary["config"]["n_val"] == 0 and "val_accuracy" not in summary["final"]["torch"]
    assert summary["config"]["optimizer"]["nesterov"] is True
    assert "files" not in summary and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags, message", [
    (["--lr", "0"], "`--lr` must be > 0, got 0"),
    (["--lr", "-1"], "`--lr` must be > 0, got -1"),
    (["--weight-decay", "-0.1"], "`--weight-decay` must be >= 0, got -0.1"),
    (["--optimizer", "sgd", "--momentum", "1"], "`--momentum` must be in [0, 1), got 1"),
    (["--optimizer", "sgd", "--momentum", "-0.5"], "`--momentum` must be in [0, 1), got -0.5"),
    (["--optimizer", "sgd", "--nesterov"], "`--nesterov` needs the sgd optimizer with momentum > 0"),
    (["--betas", "0.9,1.0"], "`--betas` must be two numbers in [0, 1)"),
    (["--betas=-0.1,0.9"], "`--betas` must be two numbers in [0, 1)"),
    (["--epochs", "0"], "`--epochs` must be >= 1, got 0"),
    (["--batch-size", "0"], "`--batch-size` must be >= 1, got 0"),
    (["--optimizer", "lamb"],
     "`--optimizer` must be one of sgd, adam, adamw, rmsprop, adagrad, got 'lamb'"),
    (["--val-fraction", "1"], "`--val-fraction` must be in [0, 1), got 1.0"),
    (["--backends", "scratch"], "`--backends` needs at least 2 names"),
    (["--rtol", "1e-3"], "give both `--rtol` and `--atol` or neither"),
])
def test_bad_input_exits_2_with_one_line_before_any_work(flags, message, tmp_path, capsys,
                                                         monkeypatch):
    import harness.data.datasets

    def no_data(*args, **kwargs):
        raise AssertionError("data was loaded before the arguments were checked")

    monkeypatch.setattr(harness.data.datasets, "load_dataset", no_data)
    out = tmp_path / "never"
    assert main(["train", *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nn-harness train: error: ") and message in err
    assert err.count("\n") == 1
    assert not out.exists()


def test_a_batch_size_larger_than_the_data_is_clamped_with_a_warning(capsys):
    assert main(["train", "--dataset", "iris", "--epochs", "2", "--batch-size", "1000",
                 "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ("nn-harness train: warning: `batch_size` 1000 is larger than the "
                            "120 training samples; using 120 (one batch per epoch)\n")
    summary = json.loads(captured.out)
    assert summary["batch_size"] == 120 and summary["steps"] == 2


def test_a_nan_loss_exits_1_names_step_and_backend_and_keeps_the_record(tmp_path, capsys):
    out = tmp_path / "nan"
    code = main(["train", "--dataset", "iris", "--dtype", "float32", "--optimizer", "sgd",
                 "--lr", "1e6", "--epochs", "20", "--batch-size", "16", "--out", str(out)])
    assert code == 1
    captured = capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    step, backend = summary["error"]["step"], summary["error"]["backend"]
    assert backend in ("scratch", "torch") and 1 <= step < 20 * 8
    line = captured.err.strip().splitlines()[-1]
    assert line.startswith("nn-harness train: numerical failure: ")
    assert f"step {step} " in line and f"backend '{backend}'" in line and str(out) in line
    history = pd.read_csv(out / "history.csv")
    assert history["step"].max() == step
    assert history[(history.backend == backend) & (history.quantity == "loss")][
        "value"].isna().iloc[-1]
    assert summary["passed"] is False and (out / "loss.png").exists()


def test_diverging_trajectories_exit_1_and_are_written(tmp_path, capsys):
    out = tmp_path / "bug"
    code = main([*IRIS, "--backends", "torch,tests.test_cli_train:ScratchWithoutBiasCorrection",
                 "--out", str(out)])
    assert code == 1
    text = capsys.readouterr().out
    assert "FAIL: first divergence at step " in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] is False and summary["error"] is None
    assert summary["first_divergence"]["step"] <= 3
    assert summary["steps"] == 48  # kept training to show the drift


def test_progress_bar_only_on_a_terminal_and_not_with_quiet(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["train", "--dataset", "iris", "--epochs", "3", "--json"]) == 0
    assert "train:" in capsys.readouterr().err
    assert main(["train", "--dataset", "iris", "--epochs", "3", "--json", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_the_console_command_runs_quietly_through_a_pipe(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "harness", "train", "--dataset", "wine",
                           "--epochs", "2", "--out", str(tmp_path / "w")], capture_output=True,
                          text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and "PASS" in proc.stdout
    help_text = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True,
                               text=True, timeout=60, check=False).stdout
    assert "train" in help_text and "nn-harness train --optimizer adam" in help_text

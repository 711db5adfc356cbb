"""`nn-harness cv`: outputs, data sources, and bad input refused with exit 2, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from scratch import MLP
from scratch.optimizers import make_optimizer

FAST = ["--epochs", "2", "--batch-size", "32", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Contrarian(MLP):
    """A plug-in backend that predicts the next class wherever feature 0 is positive."""

    def __init__(self, spec, optimizer):
        super().__init__(spec.dims, spec.activation, spec.dtype, spec.seed,
                         optimizer=make_optimizer(**optimizer.to_dict()))

    def forward(self, x):
        logits = super().forward(x)
        rows = np.asarray(x)[:, 0] > 0
        logits[rows] = np.roll(logits[rows], 1, axis=1)
        return logits


def iris_frame():
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["species"] = np.asarray(bunch.target_names)[bunch.target]
    return frame.drop(columns="target")


def csv_file(tmp_path, frame=None, name="flowers.csv"):
    path = tmp_path / name
    (iris_frame() if frame is None else frame).to_csv(path, index=False)
    return path


# -------------------------------------------------------------------- outputs
def test_cv_writes_every_table_and_plot(tmp_path, capsys):
    out = tmp_path / "cv"
    code = main(["cv", "--dataset", "iris", "--folds", "3", *FAST, "--out", str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert stderr == ""  # no progress bar when stderr is not a terminal
    assert "3-fold cross-validation (StratifiedKFold(n_splits=3" in stdout
    assert "agreement: 150 of 150 validation predictions identical (100.00%)" in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cv"]  # no temporary left over
    names = {p.name for p in out.iterdir()}
    assert names == {"folds.csv", "summary.csv", "agreement.csv", "curves.csv",
                     "predictions.csv", "config.json", "cv_accuracy.png", "cv_loss_curves.png"}
    folds = pd.read_csv(out / "folds.csv")
    assert len(folds) == 6 and set(folds["backend"]) == {"scratch", "torch"}
    assert {"train_loss", "train_acc", "val_acc", "val_f1", "train_time_s"} <= set(folds.columns)
    summary = pd.read_csv(out / "summary.csv")
    assert summary["backend"].tolist() == ["scratch", "torch"]
    assert summary.loc[0, "val_acc_mean"] == pytest.approx(
        folds[folds["backend"] == "scratch"]["val_acc"].mean())
    agreement = pd.read_csv(out / "agreement.csv")
    assert agreement["fold"].tolist() == [1, 2, 3] and (agreement["agreement"] == 1).all()
    curves = pd.read_csv(out / "curves.csv")
    assert len(curves) == 3 * 2 * 2
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == 150 and set(predictions["true"]) == {"setosa", "versicolor",
                                                                    "virginica"}
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "iris" and config["folds"] == 3 and config["epochs"] == 2
    assert config["class_names"] == ["setosa", "versicolor", "virginica"]
    for png in ("cv_accuracy.png", "cv_loss_curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cv_json_without_out_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["cv", "--dataset", "wine", "--folds", "2", *FAST, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["backend"] for r in result["summary"]] == ["scratch", "torch"]
    assert len(result["folds"]) == 4 and len(result["agreement"]) == 2
    assert result["agreement_fraction"] == 1.0 and result["passed"] is True
    assert result["config"]["model"]["dims"] == [13, 32, 3]
    assert list(tmp_path.iterdir()) == []


def test_min_agreement_exits_1_when_backends_disagree(tmp_path, capsys):
    code = main(["cv", "--dataset", "iris", "--folds", "3", *FAST, "--min-agreement", "0.99",
                 "--backends", "scratch,tests.test_cli_cv:Contrarian"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL: agreement" in out and "below --min-agreement 0.99" in out


# ---------------------------------------------------------------- data sources
def test_cv_on_a_users_csv_with_string_labels(tmp_path, capsys):
    path = csv_file(tmp_path)
    out = tmp_path / "cv"
    assert main(["cv", "--data", str(path), "--target", "species", "--folds", "3", *FAST,
                 "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "data: flowers (150 samples, 4 features, 3 classes: setosa, versicolor, " \
           "virginica)" in stdout
    predictions = pd.read_csv(out / "predictions.csv")
    assert set(predictions["true"]) == {"setosa", "versicolor", "virginica"}
    assert set(predictions["pred_scratch"]) <= {"setosa", "versicolor", "virginica"}


def test_cv_on_an_npz_with_arbitrary_integer_labels(tmp_path, capsys):
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    path = tmp_path / "wine.npz"
    np.savez(path, X=X, y=np.array([-5, 40, 7])[y])
    assert main(["cv", "--data", str(path), "--folds", "2", *FAST, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["class_names"] == ["-5", "7", "40"]
    assert result["config"]["n_samples"] == 178 and result["config"]["dataset"] == "wine"


def test_cv_on_a_synthetic_set_of_chosen_size(capsys):
    assert main(["cv", "--dataset", "synthetic", "--n-samples", "90", "--n-features", "5",
                 "--n-classes", "4", "--folds", "3", *FAST, "--json"]) == 0
    config = json.loads(capsys.readouterr().out)["config"]
    assert (config["n_samples"], config["n_features"], config["n_classes"]) == (90, 5, 4)


def test_data_and_target_work_on_check_too(tmp_path, capsys):
    path = csv_file(tmp_path)
    assert main(["check", "--data", str(path), "--target", "species"]) == 0
    assert "data: flowers (150 samples, standardised), dims (4, 32, 3)" in capsys.readouterr().out


def test_no_stratify_accepts_a_class_smaller_than_the_folds(tmp_path, capsys):
    frame = iris_frame().iloc[:102].copy()  # versicolor 50, setosa 50, virginica 2
    path = csv_file(tmp_path, frame)
    assert main(["cv", "--data", str(path), "--folds", "3", *FAST]) == 2
    assert "class 'virginica' has 2 members, fewer than the 3 folds" in capsys.readouterr().err
    assert main(["cv", "--data", str(path), "--folds", "3", "--no-stratify", *FAST]) == 0
    assert "(KFold(n_splits=3, shuffle=True, random_state=42))" in capsys.readouterr().out


# ------------------------------------------------------------------- bad input
def _bad_csv(tmp_path, kind):
    frame = iris_frame()
    if kind == "nan":
        frame["sepal_width"] = frame["sepal_width"].astype(object)
        frame.loc[6, "sepal_width"] = None
    elif kind == "inf":
        frame.loc[9, "petal_length"] = np.inf
    elif kind == "text":
        frame["sepal_length"] = frame["sepal_length"].astype(str)
        frame.loc[3, "sepal_length"] = "5,1"
    elif kind == "single":
        frame["species"] = "setosa"
    elif kind == "rare":
        frame = frame.iloc[:104]  # virginica has 4 members, fewer than 5 folds
    path = tmp_path / "bad.csv"
    if kind == "empty":
        path.write_text("")
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("kind, extra, message", [
    ("ok", ["--target", "label"], "bad.csv: no target column 'label'; the columns are "
                                  "'sepal_length', 'sepal_width'"),
    ("nan", [], "bad.csv: missing value (NaN) in data row 7, column 'sepal_width'"),
    ("inf", [], "bad.csv: infinite value 'inf' in data row 10, column 'petal_length'"),
    ("text", [], "bad.csv: non-numeric value '5,1' in data row 4, column 'sepal_length'"),
    ("rare", [], "class 'virginica' has 4 members, fewer than the 5 folds of stratified "
                 "splitting"),
    ("ok", ["--folds", "1"], "`--folds` must be between 2 and 150 (the number of samples), got 1"),
    ("ok", ["--folds", "151"], "`--folds` must be between 2 and 150 (the number of samples), "
                               "got 151"),
    ("empty", [], "is empty"),
    ("single", [], "bad.csv (target column 'species') has a single class ('setosa')"),
    ("ok", ["--dataset", "iris"], "give either --data FILE or --dataset NAME, not both"),
    ("ok", ["--n-samples", "50"], "`--n-samples` sizes --dataset synthetic; it does not apply "
                                  "to --data"),
    ("ok", ["--min-agreement", "1.5"], "`--min-agreement` must be between 0 and 1, got 1.5"),
    ("ok", ["--epochs", "0"], "`--epochs` must be >= 1, got 0"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, kind, extra, message):
    path = _bad_csv(tmp_path, kind)
    out = tmp_path / "cv"
    code = main(["cv", "--data", str(path), *FAST, "--out", str(out), *extra])
    _, err = capsys.readouterr()
    assert code == 2
    assert message in err and err.startswith("nn-harness cv: error: ")
    assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


@pytest.mark.parametrize("args, message", [
    (["--target", "species"], "`--target` names the label column of a --data CSV file"),
    (["--n-classes", "4"], "`--n-classes` sizes --dataset synthetic; it does not apply to "
                           "--dataset digits"),
])
def test_flags_that_need_another(tmp_path, capsys, args, message):
    assert main(["cv", *FAST, "--out", str(tmp_path / "cv"), *args]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_existing_out_is_refused_before_training_and_left_alone(tmp_path, capsys, monkeypatch):
    import harness.training.cv

    out = tmp_path / "cv"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    monkeypatch.setattr(harness.training.cv, "cross_validate",
                        lambda *a, **k: pytest.fail("trained before checking --out"))
    assert main(["cv", "--dataset", "iris", *FAST, "--out", str(out)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_real_entry_point_exit_codes_and_quiet_stderr():
    def run_cli(*args):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run([sys.executable, "-m", "harness", "cv", *args], capture_output=True,
                              text=True, timeout=180, env=env, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    code, out, err = run_cli("--dataset", "iris", "--folds", "2", "--epochs", "1")
    assert code == 0 and err == "" and "2-fold cross-validation" in out
    code, out, err = run_cli("--dataset", "iris", "--folds", "0")
    assert code == 2 and out == ""
    assert err == "nn-harness cv: error: `--folds` must be between 2 and 150 (the number of " \
                  "samples), got 0\n"

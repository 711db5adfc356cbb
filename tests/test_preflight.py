"""The contract preflight: each broken rule named in one line, before anything is compared."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.checks import CheckConfig, preflight
from harness.cli import main
from harness.model.contract import violation
from harness.data.datasets import load_dataset
from harness.errors import ConfigError, ProtocolError
from harness.model.specs import ModelSpec, OptimizerSpec

M = "tests.contract_models"
IRIS = ["--dataset", "iris", "--dims", "4,8,3"]


@pytest.fixture(scope="module")
def iris():
    return load_dataset("iris")


def _preflight(cls: str, iris, dtype: str = "float64"):
    config = CheckConfig(("torch", f"{M}:{cls}"), ModelSpec((4, 8, 3), dtype=dtype),
                         OptimizerSpec("sgd", lr=0.01, weight_decay=0.0))
    return preflight(config, iris)


@pytest.mark.parametrize("cls, method, words", [
    ("OneDLogits", "forward", "returned an array of shape (3,); expected (N, C) = (5, 3): "
                              "logits for each sample"),
    ("NoneLoss", "loss_and_grads", "returned None; expected a pair (loss, grads)"),
    ("ListGrads", "loss_and_grads", "returned a list of 4 items as its gradients; expected a "
                                    "dict of one array per parameter"),
    ("MissingGrad", "loss_and_grads", "returned no gradient for W0"),
    ("VectorLoss", "loss_and_grads", "as the loss; expected one number"),
    ("AliasingParams", "get_params", "returned the model's own arrays, not copies"),
    ("AliasingSetParams", "set_params", "kept the arrays it was given, not copies"),
    ("LossAfterStep", "train_step", "returned the loss after its update"),
])
def test_each_broken_rule_is_one_fail_finding_in_plain_words(iris, cls, method, words):
    result = _preflight(cls, iris)
    assert result.status == "FAIL" and not result.passed
    assert len(result.findings) == 1
    f = result.findings[0]
    assert f.method == method and f.to_dict()["kind"] == "contract"
    line = str(f)
    assert line.startswith(f"contract: {M}:{cls}.{method} ") and words in line
    assert f.where.startswith("contract_models.py:") and f.source.startswith("def ")


def test_a_float64_only_class_asked_for_float32_is_bad_input(iris):
    assert _preflight("Float64Only", iris).passed  # in float64 it keeps the contract
    with pytest.raises(ConfigError, match=r"`tests.contract_models:Float64Only` computes in "
                                          r"float64 when float32 was asked .*does not support "
                                          r"--dtype float32"):
        _preflight("Float64Only", iris, "float32")


def test_float64_logits_from_a_float32_model_is_a_finding(iris):
    result = _preflight("Float64Logits", iris, "float32")
    assert [str(f).split(" (see")[0] for f in result.findings] == [
        f"contract: {M}:Float64Logits.forward returned float64 logits for a float32 model"]


def test_a_class_that_keeps_the_contract_passes_and_built_ins_are_trusted(iris):
    ok = _preflight("RaisesOnFullBatch", iris)  # fine on the preflight's 5 rows
    assert ok.passed and ok.settings["checked"] == [f"{M}:RaisesOnFullBatch"]
    builtin = preflight(CheckConfig(("torch", "scratch"), ModelSpec((4, 8, 3)),
                                    OptimizerSpec("sgd", lr=0.01, weight_decay=0.0)), iris)
    assert builtin.passed and builtin.settings["checked"] == []
    assert "trusted" in builtin.summary


def test_the_preflight_uses_fresh_models_and_is_cheap(iris):
    import time

    config = CheckConfig(("scratch", "tests.user_models:WrappedScratch"), ModelSpec((4, 8, 3)),
                         OptimizerSpec("sgd", lr=0.01, weight_decay=0.0))
    preflight(config, iris)
    t0 = time.perf_counter()
    assert preflight(config, iris).passed
    assert time.perf_counter() - t0 < 0.5


def test_a_class_that_cannot_be_built_is_still_a_protocol_error(iris):
    config = CheckConfig(("torch", "tests.user_models:NotAClassifier"), ModelSpec((4, 8, 3)),
                         OptimizerSpec("sgd", lr=0.01, weight_decay=0.0))
    with pytest.raises(ProtocolError):
        preflight(config, iris)


def test_violation_words_for_plain_values():
    x = np.zeros((150, 4))
    assert violation("forward", np.zeros(10), x=x, dims=(4, 3)) == (
        "forward returned an array of shape (10,); expected (N, C) = (150, 3): logits for "
        "each sample")
    assert "returned None" in violation("forward", None, x=x, dims=(4, 3))
    assert violation("train_step", None).startswith("train_step returned None as the loss")
    assert violation("get_params", [1, 2]).startswith("get_params returned a list of 2 items")
    assert violation("forward", np.zeros((150, 3)), x=x, dims=(4, 3)) is None


# ------------------------------------------------------------------ through the CLI
@pytest.mark.parametrize("command", ["check", "gradcheck", "train", "cv"])
def test_every_command_stops_at_a_broken_contract_with_valid_json(command, capsys):
    backends = (["--backend", f"{M}:OneDLogits"] if command == "gradcheck"
                else ["--backends", f"torch,{M}:OneDLogits"])
    extra = {"train": ["--epochs", "1"], "cv": ["--epochs", "1", "--folds", "2"]}
    code = main([command, *backends, *IRIS, *extra.get(command, []), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["check"] == "preflight" and out["passed"] is False
    assert out["findings"][0]["method"] == "forward"
    assert "expected (N, C) = (5, 3)" in out["findings"][0]["message"]


@pytest.mark.parametrize("cls", ["NoneLoss", "ListGrads", "AliasingParams", "LossAfterStep"])
def test_check_prints_the_contract_line_and_exits_1(cls, capsys):
    code = main(["check", "--backends", f"torch,{M}:{cls}", *IRIS])
    out = capsys.readouterr().out
    assert code == 1
    assert f"FAIL: contract: {M}:{cls}." in out
    assert "Traceback" not in out


@pytest.mark.parametrize("command", ["check", "train", "gradcheck", "export", "report"])
def test_a_float64_only_class_is_refused_for_float32_with_exit_2(command, capsys, tmp_path):
    name = f"{M}:Float64Only"
    args = {
        "check": ["check", "--backends", f"torch,{name}", *IRIS],
        "train": ["train", "--backends", f"torch,{name}", *IRIS, "--epochs", "1"],
        "gradcheck": ["gradcheck", "--backend", name, *IRIS],
        "export": ["export", "--backend", name, "--dims", "4,8,3",
                   "--out", str(tmp_path / "w.npz")],
        "report": ["report", "--backends", f"torch,{name}", *IRIS, "--out",
                   str(tmp_path / "r")],
    }[command]
    code = main([*args, "--dtype", "float32", "--json"])
    captured = capsys.readouterr()
    assert code == 2
    assert f"`{name}` computes in float64 when float32 was asked" in captured.err
    assert "does not support --dtype float32" in captured.err
    assert captured.out == ""
    assert not (tmp_path / "w.npz").exists() and not (tmp_path / "r").exists()


def test_export_stops_at_a_broken_contract_and_writes_nothing(capsys, tmp_path):
    out = tmp_path / "w.npz"
    code = main(["export", "--backend", f"{M}:AliasingParams", "--dims", "4,8,3",
                 "--out", str(out), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and not out.exists()
    assert doc["findings"][0]["method"] == "get_params"


def test_export_takes_the_optimizer_flags(capsys, tmp_path):
    out = tmp_path / "w.npz"
    code = main(["export", "--backend", "tests.user_models:WrappedScratch", "--dims", "4,8,3",
                 "--optimizer", "sgd", "--lr", "0.1", "--weight-decay", "0",
                 "--loss-reduction", "sum", "--out", str(out), "--json"])
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["dims"] == [4, 8, 3] and out.exists()

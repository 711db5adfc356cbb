"""Failures of the code under test are findings: everything compared is kept and shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.compare.equivalence import check_equivalence
from harness.errors import BackendRaised, ConfigError
from harness.model.specs import ModelSpec, OptimizerSpec

M = "tests.contract_models"
IRIS = ["--dataset", "iris", "--dims", "4,8,3"]
ROOT = Path(__file__).resolve().parent.parent


def test_check_equivalence_keeps_the_rows_compared_before_the_candidate_raised():
    from harness.checks.guard import Guarded
    from harness.model.registry import make_backend

    spec, opt = ModelSpec((4, 8, 3)), OptimizerSpec("sgd", lr=0.01, weight_decay=0.0)
    ref = make_backend("scratch", spec, opt)
    cand = Guarded(make_backend(f"{M}:RaisesOnFullBatch", spec, opt), f"{M}:RaisesOnFullBatch")
    x = np.random.default_rng(0).standard_normal((20, 4))
    y = np.arange(20) % 3
    report = check_equivalence(ref, cand, x, y)
    assert isinstance(report.raised, BackendRaised) and report.raised.method == "train_step"
    assert not report.passed and len(report.rows) == 10  # params, logits, loss, gradients
    assert all(r.passed for r in report.rows)
    d = report.to_dict()
    assert d["passed"] is False and d["raised"]["error_type"] == "RuntimeError"
    assert "train_step raised RuntimeError" in str(report) and "after 10 quantities" in str(report)


def test_check_shows_the_rows_and_the_finding_with_valid_json(capsys):
    code = main(["check", "--backends", f"torch,{M}:RaisesOnFullBatch", *IRIS, "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["status"] == "FAIL"
    assert len(doc["rows"]) == 10 and doc["raised"]["method"] == "train_step"
    (finding,) = doc["findings"]
    assert finding["error_type"] == "RuntimeError"
    assert finding["where"].startswith("contract_models.py:")


@pytest.mark.parametrize("command", ["train", "cv"])
def test_training_commands_turn_a_raise_into_a_finding(command, capsys, tmp_path):
    extra = ["--epochs", "1", "--batch-size", "32"]
    if command == "cv":
        extra += ["--folds", "2"]
    code = main([command, "--backends", f"torch,{M}:RaisesOnFullBatch", *IRIS, *extra,
                 "--json"])
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert code == 1 and doc["passed"] is False
    assert any(f["method"] == "train_step" for f in doc["findings"])


def test_a_raise_no_check_caught_is_a_finding_not_a_traceback(capsys, monkeypatch):
    import harness.cli.check as check_cmd

    def boom(config, data):
        raise BackendRaised("mine:Net", "forward", ValueError("bad shape"))

    monkeypatch.setattr("harness.checks.run_equivalence", boom)
    code = main(["check", "--dataset", "iris", "--json"])
    captured = capsys.readouterr()
    assert code == 1 and check_cmd is not None
    doc = json.loads(captured.out)
    assert doc["passed"] is False and doc["findings"][0]["error_type"] == "ValueError"
    assert "FAIL: the code under test raised: mine:Net.forward raised ValueError" in captured.err


def test_report_skips_the_drift_run_of_a_float64_only_class(capsys, tmp_path):
    out = tmp_path / "r"
    code = main(["report", "--backends", f"torch,{M}:Float64Only", *IRIS, "--epochs", "1",
                 "--folds", "2", "--samples", "10", "--max-entries", "5", "--no-bench",
                 "--quiet", "--out", str(out), "--json"])
    assert code == 0, capsys.readouterr().err
    doc = json.loads((out / "results.json").read_text())
    drift = next(v for v in doc["verdicts"] if v["key"] == "drift")
    assert drift["verdict"] == "SKIPPED"
    assert "computes in float64 when float32 was asked" in drift["summary"]


def test_the_worked_example_passes_as_the_docs_write_it():
    readme = (ROOT / "docs" / "protocol.md").read_text()
    command = ("nn-harness check --backends torch,mynet_sgd:MyMLP --dataset iris "
               "--optimizer sgd --lr 0.1 --weight-decay 0")
    assert f"cd examples && {command}" in readme
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "harness", *command.split()[1:]],
                          cwd=ROOT / "examples", capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS: all 28 quantities agree" in proc.stdout


def test_sweep_grid_takes_the_conventions_and_keeps_default_keys():
    from harness.sweep.plan import plan_from_dict
    from harness.sweep.task import _specs

    base = {"sweep": {"checks": ["equivalence"]},
            "grid": {"dataset": ["iris"], "optimizer": ["sgd"]}}
    plain = plan_from_dict(base)
    same = plan_from_dict({**base, "grid": {**base["grid"], "loss_reduction": ["mean"],
                                            "weight_decay_in": ["optimizer"],
                                            "weight_decay_on": ["all"]}})
    assert plain.hashes == same.hashes  # defaults keep the keys of older results folders
    plan = plan_from_dict({**base, "grid": {**base["grid"], "loss_reduction": ["mean", "sum"],
                                            "weight_decay_in": ["optimizer", "loss"],
                                            "weight_decay_on": ["weights"]}})
    assert len(plan) == 4 and len(set(plan.hashes)) == 4
    config = next(c for c in plan.configs if c["loss_reduction"] == "sum"
                  and c["weight_decay_in"] == "loss")
    spec, opt = _specs(config)
    assert spec.loss_reduction == "sum"
    assert (opt.weight_decay_in, opt.weight_decay_on) == ("loss", "weights")
    with pytest.raises(ConfigError, match="grid.loss_reduction"):
        plan_from_dict({**base, "grid": {**base["grid"], "loss_reduction": ["avg"]}})
    with pytest.raises(ConfigError, match="adamw"):
        plan_from_dict({**base, "grid": {"dataset": ["iris"], "optimizer": ["adamw"],
                                         "weight_decay_in": ["loss"]}})


def test_bench_takes_the_conventions_from_a_file_and_flags(tmp_path):
    import argparse

    from harness.bench.config import load_config_file
    from harness.cli import build_parser
    from harness.cli.bench import build_config

    path = tmp_path / "b.toml"
    path.write_text('loss_reduction = "sum"\nweight_decay_in = "loss"\n'
                    'weight_decay_on = "weights"\n')
    assert load_config_file(path) == {"loss_reduction": "sum", "weight_decay_in": "loss",
                                      "weight_decay_on": "weights"}
    args = build_parser().parse_args(["bench", "--config", str(path), "--quick",
                                      "--weight-decay-on", "all"])
    assert isinstance(args, argparse.Namespace)
    config = build_config(args)
    assert config.loss_reduction == "sum"
    assert (config.optimizer_spec().weight_decay_in,
            config.optimizer_spec().weight_decay_on) == ("loss", "all")

"""The checks layer: one configuration in, typed results out, the same in every form."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from harness.checks import (
    CHECKS, FAIL, PASS, CheckConfig, columns, preflight, run_check, run_checks, worst_status,
)
from harness.data.datasets import load_dataset
from harness.errors import ConfigError, ProtocolError
from harness.model.specs import ModelSpec, OptimizerSpec


@pytest.fixture(scope="module")
def iris():
    return load_dataset("iris")


def _config(**kw):
    base = dict(backends=("scratch", "torch"), spec=ModelSpec((4, 8, 3), activation="tanh"),
                optimizer=OptimizerSpec("adam", lr=1e-3, weight_decay=1e-4), epochs=2, folds=3,
                check_samples=40, gradcheck_max_entries=10)
    base.update(kw)
    return CheckConfig(**base)


class RaisesInForward:
    """A user-style network whose forward uses Python's max where np.maximum was meant."""

    def __init__(self, spec, optimizer):
        from scratch import MLP

        self._mlp = MLP(spec.dims, spec.activation, spec.dtype, spec.seed)
        self.dims = spec.dims

    def forward(self, x):
        z = x @ self._mlp.get_params()["W0"]
        return max(z, 0)  # the bug: a reduction, not an elementwise maximum

    def loss_and_grads(self, x, y):
        return self._mlp.loss_and_grads(x, y)

    def get_params(self):
        return self._mlp.get_params()

    def set_params(self, params):
        self._mlp.set_params(params)

    def train_step(self, x, y):
        return self._mlp.train_step(x, y)


def test_every_check_runs_and_every_form_agrees(iris, one_torch_thread):
    run = run_checks(_config(), iris, CHECKS[:-1])
    assert [r.check for r in run.results] == ["equivalence", "gradcheck", "training", "drift",
                                              "cv"]
    assert run.passed and run.exit_code == 0 and run.status == PASS
    row = run.row()
    # the flat row holds exactly the declared columns, and real values
    assert set(row) == set(columns([r.check for r in run.results]))
    assert row["equivalence_quantities"] == 28 and row["equivalence_passed"] is True
    assert row["gradcheck_checked"] > 0 and row["cv_agreement"] == 1.0
    assert row["training_steps"] == 2 * math.ceil(150 / 64)
    # one dict form, valid JSON, carrying the underlying report and the verdicts
    doc = json.loads(json.dumps(run.to_dict()))
    assert doc["results"]["equivalence"]["rows"][0]["quantity"] == "params['W0']"
    assert doc["results"]["gradcheck"]["verdicts"][1]["name"] == "gradcheck:torch"
    assert doc["results"]["equivalence"]["fields"] == json.loads(json.dumps(
        run["equivalence"].row()))
    table = run.table()
    assert list(table["name"]) == ["equivalence", "gradcheck:scratch", "gradcheck:torch",
                                   "training", "drift", "cv"]
    text = run["equivalence"].text()
    assert text.startswith("model: dims 4-8-3, tanh, float64, seed 0; loss: mean over the batch")
    assert "optimizer: adam (lr 0.001" in text and "28 of 28 quantities agree" in text


def test_drift_only_for_float64_and_bench_only_when_configured(iris):
    config = _config(spec=ModelSpec((4, 8, 3), dtype="float32"))
    assert run_check("drift", config, iris) is None
    assert run_check("bench", config, iris) is None
    run = run_checks(config, iris, ["drift", "bench"])
    assert run.results == [] and run.passed


def test_a_mismatch_fails_with_the_quantity_in_every_form(iris):
    config = _config(backends=("torch", "tests.test_equivalence:BiasGradAveragedPlugin"))
    result = run_check("equivalence", config, iris)
    assert result.status == FAIL and not result.passed
    assert result.row()["equivalence_first_failure"] == "grads['b0']"
    assert "first: grads['b0']" in result.summary
    assert result.to_dict()["first_failure"] == "grads['b0']"


def test_a_backend_that_raises_is_a_finding_with_the_users_line(iris):
    config = _config(backends=("torch", "tests.test_checks:RaisesInForward"))
    result = run_check("equivalence", config, iris)
    assert result.status == FAIL
    (finding,) = result.findings
    assert finding.method == "forward" and finding.backend.endswith("RaisesInForward")
    assert finding.where.startswith("test_checks.py:") and "max(z, 0)" in finding.source
    assert "raised ValueError" in result.text() and "max(z, 0)" in result.text()
    assert result.row()["equivalence_findings"].startswith(
        "tests.test_checks:RaisesInForward.forward raised ValueError")
    json.dumps(result.to_dict())


def test_configuration_is_validated_up_front(iris):
    with pytest.raises(ConfigError, match="unknown backend 'jax'"):
        _config(backends=("scratch", "jax"))
    with pytest.raises(ConfigError, match="give both `rtol` and `atol`"):
        _config(rtol=1e-3)
    with pytest.raises(ConfigError, match="`val_fraction` must be in"):
        _config(val_fraction=1.5)
    with pytest.raises(ConfigError, match=r"`checks` must be among equivalence"):
        run_checks(_config(), iris, ["equivalence", "speed"])
    with pytest.raises(ConfigError, match="exactly two names"):
        run_check("equivalence", _config(backends=("scratch",)), iris)
    with pytest.raises(ProtocolError, match="does not implement the Classifier protocol"):
        preflight(_config(backends=("scratch", "tests.user_models:NotAClassifier")))


def test_statuses_order_and_the_same_seed_gives_the_same_row(iris):
    assert worst_status(["PASS", "INFO", "WARN"]) == "WARN"
    assert worst_status(["PASS", "NOT CHECKED"]) == "NOT CHECKED"
    assert worst_status(["NOT CHECKED", "FAIL", "PASS"]) == "FAIL"
    a = run_check("training", _config(), iris).row()
    b = run_check("training", _config(), iris).row()
    a.pop("t_training_s"), b.pop("t_training_s")
    assert a == b


def test_subsets_are_seeded_and_standardised(iris):
    from harness.checks.run import check_rows, training_rows

    x1, y1 = check_rows(_config(check_samples=30), iris)
    x2, y2 = check_rows(_config(check_samples=30), iris)
    assert x1.shape == (30, 4) and np.array_equal(x1, x2) and np.array_equal(y1, y2)
    X_all, _ = check_rows(_config(check_samples=None), iris)
    assert np.allclose(X_all.mean(axis=0), 0) and np.allclose(X_all.std(axis=0), 1)
    X_tr, y_tr, X_va, y_va, split = training_rows(_config(val_fraction=0.2), iris)
    assert split["n_train"] + split["n_val"] == 150 and split["n_val"] == 30
    assert np.allclose(X_tr.mean(axis=0), 0)  # the training part's own statistics

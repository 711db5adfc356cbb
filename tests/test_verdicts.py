"""Verdicts that are right both ways: exact post-step excusal, the float64 arbiter,
NOT CHECKED gradient checks, scalar losses, relative errors, and counts in every report."""

from __future__ import annotations

from tests.amplifying import AMPLIFYING_CONFIG

import json
from dataclasses import replace

import numpy as np
import pytest

from harness import ModelSpec, OptimizerSpec, check_equivalence, make_backend
from harness.compare.closeness import compare
from harness.gradients.finite_diff import gradcheck
from harness.training.side_by_side import compare_training
from scratch import MLP
from scratch.optimizers import make_optimizer
from tests.broken_backends import HookedMLP, WrongTanhGrad
from tests.broken_optimizers import (AdamDecayingLikeAdamW, AdamIgnoringWeightDecay,
                                     AdamWRunAsAdam, LazyAdam)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits64():
    """64 rows of standardised digits: constant pixels give exactly zero W0 gradients."""
    from harness.data.datasets import load_dataset, standardize

    data = load_dataset("digits")
    (X,) = standardize(data.X)
    return X[:64], data.y[:64]


def spec_for(x, y, dtype, activation="relu", seed=0, hidden=(32,)):
    return ModelSpec((x.shape[1], *hidden, int(y.max()) + 1), activation=activation,
                     dtype=dtype, seed=seed)


# ------------------------------------------------------- 1. exact post-step excusal
@pytest.mark.parametrize("cls, dtype, name", [
    (LazyAdam, "float64", "adam"),
    (AdamIgnoringWeightDecay, "float32", "adam"),
    (AdamDecayingLikeAdamW, "float32", "adam"),
    (AdamWRunAsAdam, "float32", "adamw"),
], ids=lambda v: getattr(v, "__name__", v))
def test_wrong_optimizer_steps_fail(cls, dtype, name, digits64):
    x, y = digits64
    spec = spec_for(x, y, dtype)
    opt = OptimizerSpec(name, lr=1e-3, weight_decay=1e-4)
    report = check_equivalence(make_backend("torch", spec, opt), cls(spec, opt), x, y)
    assert not report.passed, str(report)
    assert report.first_failure.quantity.startswith("params after step")
    # the gradients agree: only the step is wrong
    assert all(r.passed for r in report.rows if r.quantity.startswith("grads"))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_correct_optimizers_still_pass_on_digits(name, dtype, digits64):
    x, y = digits64
    spec = spec_for(x, y, dtype, hidden=(32, 16))
    opt = OptimizerSpec(name, lr=1e-2, weight_decay=1e-2)
    report = check_equivalence(make_backend("scratch", spec, opt),
                               make_backend("torch", spec, opt), x, y)
    assert report.passed, str(report)
    assert report.heavily_excused == []


def test_excused_entries_are_counted_everywhere():
    """One gradient entry is noise (4e-8) in the candidate, exactly 0 in the reference."""
    spec = ModelSpec((3, 2), dtype="float32")
    opt = OptimizerSpec("adam", lr=1e-2, weight_decay=0.0)
    x = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    y = np.array([0, 1])

    class Noisy(MLP):
        def loss_and_grads(self, x, y):
            loss, grads = super().loss_and_grads(x, y)
            grads["W0"][1, 0] = 4e-8
            return loss, grads

        def train_step(self, x, y):
            loss, grads = self.loss_and_grads(x, y)
            self.optimizer.step(self.params, grads)
            return loss

    cand = Noisy(spec.dims, dtype="float32", optimizer=make_optimizer(**opt.to_dict()))
    report = check_equivalence(make_backend("torch", spec, opt), cand, x, y)
    assert report.passed, str(report)
    row = report.table.set_index("quantity").loc["params after step['W0']"]
    assert row["n_excused"] == 1 and report.n_excused == 1
    out = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert out["n_excused"] == 1
    # 1 of 6 entries is more than 1%: the verdict says so
    assert out["heavily_excused"] == ["params after step['W0']"]
    assert any("warning: more than 1%" in n for n in report.notes)
    assert str(report).endswith("9 of 9 quantities agree, 30 entries compared, 1 excused")


def test_identical_zero_gradients_are_never_excused():
    """Both gradients exactly 0: a candidate that still moves the entry by lr fails."""
    spec = ModelSpec((3, 2), dtype="float32")
    opt = OptimizerSpec("adam", lr=1e-2, weight_decay=0.0)
    x = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    y = np.array([0, 1])

    class Jumpy(MLP):
        def train_step(self, x, y):
            loss = super().train_step(x, y)
            self.params["W0"][1, 0] -= 1e-2  # a step where the gradient is exactly 0
            return loss

    cand = Jumpy(spec.dims, dtype="float32", optimizer=make_optimizer(**opt.to_dict()))
    report = check_equivalence(make_backend("torch", spec, opt), cand, x, y)
    assert not report.passed
    assert report.n_excused == 0


# ----------------------------------------------------------------- 2. the arbiter
def arbiter_for(kind, spec, opt):
    return make_backend(kind, replace(spec, dtype="float64"), opt)


@pytest.mark.parametrize("activation, name", [("relu", "sgd"), ("tanh", "adam"),
                                              ("gelu", "adamw")])
@pytest.mark.parametrize("data", ["digits", "iris"])
def test_arbiter_passes_correct_float32_code(activation, name, data, digits64):
    from harness.data.datasets import load_dataset, standardize

    if data == "digits":
        x, y = digits64
    else:
        d = load_dataset("iris")
        (x,) = standardize(d.X)
        y = d.y
    spec = spec_for(x, y, "float32", activation, hidden=(16, 8))
    opt = OptimizerSpec(name, lr=1e-2, weight_decay=1e-3)
    report = check_equivalence(make_backend("scratch", spec, opt),
                               make_backend("torch", spec, opt), x, y,
                               arbiter=arbiter_for("scratch", spec, opt))
    assert report.passed, str(report)
    assert report.arbiter
    # every row, the parameters after the step included (the arbiter's rule for steps)
    assert {r.rule for r in report.rows} == {"arbiter"}


class OneEntryTimes15(HookedMLP):
    """One W0 gradient entry (``index``) scaled by 1.5; everything else correct."""

    index = (0, 0)

    def finish(self, grads, n):
        grads["W0"][self.index] *= 1.5
        return grads


def test_arbiter_catches_a_small_gradient_error_the_tolerances_miss(digits64):
    x, y = digits64
    spec = spec_for(x, y, "float32", "tanh")
    opt = OptimizerSpec("sgd", lr=0.05, weight_decay=0.0)
    ref = make_backend("scratch", spec, opt)
    g = np.abs(ref.loss_and_grads(x.astype(np.float32), y)[1]["W0"].astype(np.float64))
    # an entry whose 50% error (|g| / 2) is below float32's atol of 1e-5
    g[g < 1e-7] = np.inf
    index = np.unravel_index(int(np.argmin(np.abs(g - 4e-6))), g.shape)
    assert 1e-7 < g[index] < 1e-5

    def run(arbiter):
        bug = OneEntryTimes15(spec, opt)
        bug.index = index
        return check_equivalence(make_backend("scratch", spec, opt), bug, x, y,
                                 arbiter=arbiter_for("scratch", spec, opt) if arbiter else None)

    assert run(False).passed
    report = run(True)
    assert not report.passed and report.first_failure.quantity == "grads['W0']"
    assert report.first_failure.rule == "arbiter" and "arbiter" in report.first_failure.message


def test_arbiter_is_refused_when_not_float64(digits64):
    from harness.errors import ConfigError

    x, y = digits64
    spec = spec_for(x, y, "float32")
    with pytest.raises(ConfigError, match="float64"):
        check_equivalence(make_backend("scratch", spec), make_backend("torch", spec), x, y,
                          arbiter=make_backend("scratch", spec))


def test_trajectory_arbiter_replaces_the_growth_factor(digits64):
    x, y = digits64
    spec = spec_for(x, y, "float32", "tanh")
    opt = OptimizerSpec("adam", lr=1e-2, weight_decay=1e-4)
    report = compare_training(make_backend("scratch", spec, opt),
                              make_backend("torch", spec, opt), x, y, epochs=3,
                              batch_size=16, arbiter=arbiter_for("scratch", spec, opt))
    assert report.passed, str(report)
    assert report.rule == "arbiter" and report.growth_steps is None
    h = report.history
    assert {"ref_loss_drift", "cand_loss_drift", "ref_param_drift"} <= set(h["quantity"])
    assert report.n_loss_steps == 12 and report.n_param_checks == 3
    assert str(report).endswith(f"15 quantities (12 step losses, 3 epoch-end parameter sets), "
                                f"{12 + 3 * report.n_param_entries:,} entries compared, "
                                f"0 excused")
    out = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert out["rule"] == "arbiter" and out["n_entries"] == report.n_entries
    wrong = compare_training(make_backend("scratch", spec, opt),
                             AdamDecayingLikeAdamW(spec, opt), x, y, epochs=3, batch_size=16,
                             arbiter=arbiter_for("scratch", spec, opt))
    assert not wrong.passed
    # without an arbiter, today's tolerances
    plain = compare_training(make_backend("scratch", spec, opt),
                             make_backend("torch", spec, opt), x, y, epochs=1, batch_size=16)
    assert plain.rule == "tolerance" and plain.growth_steps == 1000 and plain.passed


def test_witnesses_start_one_unit_away_and_reorder_rows():
    from harness.training.witness import Witness

    spec = ModelSpec((3, 4, 2), dtype="float32", seed=1)
    ref = make_backend("torch", spec, OptimizerSpec("sgd", lr=0.1, weight_decay=0.0))
    seen = []

    class Spy:
        dims, dtype = spec.dims, spec.dtype

        def __init__(self):
            self.inner = make_backend("torch", spec, OptimizerSpec("sgd", lr=0.1, weight_decay=0.0))

        def set_params(self, p):
            self.inner.set_params(p)

        def get_params(self):
            return self.inner.get_params()

        def train_step(self, x, y):
            seen.append(y.copy())
            return self.inner.train_step(x, y)

    w = Witness(Spy(), seed=0)
    w.start(ref.get_params())
    for key, value in ref.get_params().items():
        moved = w.get_params()[key]
        assert moved.dtype == np.float32
        # every entry exactly one float32 unit away, in both directions somewhere
        ulps = (moved.view(np.int32).astype(np.int64) - value.view(np.int32).astype(np.int64))
        assert set(np.abs(ulps).ravel()) == {1}, key
    y = np.arange(8) % 2
    x = np.arange(24, dtype=np.float32).reshape(8, 3)
    w.train_step(x, y)
    assert sorted(seen[0]) == sorted(y) and not np.array_equal(seen[0], y)


def test_a_follower_that_blows_up_does_not_stop_training(digits64):
    from harness.training.side_by_side import train_side_by_side

    x, y = digits64
    spec = spec_for(x, y, "float32")
    seen = []
    blown = make_backend("torch", spec, OptimizerSpec("sgd", lr=1e6, weight_decay=0.0))
    log = train_side_by_side({"a": make_backend("torch", spec)}, x, y, epochs=2,
                             batch_size=16, followers={"b": blown},
                             on_step=lambda s, e, losses: seen.append(losses["b"]))
    assert log.error is None and log.steps_done == 8
    assert not all(np.isfinite(seen))  # the follower diverged, training went on
    assert set(log.history["backend"]) == {"a"}  # followers are not recorded


@pytest.fixture(scope="module")
def amplifying_run():
    """Calibration's configuration 233 (seed 0): SGD lr 0.29, momentum 0.89, batch 4,
    tanh through a 2-wide layer: the float32 runs part from float64 exponentially."""
    from harness.calibrate import configs as C
    from harness.calibrate.run import check_config

    cfg = dict(AMPLIFYING_CONFIG)
    data = C.dataset_of(cfg)
    spec, opt = C.specs_of(cfg, data)
    assert (spec.dims, cfg["batch_size"]) == ((64, 8, 25, 2, 10), 4)
    return check_config(("torch", "scratch"), spec, opt, batch_size=4), data


def test_an_amplifying_float32_run_warns_instead_of_a_false_alarm(amplifying_run):
    from harness.checks import run_training
    from harness.checks.run import build_arbiter, build_model, training_rows

    config, data = amplifying_run
    result = run_training(config, data)
    assert result.status == "WARN", result.text()
    assert "amplifies rounding" in result.summary and "--dtype float64 is sharper" in result.summary
    report = result.report
    assert "amplifies rounding" in str(report) and result.text().count("amplifies") == 2
    from harness.training.trajectory import WITNESSES

    assert report.witnesses == WITNESSES and report.amplified_step is not None
    assert report.to_dict()["amplified_step"] == report.amplified_step
    assert "float32 witnesses" in str(report)
    # judged by the reference alone, the same correct pair fails: one float32 run can
    # happen to stay close to float64 while another runs ahead
    X, y, *_ = training_rows(config, data)
    alone = compare_training(build_model(config, "torch"), build_model(config, "scratch"),
                             X, y, epochs=config.epochs, batch_size=4, seed=config.spec.seed,
                             arbiter=build_arbiter(config, "torch", "float32")[0])
    assert not alone.passed and alone.witnesses == 0


def test_an_amplifying_float64_run_warns_instead_of_a_false_alarm(amplifying_run):
    """float64 has no arbiter: the witnesses' distance from the reference widens the
    tolerance on a run that amplifies rounding, and the verdict says so."""
    from dataclasses import replace as dc_replace

    from harness.checks import run_training
    from harness.checks.run import build_model, training_rows

    config, data = amplifying_run
    config = dc_replace(config, spec=dc_replace(config.spec, dtype="float64"),
                        train_samples=None, epochs=1)
    result = run_training(config, data)
    assert result.status == "WARN", result.text()
    report = result.report
    from harness.training.trajectory import WITNESSES

    assert report.rule == "tolerance" and report.witnesses == WITNESSES
    assert report.amplified_step is not None and "larger batches" in result.summary
    assert "witnesses from" in str(report)
    # the tolerance alone calls this correct pair different
    X, y, *_ = training_rows(config, data)
    alone = compare_training(build_model(config, "torch"), build_model(config, "scratch"),
                             X, y, epochs=1, batch_size=4, seed=config.spec.seed)
    assert not alone.passed and alone.witnesses == 0


def test_cv_on_an_amplifying_workload_warns_and_a_stable_one_still_fails_a_bug(
        amplifying_run):
    from dataclasses import replace as dc_replace

    from harness.checks import run_cv

    config, data = amplifying_run
    config = dc_replace(config, spec=dc_replace(config.spec, dtype="float64"), folds=2,
                        epochs=2, min_agreement=0.99)
    result = run_cv(config, data)
    assert result.status == "WARN", result.summary
    assert result.fields["cv_witness_agreement"] < 0.99
    assert "correct runs disagree as much" in result.summary
    # a stable workload: the witness agrees fully, and a wrong gradient still fails
    stable = dc_replace(config, optimizer=OptimizerSpec("sgd", lr=0.05, weight_decay=0.0), backends=(
        "torch", "tests.test_equivalence:BiasGradAveragedPlugin"), batch_size=64)
    failed = run_cv(stable, data)
    assert failed.fields["cv_witness_agreement"] == 1.0
    assert failed.status == "FAIL", failed.summary


def test_the_report_drift_stage_warns_on_an_amplifying_run(amplifying_run):
    from dataclasses import replace as dc_replace

    from harness.checks.run import run_drift

    config, data = amplifying_run
    config = dc_replace(config, spec=dc_replace(config.spec, dtype="float64"))
    result = run_drift(config, data)
    assert result.status == "WARN", result.summary
    assert "the float64 arbiter's bound" in result.summary
    assert "amplifies rounding" in result.summary


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_witnesses_leave_wrong_rules_failing(dtype, digits64):
    from harness.checks import CheckConfig, run_training
    from harness.data.datasets import Dataset

    x, y = digits64
    spec = spec_for(x, y, dtype, "tanh")
    opt = OptimizerSpec("adam", lr=1e-2, weight_decay=1e-2)
    data = Dataset("digits64", x, y, [str(k) for k in range(10)])
    for backend in ("tests.broken_optimizers:AdamDecayingLikeAdamW",
                    "tests.broken_optimizers:AdamIgnoringWeightDecay"):
        result = run_training(CheckConfig(("torch", backend), spec, opt, epochs=2,
                                          batch_size=16, val_fraction=0.0), data)
        assert result.status == "FAIL", result.text()
        assert result.report.witnesses == 4 and result.report.amplified_step is None


# ------------------------------------------------------------ 3. gradcheck verdicts
def test_a_parameter_seen_only_at_kinks_is_not_checked():
    model = make_backend("scratch", ModelSpec((1, 1, 2), activation="relu", seed=3))
    x, y = np.array([[1.0]]), np.array([1])
    params = model.get_params()
    params["b0"][0] = -params["W0"][0, 0]  # z0 = 0 exactly: every W0, b0 step crosses it
    model.set_params(params)
    report = gradcheck(model, x, y)
    assert [p.verdict for p in report.params] == ["NOT CHECKED", "NOT CHECKED", "PASS", "PASS"]
    assert report.status == "NOT CHECKED" and not report.passed
    assert report.first_failure is None
    out = report.to_dict()
    assert (out["status"], out["passed"], out["n_checked"], out["n_skipped"]) == \
        ("NOT CHECKED", False, 6, 2)
    assert str(report).endswith("2 of 4 parameters verified, 6 entries checked, 4 verified, "
                                "0 failed, 2 skipped (kinks)")


def test_smooth_activation_without_intermediates_is_never_excused_as_a_kink():
    from harness.data.datasets import load_dataset

    class NoIntermediates(WrongTanhGrad):
        intermediates = None

    d = load_dataset("digits")
    x, y = d.X[:32].astype(float), d.y[:32]  # raw pixels 0..16
    report = gradcheck(NoIntermediates(ModelSpec((64, 8, 10), activation="tanh")), x, y,
                       max_entries=20)
    assert report.kink_detection == "none needed (tanh is smooth)"
    assert report.n_skipped == 0 and report.status == "FAIL"


class Float32Inside:
    """Claims float64 (its parameters) but computes in float32; ``cast`` returns float64."""

    def __init__(self, cast_back):
        self.inner = MLP((4, 6, 3), "tanh", "float32", 0)
        self.params = {k: v.astype(np.float64) for k, v in self.inner.get_params().items()}
        self.dims = self.inner.dims
        self.cast_back = cast_back

    def _out(self, a):
        return np.asarray(a, dtype=np.float64) if self.cast_back else a

    def forward(self, x):
        self.inner.set_params(self.params)
        return self._out(self.inner.forward(np.asarray(x, np.float32)))

    def loss_and_grads(self, x, y):
        self.inner.set_params(self.params)
        loss, grads = self.inner.loss_and_grads(np.asarray(x, np.float32), y)
        return float(loss), {k: self._out(g) for k, g in grads.items()}

    def get_params(self):
        return {k: v.copy() for k, v in self.params.items()}

    def set_params(self, params):
        self.params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}

    def train_step(self, x, y):  # pragma: no cover - not used
        raise NotImplementedError


@pytest.mark.parametrize("cast_back", [False, True], ids=["float32 out", "float64 out"])
def test_arithmetic_in_another_dtype_is_reported(cast_back, batch):
    x, y = batch(n=9, d=4, c=3)
    report = gradcheck(Float32Inside(cast_back), x, y)
    assert report.status == "NOT CHECKED" and not report.passed
    assert report.n_skipped == 0
    assert "claims float64" in report.arithmetic_problem
    assert "NOT CHECKED: the model claims float64" in str(report)


# --------------------------------------------------- 4. scalars and relative errors
def test_a_float32_numpy_loss_is_accepted(digits64):
    x, y = digits64
    spec = spec_for(x, y, "float32")

    class NumpyScalarLoss(MLP):
        def loss_and_grads(self, x, y):
            loss, grads = super().loss_and_grads(x, y)
            return np.float32(loss), grads

    cand = NumpyScalarLoss(spec.dims, spec.activation, "float32", 0,
                           optimizer=make_optimizer("sgd"))
    report = check_equivalence(
        make_backend("torch", spec, OptimizerSpec("sgd", lr=0.01, weight_decay=0.0)), cand, x, y)
    assert report.table.set_index("quantity").loc["loss", "passed"], str(report)
    assert compare("loss", np.array(1.5), 1.5, rtol=0, atol=0, scalar=True).passed
    bad = compare("loss", np.array([1.5]), 1.5, rtol=0, atol=0, scalar=True)
    assert not bad.passed and "0-d float" in bad.message


def test_relative_error_is_taken_where_expected_is_not_zero():
    row = compare("q", np.array([1e-20, 2.0001]), np.array([0.0, 2.0]), rtol=1e-4, atol=1e-5)
    assert row.passed and row.n_rel_defined == 1
    assert row.max_rel_err == pytest.approx(5e-5)
    zeros = compare("q", np.array([1e-20]), np.array([0.0]), rtol=1e-4, atol=1e-5)
    assert zeros.passed and np.isnan(zeros.max_rel_err) and zeros.n_rel_defined == 0
    failing = compare("q", np.array([1.0, 3.0]), np.array([0.0, 2.0]), rtol=1e-4, atol=1e-5)
    assert "over the 1 elements whose expected value is not 0" in failing.message

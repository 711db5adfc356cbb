"""Training side by side: identical batches, trajectory verdicts, broken optimizers, plots."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.training.batches import iterate_batches
from harness.errors import ConfigError, NumericalError
from harness.model.registry import make_backend
from harness.model.specs import ModelSpec, OptimizerSpec
from harness.training.side_by_side import (
    HISTORY_COLUMNS, compare_training, evaluate, train, train_side_by_side, validate_training_args,
)
from harness.training.trajectory import DIFFERENCE, trajectory_bound
from scratch import MLP
from scratch.optimizers import SGD, Adam

DIMS = (64, 16, 10)

OPTIMIZERS = {
    "sgd": OptimizerSpec("sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": OptimizerSpec("adam", lr=3e-3, weight_decay=1e-3),
    "adamw": OptimizerSpec("adamw", lr=3e-3, weight_decay=1e-2),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small(digits):
    """320 training and 100 validation rows of digits (standardised)."""
    X, y = digits
    return X[:320], y[:320], X[1000:1100], y[1000:1100]


def pair(opt: OptimizerSpec, dtype="float64", seed=0):
    spec = ModelSpec(DIMS, "relu", dtype, seed)
    return make_backend("torch", spec, opt), make_backend("scratch", spec, opt)


def values(history, backend, quantity):
    sel = history[(history["backend"] == backend) & (history["quantity"] == quantity)]
    return sel["step"].to_numpy(), sel["value"].to_numpy()


# --------------------------------------------------------------------- batches
class Spy:
    """Any Classifier, recording the batches its train_step receives."""

    def __init__(self, model):
        self.model, self.dims, self.batches = model, model.dims, []

    def train_step(self, x, y):
        self.batches.append((np.array(x), np.array(y)))
        return self.model.train_step(x, y)

    def __getattr__(self, name):
        return getattr(self.model, name)


def indexed_data(n=50, d=4, c=3, seed=0):
    """Features whose first column is the row's index, so a batch tells its indices."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[:, 0] = np.arange(n)
    return X, rng.integers(0, c, size=n)


def test_every_backend_gets_the_same_seeded_batches_and_the_last_partial_one():
    X, y = indexed_data()
    spec = ModelSpec((4, 5, 3))
    a, b = Spy(make_backend("scratch", spec)), Spy(make_backend("torch", spec))
    log = train_side_by_side({"a": a, "b": b}, X, y, epochs=3, batch_size=16, seed=7)
    assert log.steps_done == 12 and log.epochs_done == 3
    assert len(a.batches) == len(b.batches) == 12
    seen = [xb[:, 0].astype(int) for xb, _ in a.batches]
    for (xa, ya), (xb, yb) in zip(a.batches, b.batches):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert [len(s) for s in seen] == [16, 16, 16, 2] * 3
    epochs = [np.concatenate(seen[4 * e:4 * e + 4]) for e in range(3)]
    for e, order in enumerate(epochs):
        assert sorted(order) == list(range(50))  # each sample exactly once per epoch
        np.testing.assert_array_equal(
            order, np.concatenate(list(iterate_batches(50, 16, epoch=e, seed=7))))
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch


def test_no_shuffle_keeps_the_order_and_a_seed_reproduces_the_run():
    X, y = indexed_data()
    spec = ModelSpec((4, 5, 3))
    spy = Spy(make_backend("scratch", spec))
    train(spy, X, y, epochs=2, batch_size=20, shuffle=False)
    order = np.concatenate([xb[:, 0] for xb, _ in spy.batches]).astype(int)
    np.testing.assert_array_equal(order, np.tile(np.arange(50), 2))
    runs = [train(make_backend("scratch", spec), X, y, epochs=2, batch_size=8, seed=s).history
            for s in (3, 3, 4)]
    assert runs[0].equals(runs[1])
    assert not np.array_equal(values(runs[0], "model", "loss")[1],
                              values(runs[2], "model", "loss")[1])


def test_a_batch_size_larger_than_the_data_is_clamped_with_a_warning():
    X, y = indexed_data(n=30)
    with pytest.warns(UserWarning, match="`batch_size` 500 is larger than the 30 training "
                                         "samples; using 30"):
        log = train(make_backend("scratch", ModelSpec((4, 5, 3))), X, y, epochs=4,
                     batch_size=500)
    assert log.batch_size == 30 and log.steps_done == 4


@pytest.mark.parametrize("kwargs, message", [
    (dict(epochs=0), "`epochs` must be >= 1, got 0"),
    (dict(epochs=2.5), "`epochs` must be an integer, got 2.5"),
    (dict(epochs=True), "`epochs` must be an integer, got True"),
    (dict(batch_size=0), "`batch_size` must be >= 1, got 0"),
    (dict(batch_size=-3), "`batch_size` must be >= 1, got -3"),
    (dict(seed=-1), "`seed` must be >= 0, got -1"),
    (dict(X_val=np.zeros((3, 4))), "give both `X_val` and `y_val` or neither"),
    (dict(X_val=np.zeros((3, 5)), y_val=np.zeros(3, int)),
     "validation set: `x` has 5 features but dims\\[0\\] is 4"),
])
def test_bad_training_arguments_are_refused_before_any_step(kwargs, message):
    X, y = indexed_data()
    spy = Spy(make_backend("scratch", ModelSpec((4, 5, 3))))
    args = {**dict(epochs=2, batch_size=8), **kwargs}
    with pytest.raises(ConfigError, match=message):
        train(spy, X, y, **args)
    with pytest.raises(ConfigError, match=message):
        compare_training(spy, make_backend("torch", ModelSpec((4, 5, 3))), X, y, **args)
    assert spy.batches == []


def test_comparison_needs_matching_models_and_distinct_names():
    X, y = indexed_data()
    a, b = make_backend("scratch", ModelSpec((4, 5, 3))), make_backend("torch",
                                                                        ModelSpec((4, 6, 3)))
    with pytest.raises(ConfigError, match="different dims"):
        compare_training(a, b, X, y, epochs=1, batch_size=8)
    with pytest.raises(ConfigError, match="must differ"):
        compare_training(a, a, X, y, epochs=1, batch_size=8, reference_name="x",
                         candidate_name="x")
    with pytest.raises(ConfigError, match="give both `rtol` and `atol`"):
        compare_training(a, make_backend("torch", ModelSpec((4, 5, 3))), X, y, epochs=1,
                         batch_size=8, rtol=1e-3)
    assert validate_training_args(3, 10, 50) == 10


# ------------------------------------------------------------- trajectories agree
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float64_trajectories_agree_closely_for_hundreds_of_steps(small, name):
    X, y, Xv, yv = small
    ref, cand = pair(OPTIMIZERS[name])
    report = compare_training(ref, cand, X, y, epochs=15, batch_size=16, X_val=Xv, y_val=yv,
                              reference_name="torch", candidate_name="scratch")
    assert report.passed, str(report)
    assert report.steps == 300 and report.epochs_done == 15
    assert report.max_loss_diff < 1e-12 and report.max_param_diff < 1e-12
    # they really trained: the loss fell and validation accuracy is well above chance
    _, loss = values(report.history, "scratch", "epoch_loss")
    assert loss[-1] < 0.5 * loss[0]
    assert report.final["scratch"]["val_accuracy"] > 0.6
    assert report.final["scratch"]["val_accuracy"] == report.final["torch"]["val_accuracy"]


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_float32_drift_is_measured_and_stays_within_the_float32_verdict(digits, name):
    """The default workload's shape: batch 64, lr 1e-3, weight decay 1e-4 (200 steps)."""
    X, y = digits
    ref, cand = pair(OptimizerSpec(name, lr=1e-3, weight_decay=1e-4), "float32")
    report = compare_training(ref, cand, X[:640], y[:640], epochs=20, batch_size=64,
                              X_val=X[1000:1100], y_val=y[1000:1100])
    assert report.passed, str(report)
    assert (report.dtype, report.rtol, report.atol) == ("float32", 1e-4, 1e-5)
    drift = report.drift.set_index("threshold")
    # float32 rounding shows at once: losses differ beyond 1e-12 within the first steps ...
    assert drift.loss_diff_step[1e-12] <= 5
    # ... yet never by 1e-4, and the parameters never by 1e-6
    assert drift.loss_diff_step.isna()[1e-4] and drift.param_diff_step.isna()[1e-6]
    assert 1e-9 < report.max_param_diff < 1e-6
    assert "drift: first step at which a difference exceeded" in str(report)


def test_history_is_tidy_and_explains_the_verdict(small):
    X, y, Xv, yv = small
    ref, cand = pair(OPTIMIZERS["adam"])
    report = compare_training(ref, cand, X[:100], y[:100], epochs=3, batch_size=32, X_val=Xv,
                              y_val=yv, reference_name="r", candidate_name="c")
    h = report.history
    assert tuple(h.columns) == HISTORY_COLUMNS
    assert set(h["backend"]) == {"r", "c", DIFFERENCE}
    assert h["step"].is_monotonic_increasing and h["step"].dtype == np.int64
    counts = h.groupby(["backend", "quantity"]).size().to_dict()
    assert counts[("r", "loss")] == counts[("c", "loss")] == 12  # 4 batches (3 x 32 + 4) x 3
    for q in ("epoch_loss", "train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert counts[("r", q)] == counts[("c", q)] == 3
    assert counts[(DIFFERENCE, "loss_diff")] == 12 and counts[(DIFFERENCE, "param_diff")] == 3
    # the recorded difference is the difference of the recorded losses
    steps, lr_ = values(h, "r", "loss")
    _, lc = values(h, "c", "loss")
    _, diff = values(h, DIFFERENCE, "loss_diff")
    _, bound = values(h, DIFFERENCE, "loss_bound")
    np.testing.assert_array_equal(diff, np.abs(lc - lr_))
    expected = [trajectory_bound(abs(v), s, rtol=report.rtol, atol=report.atol)
                for s, v in zip(steps, lr_)]
    np.testing.assert_allclose(bound, expected, rtol=1e-15)
    assert report.passed == bool((diff <= bound).all())
    # epoch-end measurements carry the step that ended the epoch
    assert list(values(h, DIFFERENCE, "param_diff")[0]) == [4, 8, 12]
    # the epoch's mean loss is the batch-size-weighted mean of its step losses
    _, mean = values(h, "r", "epoch_loss")
    assert mean[0] == pytest.approx((32 * lr_[:3].sum() + 4 * lr_[3]) / 100, rel=1e-12)
    # the last epoch's metrics are those of evaluate() on the trained models
    for name, model in (("r", ref), ("c", cand)):
        final = report.final[name]
        assert final["val_loss"] == evaluate(model, Xv, yv)["loss"]
        assert final["train_accuracy"] == evaluate(model, X[:100], y[:100])["accuracy"]
    summary = report.to_dict()
    assert summary["passed"] and summary["steps"] == 12 and summary["first_divergence"] is None


def test_evaluate_is_cross_entropy_and_accuracy_in_float64(small):
    X, y, _, _ = small
    model = make_backend("scratch", ModelSpec(DIMS, dtype="float32"))
    result = evaluate(model, X, y)
    z = model.forward(X).astype(np.float64)
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    assert result["loss"] == pytest.approx(-logp[np.arange(len(y)), y].mean(), rel=1e-12)
    assert result["accuracy"] == np.mean(z.argmax(1) == y)


# --------------------------------------------------------- broken optimizers caught
class AdamWithoutBiasCorrection(Adam):
    """Adam's moments used raw: m / (sqrt(v) + eps)."""

    def step(self, params, grads):
        for name, p in params.items():
            g = grads[name] + self.weight_decay * p
            if name not in self.m:
                self.m[name], self.v[name] = np.zeros_like(p), np.zeros_like(p)
            self.m[name] += (1 - self.beta1) * (g - self.m[name])
            self.v[name] *= self.beta2
            self.v[name] += (1 - self.beta2) * g * g
            p -= self.lr * self.m[name] / (np.sqrt(self.v[name]) + self.eps)


class AdamDecoupledWhereL2WasAsked(Adam):
    """AdamW's decay given where torch.optim.Adam (L2 in the gradient) was asked for."""

    decoupled = True


class SGDWithDampening(SGD):
    """Momentum with dampening 0.5: b <- m b + (1 - 0.5) g (torch's default is 0)."""

    def step(self, params, grads):
        for name, p in params.items():
            g = grads[name] + self.weight_decay * p
            buf = self.buffers.get(name)
            if buf is None:
                buf = self.buffers[name] = g.copy()
            else:
                buf *= self.momentum
                buf += 0.5 * g
            p -= self.lr * buf


class SGDSkippingDecayOnBiases(SGD):
    """Weight decay on the weights only (torch.optim decays every parameter)."""

    def step(self, params, grads):
        decay = self.weight_decay
        try:
            self.weight_decay = 0.0
            super().step({k: p for k, p in params.items() if k.startswith("b")}, grads)
        finally:
            self.weight_decay = decay
        super().step({k: p for k, p in params.items() if k.startswith("W")}, grads)


BROKEN = {
    "adam without bias correction": (
        OptimizerSpec("adam", lr=1e-3, weight_decay=1e-4), AdamWithoutBiasCorrection),
    "adam with decoupled decay": (
        OptimizerSpec("adam", lr=1e-3, weight_decay=1e-4), AdamDecoupledWhereL2WasAsked),
    "sgd momentum with dampening": (
        OptimizerSpec("sgd", lr=0.05, momentum=0.9, weight_decay=0.0), SGDWithDampening),
    "sgd skipping decay on biases": (
        OptimizerSpec("sgd", lr=0.05, momentum=0.9, weight_decay=1e-3),
        SGDSkippingDecayOnBiases),
}


def scratch_with(opt_spec: OptimizerSpec, cls, dtype="float64"):
    kwargs = {k: v for k, v in opt_spec.to_dict().items() if k != "name"}
    if issubclass(cls, SGD):
        kwargs = {k: kwargs[k] for k in ("lr", "momentum", "nesterov", "weight_decay")}
    else:
        kwargs = {k: kwargs[k] for k in ("lr", "betas", "eps", "weight_decay")}
    return MLP(DIMS, "relu", dtype, 0, optimizer=cls(**kwargs))


@pytest.mark.parametrize("case", list(BROKEN))
def test_compare_training_catches_a_broken_optimizer(small, case):
    X, y, _, _ = small
    opt, broken = BROKEN[case]
    torch_model = make_backend("torch", ModelSpec(DIMS), opt)
    report = compare_training(torch_model, scratch_with(opt, broken), X, y, epochs=2,
                              batch_size=32, reference_name="torch", candidate_name="scratch")
    assert not report.passed
    first = report.first_divergence
    assert first is not None and first.step <= 10, str(report)
    assert first.quantity in ("loss", "params") and first.difference > first.allowed
    assert report.steps == 20  # training went on: the history shows how far they part
    assert "FAIL: first divergence at step" in str(report)
    summary = report.to_dict()
    assert summary["first_divergence"]["step"] == first.step and not summary["passed"]
    # the same setting passes with the correct optimizer: the failure is the bug's
    correct = SGD if issubclass(broken, SGD) else Adam
    control = compare_training(make_backend("torch", ModelSpec(DIMS), opt),
                               scratch_with(opt, correct), X, y, epochs=2, batch_size=32)
    assert control.passed, str(control)


def test_a_missing_bias_correction_is_caught_in_float32_too(small):
    X, y, _, _ = small
    opt, broken = BROKEN["adam without bias correction"]
    report = compare_training(make_backend("torch", ModelSpec(DIMS, dtype="float32"), opt),
                              scratch_with(opt, broken, "float32"), X, y, epochs=1,
                              batch_size=32)
    assert not report.passed and report.first_divergence.step <= 3


def test_a_parameter_divergence_names_the_entry(small):
    X, y, _, _ = small
    opt, broken = BROKEN["sgd skipping decay on biases"]
    ref = make_backend("torch", ModelSpec(DIMS), opt)
    # one full batch, one step: the loss of step 1 comes before any update, so only
    # the parameters after the epoch can tell
    report = compare_training(ref, scratch_with(opt, broken), X, y, epochs=1, batch_size=320)
    first = report.first_divergence
    assert first.step == 1 and first.quantity == "params" and first.where.startswith("b")
    assert values(report.history, DIFFERENCE, "loss_diff")[1][0] < 1e-12
    assert first.allowed == values(report.history, DIFFERENCE, "param_bound")[1][0]
    assert f"at {first.where}" in str(first)


# ------------------------------------------------------------------- NaN and inf
class NanAfter(MLP):
    """A scratch MLP whose loss turns NaN at step ``at``."""

    def __init__(self, at, **kw):
        super().__init__(DIMS, **kw)
        self.at, self.calls = at, 0

    def train_step(self, x, y):
        self.calls += 1
        loss = super().train_step(x, y)
        return math.nan if self.calls >= self.at else loss


def test_a_nan_loss_stops_training_names_step_and_backend_and_keeps_the_history(small):
    X, y, Xv, yv = small
    ref = make_backend("torch", ModelSpec(DIMS), OptimizerSpec("sgd", lr=0.01, weight_decay=0.0))
    report = compare_training(ref, NanAfter(7), X, y, epochs=5, batch_size=32, X_val=Xv,
                              y_val=yv, reference_name="torch", candidate_name="scratch")
    assert not report.passed
    err = report.error
    assert isinstance(err, NumericalError) and err.step == 7 and err.backend == "scratch"
    assert "step 7 (epoch 1)" in str(err) and "'scratch'" in str(err)
    h = report.history
    assert h["step"].max() == 7 and report.steps == 7 and report.epochs_done == 0
    assert math.isnan(values(h, "scratch", "loss")[1][-1])
    assert report.first_divergence.step == 7
    assert f"FAIL: {err}" in str(report)
    assert report.to_dict()["error"] == {"message": str(err), "step": 7, "backend": "scratch"}


def test_train_raises_the_numerical_error_with_what_was_recorded(small):
    X, y, _, _ = small
    with pytest.raises(NumericalError, match="step 12 \\(epoch 2\\)") as info:
        train(NanAfter(12), X, y, epochs=3, batch_size=32, name="mine")
    log = info.value.log
    assert info.value.step == 12 and info.value.backend == "mine"
    assert log.steps_done == 12 and log.epochs_done == 1
    assert len(values(log.history, "mine", "loss")[1]) == 12


def test_an_exploding_learning_rate_is_reported_not_hidden(small):
    X, y, _, _ = small
    opt = OptimizerSpec("sgd", lr=1e6, weight_decay=0.0)
    report = compare_training(*pair(opt, "float32"), X, y, epochs=3, batch_size=32)
    assert report.error is not None and report.error.step <= 10
    assert report.error.backend in ("torch", "scratch", "reference", "candidate")


# ------------------------------------------------------------------------ plots
@pytest.fixture(scope="module")
def report_for_plots(small):
    X, y, Xv, yv = small
    ref, cand = pair(OPTIMIZERS["adam"], "float32")
    return compare_training(ref, cand, X[:96], y[:96], epochs=4, batch_size=32, X_val=Xv,
                            y_val=yv, reference_name="torch", candidate_name="scratch")


def test_loss_figure_draws_the_recorded_losses_of_both_backends(report_for_plots):
    from harness.plots import pyplot
    from harness.plots.training import loss_figure

    h = report_for_plots.history
    fig = loss_figure(h)
    try:
        ax_step, ax_epoch = fig.axes
        for ax, quantity in ((ax_step, "loss"), (ax_epoch, "epoch_loss")):
            lines = {line.get_label(): line for line in ax.get_lines()}
            assert set(lines) == {"torch", "scratch"}
            for name, line in lines.items():
                steps_or_epochs, value = values(h, name, quantity)
                if quantity == "epoch_loss":
                    steps_or_epochs = [1, 2, 3, 4]
                np.testing.assert_array_equal(line.get_xdata(), steps_or_epochs)
                np.testing.assert_array_equal(line.get_ydata(), value)
            # told apart in grey print: the dash patterns differ, not only the colours
            assert lines["torch"].get_linestyle() != lines["scratch"].get_linestyle()
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
            assert ax.get_legend() is not None
    finally:
        pyplot().close(fig)


def test_accuracy_figure_draws_validation_accuracy(report_for_plots):
    from harness.plots import pyplot
    from harness.plots.training import accuracy_figure

    h = report_for_plots.history
    fig = accuracy_figure(h)
    try:
        (ax,) = fig.axes
        assert "Validation" in ax.get_title()
        for line in ax.get_lines():
            np.testing.assert_array_equal(line.get_ydata(),
                                          values(h, line.get_label(), "val_accuracy")[1])
        assert len(ax.get_lines()) == 2
        # without a validation set it says so and draws the training accuracy
        no_val = h[h["quantity"] != "val_accuracy"]
        fig2 = accuracy_figure(no_val)
        assert "Training" in fig2.axes[0].get_title()
        np.testing.assert_array_equal(fig2.axes[0].get_lines()[0].get_ydata(),
                                      values(h, "torch", "train_accuracy")[1])
        pyplot().close(fig2)
    finally:
        pyplot().close(fig)


def test_difference_figure_is_log_scale_with_the_recorded_differences(report_for_plots):
    from harness.plots import pyplot
    from harness.plots.training import difference_figure

    h = report_for_plots.history
    fig = difference_figure(h)
    try:
        (ax,) = fig.axes
        assert ax.get_yscale() == "log"
        lines = {line.get_label(): line for line in ax.get_lines()}
        _, diff = values(h, DIFFERENCE, "loss_diff")
        drawn = lines["|loss difference| (per step)"].get_ydata()
        np.testing.assert_array_equal(drawn[diff > 0], diff[diff > 0])
        assert np.isnan(drawn[diff == 0]).all()  # a zero has no place on a log axis
        psteps, pdiff = values(h, DIFFERENCE, "param_diff")
        line = lines["largest parameter difference (per epoch)"]
        np.testing.assert_array_equal(line.get_xdata(), psteps)
        np.testing.assert_array_equal(line.get_ydata(), pdiff)
        np.testing.assert_array_equal(lines["allowed loss difference"].get_ydata(),
                                      values(h, DIFFERENCE, "loss_bound")[1])
        assert ax.get_xlabel() == "optimizer step" and "log" in ax.get_ylabel()
    finally:
        pyplot().close(fig)


def test_write_training_plots_saves_pngs(report_for_plots, tmp_path):
    from harness.plots.training import write_training_plots

    paths = write_training_plots(report_for_plots.history, tmp_path)
    assert sorted(p.name for p in paths.values()) == ["accuracy.png", "differences.png",
                                                      "loss.png"]
    for p in paths.values():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    # one backend alone: no difference figure
    single = report_for_plots.history
    single = single[single["backend"] == "torch"]
    assert set(write_training_plots(single, tmp_path / "one")) == {"loss", "accuracy"}

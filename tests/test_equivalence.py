"""check_equivalence: correct backends pass, wrong ones fail, and the report says where."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness import ModelSpec, OptimizerSpec, check_equivalence, make_backend
from harness.compare.equivalence import DEFAULT_TOLERANCES
from harness.compare.closeness import compare
from scratch import MLP
from scratch.losses import cross_entropy
from scratch.optimizers import make_optimizer

ACTIVATIONS = ["relu", "tanh", "sigmoid", "leaky_relu", "gelu"]
ARCHS = [(5, 3), (5, 8, 3), (5, 7, 6, 3), (5, 4, 9, 4, 3), (5, 16, 1, 8, 2, 3)]


def pair(dims, activation="relu", dtype="float64", seed=0, optimizer=None):
    spec = ModelSpec(dims, activation=activation, dtype=dtype, seed=seed)
    return make_backend("scratch", spec, optimizer), make_backend("torch", spec, optimizer)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_backends_agree_for_every_activation(activation, dtype, batch):
    x, y = batch(n=33, d=5, c=3, seed=1)
    ref, cand = pair((5, 8, 6, 3), activation, dtype, seed=2,
                     optimizer=OptimizerSpec("adam", lr=1e-2, weight_decay=1e-3))
    report = check_equivalence(ref, cand, x, y)
    assert report.passed, str(report)
    assert report.dtype == dtype
    assert (report.rtol, report.atol) == DEFAULT_TOLERANCES[dtype]


@pytest.mark.parametrize("dims", ARCHS, ids=str)
@pytest.mark.parametrize("n", [1, 2, 7, 65])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_backends_agree_on_architectures_and_batch_sizes(dims, n, dtype, batch):
    x, y = batch(n=n, d=dims[0], c=dims[-1], seed=n)
    ref, cand = pair(dims, "tanh", dtype, seed=n)
    assert check_equivalence(ref, cand, x, y).passed


def test_report_lists_every_quantity_with_its_numbers(batch):
    x, y = batch()
    report = check_equivalence(*pair((5, 4, 3)), x, y, reference_name="scratch",
                               candidate_name="torch")
    table = report.table
    assert list(table.columns) == ["quantity", "shape", "max_abs_err", "max_rel_err",
                                   "worst_index", "atol", "rtol", "mismatched", "passed",
                                   "n_elements", "n_excused", "rule"]
    assert table["quantity"].tolist() == [
        "params['W0']", "params['b0']", "params['W1']", "params['b1']", "logits", "loss",
        "grads['W0']", "grads['b0']", "grads['W1']", "grads['b1']", "train_step loss",
        "params after step['W0']", "params after step['b0']", "params after step['W1']",
        "params after step['b1']"]
    assert table["passed"].all()
    assert (table["max_abs_err"] < 1e-12).all()
    text = str(report)
    assert "PASS: all 15 quantities agree" in text and "torch against scratch" in text
    assert text.endswith("15 of 15 quantities agree, 170 entries compared, 0 excused")
    assert report.to_dict()["passed"] is True


class BiasGradAveraged(MLP):
    """Bug: the bias gradient is averaged over the batch, though dz already holds the 1/N."""

    def loss_and_grads(self, x, y):
        loss, grads = super().loss_and_grads(x, y)
        for k in grads:
            if k.startswith("b"):
                grads[k] = grads[k] / len(y)
        return loss, grads

    def train_step(self, x, y):
        loss, grads = self.loss_and_grads(x, y)
        self.optimizer.step(self.params, grads)
        return loss


class OneEntryOff(MLP):
    """Bug of the smallest kind: one gradient entry off by a relative 1e-6."""

    entry = ("W1", (2, 1))

    def loss_and_grads(self, x, y):
        loss, grads = super().loss_and_grads(x, y)
        name, idx = self.entry
        grads[name][idx] *= 1 + 1e-6
        return loss, grads


def scratch_like(cls, dims, dtype="float64", seed=0):
    return cls(dims, "relu", dtype, seed, optimizer=make_optimizer("sgd", lr=0.1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bias_gradient_averaged_is_caught(dtype, batch):
    x, y = batch(n=20, d=5, c=3)
    ref = make_backend("torch", ModelSpec((5, 6, 3), dtype=dtype))
    report = check_equivalence(ref, scratch_like(BiasGradAveraged, (5, 6, 3), dtype), x, y)
    assert not report.passed
    failed = report.table.loc[~report.table["passed"], "quantity"].tolist()
    assert "grads['b0']" in failed and "grads['b1']" in failed
    assert "grads['W0']" not in failed and "logits" not in failed
    assert report.first_failure.quantity == "grads['b0']"
    message = report.first_failure.message
    assert "grads['b0']: 6 / 6 elements mismatched" in message
    assert "greatest absolute difference" in message and "allowed" in message


def test_float64_catches_a_relative_error_of_1e6_in_one_gradient_entry(digits):
    X, y = digits
    x, y = X[:64], y[:64]
    ref = make_backend("torch", ModelSpec((64, 32, 10)))
    cand = scratch_like(OneEntryOff, (64, 32, 10))
    report = check_equivalence(ref, cand, x, y)
    rows = report.table.set_index("quantity")
    assert not rows.loc["grads['W1']", "passed"]
    assert rows.loc["grads['W1']", "mismatched"] == 1
    assert rows.loc["grads['W1']", "worst_index"] == "(2, 1)"
    assert rows.loc["grads['W0']", "passed"] and rows.loc["loss", "passed"]


def test_large_logits_give_a_finite_loss_equal_to_torch():
    logits = np.array([[1e4, -1e4, 0.0], [-3e4, 2e4, 2e4 - 1.0]])
    y = np.array([1, 2])
    ours = cross_entropy(logits, y)
    theirs = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y))
    assert np.isfinite(ours)
    assert ours == pytest.approx(theirs.item(), rel=1e-12)
    assert ours == pytest.approx((1e4 + 0.5 * (1 + np.log1p(np.exp(-1.0)))), rel=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_backends_agree_when_logits_are_of_size_1e4(dtype, batch):
    x, y = batch(n=9, d=5, c=3, scale=1.0)
    ref, cand = pair((5, 3), dtype=dtype)
    params = ref.get_params()
    params["W0"] = params["W0"] * 5e3  # logits of magnitude ~1e4
    ref.set_params(params)
    assert np.abs(ref.forward(x)).max() > 5e3
    report = check_equivalence(ref, cand, x, y)
    assert np.isfinite(report.table["max_abs_err"]).all()
    assert report.passed, str(report)


def test_compare_checks_shape_dtype_then_values_and_reports_the_worst_element():
    a = np.zeros((2, 3))
    assert "shape mismatch" in compare("q", np.zeros((3, 2)), a, rtol=0, atol=0).message
    assert "dtype mismatch" in compare("q", a.astype(np.float32), a, rtol=0, atol=0).message
    b = a.copy()
    b[1, 2] = 1e-3
    result = compare("grads['W1']", b, a, rtol=1e-7, atol=1e-12)
    assert not result.passed and result.n_mismatched == 1
    assert result.worst_index == (1, 2) and result.max_abs_err == pytest.approx(1e-3)
    assert result.message.startswith("grads['W1']: 1 / 6 elements mismatched")
    nan = a.copy()
    nan[0, 1] = np.nan
    assert "non-finite value at index (0, 1)" in compare("q", nan, a, rtol=1, atol=1).message


def test_atol_scales_with_the_largest_magnitude_of_the_expected_value():
    expected = np.array([1e4, 0.0])
    # 1e-3 off an element near 0 is within atol * max|expected| = 1e-5 * 1e4
    assert compare("q", expected + [0, 1e-3], expected, rtol=1e-4, atol=1e-5).passed
    assert not compare("q", expected + [0, 0.5], expected, rtol=1e-4, atol=1e-5).passed


class BiasGradAveragedPlugin(BiasGradAveraged):
    """The same bug behind the plug-in constructor ClassName(spec, optimizer)."""

    def __init__(self, spec, optimizer):
        super().__init__(spec.dims, spec.activation, spec.dtype, spec.seed,
                         optimizer=make_optimizer(**optimizer.to_dict()))


def test_adam_step_on_noise_level_gradients_is_not_a_false_alarm():
    """float32: one gradient entry is rounding noise (+-4e-8) in one backend, 0 in the other.

    Adam's first step maps any nonzero g to about lr * sign(g); the post-step check lets
    such entries through (and says so) while the gradient rows still compare them.
    """
    spec = ModelSpec((3, 2), dtype="float32")
    opt = OptimizerSpec("adam", lr=1e-2, weight_decay=0.0)
    x = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    y = np.array([0, 1])

    class Noisy(MLP):
        def loss_and_grads(self, x, y):
            loss, grads = super().loss_and_grads(x, y)
            grads["W0"][1, 0] = 4e-8  # exact 0 in the reference (feature 1 is all zero)
            return loss, grads

        def train_step(self, x, y):
            loss, grads = self.loss_and_grads(x, y)
            self.optimizer.step(self.params, grads)
            return loss

    ref = make_backend("torch", spec, opt)
    cand = Noisy(spec.dims, dtype="float32", optimizer=make_optimizer(**opt.to_dict()))
    report = check_equivalence(ref, cand, x, y)
    assert report.passed, str(report)
    assert any("1 parameter entries were excused after the step" in n for n in report.notes)
    assert report.n_excused == 1
    # the gradient rows did compare the entry: 4e-8 is within float32's atol there
    assert report.table.set_index("quantity").loc["grads['W0']", "passed"]

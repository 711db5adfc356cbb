"""Hypotheses and probes of harness.diagnose, against the scratch backend (NumPy only)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.checks.config import CheckConfig
from harness.data.datasets import load_dataset, standardize
from harness.diagnose import diagnose, hints, localise
from harness.diagnose.evidence import Evidence, pair
from harness.diagnose.probes import activation_values
from harness.model.specs import ModelSpec, OptimizerSpec
from tests.gallery.base import Net as Base

ADAM = OptimizerSpec("adam", 1e-3, weight_decay=1e-4)
SGD = OptimizerSpec("sgd", 0.1, weight_decay=1e-2)


class Doubled(Base):
    """Loss and gradient twice the mean's (a stray factor 2)."""

    def loss(self, logits, y):
        return 2 * super().loss(logits, y)

    def dlogits(self, logits, y):
        return 2 * super().dlogits(logits, y)


class LeakySlope(Base):
    def activation(self, z):
        return np.where(z > 0, z, 0.1 * z)


@pytest.fixture(scope="module")
def iris():
    data = load_dataset("iris")
    (X,) = standardize(data.X)
    rows = np.random.default_rng(0).permutation(len(data.y))[:40]
    return X[rows], data.y[rows]


def evidence(iris, net, activation="relu", optimizer=ADAM, dtype="float64", dims=(4, 6, 3)):
    config = CheckConfig(backends=("scratch", net), spec=ModelSpec(dims, activation, dtype),
                         optimizer=optimizer)
    x, y = iris
    return Evidence.build(config, "scratch", net, x, y)


@pytest.mark.parametrize("activation, optimizer, dims", [
    ("relu", ADAM, (4, 6, 3)), ("gelu", SGD, (4, 6, 5, 3)), ("sigmoid", ADAM, (4, 3)),
    ("tanh", OptimizerSpec("adamw", 1e-2, weight_decay=0.1), (4, 6, 3)),
    ("leaky_relu", OptimizerSpec("sgd", 0.1, momentum=0.9, nesterov=True, weight_decay=0.0), (4, 6, 3)),
])
def test_a_correct_network_gets_no_hint_and_no_localisation(iris, activation, optimizer, dims):
    ev = evidence(iris, "tests.gallery.base:Net", activation, optimizer, dims=dims)
    for hyp in hints.HYPOTHESES:
        assert hyp(ev) is None, hyp.__name__
    assert localise(ev) is None


@pytest.mark.parametrize("net, activation, optimizer, hypothesis, text", [
    ("tests.gallery.summed:Net", "relu", ADAM, hints.loss_scale,
     "summed loss instead of the mean: your loss and every gradient are 40 times (the batch "
     "size N = 40)"),
    ("tests.test_diagnose:Doubled", "relu", ADAM, hints.loss_scale,
     "a scaled loss: your loss and every gradient are 2 times (a constant factor, not the "
     "batch size N = 40)"),
    ("tests.gallery.l2:Net", "relu", SGD, hints.l2_in_loss, "with λ = 0.01"),
    ("tests.gallery.probs:Net", "relu", ADAM, hints.probabilities_as_logits,
     "forward returns probabilities"),
    ("tests.gallery.more:LogProbs", "relu", ADAM, hints.probabilities_as_logits,
     "forward returns log-probabilities"),
    ("tests.gallery.more:BiasSummed", "relu", ADAM, hints.bias_grad_scale,
     "bias gradients summed over the batch"),
    ("tests.gallery.more:FlippedSign", "relu", ADAM, hints.flipped_sign, "flipped sign"),
    ("tests.gallery.more:TransposedGrad", "relu", ADAM, hints.transposed_weights,
     "your gradient of W0 has shape (6, 4) (out, in) and equals the transpose"),
    ("tests.gallery.clipped:EpsilonInLog", "relu", ADAM, hints.only_loss, "-log(p + 1e-06)"),
    ("tests.gallery.clipped:Net", "relu", ADAM, hints.only_loss,
     "(confident predictions; at the check's weights the losses agree)"),
    ("tests.gallery.more:NaiveSoftmax", "relu", ADAM, hints.overflow_at_scale,
     "the loss is not finite for large logits"),
    ("tests.gallery.lazy_adam:Net", "relu", ADAM, hints.update_rule, "without bias correction"),
    ("tests.gallery.more:PlainSGD", "relu", OptimizerSpec("adamw", 1e-2, weight_decay=0.1),
     hints.update_rule, "matches sgd with the same lr and no weight decay"),
    ("tests.gallery.more:DecayWeightsOnly", "relu", SGD, hints.update_rule,
     "`--weight-decay-on weights`"),
    ("tests.gallery.activations:GeluTanh", "gelu", ADAM, hints.activation_variant,
     "gelu in its tanh approximation"),
    ("tests.gallery.activations:SigmoidPrime", "sigmoid", ADAM, hints.activation_variant,
     "z·(1 - z)"),
    ("tests.test_diagnose:LeakySlope", "leaky_relu", ADAM, hints.activation_variant,
     "negative slope 0.1"),
    ("tests.gallery.more:Float32Dot", "relu", ADAM, hints.precision, "float32 arithmetic"),
    ("tests.gallery.maximum:Net", "relu", ADAM, hints.output_shape, "np.max(z, 0)"),
])
def test_each_hypothesis_holds_for_its_mistake_and_alone(iris, net, activation, optimizer,
                                                         hypothesis, text):
    ev = evidence(iris, net, activation, optimizer)
    line = hypothesis(ev)
    assert line is not None and text in line, line
    assert hints.hypotheses_for(ev) == [line]  # no other hypothesis claims it


def test_the_l2_hint_says_which_parameters_and_which_flags(iris):
    weights_only = hints.l2_in_loss(evidence(iris, "tests.gallery.l2:Net", optimizer=SGD))
    assert "(weights only)" in weights_only
    assert "`--weight-decay-in loss` `--weight-decay-on weights`" in weights_only
    both = hints.l2_in_loss(evidence(iris, "tests.gallery.l2:WithBiases", optimizer=SGD))
    assert "(weights and biases)" in both and "--weight-decay-on" not in both


def test_the_probes_read_the_activation_and_its_derivative(iris):
    ev = evidence(iris, "tests.gallery.activations:GeluTanh", "gelu")
    f_r, f_c, d_r, d_c = activation_values(ev, points=(1.0,))
    assert f_r[0] == pytest.approx(0.8413447460685429, rel=1e-12)  # exact gelu(1)
    assert f_c[0] == pytest.approx(0.8411919906082768, rel=1e-12)  # tanh form
    assert d_r[0] == pytest.approx(1.0833154705876864, rel=1e-9)
    assert localise(ev).startswith("localised: the hidden activation's forward (gelu(")
    ev = evidence(iris, "tests.gallery.activations:SigmoidPrime", "sigmoid")
    assert localise(ev).startswith("localised: the hidden activation's derivative (sigmoid'(-2)")


@pytest.mark.parametrize("net, part", [
    ("tests.gallery.summed:Net", "localised: the loss (at logits (1, 0, -1), label 0, 4 rows"),
    ("tests.gallery.probs:Net", "localised: the output layer's forward"),
    ("tests.gallery.more:BiasSummed", "localised: the output bias's gradient"),
    ("tests.gallery.maximum:Net", "localised: the forward pass's shape"),
])
def test_the_localisation_names_the_part(iris, net, part):
    assert localise(evidence(iris, net)).startswith(part)


def test_a_wrong_hidden_backward_step_is_named_from_the_gradient_pattern(iris):
    ev = evidence(iris, "tests.test_diagnose:NoMask", dims=(4, 5, 6, 3))
    assert hints.hypotheses_for(ev) == []
    line = localise(ev)
    assert line.startswith("localised: the backward step from layer 1 into layer 0: layer 1's "
                           "gradients agree, layer 0's (W0, b0) differ"), line


class NoMask(Base):
    """Backward through the relu layers, but into layer 0 without the relu's mask."""

    def backward(self, zs, acts, dz):
        grads = {}
        for i in reversed(range(len(zs))):
            grads[f"W{i}"] = acts[i].T @ dz
            grads[f"b{i}"] = dz.sum(axis=0)
            if i > 0:
                dz = dz @ self.params[f"W{i}"].T
                if i > 1:
                    dz = dz * self.activation_grad(zs[i - 1], acts[i])
        return grads


def test_diagnosis_leaves_the_callers_arrays_alone(iris):
    x, y = iris[0].copy(), iris[1].copy()
    config = CheckConfig(backends=("scratch", "tests.gallery.summed:Net"),
                         spec=ModelSpec((4, 6, 3)), optimizer=ADAM)
    found = diagnose(config, x, y, "scratch", "tests.gallery.summed:Net")
    assert found.hints and found.localised
    np.testing.assert_array_equal(x, iris[0])
    np.testing.assert_array_equal(y, iris[1])


def test_numbers_are_printed_with_the_digits_that_tell_them_apart():
    assert pair(0.84119199, 0.84134474) == ("0.8412", "0.8413")
    assert pair(1.1009438, 1.1009471) == ("1.10094", "1.10095")


def test_dz_of_intermediates_is_already_averaged_over_the_batch(iris):
    """The convention documented in docs/protocol.md: dz{i} = dL/dz_i of the *mean* loss."""
    from harness.model.registry import make_backend

    x, y = iris
    spec = ModelSpec((4, 6, 3))
    model = make_backend("scratch", spec)
    inter = model.intermediates(x, y)
    z = inter["z1"]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    np.testing.assert_allclose(inter["dz1"], p / len(y), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(inter["db1"], inter["dz1"].sum(0), rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ through the checks layer
@pytest.fixture(scope="module")
def iris_data():
    return load_dataset("iris")


def test_a_failed_equivalence_carries_hints_notes_and_the_localised_column(iris_data):
    from harness.checks import run_equivalence

    config = CheckConfig(backends=("scratch", "tests.gallery.summed:Net"),
                         spec=ModelSpec((4, 6, 3)), optimizer=ADAM, check_samples=30)
    result = run_equivalence(config, iris_data)
    assert result.status == "FAIL"
    assert result.hints[0].startswith("summed loss instead of the mean")
    assert "localised: the loss" in result.notes[-1]
    row = result.row()
    assert row["equivalence_localised"].startswith("localised: the loss")
    assert "likely causes:\n  - summed loss" in result.text()
    passed = run_equivalence(CheckConfig(backends=("scratch", "tests.gallery.base:Net"),
                                         spec=ModelSpec((4, 6, 3)), optimizer=ADAM,
                                         check_samples=30), iris_data)
    assert passed.status == "PASS" and passed.hints == []
    assert passed.row()["equivalence_localised"] is None


def test_a_failed_gradient_check_is_diagnosed_against_scratch(iris_data):
    from harness.checks import run_gradcheck

    name = "tests.gallery.activations:SigmoidPrime"
    config = CheckConfig(backends=(name,), spec=ModelSpec((4, 5, 3), "sigmoid"),
                         optimizer=ADAM, gradcheck_samples=16)
    result = run_gradcheck(config, iris_data)
    assert result.status == "FAIL"
    assert any("z·(1 - z)" in h for h in result.hints)
    assert any(n.startswith(f"{name}: localised: the hidden activation's derivative")
               for n in result.notes)
    assert result.row()["gradcheck_localised"].startswith("localised: the hidden activation's")


def test_a_failed_training_comparison_is_diagnosed(iris_data):
    from harness.checks import run_training

    config = CheckConfig(backends=("scratch", "tests.gallery.more:DecayWeightsOnly"),
                         spec=ModelSpec((4, 5, 3)), optimizer=SGD, epochs=1, batch_size=16,
                         train_samples=32, check_samples=32)
    result = run_training(config, iris_data)
    assert result.status == "FAIL"
    assert len(result.hints) == 1
    assert "your step matches sgd with weight decay on weights only" in result.hints[0]

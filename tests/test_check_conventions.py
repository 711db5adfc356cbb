"""The gradient checks under named loss conventions: a loss summed over the batch, and
weight decay as an L2 term in the loss on the weights only, in float64 and float32."""

from __future__ import annotations

import numpy as np
import pytest

from harness import ModelSpec, OptimizerSpec, make_backend
from harness.gradients.autograd import autograd_pass, compare_with_autograd
from harness.model.conventions import LossConventions, loss_conventions
from harness.errors import ConfigError
from harness.gradients.finite_diff import gradcheck
from harness.model.precision import float64_copy
from scratch.reference import ReferenceMLP

DIMS = (4, 6, 3)
CONVENTIONS = {
    "sum": (dict(loss_reduction="sum"), {}),
    "l2 on weights": ({}, dict(name="adam", weight_decay=0.1, weight_decay_in="loss",
                               weight_decay_on="weights")),
}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(backend, convention, dtype, activation="tanh"):
    spec_kw, opt_kw = CONVENTIONS[convention]
    return make_backend(backend, ModelSpec(DIMS, activation=activation, dtype=dtype, seed=2,
                                           **spec_kw), OptimizerSpec(**opt_kw))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_gradcheck_passes_and_checks_the_models_own_loss(convention, dtype, batch):
    x, y = batch(n=12, d=4, c=3, seed=5)
    model = _model("scratch", convention, dtype)
    report = gradcheck(model, x, y)
    assert report.passed, str(report)
    # a float32 model is checked through a float64 copy: the copy's loss is the model's
    loss = float(model.loss_and_grads(x.astype(dtype), y)[0])
    assert report.loss == pytest.approx(loss, rel=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("backend", ["scratch", "torch"])
@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_a_float64_copy_keeps_the_conventions(backend, convention, batch):
    x, y = batch(n=9, d=4, c=3, seed=1)
    model = _model(backend, convention, "float32", activation="relu")
    copy, how = float64_copy(model)
    assert how.startswith("float64 copy of the built-in")
    assert loss_conventions(copy) == loss_conventions(model) != LossConventions()
    loss32, grads32 = model.loss_and_grads(x.astype(np.float32), y)
    loss64, grads64 = copy.loss_and_grads(x, y)
    assert loss64 == pytest.approx(float(loss32), rel=1e-5)
    for key in grads64:
        np.testing.assert_allclose(grads64[key], grads32[key], rtol=1e-4, atol=1e-5)


def test_a_reference_mlp_copy_keeps_its_conventions():
    model = ReferenceMLP(DIMS, "relu", "float32", loss_reduction="sum", l2=0.3, l2_on="weights")
    copy, _ = float64_copy(model)
    assert (copy.loss_reduction, copy.l2, copy.l2_on) == ("sum", 0.3, "weights")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("convention", list(CONVENTIONS))
@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_compare_with_autograd_passes_under_the_conventions(backend, convention, dtype, batch):
    x, y = batch(n=15, d=4, c=3, seed=3)
    model = _model(backend, convention, dtype, activation="relu")
    report = compare_with_autograd(model, x, y, name=backend)
    assert report.passed, str(report)


def test_autograd_pass_adds_the_l2_term_to_the_named_parameters(batch):
    x, y = batch(n=10, d=4, c=3, seed=4)
    params = make_backend("scratch", ModelSpec(DIMS)).get_params()
    base, _, grads, _ = autograd_pass(params, x, y, "relu")
    summed, _, grads_s, _ = autograd_pass(params, x, y, "relu", LossConventions("sum"))
    assert summed == pytest.approx(len(y) * base, rel=1e-12)
    np.testing.assert_allclose(grads_s["W1"], len(y) * grads["W1"], rtol=1e-12)
    l2, _, grads_l, inter = autograd_pass(params, x, y, "relu",
                                          LossConventions("mean", 0.5, "weights"))
    penalty = 0.25 * sum(float(np.sum(params[k] ** 2)) for k in ("W0", "W1"))
    assert l2 == pytest.approx(base + penalty, rel=1e-12)
    np.testing.assert_allclose(grads_l["W0"], grads["W0"] + 0.5 * params["W0"], atol=1e-12)
    np.testing.assert_allclose(grads_l["b0"], grads["b0"], atol=1e-12)
    np.testing.assert_allclose(inter["dW0"], grads_l["W0"])


def test_a_model_under_other_conventions_is_told_apart_from_the_default(batch):
    """Judged against the mean loss without a penalty, a summed model fails."""
    x, y = batch(n=10, d=4, c=3, seed=4)
    model = _model("scratch", "sum", "float64")
    loss, _, _, _ = autograd_pass(model.get_params(), x, y, "tanh")
    assert float(model.loss_and_grads(x, y)[0]) == pytest.approx(len(y) * loss, rel=1e-12)


def test_conventions_are_read_off_the_built_ins_and_default_for_other_classes():
    torch_model = _model("torch", "l2 on weights", "float64")
    assert loss_conventions(torch_model) == LossConventions("mean", 0.1, "weights")
    assert loss_conventions(_model("scratch", "sum", "float64")) == LossConventions("sum")
    assert loss_conventions(object()) == LossConventions()


def test_an_unknown_convention_is_refused():
    class Odd:
        loss_reduction = "median"

    with pytest.raises(ConfigError, match=r"`loss_reduction` of Odd must be one of mean, "
                                          r"sum, got 'median'"):
        loss_conventions(Odd())

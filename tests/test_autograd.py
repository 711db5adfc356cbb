"""The scratch gradients against torch.autograd, and torch.autograd.gradcheck on the scratch pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness import ModelSpec, make_backend
from harness.gradients.autograd import (
    ClassifierLoss,
    autograd_pass,
    classifier_loss,
    compare_with_autograd,
    torch_gradcheck,
)
from harness.compare.equivalence import DEFAULT_TOLERANCES
from harness.errors import ConfigError
from tests.broken_backends import (
    GradsWithoutIntermediates,
    MissingMask,
    Opaque,
    WrongGeluGrad,
    WrongSigmoidGrad,
)

ACTIVATIONS = ["relu", "tanh", "sigmoid", "leaky_relu", "gelu"]
DIMS = (5, 8, 8, 8, 3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_scratch_matches_autograd(activation, dtype, batch):
    x, y = batch(n=19, d=5, c=3, seed=3)
    model = make_backend("scratch", ModelSpec(DIMS, activation=activation, dtype=dtype, seed=1))
    report = compare_with_autograd(model, x, y, name="scratch")
    assert report.passed, str(report)
    assert report.reference == "torch.autograd" and report.dtype == dtype
    assert (report.rtol, report.atol) == DEFAULT_TOLERANCES[dtype]
    assert [r.quantity for r in report.rows][:3] == ["logits", "loss", "grads['W0']"]
    assert len(report.rows) == 2 + 8


def test_autograd_pass_is_plain_torch_on_the_canonical_layout(batch):
    x, y = batch(n=7, d=5, c=3)
    model = make_backend("scratch", ModelSpec(DIMS, activation="tanh"))
    loss, logits, grads, inter = autograd_pass(model.get_params(), x, y, "tanh")
    ref_loss, ref_grads = model.loss_and_grads(x, y)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    assert np.allclose(logits, model.forward(x), rtol=1e-12, atol=1e-14)
    assert all(np.allclose(grads[k], ref_grads[k], rtol=1e-10, atol=1e-14) for k in grads)
    assert list(inter) == list(model.intermediates(x, y))


def test_a_wrong_derivative_is_caught_and_located(batch):
    x, y = batch(n=19, d=5, c=3, seed=3)
    report = compare_with_autograd(WrongGeluGrad(ModelSpec(DIMS, activation="gelu")), x, y,
                                   name="broken")
    assert not report.passed
    assert (report.divergence["quantity"], report.divergence["layer"]) == ("dz2", 2)
    assert report.divergence["message"].startswith("broken parts from torch.autograd at layer 2")


def test_without_intermediates_the_verdict_is_parameter_level(batch):
    x, y = batch(n=19, d=5, c=3, seed=3)
    report = compare_with_autograd(GradsWithoutIntermediates(ModelSpec(DIMS, activation="tanh")),
                                   x, y)
    assert [r.quantity for r in report.rows if not r.passed] == ["grads['W1']"]
    assert report.divergence is None and "no layer-level localisation" in report.notes[0]


def test_the_activation_must_be_known(batch):
    x, y = batch(n=4, d=5, c=3)
    opaque = Opaque(make_backend("scratch", ModelSpec(DIMS)))
    with pytest.raises(ConfigError, match="cannot tell the hidden activation of Opaque"):
        compare_with_autograd(opaque, x, y)
    assert compare_with_autograd(opaque, x, y, activation="relu").passed
    assert not compare_with_autograd(opaque, x, y, activation="tanh").passed


def test_the_function_forwards_the_loss_and_backwards_the_model_gradients(batch):
    x, y = batch(n=9, d=5, c=3, seed=2)
    model = make_backend("scratch", ModelSpec(DIMS, activation="sigmoid"))
    loss_ref, grads_ref = model.loss_and_grads(x, y)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in model.get_params().items()}
    loss = classifier_loss(model, x, y, params)
    assert loss.dtype == torch.float64 and float(loss.detach()) == loss_ref
    (3 * loss).backward()
    for k, t in params.items():
        assert np.array_equal(t.grad.numpy(), 3 * grads_ref[k]), k
    assert ClassifierLoss.apply(model, x, y, ("W0",) + tuple(params)[1:],
                                *params.values()).requires_grad


@pytest.mark.parametrize("activation, dtype", [("tanh", "float64"), ("gelu", "float32"),
                                               ("sigmoid", "float64")])
def test_torch_gradcheck_signs_off_on_the_scratch_backward(activation, dtype, batch):
    x, y = batch(n=6, d=3, c=3, seed=5)
    model = make_backend("scratch", ModelSpec((3, 4, 4, 3), activation=activation, dtype=dtype))
    before = model.get_params()
    result = torch_gradcheck(model, x, y)
    assert result.passed, str(result)
    assert result.n_entries == 3 * 4 + 4 + 4 * 4 + 4 + 4 * 3 + 3
    assert result.precision == ("float64" if dtype == "float64"
                                else "float64 copy of the built-in scratch MLP")
    assert "PASS" in str(result) and result.to_dict()["passed"] is True
    after = model.get_params()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_torch_gradcheck_fast_mode_passes_on_a_bigger_model(batch):
    x, y = batch(n=10, d=12, c=4, seed=5)
    model = make_backend("scratch", ModelSpec((12, 32, 16, 4), activation="tanh"))
    assert torch_gradcheck(model, x, y, fast_mode=True).passed


@pytest.mark.parametrize("cls, activation, parameter", [
    (WrongSigmoidGrad, "sigmoid", "W0"),
    (MissingMask, "tanh", "W0"),
])
def test_torch_gradcheck_rejects_a_broken_backward(cls, activation, parameter, batch):
    x, y = batch(n=6, d=3, c=3, seed=5)
    model = cls(ModelSpec((3, 4, 4, 4, 3), activation=activation))
    before = model.get_params()
    result = torch_gradcheck(model, x, y)
    assert not result.passed
    assert f"(input 0 is parameter {parameter})" in result.message
    assert "FAIL" in str(result)
    after = model.get_params()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_torch_gradcheck_needs_float64(batch):
    x, y = batch(n=4, d=3, c=2)
    opaque = Opaque(make_backend("scratch", ModelSpec((3, 2), dtype="float32")))
    with pytest.raises(ConfigError, match="needs float64 and Opaque is float32"):
        torch_gradcheck(opaque, x, y)
    with pytest.raises(ConfigError, match="`eps` must be > 0, got 0"):
        torch_gradcheck(make_backend("scratch", ModelSpec((3, 2))), x, y, eps=0)

"""Every deliberately broken backend is caught, and the single-layer bugs are located.

Which check catches which bug (float64; ``check_equivalence`` against the scratch
backend, ``gradcheck`` on the broken backend alone):

=====================  ==================  ===========================  =====================
class                  check_equivalence   first divergence             gradcheck fails
=====================  ==================  ===========================  =====================
Wrong<act>Grad (x5)    caught              dz2 (top hidden layer)       W0 b0 W1 b1 W2 b2
GradTimesN             caught              dW1                          W1
TransposedWeightGrad   caught              dW1                          W1
SwappedLayerGrads      caught              dW2 (the first of the two)   W1 b1 W2 b2
MissingMask            caught              dz1                          W0 b0 W1 b1
NaiveSoftmax           caught (large x)    dz3 (output layer, NaN)      every parameter (NaN)
MissingBias            caught (logits)     z1                           b1
=====================  ==================  ===========================  =====================

A wrong activation derivative breaks every hidden layer; the localiser names the first
one the backward pass reaches. NaiveSoftmax is right on ordinary inputs and is caught
only where the logits overflow exp.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness import ModelSpec, OptimizerSpec, check_equivalence, make_backend
from harness.gradients.finite_diff import gradcheck
from tests import broken_backends as bb

DIMS = (5, 8, 8, 8, 3)  # layer 1 is square; layers 1 and 2 have the same shape
HIDDEN_PARAMS = {"W0", "b0", "W1", "b1", "W2", "b2"}
ALL_PARAMS = HIDDEN_PARAMS | {"W3", "b3"}
LARGE = 1e5  # input scale at which NaiveSoftmax overflows

# class name, activation, input scale, first divergence (quantity, layer), gradcheck failures
CASES = [
    ("WrongReluGrad", "relu", 1.0, ("dz2", 2), HIDDEN_PARAMS),
    ("WrongTanhGrad", "tanh", 1.0, ("dz2", 2), HIDDEN_PARAMS),
    ("WrongSigmoidGrad", "sigmoid", 1.0, ("dz2", 2), HIDDEN_PARAMS),
    ("WrongLeakyReluGrad", "leaky_relu", 1.0, ("dz2", 2), HIDDEN_PARAMS),
    ("WrongGeluGrad", "gelu", 1.0, ("dz2", 2), HIDDEN_PARAMS),
    ("GradTimesN", "tanh", 1.0, ("dW1", 1), {"W1"}),
    ("TransposedWeightGrad", "relu", 1.0, ("dW1", 1), {"W1"}),
    ("SwappedLayerGrads", "gelu", 1.0, ("dW2", 2), {"W1", "b1", "W2", "b2"}),
    ("MissingMask", "relu", 1.0, ("dz1", 1), {"W0", "b0", "W1", "b1"}),
    ("NaiveSoftmax", "relu", LARGE, ("dz3", 3), ALL_PARAMS),
    ("MissingBias", "sigmoid", 1.0, ("z1", 1), {"b1"}),
]
IDS = [c[0] for c in CASES]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def data(batch):
    return batch(n=16, d=5, c=3, seed=7)


def build(name, activation, dtype="float64", seed=3):
    spec = ModelSpec(DIMS, activation=activation, dtype=dtype, seed=seed)
    opt = OptimizerSpec("sgd", lr=0.1, weight_decay=0.0)
    return (make_backend("scratch", spec, opt),
            make_backend(f"tests.broken_backends:{name}", spec, opt))


def test_every_wrong_derivative_has_a_case():
    assert {cls.__name__ for cls in bb.WRONG_DERIVATIVES.values()} <= set(IDS)
    from harness.model.specs import ACTIVATION_NAMES

    assert set(bb.WRONG_DERIVATIVES) == set(ACTIVATION_NAMES)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "leaky_relu", "gelu"])
def test_the_unbroken_base_passes_both_checks(activation, data):
    """The control: failures below come from the bugs, not from the shared base class."""
    x, y = data
    ref, cand = build("HookedMLP", activation)
    report = check_equivalence(ref, cand, x, y)
    assert report.passed, str(report)
    big = check_equivalence(*build("HookedMLP", "relu"), x * LARGE, y)
    assert big.passed, str(big)
    assert gradcheck(cand, x, y).passed


@pytest.mark.parametrize("name, activation, scale, where, bad_params", CASES, ids=IDS)
def test_check_equivalence_catches_and_localises(name, activation, scale, where, bad_params,
                                                 data):
    x, y = data
    ref, cand = build(name, activation)
    if name == "NaiveSoftmax":  # precondition: logits beyond exp's float64 range
        assert np.abs(ref.forward(x * scale)).max() > 710
    report = check_equivalence(ref, cand, x * scale, y, candidate_name=name)
    assert not report.passed
    assert (report.divergence["quantity"], report.divergence["layer"]) == where
    assert report.divergence["localised"] is True
    assert f"layer {where[1]}" in str(report)
    json.dumps(report.to_dict(), allow_nan=False)


@pytest.mark.parametrize("name, activation, scale, where, bad_params", CASES, ids=IDS)
def test_gradcheck_catches_and_names_the_parameters(name, activation, scale, where, bad_params,
                                                    data):
    x, y = data
    _, cand = build(name, activation)
    report = gradcheck(cand, x * scale, y, max_entries=24)
    assert not report.passed
    assert {p.name for p in report.params if not p.passed} == bad_params, str(report)
    assert "FAIL" in str(report)
    json.dumps(report.to_dict(), allow_nan=False)


@pytest.mark.parametrize("name, activation, scale, where, bad_params", CASES, ids=IDS)
def test_float32_check_equivalence_catches_them_too(name, activation, scale, where,
                                                    bad_params, data):
    x, y = data
    scale = 1e3 if name == "NaiveSoftmax" else scale  # float32 exp overflows beyond 88
    ref, cand = build(name, activation, dtype="float32")
    report = check_equivalence(ref, cand, x * scale, y)
    assert not report.passed
    assert (report.divergence["quantity"], report.divergence["layer"]) == where


def test_gradcheck_of_a_float32_broken_backend_goes_through_its_float64_hook(data):
    x, y = data
    _, cand = build("MissingMask", "relu", dtype="float32")
    report = gradcheck(cand, x, y)
    assert report.precision == "float64 copy via the class's as_float64()"
    assert report.model_dtype == "float32" and report.checked_dtype == "float64"
    assert {p.name for p in report.params if not p.passed} == {"W0", "b0", "W1", "b1"}


def test_naive_softmax_is_right_on_ordinary_inputs(data):
    """So the bug is the missing shift, seen only when exp overflows."""
    x, y = data
    ref, cand = build("NaiveSoftmax", "relu")
    assert check_equivalence(ref, cand, x, y).passed
    assert gradcheck(cand, x, y).passed


def test_swapped_gradients_are_told_apart_only_because_layers_1_and_2_differ(data):
    x, y = data
    ref, cand = build("SwappedLayerGrads", "gelu")
    report = check_equivalence(ref, cand, x, y)
    bad = [r.quantity for r in report.rows if not r.passed and r.quantity.startswith("grads")]
    assert bad == ["grads['W1']", "grads['b1']", "grads['W2']", "grads['b2']"]


def test_a_broken_backend_without_intermediates_still_gets_the_parameter_verdict(data):
    x, y = data
    ref, cand = build("GradsWithoutIntermediates", "tanh")
    report = check_equivalence(ref, cand, x, y)
    assert [r.quantity for r in report.rows if not r.passed][0] == "grads['W1']"
    assert report.divergence is None and "no layer-level localisation" in report.notes[0]
    gc = gradcheck(cand, x, y)
    # tanh is smooth: no kink test, with or without intermediates
    assert gc.kink_detection == "none needed (tanh is smooth)"
    assert {p.name for p in gc.params if not p.passed} == {"W1"}


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_the_localiser_follows_the_broken_layer(layer, data):
    x, y = data
    spec = ModelSpec(DIMS, activation="tanh", seed=1)
    ref = make_backend("scratch", spec)
    for cls, quantity in ((bb.MissingMask, "dz"), (bb.GradTimesN, "dW"),
                          (bb.MissingBias, "z")):
        cand = cls(spec)
        cand.broken_layer = layer
        div = check_equivalence(ref, cand, x, y).divergence
        assert (div["quantity"], div["layer"]) == (f"{quantity}{layer}", layer), cls.__name__

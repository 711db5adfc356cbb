"""locate_divergence / first_divergence: the first layer and quantity where two models part."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness import ModelSpec, check_equivalence, make_backend
from harness.diagnose.localize import (
    describe,
    first_divergence,
    intermediate_order,
    locate_divergence,
    parse_name,
)
from tests.broken_backends import GradTimesN, HookedMLP, MissingBias, MissingMask

DIMS = (5, 8, 8, 8, 3)
TOL = dict(rtol=1e-7, atol=1e-12)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def scratch_and(cls, activation="relu", dims=DIMS, seed=3):
    spec = ModelSpec(dims, activation=activation, seed=seed)
    return make_backend("scratch", spec), cls(spec)


class GradsDisagreeWithIntermediates(HookedMLP):
    """loss_and_grads doubles b2, while intermediates stay right."""

    def loss_and_grads(self, x, y):
        loss, grads = super().loss_and_grads(x, y)
        grads["b2"] = 2 * grads["b2"]
        return loss, grads


class NoIntermediates(HookedMLP):
    intermediates = None  # blocks the optional protocol member

    def loss_and_grads(self, x, y):
        loss, grads = super().loss_and_grads(x, y)
        grads["W0"] = -grads["W0"]
        return loss, grads


def test_intermediate_order_is_the_computation_order():
    assert intermediate_order((5, 8, 3)) == ["z0", "a0", "z1", "dz1", "dW1", "db1",
                                             "dz0", "dW0", "db0"]
    assert intermediate_order((4, 2)) == ["z0", "dz0", "dW0", "db0"]


def test_the_built_in_backends_produce_names_in_that_order(batch):
    x, y = batch(n=6, d=5, c=3)
    for name in ("scratch", "torch"):
        model = make_backend(name, ModelSpec(DIMS))
        assert list(model.intermediates(x, y)) == intermediate_order(DIMS)


def test_names_are_parsed_and_described():
    assert parse_name("dz12") == ("dz", 12, "backward")
    assert parse_name("a0") == ("a", 0, "forward")
    assert parse_name("logits") == (None, None, None)
    assert describe("dW2") == "dL/dW_2 (dW2)"
    assert describe("z1") == "pre-activation z_1 (z1)"


def test_first_divergence_finds_a_one_in_a_million_error_in_one_entry(batch):
    x, y = batch(n=9, d=5, c=3)
    ref = make_backend("scratch", ModelSpec(DIMS, activation="tanh")).intermediates(x, y)
    assert first_divergence(ref, {k: v.copy() for k, v in ref.items()}, **TOL) is None
    cand = {k: v.copy() for k, v in ref.items()}
    cand["dz1"][4, 2] *= 1 + 1e-6
    found = first_divergence(ref, cand, **TOL, order=intermediate_order(DIMS))
    assert (found["quantity"], found["layer"], found["phase"], found["kind"]) == (
        "dz1", 1, "backward", "dL/dz")
    assert found["worst_index"] == [4, 2] and found["n_mismatched"] == 1
    assert found["agreed"] == intermediate_order(DIMS)[:intermediate_order(DIMS).index("dz1")]
    assert "layer 1, backward: dL/dz_1 (dz1): 1 / 72 elements differ" in found["message"]


def test_a_forward_difference_is_reported_before_a_backward_one(batch):
    x, y = batch(n=9, d=5, c=3)
    ref = make_backend("scratch", ModelSpec(DIMS)).intermediates(x, y)
    cand = {k: v.copy() for k, v in ref.items()}
    cand["dz0"] += 1.0
    cand["a1"] = cand["a1"] + 1e-3
    found = first_divergence(ref, cand, **TOL, order=intermediate_order(DIMS))
    assert (found["quantity"], found["layer"], found["phase"]) == ("a1", 1, "forward")


def test_a_missing_or_non_finite_intermediate_is_a_divergence(batch):
    x, y = batch(n=4, d=5, c=3)
    ref = make_backend("scratch", ModelSpec(DIMS)).intermediates(x, y)
    cand = {k: v for k, v in ref.items() if k != "z2"}
    found = first_divergence(ref, cand, **TOL)
    assert found["quantity"] == "z2" and "missing" in found["message"]
    cand = dict(ref, db3=np.full_like(ref["db3"], np.nan))
    found = first_divergence(ref, cand, **TOL)
    assert found["quantity"] == "db3" and "non-finite" in found["message"]
    json.dumps(found, allow_nan=False)


def test_check_equivalence_names_the_layer_and_quantity_of_a_backward_bug(batch):
    x, y = batch(n=16, d=5, c=3, seed=2)
    ref, cand = scratch_and(MissingMask)
    report = check_equivalence(ref, cand, x, y, candidate_name="MissingMask")
    assert not report.passed
    div = report.divergence
    assert (div["quantity"], div["layer"], div["phase"], div["localised"]) == (
        "dz1", 1, "backward", True)
    text = str(report)
    assert "first divergence: MissingMask parts from reference at layer 1, backward: " \
           "dL/dz_1 (dz1)" in text
    out = report.to_dict()
    assert out["divergence"]["quantity"] == "dz1" and out["divergence"]["layer"] == 1
    json.dumps(out, allow_nan=False)


def test_check_equivalence_names_the_layer_of_a_forward_bug(batch):
    x, y = batch(n=16, d=5, c=3, seed=2)
    ref, cand = scratch_and(MissingBias)
    report = check_equivalence(ref, cand, x, y)
    assert report.first_failure.quantity == "logits"
    assert (report.divergence["quantity"], report.divergence["phase"]) == ("z1", "forward")
    assert report.divergence["agreed"] == ["z0", "a0"]


def test_torch_reference_localises_too(batch):
    x, y = batch(n=16, d=5, c=3, seed=2)
    spec = ModelSpec(DIMS, activation="tanh", seed=3)
    report = check_equivalence(make_backend("torch", spec), GradTimesN(spec), x, y)
    assert (report.divergence["quantity"], report.divergence["layer"]) == ("dW1", 1)


def test_when_intermediates_agree_the_report_says_where_the_difference_is(batch):
    x, y = batch(n=16, d=5, c=3, seed=2)
    ref, cand = scratch_and(GradsDisagreeWithIntermediates)
    report = check_equivalence(ref, cand, x, y, candidate_name="cand")
    assert [r.quantity for r in report.rows if not r.passed][0] == "grads['b2']"
    div = report.divergence
    assert div["localised"] is False and div["quantity"] is None and div["layer"] is None
    assert div["message"].startswith("all 19 intermediates agree")
    assert div["inconsistencies"] == [
        "cand's loss_and_grads()['b2'] differs from its own intermediates['db2']"]
    assert "first divergence: all 19 intermediates agree" in str(report)


def test_a_class_without_intermediates_keeps_the_parameter_level_verdict(batch):
    x, y = batch(n=16, d=5, c=3, seed=2)
    ref, cand = scratch_and(NoIntermediates)
    assert locate_divergence(ref, cand, x, y, **TOL) is None
    report = check_equivalence(ref, cand, x, y, candidate_name="mine")
    assert not report.passed and report.first_failure.quantity == "grads['W0']"
    assert report.divergence is None
    assert report.notes == ["no layer-level localisation: mine does not implement "
                            "intermediates(x, y); the parameter-level verdict above stands"]
    assert report.notes[0] in str(report) and report.to_dict()["notes"] == report.notes


def test_agreeing_backends_have_no_divergence_and_no_notes(batch):
    x, y = batch(n=16, d=5, c=3, seed=2)
    spec = ModelSpec(DIMS, activation="gelu")
    report = check_equivalence(make_backend("scratch", spec), make_backend("torch", spec), x, y)
    assert report.passed and report.divergence is None and report.notes == []

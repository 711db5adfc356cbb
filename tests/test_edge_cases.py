"""Numerical edge cases: the backends still agree and the gradient check still gives a verdict.

A class absent from the batch, a batch of one, a hidden layer of one unit, dead
ReLUs (every pre-activation negative), very large and very small feature scales,
duplicate samples; each in float64 and float32, through the library, and the
awkward ones through the command line too.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.compare.equivalence import check_equivalence
from harness.gradients.finite_diff import gradcheck
from harness.model.registry import make_backend
from harness.model.specs import ModelSpec, OptimizerSpec


def batch(n=24, d=5, c=3, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * scale, rng.integers(0, c, size=n)


def absent_class():
    x, y = batch()
    return x, y % 2, (5, 8, 3)  # classes 0 and 1 only; class 2 never appears


def one_sample():
    x, y = batch(n=1)
    return x, y, (5, 8, 3)


def one_unit():
    x, y = batch()
    return x, y, (5, 1, 3)


def large_scale():
    x, y = batch(scale=1e6)
    return x, y, (5, 8, 3)


def small_scale():
    x, y = batch(scale=1e-8)
    return x, y, (5, 8, 3)


def duplicates():
    x, y = batch(n=6)
    return np.concatenate([x] * 4), np.concatenate([y] * 4), (5, 8, 3)


def mixed_scales():
    x, y = batch()
    return x * np.array([1e-6, 1.0, 1e3, 1e6, 1.0]), y, (5, 8, 3)


CASES = {"absent class": absent_class, "batch of one": one_sample,
         "hidden layer of one unit": one_unit, "features of scale 1e6": large_scale,
         "features of scale 1e-8": small_scale, "duplicate samples": duplicates,
         "features of mixed scales": mixed_scales}


def models(dims, dtype, activation="relu", optimizer=None, params=None):
    spec = ModelSpec(dims, activation=activation, dtype=dtype, seed=1)
    opt = optimizer or OptimizerSpec("adam", lr=1e-3, weight_decay=1e-4)
    ref, cand = make_backend("scratch", spec, opt), make_backend("torch", spec, opt)
    if params is not None:
        ref.set_params(params)
    return ref, cand


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_backends_agree(case, dtype):
    x, y, dims = CASES[case]()
    for optimizer in (OptimizerSpec("adam", lr=1e-3, weight_decay=1e-4),
                      OptimizerSpec("sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.0)):
        ref, cand = models(dims, dtype, optimizer=optimizer)
        report = check_equivalence(ref, cand, x, y)
        assert report.passed, f"{case} {dtype} {optimizer.name}\n{report}"


@pytest.mark.parametrize("backend", ["scratch", "torch"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_gradient_check_gives_a_verdict(case, backend):
    x, y, dims = CASES[case]()
    for activation in ("relu", "tanh"):
        model = make_backend(backend, ModelSpec(dims, activation=activation, seed=1))
        report = gradcheck(model, x, y, seed=0)
        assert report.passed, f"{case} {backend} {activation}\n{report}"
        checked = sum(p.checked for p in report.params)
        assert checked == sum(p.size for p in report.params)  # every entry looked at


def dead_relu_params(dims=(5, 8, 3)):
    """Every hidden pre-activation negative for inputs of scale ~1: no gradient reaches W0."""
    rng = np.random.default_rng(3)
    return {"W0": rng.normal(size=(dims[0], dims[1])) * 0.01, "b0": np.full(dims[1], -100.0),
            "W1": rng.normal(size=(dims[1], dims[2])), "b1": rng.normal(size=dims[2])}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_dead_relus_agree_and_their_zero_gradients_check(dtype):
    x, y = batch()
    params = {k: v.astype(dtype) for k, v in dead_relu_params().items()}
    ref, cand = models((5, 8, 3), dtype, params=params)
    assert np.all(ref.intermediates(x.astype(dtype), y)["z0"] < 0)
    _, grads = ref.loss_and_grads(x.astype(dtype), y)
    assert not grads["W0"].any() and not grads["b0"].any()
    report = check_equivalence(ref, cand, x, y)
    assert report.passed, report
    for backend in ("scratch", "torch"):
        model = make_backend(backend, ModelSpec((5, 8, 3), dtype=dtype, seed=1))
        model.set_params(params)
        check = gradcheck(model, x, y)
        assert check.passed, check
        w0 = next(p for p in check.params if p.name == "W0")
        assert w0.max_abs_err == 0.0  # zero analytic and zero numerical


def test_relu_kinks_are_skipped_not_failed():
    """Pre-activations within eps of zero: the check skips those entries, never fails them.

    Here every W0 and b0 entry sits on a kink, so those two are NOT CHECKED (not a pass).
    """
    x, y = batch()
    params = make_backend("scratch", ModelSpec((5, 8, 3), seed=2)).get_params()
    z = x @ params["W0"]
    params["b0"] = -z[0]  # sample 0 sits exactly on every hidden unit's kink
    for backend in ("scratch", "torch"):
        model = make_backend(backend, ModelSpec((5, 8, 3), seed=2))
        model.set_params(params)
        report = gradcheck(model, x, y)
        assert report.first_failure is None, report
        assert [p.verdict for p in report.params] == ["NOT CHECKED", "NOT CHECKED", "PASS",
                                                      "PASS"]
        assert report.status == "NOT CHECKED" and not report.passed
        assert sum(p.kinks for p in report.params) > 0


# ------------------------------------------------------------------ the command line
def test_batch_of_one_and_a_single_hidden_unit_through_train(capsys):
    from harness.cli import main

    code = main(["train", "--dataset", "iris", "--dims", "4,1,3", "--batch-size", "1",
                 "--epochs", "1", "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9",
                 "--quiet", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["passed"] and out["steps"] == 120


def test_duplicates_and_huge_features_through_check_cv_and_gradcheck(tmp_path, capsys):
    from harness.cli import main

    x, y = batch(n=10, d=4, seed=5)
    rows = np.concatenate([x] * 3) * np.array([1e7, 1.0, 1e-7, 3.0])  # duplicates, scales
    labels = np.concatenate([y] * 3)
    path = tmp_path / "odd.csv"
    lines = ["a,b,c,d,label"] + [",".join(repr(float(v)) for v in r) + f",k{lab}"
                                 for r, lab in zip(rows, labels)]
    path.write_text("\n".join(lines) + "\n")
    assert main(["check", "--data", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"]
    assert main(["gradcheck", "--data", str(path), "--backend", "torch", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"]
    assert main(["cv", "--data", str(path), "--folds", "2", "--no-stratify", "--epochs", "2",
                 "--batch-size", "4", "--min-agreement", "1", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"]

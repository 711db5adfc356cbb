"""The scratch optimizers against torch.optim, step by step, in float64 and float32."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.model.specs import OptimizerSpec
from scratch import optimizers
from scratch.optimizers import SGD, Adam, AdamW, make_optimizer
from torch_impl import build_torch_optimizer

SHAPES = {"W0": (6, 5), "b0": (5,), "W1": (5, 3), "b1": (3,)}

#: (rtol, atol) per dtype; atol is scaled by max(1, max|expected|) as in harness.compare.equivalence.
#: float64 updates differ from torch.optim's by fused multiply-adds only (~1e-16).
TOL = {np.float64: (1e-12, 1e-14), np.float32: (1e-5, 1e-6)}

CONFIGS = [
    OptimizerSpec("sgd", lr=0.1, weight_decay=0.0),
    OptimizerSpec("sgd", lr=0.1, weight_decay=0.05),
    OptimizerSpec("sgd", lr=0.05, momentum=0.9, weight_decay=0.0),
    OptimizerSpec("sgd", lr=0.05, momentum=0.9, weight_decay=0.01),
    OptimizerSpec("sgd", lr=0.05, momentum=0.5, nesterov=True, weight_decay=0.01),
    OptimizerSpec("adam", lr=1e-2, weight_decay=0.0),
    OptimizerSpec("adam", lr=1e-2, weight_decay=0.1),
    OptimizerSpec("adam", lr=3e-3, betas=(0.3, 0.6), eps=1e-3, weight_decay=0.01),
    OptimizerSpec("adamw", lr=1e-2, weight_decay=0.0),
    OptimizerSpec("adamw", lr=1e-2, weight_decay=0.1),
    OptimizerSpec("adamw", lr=1e-2, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.5),
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _assert_close(actual, expected, dtype, what):
    rtol, atol = TOL[dtype]
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=rtol,
                               atol=atol * scale, err_msg=what)


def _torch_state(opt, tensor, key):
    return opt.state[tensor][key].detach().numpy()


def run_side_by_side(spec: OptimizerSpec, dtype, *, steps=8, seed=0, optimizer=None):
    """Apply the same gradients to a scratch optimizer and torch.optim; compare each step.

    Gradients change scale from step to step (1e-4 .. 10), some entries are exactly
    zero, so Adam's normalisation and eps and SGD's weight decay all matter.
    """
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s).astype(dtype) for k, s in SHAPES.items()}
    tensors = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in params.items()}
    mine = optimizer if optimizer is not None else make_optimizer(**spec.to_dict())
    theirs = build_torch_optimizer(spec, list(tensors.values()))
    for t in range(1, steps + 1):
        grads = {}
        for k, s in SHAPES.items():
            g = rng.normal(size=s) * 10.0 ** rng.uniform(-4, 1)
            g[rng.random(size=s) < 0.2] = 0.0
            grads[k] = g.astype(dtype)
        mine.step(params, grads)
        for k, p in tensors.items():
            p.grad = torch.from_numpy(grads[k].copy())
        theirs.step()
        for k, p in tensors.items():
            _assert_close(params[k], p.detach().numpy(), dtype, f"{spec} step {t} param {k}")
            assert params[k].dtype == dtype
            # the optimizer state too, not only its effect on the parameters
            if spec.name == "sgd" and spec.momentum:
                _assert_close(mine.buffers[k], _torch_state(theirs, p, "momentum_buffer"),
                              dtype, f"step {t} momentum buffer {k}")
            if spec.name in ("adam", "adamw"):
                _assert_close(mine.m[k], _torch_state(theirs, p, "exp_avg"), dtype,
                              f"step {t} exp_avg {k}")
                _assert_close(mine.v[k], _torch_state(theirs, p, "exp_avg_sq"), dtype,
                              f"step {t} exp_avg_sq {k}")
                assert mine.steps[k] == int(theirs.state[p]["step"])
    return params


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("spec", CONFIGS, ids=lambda s: "-".join(
    f"{k}={v}" for k, v in s.to_dict().items()
    if v != OptimizerSpec("sgd", lr=0.01, weight_decay=0.0).to_dict().get(k)
    or k == "name"))
def test_scratch_update_equals_torch_optim_over_several_steps(spec, dtype):
    run_side_by_side(spec, dtype)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["sgd", "adam", "adamw"]),
    lr=st.floats(1e-4, 1.0),
    momentum=st.sampled_from([0.0, 0.5, 0.9, 0.99]),
    nesterov=st.booleans(),
    beta1=st.floats(0.0, 0.99),
    beta2=st.floats(0.0, 0.9999),
    eps=st.sampled_from([1e-8, 1e-6, 1e-3]),
    weight_decay=st.sampled_from([0.0, 1e-4, 0.01, 0.3]),
    seed=st.integers(0, 2**16),
)
def test_any_valid_hyperparameters_match_torch_optim_in_float64(name, lr, momentum, nesterov,
                                                                beta1, beta2, eps,
                                                                weight_decay, seed):
    spec = OptimizerSpec(name, lr=lr, momentum=momentum if name == "sgd" else 0.0,
                         nesterov=nesterov and name == "sgd" and momentum > 0,
                         betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)
    run_side_by_side(spec, np.float64, steps=5, seed=seed)


# ------------------------------------------------------- the rules, independently of torch
def test_sgd_weight_decay_reaches_biases_and_the_update_is_in_place():
    p = {"W0": np.ones((2, 2)), "b0": np.full(2, 2.0)}
    arrays = {k: v for k, v in p.items()}
    SGD(lr=0.1, weight_decay=0.5).step(p, {k: np.zeros_like(v) for k, v in p.items()})
    np.testing.assert_allclose(p["W0"], 1 - 0.1 * 0.5 * 1)
    np.testing.assert_allclose(p["b0"], 2 - 0.1 * 0.5 * 2)
    assert all(p[k] is arrays[k] for k in p)


def test_sgd_momentum_first_step_copies_the_gradient_then_accumulates_without_dampening():
    p = {"b0": np.zeros(1)}
    opt = SGD(lr=1.0, momentum=0.5)
    for g in (4.0, 2.0):
        opt.step(p, {"b0": np.array([g])})
    # b1 = 4; b2 = 0.5 * 4 + 2 = 4 (dampening 0); p = -4 - 4
    assert opt.buffers["b0"][0] == 4.0 and p["b0"][0] == -8.0
    q = {"b0": np.zeros(1)}
    nesterov = SGD(lr=1.0, momentum=0.5, nesterov=True)
    for g in (4.0, 2.0):
        nesterov.step(q, {"b0": np.array([g])})
    # g + m b: step 1: 4 + 0.5 * 4 = 6; step 2: 2 + 0.5 * 4 = 4
    assert q["b0"][0] == -10.0


def test_adam_first_step_is_bias_corrected_and_adds_eps_after_the_root():
    g, lr, eps = np.array([0.5, -2.0, 0.0]), 0.1, 0.25
    p = {"W0": np.zeros((1, 3))}
    Adam(lr=lr, eps=eps).step(p, {"W0": g.reshape(1, 3)})
    # m_hat = g, sqrt(v_hat) = |g|: step = lr * g / (|g| + eps)
    np.testing.assert_allclose(p["W0"][0], -lr * g / (np.abs(g) + eps), rtol=1e-14)


def test_adam_weight_decay_is_l2_in_the_gradient_and_adamw_decays_the_parameter():
    zero = {"b0": np.zeros(2)}
    p_adam = {"b0": np.array([1.0, -3.0])}
    Adam(lr=0.1, weight_decay=0.01, eps=0.0).step(p_adam, zero)
    # gradient wd * p, normalised by Adam: a full lr step against the sign of p
    np.testing.assert_allclose(p_adam["b0"], [0.9, -2.9], rtol=1e-12)
    p_adamw = {"b0": np.array([1.0, -3.0])}
    AdamW(lr=0.1, weight_decay=0.01, eps=1e-8).step(p_adamw, zero)
    # decoupled: p (1 - lr wd), and a zero gradient moves nothing else
    np.testing.assert_allclose(p_adamw["b0"], [1.0 * 0.999, -3.0 * 0.999], rtol=1e-12)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_float32_stays_float32_in_parameters_and_state(name):
    spec = OptimizerSpec(name, lr=0.01, momentum=0.9 if name == "sgd" else 0.0,
                         weight_decay=0.01)
    opt = make_optimizer(**spec.to_dict())
    p = {"W0": np.ones((3, 2), np.float32), "b0": np.ones(2, np.float32)}
    arrays = dict(p)
    for _ in range(3):
        opt.step(p, {k: np.full_like(v, 0.5) for k, v in p.items()})
    assert all(p[k] is arrays[k] and p[k].dtype == np.float32 for k in p)
    state = opt.buffers if name == "sgd" else {**opt.m, **{f"v{k}": v for k, v in opt.v.items()}}
    assert state and all(v.dtype == np.float32 for v in state.values())


def test_make_optimizer_builds_each_class_with_its_settings_and_refuses_unknown_names():
    sgd = make_optimizer("sgd", lr=0.2, momentum=0.9, nesterov=True, weight_decay=0.1)
    assert type(sgd) is SGD and (sgd.lr, sgd.momentum, sgd.nesterov, sgd.weight_decay) == (
        0.2, 0.9, True, 0.1)
    adam = make_optimizer("adam", lr=0.3, betas=(0.8, 0.9), eps=1e-4, weight_decay=0.2)
    assert type(adam) is Adam and not adam.decoupled
    assert (adam.lr, adam.beta1, adam.beta2, adam.eps, adam.weight_decay) == (
        0.3, 0.8, 0.9, 1e-4, 0.2)
    assert type(make_optimizer("adamw")) is AdamW and AdamW.decoupled
    with pytest.raises(ValueError, match="unknown optimizer 'lamb'"):
        make_optimizer("lamb")


def test_a_wrong_rule_is_caught_by_the_step_by_step_comparison():
    """The comparison above can fail: Adam with AdamW's decay does not pass as Adam."""

    class DecoupledAdam(Adam):
        decoupled = True

    spec = OptimizerSpec("adam", lr=1e-2, weight_decay=0.1)
    with pytest.raises(AssertionError, match="step 1 param W0"):
        run_side_by_side(spec, np.float64,
                         optimizer=DecoupledAdam(lr=1e-2, weight_decay=0.1))


ALL_RULES = [OptimizerSpec("sgd", lr=0.05, momentum=0.9, weight_decay=0.01),
             OptimizerSpec("sgd", lr=0.05, momentum=0.5, nesterov=True, weight_decay=0.0),
             OptimizerSpec("sgd", lr=0.05, weight_decay=0.1),
             OptimizerSpec("adam", lr=1e-2, weight_decay=0.1),
             OptimizerSpec("adamw", lr=1e-2, betas=(0.0, 0.9), weight_decay=0.5)]


def _steps(spec, dtype, steps=4):
    """Parameters after ``steps`` updates of a large and a small parameter."""
    rng = np.random.default_rng(3)
    params = {"W0": rng.standard_normal((301, 7)).astype(dtype),
              "b0": rng.standard_normal(7).astype(dtype)}
    opt = make_optimizer(**spec.to_dict())
    for _ in range(steps):
        opt.step(params, {k: (rng.standard_normal(v.shape) * 10.0 ** rng.uniform(-3, 1))
                          .astype(dtype) for k, v in params.items()})
    return params, opt


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("spec", ALL_RULES, ids=lambda s: f"{s.name}-{s.momentum}-{s.nesterov}")
def test_block_by_block_updates_equal_whole_array_updates_bit_for_bit(spec, dtype, monkeypatch):
    """Blocks of 64 elements (W0 has 2107: 33 blocks, the last one partial) give the
    very bits of one block per parameter, state included."""
    whole, whole_opt = _steps(spec, dtype)
    monkeypatch.setattr(optimizers, "BLOCK", 64)
    blocked, blocked_opt = _steps(spec, dtype)
    for k in whole:
        np.testing.assert_array_equal(blocked[k], whole[k], err_msg=k)
    state = ("buffers",) if spec.name == "sgd" else ("m", "v")
    for attr in state:
        for k, v in getattr(whole_opt, attr).items():
            np.testing.assert_array_equal(getattr(blocked_opt, attr)[k], v, err_msg=f"{attr} {k}")


@pytest.mark.parametrize("spec", ALL_RULES, ids=lambda s: f"{s.name}-{s.momentum}-{s.nesterov}")
def test_an_update_makes_no_temporary_of_parameter_size(spec):
    """After the first step (which creates the state), a step allocates at most its
    work arrays: a few blocks, far below the 4 MB parameter."""
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((1024, 1024)).astype(np.float32)}
    grads = {"W": rng.standard_normal((1024, 1024)).astype(np.float32)}
    opt = make_optimizer(**spec.to_dict())
    opt.step(params, grads)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        opt.step(params, grads)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < params["W"].nbytes / 8, peak


def test_block_by_block_refuses_a_non_contiguous_parameter():
    p = np.ones((512, 256), np.float32)[:, ::2]  # a strided view
    with pytest.raises(ValueError, match="must be C-contiguous"):
        SGD(lr=0.1).step({"W": p}, {"W": np.ones_like(p)})

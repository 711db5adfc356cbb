"""RMSprop, Adagrad, learning-rate schedules and gradient clipping: the fast scratch rules,
the readable ones (scratch.optimizers_reference) and torch.optim agree over 60 steps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from harness.model.specs import OptimizerSpec
from scratch import optimizers, optimizers_reference, schedules
from torch_impl.model import build_torch_optimizer, build_torch_scheduler, clip_gradients

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPES = {"W0": (7, 5), "b0": (5,), "W1": (5, 3), "b1": (3,)}
STEPS = 60

#: every option of every rule, old and new (the readable module covers them all)
RULES = [
    dict(name="sgd", lr=0.05),
    dict(name="sgd", lr=0.05, momentum=0.9, weight_decay=0.01),
    dict(name="sgd", lr=0.05, momentum=0.5, nesterov=True, weight_decay=0.1,
         weight_decay_on="weights"),
    dict(name="adam", lr=1e-2, weight_decay=0.1),
    dict(name="adam", lr=1e-2, betas=(0.5, 0.9), weight_decay=0.1, weight_decay_on="weights"),
    dict(name="adamw", lr=1e-2, weight_decay=0.5),
    dict(name="rmsprop", lr=1e-2),
    dict(name="rmsprop", lr=1e-2, alpha=0.9, eps=1e-6, weight_decay=0.1),
    dict(name="rmsprop", lr=1e-3, momentum=0.9, weight_decay=0.05, weight_decay_on="weights"),
    dict(name="rmsprop", lr=1e-3, centered=True),
    dict(name="rmsprop", lr=1e-3, alpha=0.5, momentum=0.5, centered=True, weight_decay=0.1),
    dict(name="adagrad", lr=0.1),
    dict(name="adagrad", lr=0.1, lr_decay=0.05, initial_accumulator_value=0.5),
    dict(name="adagrad", lr=0.1, eps=1e-10, weight_decay=0.1, weight_decay_on="weights"),
]

#: schedules and clipping, over optimizers whose rate matters in different ways
RECIPES = [
    dict(name="sgd", lr=0.1, lr_schedule="step", step_size=7, gamma=0.5),
    dict(name="adam", lr=1e-2, lr_schedule="exponential", gamma=0.95),
    dict(name="rmsprop", lr=1e-2, lr_schedule="cosine", t_max=25, eta_min=1e-4),
    dict(name="sgd", lr=0.1, momentum=0.9, lr_schedule="cosine", t_max=60),
    dict(name="adagrad", lr=0.1, lr_schedule="inverse_time", decay=0.1),
    dict(name="sgd", lr=0.1, clip_grad_norm=1.0),
    dict(name="adam", lr=1e-2, clip_grad_norm=0.5, weight_decay=0.1),
    dict(name="rmsprop", lr=1e-2, clip_grad_value=0.3),
    dict(name="adagrad", lr=0.1, lr_schedule="step", step_size=5, gamma=0.7,
         clip_grad_norm=2.0, clip_grad_value=1.0),
]


def _ids(kw):
    return "-".join(f"{k}={v}" for k, v in kw.items())


def _gradients(rng, dtype):
    """Gradients from 1e-3 to 10 in scale, some entries exactly zero."""
    grads = {}
    for k, s in SHAPES.items():
        g = rng.normal(size=s) * 10.0 ** rng.uniform(-3, 1)
        g[rng.random(size=s) < 0.2] = 0.0
        grads[k] = g.astype(dtype)
    return grads


def _trajectories(kw, dtype=np.float64, seed=0):
    """Parameters after 60 steps of the same gradients: fast, readable, torch.optim."""
    spec = OptimizerSpec(**kw)
    rng = np.random.default_rng(seed)
    start = {k: rng.normal(size=s).astype(dtype) for k, s in SHAPES.items()}
    fast, readable = ({k: v.copy() for k, v in start.items()} for _ in range(2))
    tensors = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in start.items()}
    opt_fast = optimizers.make_optimizer(**spec.to_dict())
    opt_readable = optimizers_reference.make_optimizer(**spec.to_dict())
    opt_torch = build_torch_optimizer(spec, list(tensors.values()))
    sched = build_torch_scheduler(spec, opt_torch)
    for _ in range(STEPS):
        grads = _gradients(rng, dtype)
        opt_fast.step(fast, {k: g.copy() for k, g in grads.items()})
        opt_readable.step(readable, {k: g.copy() for k, g in grads.items()})
        for k, p in tensors.items():
            p.grad = torch.from_numpy(grads[k].copy())
        clip_gradients(spec, list(tensors.values()))
        opt_torch.step()
        if sched is not None:
            sched.step()
    return fast, readable, {k: p.detach().numpy() for k, p in tensors.items()}


def _ulps(a, b):
    """Largest difference in units of the last place of the arrays' largest magnitude."""
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()), 1e-300)
    return float(np.max(np.abs(a - b)) / np.spacing(scale))


#: a few ulps over 60 steps: torch fuses some multiply-adds where NumPy rounds twice
ULPS = 16


@pytest.mark.parametrize("kw", RULES + RECIPES, ids=_ids)
def test_fast_readable_and_torch_agree_over_60_steps_in_float64(kw):
    fast, readable, theirs = _trajectories(kw)
    for k in SHAPES:
        assert _ulps(fast[k], theirs[k]) <= ULPS, (k, _ulps(fast[k], theirs[k]))
        assert _ulps(readable[k], fast[k]) <= ULPS, (k, _ulps(readable[k], fast[k]))
        assert not np.array_equal(fast[k], np.random.default_rng(0).normal(size=SHAPES[k]))


@pytest.mark.parametrize("kw", RULES[6:] + RECIPES, ids=_ids)
def test_float32_stays_float32_and_agrees_with_torch(kw):
    fast, readable, theirs = _trajectories(kw, np.float32)
    for k in SHAPES:
        assert fast[k].dtype == readable[k].dtype == np.float32
        np.testing.assert_allclose(fast[k], theirs[k], rtol=1e-4, atol=1e-5, err_msg=k)
        np.testing.assert_allclose(readable[k], theirs[k], rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("wrong, right", [
    (dict(name="rmsprop", lr=1e-2, alpha=0.9), dict(name="rmsprop", lr=1e-2)),
    (dict(name="rmsprop", lr=1e-3, centered=True), dict(name="rmsprop", lr=1e-3)),
    (dict(name="adagrad", lr=0.1, lr_decay=0.05), dict(name="adagrad", lr=0.1)),
    (dict(name="sgd", lr=0.1, lr_schedule="step", step_size=6, gamma=0.5),
     dict(name="sgd", lr=0.1, lr_schedule="step", step_size=7, gamma=0.5)),
    (dict(name="sgd", lr=0.1, clip_grad_norm=2.0), dict(name="sgd", lr=0.1, clip_grad_norm=1.0)),
])
def test_the_comparison_tells_options_apart(wrong, right):
    """The agreement above is not vacuous: a neighbouring option moves the parameters."""
    a, _, _ = _trajectories(wrong)
    _, _, b = _trajectories(right)
    assert max(_ulps(a[k], b[k]) for k in SHAPES) > 1e6


def test_schedules_follow_their_closed_forms_and_step_after_the_update():
    """Step t (1-based) uses lr(t - 1): the first update uses the base rate."""
    cases = {
        "step": (dict(step_size=3, gamma=0.5), lambda t: 0.1 * 0.5 ** (t // 3)),
        "exponential": (dict(gamma=0.9), lambda t: 0.1 * 0.9 ** t),
        "inverse_time": (dict(decay=0.2), lambda t: 0.1 / (1 + 0.2 * t)),
        "cosine": (dict(t_max=10, eta_min=0.01),
                   lambda t: 0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * t / 10)) / 2),
    }
    for name, (kw, closed) in cases.items():
        opt = optimizers.make_optimizer("sgd", lr=0.1, lr_schedule=name, **kw)
        p, seen = {"W0": np.zeros(1)}, []
        for _ in range(25):
            before = p["W0"].copy()
            opt.step(p, {"W0": np.ones(1)})
            seen.append(float(before[0] - p["W0"][0]))  # the rate this step used
        np.testing.assert_allclose(seen, [closed(t) for t in range(25)], rtol=1e-12,
                                   err_msg=name)


def test_clip_grad_norm_scales_by_the_global_norm_and_leaves_small_gradients():
    grads = {"W0": np.array([[3.0, 0.0]]), "b0": np.array([4.0])}  # global norm 5
    total = schedules.clip_grad_norm_(grads, 1.0)
    assert total == 5.0
    np.testing.assert_allclose(grads["W0"], [[3 / (5 + 1e-6), 0.0]], rtol=1e-15)
    np.testing.assert_allclose(grads["b0"], [4 / (5 + 1e-6)], rtol=1e-15)
    small = {"W0": np.array([0.3, 0.4])}
    schedules.clip_grad_norm_(small, 1.0)
    np.testing.assert_array_equal(small["W0"], [0.3, 0.4])
    values = {"W0": np.array([-2.0, 0.1, 3.0])}
    schedules.clip_grad_value_(values, 0.5)
    np.testing.assert_array_equal(values["W0"], [-0.5, 0.1, 0.5])


def test_rmsprop_first_step_adds_eps_outside_the_root():
    opt = optimizers.make_optimizer("rmsprop", lr=0.1, alpha=0.75, eps=0.5)
    p = {"W0": np.zeros(1)}
    opt.step(p, {"W0": np.array([2.0])})
    # v = 0.25 * 4 = 1; p = -0.1 * 2 / (sqrt(1) + 0.5)
    assert p["W0"][0] == pytest.approx(-0.1 * 2 / 1.5, rel=1e-15)


def test_adagrad_starts_its_sum_at_the_initial_value_and_decays_the_rate():
    opt = optimizers.make_optimizer("adagrad", lr=1.0, lr_decay=1.0,
                                    initial_accumulator_value=5.0, eps=0.0)
    p = {"W0": np.zeros(1)}
    opt.step(p, {"W0": np.array([2.0])})  # s = 5 + 4 = 9: step 2 / 3, lr 1
    assert p["W0"][0] == pytest.approx(-2 / 3, rel=1e-15)
    opt.step(p, {"W0": np.array([4.0])})  # s = 25: step 4 / 5, lr 1 / 2
    assert p["W0"][0] == pytest.approx(-2 / 3 - 0.4, rel=1e-15)


def test_tables_name_every_optimizer_and_refuse_unknown_names():
    from harness.model.specs import OPTIMIZER_NAMES
    from torch_impl.model import TORCH_OPTIMIZERS

    assert tuple(optimizers.OPTIMIZERS) == tuple(optimizers_reference.OPTIMIZERS) == \
        tuple(TORCH_OPTIMIZERS) == OPTIMIZER_NAMES
    with pytest.raises(ValueError, match="unknown optimizer 'lamb'; choose one of sgd, adam, "
                                         "adamw, rmsprop, adagrad"):
        optimizers.make_optimizer("lamb")
    with pytest.raises(ValueError, match="choose one of sgd, adam, adamw, rmsprop, adagrad"):
        build_torch_optimizer(type("S", (), {"name": "lamb", "lr": 0.1, "weight_decay": 0.0})(),
                              [torch.nn.Parameter(torch.zeros(2))])


@pytest.mark.parametrize("kw, message", [
    (dict(name="rmsprop", alpha=1.0), "`alpha` must be in [0, 1), got 1"),
    (dict(name="adam", centered=True), "`centered` needs the rmsprop optimizer"),
    (dict(name="adagrad", lr_decay=-0.1), "`lr_decay` must be >= 0, got -0.1"),
    (dict(name="adagrad", initial_accumulator_value=-1),
     "`initial_accumulator_value` must be >= 0, got -1"),
    (dict(lr_schedule="linear"), "`lr_schedule` must be one of none, step, inverse_time, "
                                 "cosine, exponential, got 'linear'"),
    (dict(lr_schedule="cosine"), "`t_max` is needed by lr_schedule cosine"),
    (dict(lr_schedule="step", step_size=0), "`step_size` must be an integer >= 1, got 0"),
    (dict(gamma=0.0), "`gamma` must be > 0, got 0"),
    (dict(clip_grad_norm=0.0), "`clip_grad_norm` must be > 0 (or none), got 0"),
    (dict(clip_grad_value=-1.0), "`clip_grad_value` must be > 0 (or none), got -1"),
])
def test_spec_refuses_bad_values_in_one_line(kw, message):
    with pytest.raises(ConfigError) as info:
        OptimizerSpec(**kw)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_spec_describes_and_round_trips_the_new_fields():
    spec = OptimizerSpec("rmsprop", lr=0.01, momentum=0.9, centered=True,
                         lr_schedule="cosine", t_max=50, clip_grad_norm=1.0, weight_decay=0.0)
    assert spec.describe() == ("rmsprop (lr 0.01, alpha 0.99, eps 1e-08, momentum 0.9, "
                               "centered, no weight decay, cosine lr over 50 steps to 0, "
                               "gradients clipped to norm 1)")
    assert OptimizerSpec(**spec.to_dict()) == spec
    assert OptimizerSpec("adagrad", lr=0.01, lr_decay=0.1, weight_decay=0.0).describe() == (
        "adagrad (lr 0.01, lr decay 0.1, initial accumulator 0, eps 1e-08, no weight decay)")


@pytest.mark.parametrize("kw", [RULES[10], RULES[12]], ids=_ids)
def test_block_by_block_equals_whole_array_bit_for_bit(kw, monkeypatch):
    """RMSprop and Adagrad in blocks of 64 elements give the bits of one block."""
    def run():
        rng = np.random.default_rng(3)
        params = {"W0": rng.standard_normal((301, 7)), "b0": rng.standard_normal(7)}
        opt = optimizers.make_optimizer(**OptimizerSpec(**kw).to_dict())
        for _ in range(4):
            opt.step(params, {k: rng.standard_normal(v.shape) for k, v in params.items()})
        return params

    whole = run()
    monkeypatch.setattr(optimizers, "BLOCK", 64)
    blocked = run()
    for k in whole:
        np.testing.assert_array_equal(blocked[k], whole[k], err_msg=k)


# ------------------------------------------------- the full models, through the harness
TRAIN_RECIPES = [
    ["--optimizer", "rmsprop", "--lr", "0.01", "--momentum", "0.5", "--centered"],
    ["--optimizer", "rmsprop", "--lr", "0.01", "--weight-decay-in", "loss",
     "--weight-decay-on", "weights", "--lr-schedule", "exponential", "--gamma", "0.9"],
    ["--optimizer", "adagrad", "--lr", "0.1", "--lr-decay", "0.05", "--initial-accumulator",
     "0.1", "--lr-schedule", "cosine", "--t-max", "50", "--clip-grad-norm", "1"],
    ["--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9", "--lr-schedule", "step",
     "--step-size", "3", "--gamma", "0.5", "--clip-grad-value", "0.05"],
    ["--optimizer", "adam", "--lr", "0.01", "--lr-schedule", "inverse_time", "--decay", "0.1",
     "--clip-grad-norm", "0.1"],
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("flags", TRAIN_RECIPES, ids=lambda f: "-".join(f[1::2][:1] + f[-2:]))
def test_scratch_and_torch_train_alike_through_the_harness(capsys, flags, dtype):
    """``nn-harness train`` between the built-in backends: 10 epochs of iris in batches of
    32 (40 steps), every step's loss and the parameters after each epoch agree."""
    from harness.cli import main

    code = main(["train", "--dataset", "iris", "--dims", "4,8,3", "--epochs", "10",
                 "--batch-size", "32", "--dtype", dtype, "--quiet", *flags])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS: the trajectories agree within tolerance for all 40 steps" in out, out


def test_check_passes_for_rmsprop_between_the_built_in_backends(capsys):
    from harness.cli import main

    for dtype in ("float64", "float32"):
        code = main(["check", "--optimizer", "rmsprop", "--dataset", "iris", "--dims", "4,8,3",
                     "--dtype", dtype])
        out = capsys.readouterr().out
        assert code == 0 and "PASS: all 28 quantities agree" in out, out


@pytest.mark.parametrize("kw", [r for r in RECIPES if r.get("lr_schedule")], ids=_ids)
def test_the_diagnosis_closed_forms_are_the_rates_torch_uses(kw):
    """harness.diagnose.schedules.scheduled_lr(t) is torch's rate after t scheduler steps."""
    from harness.diagnose.schedules import scheduled_lr

    spec = OptimizerSpec(**kw)
    opt = build_torch_optimizer(spec, [torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))])
    sched = build_torch_scheduler(spec, opt)
    for t in range(STEPS):
        assert opt.param_groups[0]["lr"] == pytest.approx(scheduled_lr(spec, t), rel=1e-12), t
        opt.step()
        sched.step()

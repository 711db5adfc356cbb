"""Layer-list networks: scratch against torch's own modules, float64 tight, float32 loose."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from harness.model.layer_spec import from_dims, resolve
from scratch.optimizers import SGD, Adam
from scratch.sequential import Sequential
from torch_impl.model import OptimizerSettings, TorchClassifier
from torch_impl.sequential import HandedDropout, TorchSequential

NET_A = "linear(64),batchnorm,relu,dropout(0.5),linear(10)"
NET_B = "linear(32),layernorm,tanh,dropout(0.2),linear(16),batchnorm,gelu,linear(10)"
NET_C = "linear(16),leaky_relu(0.2),linear(12),sigmoid,batchnorm,linear(10)"
NETS = [NET_A, NET_B, NET_C]
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=2e-4, atol=2e-5)}


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x = data.data[:96].astype(np.float64)
    std = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return x, data.target[:96]


def _pair(spec, dtype="float64", opt=("sgd", {}), **conventions):
    plain = resolve(spec, 64, 10).plain()
    name, kw = opt
    scratch_opt = (SGD if name == "sgd" else Adam)(**kw)
    ours = Sequential(plain, dtype=dtype, seed=0, optimizer=scratch_opt, **conventions)
    theirs = TorchSequential(plain, dtype=dtype, seed=0,
                             optimizer=OptimizerSettings(name=name, **kw), **conventions)
    theirs.set_params(ours.get_params())
    return ours, theirs


def _masks(net, n, rng):
    return [(rng.random((n, layer_width)) >= layer.p).astype(np.float64)
            for layer, layer_width in zip(net.dropouts, _dropout_widths(net))]


def _dropout_widths(net):
    widths, width = [], net.dims[0]
    for name, kw in net.spec:
        width = kw.get("out", width)
        if name == "dropout":
            widths.append(width)
    return widths


def _hand(masks, *nets):
    for net in nets:
        net.set_dropout_masks(masks)


def _close(a, b, dtype):
    np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("spec", NETS)
def test_eval_logits_and_training_pass_with_the_same_masks(spec, dtype, digits):
    x, y = digits
    ours, theirs = _pair(spec, dtype)
    _close(ours.forward(x), theirs.forward(x), dtype)
    masks = _masks(ours, len(x), np.random.default_rng(1))
    _hand(masks, ours, theirs)
    loss_a, grads_a = ours.loss_and_grads(x, y)
    loss_b, grads_b = theirs.loss_and_grads(x, y)
    _close(loss_a, loss_b, dtype)
    assert list(grads_a) == list(grads_b) == list(ours.get_params())
    for name in grads_a:
        _close(grads_a[name], grads_b[name], dtype)
    _hand(masks, ours, theirs)
    inter_a, inter_b = ours.intermediates(x, y), theirs.intermediates(x, y)
    assert list(inter_a) == list(inter_b)
    for name in inter_a:
        _close(inter_a[name], inter_b[name], dtype)
    for name, value in ours.get_buffers().items():  # both training passes updated them
        _close(value, theirs.get_buffers()[name], dtype)


@pytest.mark.parametrize("opt", [("adam", {"lr": 1e-3}), ("sgd", {"lr": 0.05, "momentum": 0.9})])
@pytest.mark.parametrize("spec", [NET_A, NET_B])
def test_buffers_after_5_and_params_after_20_steps(spec, opt, digits):
    x, y = digits
    ours, theirs = _pair(spec, "float64", opt)
    rng = np.random.default_rng(2)
    for step in range(20):
        _hand(_masks(ours, len(x), rng), ours, theirs)
        np.testing.assert_allclose(ours.train_step(x, y), theirs.train_step(x, y), rtol=1e-10)
        if step == 4:
            for name, value in ours.get_buffers().items():
                np.testing.assert_allclose(value, theirs.get_buffers()[name], rtol=1e-10,
                                           atol=1e-11)
    for name, value in ours.get_params().items():
        np.testing.assert_allclose(value, theirs.get_params()[name], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(ours.forward(x), theirs.forward(x), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("recipe", [
    dict(lr_schedule="cosine", t_max=8, clip_grad_norm=0.5),
    dict(lr_schedule="step", step_size=3, gamma=0.5, clip_grad_value=0.01),
])
def test_schedules_and_clipping_step_the_layer_networks_alike(recipe, digits):
    """The layer networks take the optimizer's schedule and clipping on both sides."""
    from harness.model.specs import OptimizerSpec
    from scratch.optimizers import make_optimizer

    x, y = digits
    spec = OptimizerSpec(name="sgd", lr=0.1, momentum=0.9, **recipe)
    plain = resolve(NET_A, 64, 10).plain()
    ours = Sequential(plain, seed=0, optimizer=make_optimizer(**spec.to_dict()))
    theirs = TorchSequential(plain, seed=0, optimizer=spec)
    theirs.set_params(ours.get_params())
    plain_sgd = Sequential(plain, seed=0, optimizer=SGD(lr=0.1, momentum=0.9))
    rng = np.random.default_rng(3)
    for _ in range(10):
        masks = _masks(ours, len(x), rng)
        _hand(masks, ours, theirs, plain_sgd)
        np.testing.assert_allclose(ours.train_step(x, y), theirs.train_step(x, y), rtol=1e-10)
        plain_sgd.train_step(x, y)
    for name, value in ours.get_params().items():
        np.testing.assert_allclose(value, theirs.get_params()[name], rtol=1e-9, atol=1e-11)
    # and the recipe acts: without it the parameters are elsewhere
    assert not np.allclose(ours.get_params()["W0"], plain_sgd.get_params()["W0"])


@pytest.mark.parametrize("conventions", [
    {}, {"running_var": "biased"}, {"momentum": 0.9, "momentum_convention": "cs231n"},
    {"momentum": 0.7, "momentum_convention": "cs231n", "running_var": "biased", "eps": 1e-3}])
def test_running_statistics_follow_the_hand_formulas(conventions, digits):
    x, y = digits
    ours, theirs = _pair("linear(8),batchnorm,linear(10)", **conventions)
    m = conventions.get("momentum", 0.1)
    w = m if conventions.get("momentum_convention", "torch") == "torch" else 1 - m
    z = x @ ours.get_params()["W0"] + ours.get_params()["b0"]
    n = len(x)
    var = z.var(axis=0) * (n / (n - 1) if conventions.get("running_var") != "biased" else 1)
    expected = {"running_mean0": w * z.mean(axis=0), "running_var0": (1 - w) + w * var}
    ours.loss_and_grads(x, y)
    theirs.loss_and_grads(x, y)
    for name, value in expected.items():
        np.testing.assert_allclose(ours.get_buffers()[name], value, rtol=1e-12)
        np.testing.assert_allclose(theirs.get_buffers()[name], value, rtol=1e-12)


def test_eval_after_training_uses_the_running_statistics(digits):
    x, y = digits
    ours, theirs = _pair(NET_A)
    rng = np.random.default_rng(3)
    for _ in range(3):
        _hand(_masks(ours, len(x), rng), ours, theirs)
        ours.train_step(x, y)
        theirs.train_step(x, y)
    p, b = ours.get_params(), ours.get_buffers()
    z = x @ p["W0"] + p["b0"]
    h = p["gamma0"] * (z - b["running_mean0"]) / np.sqrt(b["running_var0"] + 1e-5) + p["beta0"]
    logits = np.maximum(h, 0) @ p["W1"] + p["b1"]  # no dropout in evaluation
    np.testing.assert_allclose(ours.forward(x), logits, rtol=1e-10)
    np.testing.assert_allclose(theirs.forward(x), logits, rtol=1e-9, atol=1e-12)
    before = theirs.get_buffers()
    theirs.forward(x)
    ours.forward(x)
    for name, value in before.items():  # evaluation never moves them
        np.testing.assert_array_equal(theirs.get_buffers()[name], value)
        np.testing.assert_array_equal(ours.get_buffers()[name], b[name])


def test_torch_dropout_statistics_eval_and_seed():
    p = 0.4
    layer = HandedDropout(p, torch.Generator().manual_seed(5)).double()
    x = torch.ones(300, 40, dtype=torch.float64)
    out = layer(x)
    dropped = float((out == 0).double().mean())
    assert abs(dropped - p) < 4 * np.sqrt(p * (1 - p) / out.numel())
    np.testing.assert_allclose(out[out != 0].numpy(), 1 / (1 - p))
    again = HandedDropout(p, torch.Generator().manual_seed(5)).double()(x)
    assert torch.equal(out, again)
    layer.eval()
    assert layer(x) is x


def test_torch_refusals_batch_of_one_and_buffers(digits):
    x, y = digits
    _, theirs = _pair(NET_A)
    with pytest.raises(ValueError):
        theirs.loss_and_grads(x[:1], y[:1])
    with pytest.raises(ValueError, match="buffer 'running_mean0' is missing"):
        theirs.set_buffers({"running_var0": np.ones(64)})
    with pytest.raises(ValueError, match="one mask per dropout layer"):
        theirs.set_dropout_masks([])


@pytest.mark.parametrize("dims, act", [((64, 32, 10), "relu"), ((4, 8, 8, 3), "tanh")])
def test_from_dims_torch_sequential_is_the_torch_classifier(dims, act):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(9, dims[0])), rng.integers(0, dims[-1], 9)
    opt = OptimizerSettings(name="sgd", lr=0.1, momentum=0.9)
    net = TorchSequential(resolve(from_dims(dims, act), dims[0], dims[-1]).plain(), seed=4,
                          optimizer=opt)
    spec = SimpleNamespace(dims=dims, activation=act, dtype="float64", seed=4,
                           loss_reduction="mean")
    mlp = TorchClassifier(spec, opt)
    for name, value in mlp.get_params().items():
        np.testing.assert_array_equal(net.get_params()[name], value)
    np.testing.assert_array_equal(net.forward(x), mlp.forward(x))
    for _ in range(3):
        assert net.train_step(x, y) == mlp.train_step(x, y)
    for name, value in mlp.get_params().items():
        np.testing.assert_array_equal(net.get_params()[name], value)


@pytest.mark.parametrize("l2_on", ["all", "weights"])
def test_sum_reduction_and_l2_in_the_loss_agree(l2_on, digits):
    x, y = digits
    plain = resolve(NET_B, 64, 10).plain()
    ours = Sequential(plain, seed=0, optimizer=SGD(lr=0.01), loss_reduction="sum",
                      l2=0.03, l2_on=l2_on)
    opt = SimpleNamespace(name="sgd", lr=0.01, momentum=0.0, nesterov=False, betas=(0.9, 0.999),
                          eps=1e-8, weight_decay=0.03, weight_decay_in="loss",
                          weight_decay_on=l2_on)
    theirs = TorchSequential(plain, seed=0, optimizer=opt, loss_reduction="sum")
    theirs.set_params(ours.get_params())
    masks = _masks(ours, len(x), np.random.default_rng(6))
    _hand(masks, ours, theirs)
    loss_a, grads_a = ours.loss_and_grads(x, y)
    loss_b, grads_b = theirs.loss_and_grads(x, y)
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-10)
    for name in grads_a:
        np.testing.assert_allclose(grads_a[name], grads_b[name], rtol=1e-10, atol=1e-12)
    plain_loss = Sequential(plain, seed=0, loss_reduction="sum")
    plain_loss.set_dropout_masks(masks)
    assert loss_a > plain_loss.loss_and_grads(x, y)[0]  # the L2 term is really there

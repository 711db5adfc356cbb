"""harness.adapt's layer machinery: the code's layer objects built from the spec's layer
list, the forward and backward loops over them, networks of cs231n-style function pairs,
and the optimizer steps (torch's SGD with momentum; the code's own after torch's decay)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.adapt import (RETURNS, STORES, FunctionLayers, FunctionNet, LayerCalls,
                           LayerFunctions, LayerObjects, backward_layers, build_layers,
                           forward_layers, layer_paths, sgd_step)
from harness.errors import ConfigError
from harness.model.specs import ModelSpec, OptimizerSpec
from tests.gallery import cs231n_layers as cs
from tests.gallery import nnfs_layers as nnfs
from tests.gallery import published as blog

SPEC = ModelSpec(layers="linear(6),batchnorm,relu,dropout(0.25),linear(3)", input_shape=4,
                 seed=0)
RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(10, 4)), RNG.integers(0, 3, size=10)


# ------------------------------------------------------------------ building
def test_a_layer_the_code_has_not_is_refused_in_one_line_naming_the_kinds_it_has():
    made = []
    kinds = {"linear": lambda kw: made.append(kw), "relu": lambda kw: made.append(kw)}
    with pytest.raises(ConfigError) as info:
        build_layers(SPEC.network.plain(), kinds)
    assert str(info.value) == "this network has no batchnorm layer (it has linear, relu)"
    assert isinstance(info.value, ValueError) and made == []  # refused before building
    with pytest.raises(ValueError, match=r"^this network has no dropout layer \(it has "
                                         r"linear, batchnorm, relu\)$"):
        FunctionNet(SPEC.network.plain(), {"linear": (None, None), "batchnorm": (None, None),
                                           "relu": (None, None)})


def test_the_layers_are_built_in_order_from_each_layers_numbers():
    kinds = {name: (lambda kw, name=name: (name, kw))
             for name in ("linear", "batchnorm", "relu", "dropout")}
    built = build_layers(SPEC.network.plain(), kinds)
    assert [name for name, _ in built] == ["linear", "batchnorm", "relu", "dropout", "linear"]
    assert built[0][1] == {"index": 0, "in": 4, "out": 6}
    assert built[1][1] == {"index": 0, "width": 6} and built[3][1] == {"p": 0.25}
    assert built[4][1] == {"index": 1, "in": 6, "out": 3}


def test_layer_paths_are_attributes_of_the_object_at_each_position():
    assert layer_paths("layers", W="weights", b="biases") == {
        "W": "layers[{pos}].weights", "b": "layers[{pos}].biases"}


# ------------------------------------------------------------------ the loops
def _blog_layers():
    np.random.seed(1)
    return [blog.Dense(4, 5), blog.Tanh(), blog.Dense(5, 3)]


def test_the_loops_over_returning_layers_are_the_hand_written_loops():
    x, dout = X[:1].T, RNG.normal(size=(3, 1))
    ours, theirs = _blog_layers(), _blog_layers()
    out = x
    for layer in theirs:
        out = layer.forward(out)
    assert np.array_equal(forward_layers(ours, x), out)
    grad = dout
    for layer in reversed(theirs):
        grad = layer.backward(grad, 0.1)
    assert np.array_equal(backward_layers(ours, dout, 0.1), grad)  # the rate handed on
    assert np.array_equal(ours[0].weights, theirs[0].weights)
    assert not np.array_equal(ours[0].weights, _blog_layers()[0].weights)  # it stepped


def _nnfs_layers():
    np.random.seed(2)
    return [nnfs.Layer_Dense(4, 6), nnfs.Layer_BatchNorm(6), nnfs.Activation_ReLU(),
            nnfs.Layer_Dense(6, 3)]


@pytest.mark.parametrize("training", [True, False])
def test_the_loops_over_storing_layers_are_the_hand_written_loops(training):
    dout = RNG.normal(size=(10, 3))
    ours, theirs = _nnfs_layers(), _nnfs_layers()
    out = X
    for layer in theirs:
        layer.forward(out, training=training)
        out = layer.output
    assert np.array_equal(forward_layers(ours, X, STORES, training=training), out)
    assert np.array_equal(ours[1].running_mean, theirs[1].running_mean)
    grad = dout
    for layer in reversed(theirs):
        layer.backward(grad)
        grad = layer.dinputs
    assert np.array_equal(backward_layers(ours, dout, calls=STORES), grad)
    for mine, yours in zip(ours, theirs):
        for name in ("dweights", "dbiases", "dgamma", "dbeta"):
            if hasattr(yours, name):
                assert np.array_equal(getattr(mine, name), getattr(yours, name))


def test_the_calls_take_other_names():
    class Layer:
        def __init__(self, scale):
            self.scale = scale

        def run(self, x, train=True):
            self.out = x * self.scale * (2 if train else 1)

        def grad(self, d):
            self.dx = d * self.scale

    calls = LayerCalls(forward="run", backward="grad", output="out", dinputs="dx",
                       training="train")
    layers = [Layer(3.0), Layer(5.0)]
    assert forward_layers(layers, 1.0, calls, training=False) == 15.0
    assert forward_layers(layers, 1.0, calls) == 60.0
    assert backward_layers(layers, 1.0, calls=calls) == 15.0
    assert RETURNS.output is None and RETURNS.training is None


# ------------------------------------------------------------------ function pairs
def _cs_kinds(spec):
    return dict(linear=(cs.affine_forward, cs.affine_backward),
                batchnorm=(cs.batchnorm_forward, cs.batchnorm_backward_alt,
                           {"mode": "train", "eps": spec.norm_eps, "momentum": 0.9}),
                relu=(cs.relu_forward, cs.relu_backward),
                dropout=LayerFunctions(cs.dropout_forward, cs.dropout_backward,
                                       lambda kw: {"mode": "train", "p": 1 - kw["p"]}))


def _cs_params():
    rng = np.random.default_rng(3)
    return {k: rng.normal(size=s) for k, s in SPEC.network.param_shapes.items()}


def test_a_function_net_is_the_hand_written_cs231n_loop():
    net, p = FunctionNet(SPEC.network.plain(), _cs_kinds(SPEC)), _cs_params()
    net.params.update(p)
    mask = RNG.random((10, 6)) < 0.75
    net.states[3]["mask"] = mask
    out, caches = net.forward(X, "train")
    dx, grads = net.backward(np.ones_like(out), caches)

    bn = {"mode": "train", "eps": SPEC.norm_eps, "momentum": 0.9}
    drop = {"mode": "train", "p": 0.75, "mask": mask}
    h, c1 = cs.affine_forward(X, p["W0"], p["b0"])
    h, c2 = cs.batchnorm_forward(h, p["gamma0"], p["beta0"], bn)
    h, c3 = cs.relu_forward(h)
    h, c4 = cs.dropout_forward(h, drop)
    z, c5 = cs.affine_forward(h, p["W1"], p["b1"])
    d, dW1, db1 = cs.affine_backward(np.ones_like(z), c5)
    d = cs.relu_backward(cs.dropout_backward(d, c4), c3)
    d, dgamma0, dbeta0 = cs.batchnorm_backward_alt(d, c2)
    d, dW0, db0 = cs.affine_backward(d, c1)

    assert np.array_equal(out, z) and np.array_equal(dx, d)
    expected = dict(W0=dW0, b0=db0, gamma0=dgamma0, beta0=dbeta0, W1=dW1, b1=db1)
    assert grads.keys() == expected.keys()
    assert all(np.array_equal(grads[k], v) for k, v in expected.items())
    assert np.array_equal(net.states[1]["running_mean"], bn["running_mean"])
    assert "mask" not in net.states[3]  # the mask is for one pass only


def test_a_function_net_sets_each_dicts_mode_and_gives_each_layer_its_own_dict():
    spec = ModelSpec(layers="linear(6),dropout(0.5),relu,dropout(0.25),linear(3)",
                     input_shape=4)
    net = FunctionNet(spec.network.plain(), _cs_kinds(spec))
    net.params.update({k: np.ones(s) for k, s in spec.network.param_shapes.items()})
    assert [s and s["p"] for s in net.states] == [None, 0.5, None, 0.75, None]
    out, _ = net.forward(X, "test")
    assert [s["mode"] for s in net.states if s] == ["test", "test"]
    assert np.array_equal(out, np.maximum(X @ np.ones((4, 6)) + 1, 0) @ np.ones((6, 3)) + 1)
    assert net.owned == [("W", "b"), (), (), (), ("W", "b")]


def test_a_function_layer_takes_the_parameters_it_names():
    seen = []

    def forward(x, b, w):  # the code's own order
        seen.append((b.shape, w.shape))
        return x @ w + b, None

    spec = ModelSpec(dims=(4, 3))
    net = FunctionNet(spec.network.plain(),
                      {"linear": LayerFunctions(forward, None, params=("b", "W"))})
    net.params.update(W0=np.ones((4, 3)), b0=np.zeros(3))
    net.forward(X)
    assert seen == [((3,), (4, 3))]


# ------------------------------------------------------------------ the steps
def _torch_steps(params, grads_per_step, opt: OptimizerSpec):
    """torch.optim.SGD on the same gradients: the parameters after each step."""
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    decayed = [t for k, t in tensors.items() if opt.weight_decay_on == "all" or k[0] == "W"]
    rest = [t for t in tensors.values() if all(t is not d for d in decayed)]
    sgd = torch.optim.SGD([{"params": decayed, "weight_decay": opt.weight_decay},
                           {"params": rest, "weight_decay": 0.0}], lr=opt.lr,
                          momentum=opt.momentum)
    after = []
    for grads in grads_per_step:
        for k, t in tensors.items():
            t.grad = torch.tensor(grads[k])
        sgd.step()
        after.append({k: t.detach().numpy().copy() for k, t in tensors.items()})
    return after


@pytest.mark.parametrize("on", ["all", "weights"])
def test_the_sgd_step_is_torchs_with_momentum_and_weight_decay(on):
    opt = OptimizerSpec(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.05,
                        weight_decay_on=on)
    params = _cs_params()
    rng = np.random.default_rng(4)
    grads = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(3)]
    expected = _torch_steps(params, grads, opt)
    buffers, p = {}, params
    for g, want in zip(grads, expected):
        p = sgd_step(opt, p, g, buffers)
        assert all(np.allclose(p[k], want[k], rtol=1e-12, atol=1e-14) for k in want)
    assert np.allclose(sgd_step(opt, params, grads[0], {})["W0"],
                       params["W0"] - 0.1 * (grads[0]["W0"] + 0.05 * params["W0"]))


def test_the_sgd_step_refuses_nesterov():
    opt = OptimizerSpec(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.0)
    with pytest.raises(ConfigError, match="not nesterov"):
        sgd_step(opt, {"W0": np.ones(2)}, {"W0": np.ones(2)}, {})


class _Functions(FunctionLayers):
    code_loss = staticmethod(cs.softmax_loss)
    mask_path = None

    def kinds(self, spec):
        return dict(linear=(cs.affine_forward, cs.affine_backward),
                    relu=(cs.relu_forward, cs.relu_backward))


class _Objects(LayerObjects):
    def build(self, spec, lr, momentum, weight_decay):
        self.update_layer = nnfs.Optimizer_SGD(lr, momentum).update_params
        self.layers = build_layers(self.layer_list, dict(
            linear=lambda kw: nnfs.Layer_Dense(kw["in"], kw["out"]),
            relu=lambda kw: nnfs.Activation_ReLU(),
            batchnorm=lambda kw: nnfs.Layer_BatchNorm(kw["width"])))


@pytest.mark.parametrize("cls, layers", [(_Functions, "linear(6),relu,linear(3)"),
                                         (_Objects, "linear(6),batchnorm,relu,linear(3)")],
                         ids=["torch-sgd-through-the-binding", "the-codes-optimizer"])
@pytest.mark.parametrize("on", ["all", "weights"])
def test_three_steps_are_torchs_sgd_with_momentum_and_weight_decay(cls, layers, on):
    """The default step (torch's SGD through the binding) and the code's optimizer after
    torch's decay is put into its gradients both follow torch.optim.SGD."""
    opt = OptimizerSpec(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.05,
                        weight_decay_on=on)
    model = cls(ModelSpec(layers=layers, input_shape=4, seed=0), opt)
    start, grads = model.get_params(), []
    for _ in range(3):
        grads.append(model.loss_and_grads(X, Y)[1])
        model.train_step(X, Y)
        # torch on the gradients the model itself saw before each of its steps
        want = _torch_steps(start, grads, opt)[-1]
        start_of_next = model.get_params()
        assert all(np.allclose(start_of_next[k], want[k], rtol=1e-10, atol=1e-12)
                   for k in want), len(grads)


def test_layer_objects_read_their_paths_off_the_attribute_names():
    model = _Objects(ModelSpec(layers="linear(6),batchnorm,relu,linear(3)", input_shape=4),
                     OptimizerSpec(name="sgd", lr=0.1, weight_decay=0.0))
    assert model.param_binding.paths["gamma0"].text == "layers[1].gamma"
    assert model.grad_paths["W"] == "layers[{pos}].dweights"
    assert set(model.get_buffers()) == {"running_mean0", "running_var0"}
    assert not hasattr(model, "set_dropout_masks")  # no mask_attr: the code draws its own
    _, grads = model.loss_and_grads(X, Y)
    assert np.array_equal(grads["W1"], model.layers[3].dweights)

"""The scratch layers on their own: backward vs central differences, modes, dropout."""

from __future__ import annotations

import numpy as np
import pytest

from harness.model.layer_spec import from_dims, resolve
from scratch import MLP
from scratch.layers import Activation, BatchNorm, Dropout, LayerNorm, Linear
from scratch.sequential import Sequential


def _layer(kind: str, d: int, rng):
    params = {"W0": rng.normal(size=(d, d)), "b0": rng.normal(size=d),
              "gamma0": rng.normal(size=d) + 1.5, "beta0": rng.normal(size=d)}
    buffers = {"running_mean0": rng.normal(size=d), "running_var0": rng.random(d) + 0.5}
    return {"linear": lambda: Linear(params, 0),
            "batchnorm": lambda: BatchNorm(params, buffers, 0),
            "layernorm": lambda: LayerNorm(params, 0),
            "tanh": lambda: Activation("tanh"), "gelu": lambda: Activation("gelu"),
            "sigmoid": lambda: Activation("sigmoid"),
            "leaky_relu": lambda: Activation("leaky_relu", slope=0.2)}[kind](), params


def _numeric(f, array, eps=1e-6):
    """Central differences of the scalar f() with respect to every element of ``array``."""
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        old = array[idx]
        array[idx] = old + eps
        up = f()
        array[idx] = old - eps
        down = f()
        array[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("kind", ["linear", "batchnorm", "layernorm", "tanh", "gelu",
                                  "sigmoid", "leaky_relu"])
def test_backward_matches_central_differences(kind, train):
    rng = np.random.default_rng(5)
    n, d = 6, 4
    layer, params = _layer(kind, d, rng)
    x = rng.normal(size=(n, d))
    dout = rng.normal(size=(n, d))  # random, non-uniform upstream gradient

    def loss():
        return float(np.sum(layer.forward(x, train) * dout))

    layer.forward(x, train)
    dx = layer.backward(dout)
    np.testing.assert_allclose(dx, _numeric(loss, x), rtol=1e-6, atol=1e-8)
    for name, grad in layer.grads.items():
        np.testing.assert_allclose(grad, _numeric(loss, params[name]), rtol=1e-6, atol=1e-8)


def test_all_ones_upstream_gradient_makes_the_batchnorm_check_vacuous():
    rng = np.random.default_rng(1)
    layer, _ = _layer("batchnorm", 5, rng)
    x = rng.normal(size=(8, 5)) * 3 + 2
    layer.forward(x, True)
    vacuous = layer.backward(np.ones((8, 5)))
    assert np.max(np.abs(vacuous)) < 1e-12  # sum of normalised outputs is constant in x
    layer.forward(x, True)
    real = layer.backward(rng.normal(size=(8, 5)))
    assert np.max(np.abs(real)) > 1e-2


def test_batchnorm_refuses_a_batch_of_one_in_training():
    layer, _ = _layer("batchnorm", 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="more than one sample.*batch of 1"):
        layer.forward(np.ones((1, 3)), True)
    assert layer.forward(np.ones((1, 3)), False).shape == (1, 3)


def test_dropout_rate_scale_eval_and_reproducibility():
    p, shape = 0.3, (200, 50)
    layer = Dropout(p, np.random.default_rng(7))
    x = np.ones(shape)
    out = layer.forward(x, True)
    n = out.size
    dropped = np.mean(out == 0)
    assert abs(dropped - p) < 4 * np.sqrt(p * (1 - p) / n)  # binomial bound, 4 sigma
    np.testing.assert_allclose(out[out != 0], 1 / (1 - p))
    assert layer.forward(x, False) is x
    again = Dropout(p, np.random.default_rng(7)).forward(x, True)
    np.testing.assert_array_equal(out, again)
    assert not np.array_equal(layer.forward(x, True), out)  # the next pass draws anew
    assert Dropout(0.0, np.random.default_rng(7)).forward(x, True) is x


def test_handed_mask_serves_the_next_training_pass_only():
    layer = Dropout(0.5, np.random.default_rng(0))
    mask = np.zeros((4, 3))
    mask[:, 0] = 1
    layer.next_mask = mask
    x = np.arange(12.0).reshape(4, 3) + 1
    assert layer.forward(x, False) is x  # evaluation leaves it waiting
    out = layer.forward(x, True)
    np.testing.assert_array_equal(out, x * mask * 2)
    np.testing.assert_array_equal(layer.backward(np.ones((4, 3))), mask * 2)
    assert layer.next_mask is None


NET = "linear(32),batchnorm,relu,dropout(0.5),linear(10)"


def test_sequential_masks_buffers_and_modes():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 12)), rng.integers(0, 10, 16)
    net = Sequential(resolve(NET, 12, 10).plain(), seed=1)
    assert net.forward(x).shape == (16, 10)
    np.testing.assert_array_equal(net.get_buffers()["running_var0"], np.ones(32))  # eval: no update
    with pytest.raises(ValueError, match="one mask per dropout layer \\(1\\), got 2"):
        net.set_dropout_masks([np.ones((16, 32))] * 2)
    with pytest.raises(ValueError, match="0s and 1s"):
        net.set_dropout_masks([np.full((16, 32), 0.5)])
    ones = np.ones((16, 32))
    net.set_dropout_masks([ones])
    first = net.loss_and_grads(x, y)[0]
    assert not np.array_equal(net.get_buffers()["running_var0"], np.ones(32))
    net.set_buffers({"running_mean0": np.zeros(32), "running_var0": np.ones(32)})
    net.set_dropout_masks([ones])
    assert net.loss_and_grads(x, y)[0] == first  # same mask, same buffers: same loss
    assert net.loss_and_grads(x, y)[0] != first  # mask forgotten: its own mask now
    with pytest.raises(ValueError, match="buffer 'running_var0' must have shape"):
        net.set_buffers({"running_mean0": np.zeros(32), "running_var0": np.ones(3)})
    with pytest.raises(ValueError, match="unexpected buffer 'running_mean9'"):
        net.set_buffers({"running_mean0": np.zeros(32), "running_var0": np.ones(32),
                         "running_mean9": np.zeros(32)})


def test_sequential_gradients_match_central_differences_with_fixed_mask():
    rng = np.random.default_rng(2)
    spec = "linear(6),layernorm,tanh,dropout(0.3),linear(5),batchnorm,gelu,linear(3)"
    net = Sequential(resolve(spec, 4, 3).plain(), seed=0)
    x, y = rng.normal(size=(7, 4)), rng.integers(0, 3, 7)
    mask = (rng.random((7, 6)) >= 0.3).astype(float)

    def loss():
        net.set_dropout_masks([mask])
        return net.loss_and_grads(x, y)[0]

    net.set_dropout_masks([mask])
    _, grads = net.loss_and_grads(x, y)
    for name in ("W0", "gamma0", "beta1", "W2", "b2"):
        np.testing.assert_allclose(grads[name], _numeric(loss, net.params[name]),
                                   rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("dims, act", [((64, 32, 10), "relu"), ((4, 8, 8, 3), "tanh")])
def test_from_dims_sequential_is_the_mlp(dims, act):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(9, dims[0])), rng.integers(0, dims[-1], 9)
    net = Sequential(resolve(from_dims(dims, act), dims[0], dims[-1]).plain(), seed=4)
    mlp = MLP(dims, act, seed=4)
    for name, value in mlp.get_params().items():
        np.testing.assert_array_equal(net.get_params()[name], value)
    assert list(net.get_params()) == list(mlp.get_params())
    np.testing.assert_allclose(net.forward(x), mlp.forward(x), rtol=1e-12)
    for _ in range(3):
        np.testing.assert_allclose(net.train_step(x, y), mlp.train_step(x, y), rtol=1e-12)
    for name, value in mlp.get_params().items():
        np.testing.assert_allclose(net.get_params()[name], value, rtol=1e-12, atol=1e-15)

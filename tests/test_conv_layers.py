"""Convolution, pooling, flatten and spatial batch norm: the scratch loops, the scratch
vectorised layers and torch's modules agree, forward and backward, and so do the two
layer networks built on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from harness.model.layer_spec import resolve
from scratch.layers import AvgPool2d, BatchNorm, Conv2d, Conv2dNaive, Flatten, MaxPool2d
from scratch.layers.pool import (avg_pool_backward_naive, avg_pool_forward_naive,
                                 max_pool_backward_naive, max_pool_forward_naive)
from scratch.optimizers import Adam
from scratch.sequential import Sequential
from torch_impl.model import OptimizerSettings
from torch_impl.sequential import TorchSequential

TOL = {"float64": dict(rtol=1e-10, atol=1e-10), "float32": dict(rtol=2e-4, atol=2e-5)}
NET = "conv2d(8,3,padding=1),relu,maxpool2d(2),flatten,linear(10)"
NET_BN = "conv2d(8,3,padding=1),batchnorm,relu,maxpool2d(2),flatten,linear(10)"
# (C, H, W, F, K, stride, padding)
CONV_CASES = [(1, 8, 8, 8, 3, 1, 1), (3, 7, 9, 4, 3, 2, 1), (2, 6, 6, 5, 2, 2, 0),
              (2, 9, 8, 3, 4, 3, 2), (1, 5, 5, 2, 5, 1, 0), (3, 4, 4, 2, 1, 1, 0)]


def _torch(a, grad=False):
    return torch.tensor(a, requires_grad=grad)


def _conv_case(case, dtype, seed=0):
    c, h, w, f, k, stride, padding = case
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, c, h, w)).astype(dtype)
    params = {"W0": rng.normal(size=(f, c, k, k)).astype(dtype),
              "b0": rng.normal(size=f).astype(dtype)}
    return x, params, stride, padding


def _torch_conv(x, params, stride, padding, dout):
    xt, wt, bt = _torch(x, True), _torch(params["W0"], True), _torch(params["b0"], True)
    out = F.conv2d(xt, wt, bt, stride=stride, padding=padding)
    out.backward(_torch(dout))
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_naive_fast_and_torch_agree(case, dtype):
    x, params, stride, padding = _conv_case(case, dtype)
    results = []
    for layer in (Conv2dNaive(params, 0, stride, padding), Conv2d(params, 0, stride, padding)):
        out = layer.forward(x)
        dout = np.random.default_rng(1).normal(size=out.shape).astype(dtype)
        dx = layer.backward(dout)
        assert out.dtype == dx.dtype == layer.grads["W0"].dtype == np.dtype(dtype)
        results.append((out, dx, layer.grads["W0"], layer.grads["b0"]))
    results.append(_torch_conv(x, params, stride, padding, dout))
    naive, fast, ref = results
    for got_naive, got_fast, want in zip(naive, fast, ref):
        assert got_fast.shape == want.shape
        np.testing.assert_allclose(got_naive, want, **TOL[dtype])
        np.testing.assert_allclose(got_fast, want, **TOL[dtype])
        np.testing.assert_allclose(got_fast, got_naive, **TOL[dtype])


def test_conv_is_a_cross_correlation_not_a_convolution():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 0, 0] = 1.0  # one pixel at the top left
    w = np.arange(9.0).reshape(1, 1, 3, 3)
    out = Conv2d({"W0": w, "b0": np.zeros(1)}, 0, 1, 0).forward(x)
    assert out[0, 0, 0, 0] == 0.0  # w[0, 0, 0, 0]; a flipped kernel would give w[.., 2, 2] = 8
    first = Conv2d({"W0": w, "b0": np.zeros(1)}, 0)
    first.forward(x)
    first.param_grads(np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(first.grads["W0"], x)


# (K, stride, H, W)
POOL_CASES = [(2, 2, 8, 8), (2, 2, 7, 9), (3, 1, 6, 5), (3, 2, 7, 7), (2, 1, 4, 4)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES)
def test_pools_naive_fast_and_torch_agree(case, kind, dtype):
    k, stride, h, w = case
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, h, w)).astype(dtype)
    layer = (MaxPool2d if kind == "max" else AvgPool2d)(k, stride)
    out = layer.forward(x)
    dout = rng.normal(size=out.shape).astype(dtype)
    dx = layer.backward(dout)
    forward_naive, backward_naive = ((max_pool_forward_naive, max_pool_backward_naive)
                                     if kind == "max" else
                                     (avg_pool_forward_naive, avg_pool_backward_naive))
    xt = _torch(x, True)
    pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    ref = pool(xt, k, stride)
    ref.backward(_torch(dout))
    assert out.dtype == dx.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, ref.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL[dtype])
    np.testing.assert_allclose(forward_naive(x, k, stride), out, **TOL[dtype])
    np.testing.assert_allclose(backward_naive(dout, x, k, stride), dx, **TOL[dtype])


@pytest.mark.parametrize("k, stride", [(2, 2), (3, 1), (2, 1)])
def test_max_pool_ties_send_the_gradient_to_the_first_entry_as_torch(k, stride):
    rng = np.random.default_rng(3)
    # all equal, and a few values repeated so that many windows hold a tie
    for x in (np.ones((1, 2, 5, 5)), rng.integers(0, 3, size=(2, 2, 6, 6)).astype(float)):
        layer = MaxPool2d(k, stride)
        out = layer.forward(x)
        dout = rng.normal(size=out.shape)
        dx = layer.backward(dout)
        xt = _torch(x, True)
        F.max_pool2d(xt, k, stride).backward(_torch(dout))
        # the same entries get a gradient (overlapping windows add in another order)
        np.testing.assert_array_equal(dx != 0, xt.grad.numpy() != 0)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(max_pool_backward_naive(dout, x, k, stride), dx,
                                   rtol=1e-12, atol=1e-14)
    # an all-equal non-overlapping window: the whole gradient on its top-left entry
    layer = MaxPool2d(2)
    layer.forward(np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(layer.backward(np.full((1, 1, 1, 1), 5.0))[0, 0],
                                  [[5.0, 0.0], [0.0, 0.0]])


def test_flatten_is_nn_flatten_in_c_order():
    x = np.random.default_rng(4).normal(size=(2, 3, 4, 5))
    layer = Flatten()
    out = layer.forward(x)
    np.testing.assert_array_equal(out, nn.Flatten()(torch.tensor(x)).numpy())
    assert out[1, (2 * 4 + 1) * 5 + 3] == x[1, 2, 1, 3]
    np.testing.assert_array_equal(layer.backward(out), x)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_spatial_batchnorm_is_batchnorm2d(dtype):
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(4, 3, 5, 6)) * 2 + 1).astype(dtype)
    params = {"gamma0": rng.normal(size=3).astype(dtype), "beta0": rng.normal(size=3).astype(dtype)}
    buffers = {"running_mean0": np.zeros(3, dtype), "running_var0": np.ones(3, dtype)}
    layer = BatchNorm(params, buffers, 0)
    ref = nn.BatchNorm2d(3).to(getattr(torch, dtype))
    with torch.no_grad():
        ref.weight.copy_(_torch(params["gamma0"]))
        ref.bias.copy_(_torch(params["beta0"]))
    for _ in range(2):  # two training passes move the running statistics
        out = layer.forward(x, train=True)
        dout = rng.normal(size=out.shape).astype(dtype)
        dx = layer.backward(dout)
        xt = _torch(x, True)
        ref.zero_grad()
        want = ref(xt)
        want.backward(_torch(dout))
        np.testing.assert_allclose(out, want.detach().numpy(), **TOL[dtype])
        np.testing.assert_allclose(dx, xt.grad.numpy(), **TOL[dtype])
        np.testing.assert_allclose(layer.grads["gamma0"], ref.weight.grad.numpy(), **TOL[dtype])
        np.testing.assert_allclose(layer.grads["beta0"], ref.bias.grad.numpy(), **TOL[dtype])
    np.testing.assert_allclose(buffers["running_mean0"], ref.running_mean.numpy(), **TOL[dtype])
    np.testing.assert_allclose(buffers["running_var0"], ref.running_var.numpy(), **TOL[dtype])
    ref.eval()
    np.testing.assert_allclose(layer.forward(x, train=False),
                               ref(_torch(x)).detach().numpy(), **TOL[dtype])


@pytest.fixture(scope="module")
def digit_images():
    data = load_digits()
    x = data.data[:64].astype(np.float64)
    x = (x - x.mean()) / x.std()
    return x.reshape(-1, 1, 8, 8), data.target[:64]


def _pair(layers, dtype, conventions=None):
    plain = resolve(layers, (1, 8, 8), 10).plain()
    conventions = conventions or {}
    ours = Sequential(plain, dtype=dtype, seed=0, optimizer=Adam(lr=0.01), **conventions)
    theirs = TorchSequential(plain, dtype=dtype, seed=0,
                             optimizer=OptimizerSettings(name="adam", lr=0.01), **conventions)
    theirs.set_params(ours.get_params())
    return ours, theirs


def _assert_close(a: dict, b: dict, tol, skip=()):
    assert list(a) == list(b)
    for key in a:
        if key in skip:
            continue
        np.testing.assert_allclose(a[key], b[key], err_msg=key, **tol)


CONVENTIONS = [None, {"momentum": 0.9, "momentum_convention": "cs231n",
                      "running_var": "biased"}]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layers, conventions", [(NET, None), (NET_BN, CONVENTIONS[0]),
                                                 (NET_BN, CONVENTIONS[1])])
def test_networks_agree_over_five_adam_steps(digit_images, layers, conventions, dtype):
    x, y = digit_images
    x = x.astype(dtype)
    ours, theirs = _pair(layers, dtype, conventions)
    tol = TOL[dtype] if dtype == "float64" else dict(rtol=1e-3, atol=1e-4)
    _assert_close(ours.intermediates(x, y), theirs.intermediates(x, y), tol)
    # the conv bias right before a batch norm has a gradient of 0 up to rounding (the
    # batch norm subtracts it with the mean): Adam steps with that rounding's sign, so b0
    # is compared loosely (one step of lr = 0.01 at most) and then handed across (it
    # moves only the running mean)
    skip = ("b0",) if layers == NET_BN else ()
    for _ in range(5):
        np.testing.assert_allclose(ours.train_step(x, y), theirs.train_step(x, y), **tol)
        if skip:
            np.testing.assert_allclose(ours.params["b0"], theirs.get_params()["b0"], atol=0.02)
            theirs.set_params({**theirs.get_params(), "b0": ours.params["b0"]})
    _assert_close(ours.get_params(), theirs.get_params(), tol, skip)
    _assert_close(ours.get_buffers(), theirs.get_buffers(), tol)
    if layers == NET_BN:
        assert list(ours.get_buffers()) == ["running_mean0", "running_var0"]
        assert ours.get_buffers()["running_var0"].shape == (8,)
    np.testing.assert_allclose(ours.forward(x), theirs.forward(x), **tol)
    assert ours.dims == theirs.dims == (64, 512, 10)


def test_networks_take_rows_and_name_the_layout(digit_images):
    x, y = digit_images
    for net in _pair(NET, "float64"):
        np.testing.assert_array_equal(net.forward(x), net.forward(x.reshape(64, 64)))
        assert net.intermediates(x, y)["dinput"].shape == (64, 1, 8, 8)
        assert net.intermediates(x.reshape(64, 64), y)["dinput"].shape == (64, 64)
        with pytest.raises(ValueError, match=r"layout \(N, C, H, W\) = \(N, 1, 8, 8\).*"
                                             r"got shape \(64, 8, 8\)"):
            net.forward(x[:, 0])


def test_torch_conv_weights_are_not_transposed():
    ours, theirs = _pair(NET, "float64")
    conv = theirs.module[0]
    np.testing.assert_array_equal(conv.weight.detach().numpy(), ours.get_params()["W0"])
    np.testing.assert_array_equal(theirs.module[4].weight.detach().numpy().T,
                                  ours.get_params()["W1"])


def test_finite_differences_on_the_scratch_conv_net():
    rng = np.random.default_rng(6)
    net = Sequential(resolve("conv2d(3,3,stride=2,padding=1),batchnorm,tanh,avgpool2d(2,stride=1),"
                             "conv2d(4,2),relu,maxpool2d(2),flatten,linear(5)", (2, 7, 7), 5
                             ).plain(), dtype="float64", seed=1)
    x = rng.normal(size=(4, 2, 7, 7))
    upstream = rng.normal(size=(4, 5))

    def objective():  # sum(upstream * logits) of a training pass
        return float(np.sum(upstream * net._forward(x, train=True)[-1]))

    net._forward(x, train=True)
    _, grads, dx = net._backward(upstream)
    eps = 1e-6
    targets = [(net.params[name], grads[name]) for name in net.params] + [(x, dx)]
    for value, grad in targets:
        for index in rng.choice(value.size, size=min(value.size, 6), replace=False):
            flat = value.reshape(-1)
            old = flat[index]
            flat[index] = old + eps
            plus = objective()
            flat[index] = old - eps
            minus = objective()
            flat[index] = old
            assert abs((plus - minus) / (2 * eps) - grad.reshape(-1)[index]) < 1e-6

"""The parameter layout has one home in the harness; the backends' own copies agree with it.

``scratch`` and ``torch_impl`` import nothing from the harness (a learner can copy either
folder out), so each keeps a small copy of the layout and of the check ``set_params``
runs. These tests hold the three copies to the same names, order, shapes and messages,
and the two ``ordered_intermediates`` (the backend's and the harness's) to the same order.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.diagnose import localize
from harness.errors import ParamError
from harness.model import layout as harness_layout
from scratch import params as scratch_layout
from scratch import reference as scratch_reference
from torch_impl import layout as torch_layout

DIMS = [(4, 3), (64, 32, 10), (5, 7, 7, 2), (1, 1, 1, 1, 1)]
COPIES = {"harness": harness_layout, "scratch": scratch_layout, "torch_impl": torch_layout}


@pytest.mark.parametrize("dims", DIMS)
def test_param_shapes_agree(dims):
    shapes = {name: mod.param_shapes(dims) for name, mod in COPIES.items()}
    first = shapes["harness"]
    assert list(first) == [f"{k}{i}" for i in range(len(dims) - 1) for k in "Wb"]
    for name, got in shapes.items():
        assert list(got.items()) == list(first.items()), name


def _params(dims, rng):
    return {k: rng.normal(size=s) for k, s in harness_layout.param_shapes(dims).items()}


def _bad_inputs(dims, rng):
    good = _params(dims, rng)
    missing = dict(good)
    del missing["b0"]
    extra = {**good, "W9": np.zeros((2, 2))}
    shape = {**good, "W0": np.zeros((dims[0] + 1, dims[1]))}
    text = {**good, "b0": np.array(["a"] * dims[1])}
    nan = {k: v.copy() for k, v in good.items()}
    nan["W0"][0, 1 % dims[1]] = np.nan
    return {"missing": missing, "extra": extra, "shape": shape, "text": text, "nan": nan,
            "not a dict": [1, 2]}


def _message(mod, params, dims) -> str:
    kwargs = {"error": ParamError} if mod is not harness_layout else {}
    with pytest.raises(ParamError) as info:
        mod.validate_params(params, dims, np.float64, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("dims", DIMS[:3])
def test_validate_params_refuses_alike(dims):
    rng = np.random.default_rng(0)
    for case, params in _bad_inputs(dims, rng).items():
        messages = {name: _message(mod, params, dims) for name, mod in COPIES.items()}
        assert len(set(messages.values())) == 1, (case, messages)


@pytest.mark.parametrize("dims", DIMS[:3])
def test_validate_params_copies_alike(dims):
    params = _params(dims, np.random.default_rng(1))
    for name, mod in COPIES.items():
        kwargs = {"error": ParamError} if mod is not harness_layout else {}
        out = mod.validate_params(params, dims, np.float32, **kwargs)
        assert list(out) == list(harness_layout.param_shapes(dims)), name
        for key, value in out.items():
            assert value.dtype == np.float32 and value.flags.c_contiguous, (name, key)
            assert not np.shares_memory(value, params[key]), (name, key)
            np.testing.assert_array_equal(value, params[key].astype(np.float32))


def test_ordered_intermediates_agree():
    layers = range(3)
    zs = [f"z{i}" for i in layers]
    hidden = [f"a{i}" for i in layers[:-1]]
    dzs = [f"dz{i}" for i in layers]
    grads = {f"{k}{i}": f"d{k}{i}" for i in layers for k in "Wb"}
    ours = localize.ordered_intermediates(zs, hidden, dzs, grads)
    theirs = scratch_reference.ordered_intermediates(zs, hidden, dzs, grads)
    assert list(ours.items()) == list(theirs.items())
    assert list(ours) == ["z0", "a0", "z1", "a1", "z2", "dz2", "dW2", "db2", "dz1", "dW1",
                          "db1", "dz0", "dW0", "db0"]


@pytest.mark.parametrize("layers, shape", [
    ("conv2d(8,3,padding=1),batchnorm,relu,maxpool2d(2),flatten,linear(10)", (1, 8, 8)),
    ("conv2d(4,5,stride=2),conv2d(6,1),flatten,layernorm,linear(3)", (3, 11, 9)),
    ("linear(16),batchnorm,relu,linear(3)", (4,)),
])
def test_layer_param_shapes_agree_with_the_resolution(layers, shape):
    from harness.model.layer_spec import resolve

    net = resolve(layers, shape)
    for name, mod in COPIES.items():
        got = mod.layer_param_shapes(net.plain())
        assert list(got.items()) == list(net.param_shapes.items()), name

"""Specs, the canonical layout, set_params/get_params and the registry."""

from __future__ import annotations

import numpy as np
import pytest

from harness import ConfigError, ModelSpec, OptimizerSpec, ParamError, ProtocolError, make_backend
from harness.model.layout import dims_from_params, param_shapes
from harness.model.protocol import Classifier

BACKENDS = ["scratch", "torch"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dims=(13,)), "`dims` must have at least two entries, got (13,)"),
        (dict(dims=(4, 0, 3)), "`dims` entries must be positive integers"),
        (dict(dims=(4, 3), activation="swish"), "`activation` must be one of relu, tanh"),
        (dict(dims=(4, 3), dtype="float16"), "`dtype` must be one of float32, float64"),
        (dict(dims=(4, 3), seed=-1), "`seed` must be >= 0"),
    ],
)
def test_model_spec_refuses_bad_values(kwargs, message):
    with pytest.raises(ConfigError) as err:
        ModelSpec(**kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lr=0), "`lr` must be > 0, got 0"),
        (dict(weight_decay=-1e-4), "`weight_decay` must be >= 0"),
        (dict(momentum=1.0), "`momentum` must be in [0, 1)"),
        (dict(nesterov=True), "`nesterov` needs the sgd optimizer with momentum > 0"),
        (dict(name="adam", betas=(0.9, 1.0)), "`betas` must be two numbers in [0, 1)"),
        (dict(name="lamb"),
         "`optimizer` must be one of sgd, adam, adamw, rmsprop, adagrad, got 'lamb'"),
    ],
)
def test_optimizer_spec_refuses_bad_values(kwargs, message):
    with pytest.raises(ConfigError) as err:
        OptimizerSpec(**kwargs)
    assert message in str(err.value)


def test_param_layout_is_canonical():
    assert param_shapes((4, 7, 3)) == {"W0": (4, 7), "b0": (7,), "W1": (7, 3), "b1": (3,)}
    model = make_backend("torch", ModelSpec((4, 7, 3)))
    assert dims_from_params(model.get_params()) == (4, 7, 3)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_backend_is_a_classifier_with_torch_like_init(name, dtype):
    model = make_backend(name, ModelSpec((20, 50, 3), dtype=dtype, seed=3))
    assert isinstance(model, Classifier)
    assert model.dims == (20, 50, 3)
    params = model.get_params()
    assert list(params) == ["W0", "b0", "W1", "b1"]
    for key, value in params.items():
        assert value.dtype == np.dtype(dtype)
        fan_in = 20 if key.endswith("0") else 50
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(value).max() <= bound
        if value.size >= 50:  # uniform on [-bound, bound]: spread out, not clustered at 0
            assert np.abs(value).max() > 0.8 * bound
    logits = model.forward(np.zeros((2, 20)))
    assert logits.shape == (2, 3) and logits.dtype == np.dtype(dtype)


@pytest.mark.parametrize("name", BACKENDS)
def test_same_seed_same_parameters_other_seed_different(name):
    a = make_backend(name, ModelSpec((5, 4, 3), seed=1)).get_params()
    b = make_backend(name, ModelSpec((5, 4, 3), seed=1)).get_params()
    c = make_backend(name, ModelSpec((5, 4, 3), seed=2)).get_params()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["W0"], c["W0"])


@pytest.mark.parametrize("name", BACKENDS)
def test_get_and_set_params_copy_and_never_alias(name):
    model = make_backend(name, ModelSpec((3, 4, 2)))
    params = model.get_params()
    params["W0"][...] = 7.0  # editing the copy leaves the model alone
    assert not np.any(model.get_params()["W0"] == 7.0)
    new = {k: np.full_like(v, 0.5) for k, v in params.items()}
    model.set_params(new)
    new["W0"][...] = -1.0  # editing the caller's array after set_params
    np.testing.assert_array_equal(model.get_params()["W0"], np.full((3, 4), 0.5))


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p.pop("b1"), "parameter 'b1' is missing"),
        (lambda p: p.__setitem__("W9", np.zeros((2, 2))), "unexpected parameter 'W9'"),
        (lambda p: p.__setitem__("W0", np.zeros((4, 3))), "parameter 'W0' must have shape (3, 4)"),
        (lambda p: p["b0"].__setitem__(2, np.nan), "parameter 'b0' has a non-finite value"),
        (lambda p: p["W1"].__setitem__((0, 0), np.inf), "parameter 'W1' has a non-finite value"),
    ],
)
def test_set_params_refuses_bad_dicts_naming_the_parameter(name, mutate, message):
    model = make_backend(name, ModelSpec((3, 4, 2)))
    before = model.get_params()
    params = model.get_params()
    mutate(params)
    with pytest.raises(ValueError) as err:
        model.set_params(params)
    assert isinstance(err.value, ParamError)
    assert message in str(err.value)
    for k, v in model.get_params().items():  # refused means unchanged
        np.testing.assert_array_equal(v, before[k])


def test_registry_refuses_unknown_names_and_bad_user_classes():
    spec = ModelSpec((3, 4, 2))
    with pytest.raises(ConfigError, match="unknown backend 'jax'; choose one of scratch, torch"):
        make_backend("jax", spec)
    with pytest.raises(ProtocolError, match="cannot import module 'no_such_pkg.mod'"):
        make_backend("no_such_pkg.mod:Model", spec)
    with pytest.raises(ProtocolError, match="has no attribute 'Nope'"):
        make_backend("scratch.model:Nope", spec)
    with pytest.raises(ProtocolError, match="does not implement the Classifier protocol"):
        make_backend("tests.user_models:NotAClassifier", spec)


def test_user_class_is_built_from_spec_and_optimizer():
    spec = ModelSpec((3, 4, 2), activation="tanh", seed=5)
    opt = OptimizerSpec("sgd", lr=0.1, weight_decay=0.0)
    model = make_backend("tests.user_models:WrappedScratch", spec, opt)
    assert isinstance(model, Classifier)
    assert model.spec is spec and model.optimizer_spec is opt

"""Property-based tests: random architectures, activations, batches, dtypes, seeds, scales.

* The two built-in backends agree at the default tolerances, float32 included.
* gradcheck passes on the scratch backend.
* The scratch backend agrees with torch.autograd.
* A bug planted in one random layer is located in that layer.

Example counts are bounded so the file runs in seconds; every example is a fresh
network of 1 to 4 hidden layers of width 1 to 64, batch size 1 to 65, input scale
1e-3 to 1e2.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import ModelSpec, OptimizerSpec, check_equivalence, make_backend
from harness.gradients.autograd import compare_with_autograd
from harness.gradients.finite_diff import gradcheck
from harness.model.specs import ACTIVATION_NAMES
from tests.broken_backends import GradTimesN, MissingMask

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
OPTIMIZERS = [OptimizerSpec("sgd", lr=0.01, weight_decay=0.0),
              OptimizerSpec("sgd", lr=0.05, momentum=0.9, weight_decay=0.0),
              OptimizerSpec("sgd", lr=0.05, momentum=0.5, nesterov=True, weight_decay=1e-3),
              OptimizerSpec("adam", lr=1e-3, weight_decay=1e-4),
              OptimizerSpec("adamw", lr=1e-2, weight_decay=1e-2)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@st.composite
def configs(draw, dtypes=("float32", "float64"), activations=ACTIVATION_NAMES, min_n=1):
    d0 = draw(st.integers(1, 20))
    hidden = draw(st.lists(st.integers(1, 64), min_size=1, max_size=4))
    classes = draw(st.integers(2, 10))
    return {
        "dims": (d0, *hidden, classes),
        "activation": draw(st.sampled_from(activations)),
        "dtype": draw(st.sampled_from(dtypes)),
        "seed": draw(st.integers(0, 2**16)),
        "n": draw(st.integers(min_n, 65)),
        "scale": 10.0 ** draw(st.floats(-3, 2)),
    }


def make_data(cfg):
    rng = np.random.default_rng(cfg["seed"] + 1)
    x = rng.normal(size=(cfg["n"], cfg["dims"][0])) * cfg["scale"]
    return x, rng.integers(0, cfg["dims"][-1], size=cfg["n"])


def spec_of(cfg):
    return ModelSpec(cfg["dims"], activation=cfg["activation"], dtype=cfg["dtype"],
                     seed=cfg["seed"])


@settings(max_examples=60, **SETTINGS)
@given(cfg=configs(), optimizer=st.sampled_from(OPTIMIZERS))
def test_the_built_in_backends_always_agree(cfg, optimizer):
    x, y = make_data(cfg)
    spec = spec_of(cfg)
    report = check_equivalence(make_backend("scratch", spec, optimizer),
                               make_backend("torch", spec, optimizer), x, y)
    assert report.passed, f"{cfg}\n{report}"


@settings(max_examples=25, **SETTINGS)
@given(cfg=configs())
def test_gradcheck_passes_on_the_scratch_backend(cfg):
    x, y = make_data(cfg)
    model = make_backend("scratch", spec_of(cfg))
    report = gradcheck(model, x, y, max_entries=4, seed=cfg["seed"])
    assert report.passed, f"{cfg}\n{report}"
    assert report.checked_dtype == "float64"
    assert all(p.checked == min(p.size, 4) for p in report.params)


@settings(max_examples=30, **SETTINGS)
@given(cfg=configs())
def test_the_scratch_backend_agrees_with_torch_autograd(cfg):
    x, y = make_data(cfg)
    report = compare_with_autograd(make_backend("scratch", spec_of(cfg)), x, y)
    assert report.passed, f"{cfg}\n{report}"


@settings(max_examples=20, **SETTINGS)
@given(cfg=configs(dtypes=("float64",), activations=("sigmoid",), min_n=2), data=st.data())
def test_a_bug_in_one_random_layer_is_located_there(cfg, data):
    x, y = make_data(cfg)
    spec = spec_of(cfg)
    n_hidden = len(cfg["dims"]) - 2
    mask_layer = data.draw(st.integers(0, n_hidden - 1), label="mask_layer")
    grad_layer = data.draw(st.integers(0, n_hidden), label="grad_layer")
    reference = make_backend("scratch", spec)
    for cls, layer, quantity in ((MissingMask, mask_layer, "dz"), (GradTimesN, grad_layer, "dW")):
        broken = cls(spec)
        broken.broken_layer = layer
        report = check_equivalence(reference, broken, x, y)
        assert not report.passed, cls.__name__
        div = report.divergence
        assert (div["quantity"], div["layer"]) == (f"{quantity}{layer}", layer), \
            f"{cls.__name__}: {div['message']}"

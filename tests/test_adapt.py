"""harness.adapt: bindings by path, the code's forms of data, gradient capture, settings
under the code's names, and the published-style adapters of the gallery in their
conventions (check and train)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from harness.adapt import (Adapter, as_columns, bind, captured_gradients, code_settings,
                           initial_params, one_hot, per_sample)
from harness.adapt.paths import parse
from harness.checks import CheckConfig, run_checks
from harness.data.datasets import make_synthetic
from harness.errors import ConfigError, ParamError
from harness.model.specs import ModelSpec, OptimizerSpec

SPEC = ModelSpec(dims=(3, 4, 2), seed=0)
BN = ModelSpec(layers="linear(4),batchnorm,relu,linear(2)", input_shape=3, seed=0)


def _values(spec=SPEC, seed=1):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=s) for k, s in spec.network.param_shapes.items()}


# ------------------------------------------------------------------ paths
def test_a_path_reads_attributes_items_and_a_trailing_transpose():
    p = parse("net.layers[2].W")
    assert p.steps == (("attr", "net"), ("attr", "layers"), ("item", 2), ("attr", "W"))
    assert parse("params['W1']").steps == (("attr", "params"), ("item", "W1"))
    assert parse('["db1"]').steps == (("item", "db1"),)
    assert parse("weights[0].T").transposed and not parse("weights[0]").transposed


@pytest.mark.parametrize("text", ["", "net..W", "params[W1", "3net"])
def test_a_path_that_is_not_attributes_and_items_is_refused(text):
    with pytest.raises(ConfigError, match="path"):
        parse(text)


# ------------------------------------------------------------------ each binding form
def _lists(transposed):
    shape = (lambda a, b: (b, a)) if transposed else (lambda a, b: (a, b))
    return SimpleNamespace(weights=[np.zeros(shape(3, 4)), np.zeros(shape(4, 2))],
                           biases=[np.zeros((4, 1)), np.zeros((2, 1))])


FORMS = {
    "lists, (out, in) weights, (d, 1) biases": (
        lambda: _lists(True), dict(W="weights[{k}].T", b="biases[{k}]"),
        lambda o: (o.weights[1].shape, o.biases[1].shape), ((2, 4), (2, 1))),
    "1-based dict names, (1, d) biases": (
        lambda: SimpleNamespace(params={"W1": np.zeros((3, 4)), "b1": np.zeros((1, 4)),
                                        "W2": np.zeros((4, 2)), "b2": np.zeros((1, 2))}),
        dict(W="params['W{k1}']", b="params['b{k1}']"),
        lambda o: (o.params["W2"].shape, o.params["b2"].shape), ((4, 2), (1, 2))),
    "a function of the index": (
        lambda: _lists(False), dict(W=lambda k: f"weights[{k}]", b=lambda k: f"biases[{k}]"),
        lambda o: (o.weights[0].shape, o.biases[0].shape), ((3, 4), (4, 1))),
    "named attributes on layer objects": (
        lambda: SimpleNamespace(layers=[SimpleNamespace(W=np.zeros((3, 4)), b=np.zeros(4)),
                                        object(),
                                        SimpleNamespace(W=np.zeros((4, 2)), b=np.zeros(2))]),
        dict(W="layers[{pos}].W", b="layers[{pos}].b"),
        lambda o: (o.layers[2].W.shape, o.layers[2].b.shape), ((4, 2), (2,))),
}


@pytest.mark.parametrize("form", FORMS)
def test_each_form_round_trips_and_writes_back_in_the_codes_shapes(form):
    make, rules, shapes_of, shapes = FORMS[form]
    code, binding = make(), bind(SPEC, **rules)
    values = _values()
    binding.put(code, values)
    assert shapes_of(code) == shapes  # the code's own shapes, not the canonical ones
    got = binding.get(code)
    assert list(got) == ["W0", "b0", "W1", "b1"]
    for k in values:
        np.testing.assert_array_equal(got[k], values[k])


@pytest.mark.parametrize("form", FORMS)
def test_each_form_copies_in_and_out(form):
    make, rules, _, _ = FORMS[form]
    code, binding = make(), bind(SPEC, **rules)
    values = _values()
    binding.put(code, values)
    for v in values.values():
        v += 1  # the caller's arrays, changed after the call
    out = binding.get(code)
    for v in out.values():
        v += 100  # the handed-out copies, changed
    again = binding.get(code)
    for k, v in _values().items():
        np.testing.assert_array_equal(again[k], v)


def test_the_transposed_weights_are_the_transpose_of_the_canonical_ones():
    code, binding = _lists(True), bind(SPEC, W="weights[{k}].T", b="biases[{k}]")
    values = _values()
    binding.put(code, values)
    np.testing.assert_array_equal(code.weights[0], values["W0"].T)
    np.testing.assert_array_equal(code.biases[0][:, 0], values["b0"])
    # C order both ways: a flat view of a handed-out array writes into it (as a central
    # difference perturbs one entry), and the code gets its arrays in its own order
    got = binding.get(code)["W0"]
    got.reshape(-1)[0] = 7.0
    assert got[0, 0] == 7.0 and code.weights[0].flags.c_contiguous


@pytest.mark.parametrize("change, message", [
    (lambda v: v.pop("b1"), "parameter 'b1' is missing"),
    (lambda v: v.update(W7=np.zeros(1)), "unexpected parameter 'W7'"),
    (lambda v: v.update(W0=np.zeros((4, 3))), r"parameter 'W0' must have shape \(3, 4\), got \(4, 3\)"),
    (lambda v: v["b0"].__setitem__(1, np.nan), "parameter 'b0' has a non-finite value"),
    (lambda v: v.update(b0=np.array(["a"] * 4)), "parameter 'b0' must be numeric"),
])
def test_a_binding_refuses_with_the_protocols_messages(change, message):
    code, binding = _lists(True), bind(SPEC, W="weights[{k}].T", b="biases[{k}]")
    binding.put(code, _values())
    before = binding.get(code)
    values = _values(seed=2)
    change(values)
    with pytest.raises(ParamError, match=message):
        binding.put(code, values)
    for k, v in binding.get(code).items():  # nothing written by a refused call
        np.testing.assert_array_equal(v, before[k])


def test_a_binding_casts_to_the_models_dtype():
    spec = ModelSpec(dims=(3, 4, 2), dtype="float32")
    code, binding = _lists(True), bind(spec, W="weights[{k}].T", b="biases[{k}]")
    binding.put(code, _values())
    assert code.weights[0].dtype == np.float32
    assert all(v.dtype == np.float32 for v in binding.get(code).values())


def test_a_binding_without_a_rule_for_a_name_is_refused_when_built():
    with pytest.raises(ConfigError, match=r"no rule binds gamma0: give gamma=\.\.\."):
        bind(BN, W="w[{k}]", b="b[{k}]")
    with pytest.raises(ConfigError, match="no parameter kind 'running_mean'"):
        bind(SPEC, W="w[{k}]", b="b[{k}]", running_mean="m[{k}]")


def test_layer_names_and_buffers_bind_to_layer_positions():
    layers = [SimpleNamespace(W=np.zeros((3, 4)), b=np.zeros((1, 4))),
              SimpleNamespace(gamma=np.ones((1, 4)), beta=np.zeros((1, 4)),
                              mean=np.zeros((1, 4)), var=np.ones((1, 4))),
              None, SimpleNamespace(W=np.zeros((4, 2)), b=np.zeros((1, 2)))]
    code = SimpleNamespace(layers=layers)
    params = bind(BN, W="layers[{pos}].W", b="layers[{pos}].b",
                  gamma="layers[{pos}].gamma", beta="layers[{pos}].beta")
    buffers = bind(BN, "buffer", running_mean="layers[{pos}].mean",
                   running_var="layers[{pos}].var")
    assert list(params.get(code)) == ["W0", "b0", "gamma0", "beta0", "W1", "b1"]
    buffers.put(code, {"running_mean0": np.full(4, 0.5), "running_var0": np.full(4, 2.0)})
    assert layers[1].mean.shape == (1, 4) and layers[1].mean[0, 0] == 0.5
    with pytest.raises(ParamError, match="buffer 'running_var0' is missing"):
        buffers.put(code, {"running_mean0": np.zeros(4)})


def test_initial_params_are_seeded_and_canonical():
    a, b = initial_params(BN), initial_params(BN)
    assert list(a) == list(BN.network.param_shapes)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert np.all(a["gamma0"] == 1) and np.all(np.abs(a["W0"]) <= 1 / np.sqrt(3))


# ------------------------------------------------------------------ inputs, capture, settings
def test_columns_and_one_hot_labels():
    x = np.arange(6.0).reshape(3, 2)
    assert as_columns(x).shape == (2, 3) and as_columns(x).flags.c_contiguous
    np.testing.assert_array_equal(one_hot([1, 0], 3), [[0, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(one_hot([1, 0], 3, columns=True), [[0, 1], [1, 0], [0, 0]])


def test_per_sample_results_sum_into_the_mean_or_the_sum():
    def one(v):
        return v, {"W0": np.array([v, 1.0])}

    assert per_sample(one, [(1.0,), (3.0,)], "mean")[0] == 2.0
    np.testing.assert_array_equal(per_sample(one, [(1.0,), (3.0,)], "sum")[1]["W0"], [4, 2])


def test_a_gradient_captured_from_a_self_updating_step_is_exact_and_leaves_the_params():
    code = _lists(True)
    binding = bind(SPEC, W="weights[{k}].T", b="biases[{k}]")
    binding.put(code, _values())
    grads = {k: v * 1e-3 for k, v in _values(seed=3).items()}
    before = binding.get(code)

    def run(lr):  # the code's own update: p -= lr * g, in its layout
        for k in range(2):
            code.weights[k] -= lr * grads[f"W{k}"].T
            code.biases[k] -= lr * grads[f"b{k}"].reshape(-1, 1)
        return "loss"

    result, got = captured_gradients(binding, code, run)
    assert result == "loss"
    for k in grads:
        np.testing.assert_allclose(got[k], grads[k], rtol=1e-12, atol=0)
        np.testing.assert_array_equal(binding.get(code)[k], before[k])


def test_settings_are_read_under_the_codes_names():
    opt = OptimizerSpec(name="sgd", lr=0.5, weight_decay=0.01, weight_decay_in="loss",
                        weight_decay_on="weights")
    got = code_settings(opt, {"lr": "learning_rate", "weight_decay": ("lmbda", lambda w: w * 10)},
                        decay_in="loss", decay_on="weights")
    assert got == {"learning_rate": 0.5, "lmbda": 0.1}


@pytest.mark.parametrize("opt, message", [
    (OptimizerSpec(name="adam"), r"this code has no adam optimizer \(it has sgd\)"),
    (OptimizerSpec("sgd", momentum=0.9, weight_decay=0.0),
     r"no setting for momentum=0.9 \(it takes lr\)"),
    (OptimizerSpec("sgd", weight_decay=0.1), "no setting for weight_decay=0.1"),
])
def test_settings_the_code_has_not_are_refused_by_name(opt, message):
    with pytest.raises(ConfigError, match=message):
        code_settings(opt, {"lr": "lr"})


def test_weight_decay_in_another_place_than_the_codes_is_refused():
    with pytest.raises(ConfigError, match="--weight-decay-in loss --weight-decay-on weights"):
        code_settings(OptimizerSpec("sgd", weight_decay=0.1), {"lr": "lr", "weight_decay": "reg"},
                      decay_in="loss", decay_on="weights")


# ------------------------------------------------------------------ the Adapter base
class _Tiny(Adapter):
    """A linear softmax model kept as one (out, in) matrix and a (out, 1) column."""

    param_paths = dict(W="w.T", b="c")

    def build(self, spec, lr):
        self.w, self.c = np.zeros((spec.dims[1], spec.dims[0])), np.zeros((spec.dims[1], 1))

    def logits(self, x):
        return x @ self.w.T + self.c.T

    def backward(self, x, y):
        loss, dz = self.loss_and_dlogits(self.logits(x), y)
        return loss, {"W0": x.T @ dz, "b0": dz.sum(axis=0)}


def test_the_adapter_has_the_optional_members_only_when_the_code_has_them():
    model = _Tiny(ModelSpec(dims=(3, 2)), OptimizerSpec("sgd", weight_decay=0.0))
    assert not hasattr(model, "get_buffers") and not hasattr(model, "set_dropout_masks")
    assert not hasattr(model, "intermediates")
    assert model.get_params()["W0"].shape == (3, 2)
    with pytest.raises(ParamError, match="parameter 'b0' is missing"):
        model.set_params({"W0": np.zeros((3, 2))})


def test_the_adapter_refuses_what_the_code_lacks_when_built():
    with pytest.raises(ConfigError, match="this code has no adamw optimizer"):
        _Tiny(ModelSpec(dims=(3, 2)), OptimizerSpec(name="adamw"))


# ------------------------------------------------------------------ the gallery's adapters
DATA = make_synthetic(48, 4, 3, seed=0)
SGD = OptimizerSpec(name="sgd", lr=0.1, weight_decay=0.0)
L2_LOSS = dict(weight_decay=0.01, weight_decay_in="loss", weight_decay_on="weights")
BOOK = (ModelSpec(dims=(4, 8, 3), activation="sigmoid", loss="bce", loss_outputs="sum"),
        OptimizerSpec(name="sgd", lr=0.5, **L2_LOSS))
PLAIN = (ModelSpec(dims=(4, 8, 3)), SGD)
ADAPTERS = {
    "nielsen:BookNetwork": BOOK,
    "published:CS231nFullyConnected": (ModelSpec(dims=(4, 8, 3)),
                                       OptimizerSpec(name="sgd", lr=0.1, **L2_LOSS)),
    "published:SelfUpdatingLayers": PLAIN,
    "published:DeepLearningCourse": PLAIN,
}


@pytest.mark.parametrize("name", ADAPTERS)
def test_each_published_style_adapter_passes_check_and_train_in_its_convention(name):
    spec, optimizer = ADAPTERS[name]
    config = CheckConfig(backends=("torch", f"tests.gallery.{name}"), spec=spec,
                         optimizer=optimizer, threads=1, epochs=2, batch_size=16)
    run = run_checks(config, DATA, ("equivalence", "gradcheck", "training"))
    assert [r.check for r in run.results] == ["equivalence", "gradcheck", "training"]
    assert all(r.passed for r in run.results), [str(r) for r in run.results if not r.passed]


def test_an_adapter_fails_where_the_wrapped_code_is_wrong():
    """The glue does not hide a bug: the book's quadratic cost (a delta with the output's
    sigmoid') differs from every loss of the logits."""
    spec = ModelSpec(dims=(4, 8, 3), activation="sigmoid", loss="mse", mse_half=True,
                     loss_outputs="sum")
    config = CheckConfig(backends=("torch", "tests.gallery.nielsen:BookQuadratic"), spec=spec,
                         optimizer=BOOK[1], threads=1)
    assert not run_checks(config, DATA, ("equivalence",)).results[0].passed


#: every adapter of the gallery, each in the terms it declares (the book's network: sigmoid,
#: bce summed over the outputs, an L2 term in the loss on the weights)
CONFORMING = ["nielsen:BookNetwork", "published:CS231nFullyConnected",
              "published:SelfUpdatingLayers",
              "published:DeepLearningCourse", "layer_nets:NNFSNet", "layer_nets:CS231nNet"]


@pytest.mark.parametrize("name", CONFORMING)
def test_each_adapter_passes_conformance(name):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    result = subprocess.run([sys.executable, "-m", "harness", "conformance",
                             f"tests.gallery.{name}"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout


def test_a_setting_the_wrapped_code_lacks_is_a_one_line_usage_error():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "harness", "check", "--backends",
         "torch,tests.gallery.published:DeepLearningCourse", "--dataset", "iris",
         "--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.1", "--weight-decay", "0"],
        cwd=root, env=dict(os.environ, PYTHONPATH=str(root)), capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 2
    assert "this code has no setting for momentum=0.9 (it takes lr)" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_adapter_has_only_the_optional_members_its_code_has():
    """The protocol's extensions are recognised by an instance's members: an adapter
    without buffers, masks or intermediates must not look as if it had them (a failing
    comparison then localised through ``intermediates`` raised AttributeError)."""
    import numpy as np

    from harness.compare.equivalence import check_equivalence
    from harness.model.protocol import ExposesIntermediates, HasBuffers, TakesDropoutMasks
    from harness.model.registry import make_backend
    from harness.model.specs import ModelSpec, OptimizerSpec
    from tests.gallery.layer_nets import NNFSNet
    from tests.gallery.nielsen import BookQuadratic

    spec, opt = ModelSpec((4, 5, 3), activation="sigmoid"), OptimizerSpec("sgd", weight_decay=0.0)
    plain = BookQuadratic(spec, opt)
    assert not isinstance(plain, (ExposesIntermediates, HasBuffers, TakesDropoutMasks))
    layered = NNFSNet(ModelSpec(layers="linear(5),batchnorm,relu,dropout(0.5),linear(3)",
                                input_shape=(4,)), opt)
    assert isinstance(layered, HasBuffers) and isinstance(layered, TakesDropoutMasks)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 4)), np.arange(8) % 3
    reference = make_backend("torch", spec, opt)
    plain.set_params(reference.get_params())
    report = check_equivalence(reference, plain, x, y, reference_name="torch",
                               candidate_name="book")
    assert not report.passed


def test_gradcheck_builds_a_plugin_in_its_declared_terms_without_flags(capsys):
    """A gradient check never steps: without --optimizer a class implementing sgd alone is
    built with sgd, not refused for the command line's default adam; the book's network
    with its declared L2 term in the loss on the weights. A flag given still wins."""
    from harness.cli import main

    code = main(["gradcheck", "--backend", "tests.gallery.published:DeepLearningCourse",
                 "--dataset", "iris", "--samples", "16", "--max-entries", "4"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert ("built with the class's declared optimizer sgd (nnh_capabilities) and no "
            "weight decay in the optimizer (it never reaches a gradient)" in out)
    code = main(["gradcheck", "--backend", "tests.gallery.nielsen:BookNetwork", "--dataset",
                 "iris", "--activation", "sigmoid", "--loss", "bce", "--loss-outputs", "sum",
                 "--samples", "16", "--max-entries", "4"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert ("declared optimizer sgd, weight_decay_in loss, weight_decay_on weights"
            in out)
    assert main(["gradcheck", "--backend", "tests.gallery.published:DeepLearningCourse",
                 "--dataset", "iris", "--optimizer", "adam"]) == 2
    assert "has no adam optimizer (it has sgd)" in capsys.readouterr().err

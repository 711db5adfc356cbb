"""The layer-list grammar: parsing, resolution, names and shapes, and every refusal."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.model.layer_spec import LayerSpec, from_dims, parse, resolve

FULL = "linear(64),batchnorm,relu,dropout(0.5),linear(32),layernorm,tanh,linear(10)"


def test_parse_string_and_list_agree():
    items = ["linear(64)", ("batchnorm", ()), LayerSpec("relu"), ("dropout", 0.5),
             "linear(32)", "layernorm", "tanh", ("linear", (10,))]
    assert parse(FULL) == parse(items)
    assert parse("leaky_relu,linear(3)")[0] == LayerSpec("leaky_relu", (0.01,))
    assert parse("leaky_relu(0.2), dropout ,linear(3)")[:2] == (
        LayerSpec("leaky_relu", (0.2,)), LayerSpec("dropout", (0.5,)))


def test_resolve_names_shapes_and_widths():
    net = resolve(FULL, (64,), n_classes=10)
    assert list(net.param_shapes.items()) == [
        ("W0", (64, 64)), ("b0", (64,)), ("gamma0", (64,)), ("beta0", (64,)),
        ("W1", (64, 32)), ("b1", (32,)), ("gamma1", (32,)), ("beta1", (32,)),
        ("W2", (32, 10)), ("b2", (10,))]
    assert net.buffer_shapes == {"running_mean0": (64,), "running_var0": (64,)}
    assert net.widths_in == (64, 64, 64, 64, 64, 32, 32, 32)
    assert net.widths_out == (64, 64, 64, 64, 32, 32, 32, 10)
    assert net.indices == (0, 0, None, None, 1, 1, None, 2)
    assert net.dims == (64, 64, 32, 10)
    assert net.describe(1) == "layer 1 (batchnorm)"
    assert net.plain()[1] == ("batchnorm", {"index": 0, "width": 64})
    assert net.plain()[3] == ("dropout", {"p": 0.5})


def test_no_activation_between_linears_and_mixed_activations():
    net = resolve("linear(8),linear(6),sigmoid,linear(4),gelu,linear(3)", 5, 3)
    assert net.dims == (5, 8, 6, 4, 3)
    assert resolve("dropout(0.1),linear(3)", 7).param_shapes == {"W0": (7, 3), "b0": (3,)}


def test_from_dims_is_the_shorthand():
    assert from_dims((64, 32, 10), "relu") == parse("linear(32),relu,linear(10)")
    assert from_dims((4, 8, 8, 3), "tanh") == parse("linear(8),tanh,linear(8),tanh,linear(3)")
    assert from_dims((4, 3), "relu") == parse("linear(3)")


@pytest.mark.parametrize("spec, needles", [
    ("conv(3),linear(3)", ["unknown layer 'conv'", "linear(OUT)", "dropout(P)", "batchnorm"]),
    ("dropout(1.5),linear(3)", ["dropout(1.5)", "[0, 1)", "1.5"]),
    ("dropout(-0.1),linear(3)", ["[0, 1)", "-0.1"]),
    ("linear(0)", ["linear(0)", "positive integer", "0"]),
    ("linear(2.5)", ["positive integer", "2.5"]),
    ("linear", ["linear(OUT)", "output width"]),
    ("linear(3, 4)", ["one argument", "2"]),
    ("relu(2),linear(3)", ["relu(2)", "no arguments"]),
    ("linear(3),relu", ["last layer must be a linear", "relu"]),
    ("linear(4)", ["number of classes (3)", "linear(4)"]),
    ("", ["empty", "choices"]),
    ("linear(3", ["unbalanced parentheses", "linear(3"]),
    ("linear(3))", ["unbalanced parentheses", "linear(3))"]),
    ("linear(x)", ["numbers", "'x'"]),
    ("batchnorm,linear(3)", ["layer 0 (batchnorm)", "linear before it"]),
    ("linear(4),batchnorm,layernorm,linear(3)", ["one normalisation layer per linear",
                                                 "layer 2 (layernorm)"]),
    ("linear(3),,linear(3)", ["malformed layer", "choices"]),
])
def test_refusals_name_rule_value_choices(spec, needles):
    with pytest.raises(ConfigError) as info:
        resolve(spec, 5, n_classes=3)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_refusals_of_items_dims_and_input_shape():
    with pytest.raises(ConfigError, match="the spec is empty"):
        parse([])
    with pytest.raises(ConfigError, match="each item must be"):
        parse([3])
    with pytest.raises(ConfigError, match="`activation` must be one of relu"):
        from_dims((4, 3), "swish")
    with pytest.raises(ConfigError, match="at least two entries"):
        from_dims((4,), "relu")
    with pytest.raises(ConfigError, match="input_shape must be one positive integer"):
        resolve("linear(3)", (8, 8))

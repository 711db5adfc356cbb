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


CONV = "conv2d(8,3,padding=1),batchnorm,relu,maxpool2d(2),flatten,linear(10)"


def test_conv_keywords_positional_and_canonical_string():
    assert parse("conv2d(8, 3, 1, 1)") == parse("conv2d(8,3,padding=1)") == parse(
        [("conv2d", {"out": 8, "kernel": 3, "padding": 1})])
    assert parse("maxpool2d(2)") == (LayerSpec("maxpool2d", (2, 2)),)
    assert parse("avgpool2d(3, stride=1)") == (LayerSpec("avgpool2d", (3, 1)),)
    text = ",".join(map(str, parse(CONV + ",relu").__iter__()))
    assert text.startswith("conv2d(8, 3, padding=1),batchnorm,relu,maxpool2d(2),flatten")
    assert str(LayerSpec("conv2d", (4, 5, 2, 0))) == "conv2d(4, 5, stride=2)"
    assert str(LayerSpec("maxpool2d", (2, 1))) == "maxpool2d(2, stride=1)"
    assert parse(text) == parse(CONV + ",relu")


def test_conv_resolution_shapes_names_and_plain():
    net = resolve(CONV, (1, 8, 8), n_classes=10)
    assert list(net.param_shapes.items()) == [
        ("W0", (8, 1, 3, 3)), ("b0", (8,)), ("gamma0", (8,)), ("beta0", (8,)),
        ("W1", (128, 10)), ("b1", (10,))]
    assert net.buffer_shapes == {"running_mean0": (8,), "running_var0": (8,)}
    assert net.input_shape == (1, 8, 8) and net.input_width == 64
    assert net.shapes_out == ((8, 8, 8), (8, 8, 8), (8, 8, 8), (8, 4, 4), (128,), (10,))
    assert net.shapes_in[0] == (1, 8, 8) and net.shapes_in[-1] == (128,)
    assert net.widths_out == (512, 512, 512, 128, 128, 10)
    assert net.indices == (0, 0, None, None, None, 1)
    assert net.dims == (64, 512, 10)
    plain = net.plain()
    assert plain[0] == ("conv2d", {"index": 0, "in": 1, "out": 8, "kernel": 3, "stride": 1,
                                   "padding": 1, "in_shape": (1, 8, 8),
                                   "out_shape": (8, 8, 8)})
    assert plain[1][1]["spatial"] is True and plain[1][1]["width"] == 8
    assert plain[3] == ("maxpool2d", {"kernel": 2, "stride": 2, "in_shape": (8, 8, 8),
                                      "out_shape": (8, 4, 4)})
    assert plain[4] == ("flatten", {"in_shape": (8, 4, 4), "out_shape": (128,)})
    assert plain[5][1]["in"] == 128


def test_conv_output_size_stride_padding():
    # floor((H + 2p - k) / s) + 1: (9 + 2 - 3) // 2 + 1 = 5, (7 + 2 - 3) // 2 + 1 = 4
    net = resolve("conv2d(4,3,stride=2,padding=1),avgpool2d(2,stride=1),flatten,linear(3)",
                  (2, 9, 7))
    assert net.shapes_out[:2] == ((4, 5, 4), (4, 4, 3))
    assert net.param_shapes["W1"] == (48, 3)
    # a flatten on a flat activation is the identity; batchnorm after it is per feature
    flat = resolve("conv2d(2,3),flatten,batchnorm,linear(3)", (1, 4, 4))
    assert flat.plain()[2][1] == {"index": 0, "width": 8, "in_shape": (8,), "out_shape": (8,)}
    assert resolve("flatten,linear(3)", 5).dims == (5, 3)


@pytest.mark.parametrize("spec, needles", [
    ("conv2d(8,3),linear(3)", ["layer 1 (linear(3))", "(8, 6, 6)", "insert flatten"]),
    ("linear(3)", ["layer 0 (linear(3))", "(1, 8, 8)", "insert flatten"]),
    ("conv2d(8,9),flatten,linear(3)", ["layer 0 (conv2d(8, 9))", "(1, 8, 8)", "empty output",
                                       "0 x 0"]),
    ("maxpool2d(9),flatten,linear(3)", ["layer 0 (maxpool2d(9))", "larger than its input"]),
    ("conv2d(8,3),dropout,flatten,linear(3)", ["layer 1 (dropout(0.5))", "(C, H, W)",
                                               "after a linear or a flatten"]),
    ("conv2d(8,3),layernorm,flatten,linear(3)", ["layer 1 (layernorm)", "flatten"]),
    ("conv2d(8,3,stride=0),flatten,linear(3)", ["stride must be a positive integer", "0"]),
    ("conv2d(8,3,padding=-1),flatten,linear(3)", ["padding must be a non-negative", "-1"]),
    ("conv2d(8,2.5),flatten,linear(3)", ["kernel must be a positive integer", "2.5"]),
    ("conv2d(8),flatten,linear(3)", ["needs OUT and KERNEL", "conv2d(OUT, KERNEL"]),
    ("conv2d(8,3,1,1,1),flatten,linear(3)", ["at most 4 arguments", "5"]),
    ("conv2d(8,3,pad=1),flatten,linear(3)", ["unknown argument 'pad'", "padding"]),
    ("conv2d(8,3,out=2),flatten,linear(3)", ["'out' is given twice"]),
    ("conv2d(out=8,3),flatten,linear(3)", ["positional argument after a keyword"]),
    ("maxpool2d,flatten,linear(3)", ["needs K", "maxpool2d(K, stride=K)"]),
    ("relu(x=1),flatten,linear(3)", ["relu takes no keyword arguments"]),
    ("flatten(2),linear(3)", ["flatten takes no arguments"]),
    ("batchnorm,conv2d(2,3),flatten,linear(3)", ["layer 0 (batchnorm)", "linear before it"]),
])
def test_conv_refusals(spec, needles):
    with pytest.raises(ConfigError) as info:
        resolve(spec, (1, 8, 8), n_classes=3)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_conv_on_flat_input_and_bad_image_shapes():
    with pytest.raises(ConfigError, match=r"layer 0 \(conv2d\(8, 3\)\) needs a \(C, H, W\)"):
        resolve("conv2d(8,3),flatten,linear(3)", 64)
    for bad in [(1, 8), (1, 0, 8), (1, 8, 8, 1), "1,8,8", (1.0, 8, 8)]:
        with pytest.raises(ConfigError, match="input_shape must be one positive integer"):
            resolve("conv2d(8,3),flatten,linear(3)", bad)


def test_model_spec_with_an_image_input():
    from harness.model.specs import ModelSpec

    spec = ModelSpec(layers=CONV, input_shape=(1, 8, 8))
    assert spec.input_shape == (1, 8, 8) and spec.dims == (64, 512, 10)
    assert spec.dims[0] == 64 and spec.is_layered
    assert spec.fit(64, 10) is spec
    assert spec.to_dict()["input_shape"] == [1, 8, 8]
    assert ModelSpec(**{k: v for k, v in spec.to_dict().items() if k != "dims"}) == spec
    with pytest.raises(ConfigError, match=r"takes 64 input features \(input_shape \(1, 8, 8\)"):
        spec.fit(63, 10)
    with pytest.raises(ConfigError, match="needs a \\(C, H, W\\) activation"):
        ModelSpec(layers=CONV).fit(64, 10)

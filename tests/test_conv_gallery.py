"""The gallery of conv networks (tests/gallery/conv_nets.py) through the checks.

Each correct network passes the equivalence check and a short training run against
scratch and torch, in float64 and float32, with no hint; each wrong one fails with its
cause and layer named first. Small seeded data: 32 digits as 1x8x8 images (integer
pixels: after the first relu many max-pool windows tie), and 32 synthetic 3x6x6 images
where a mistake needs more than one input channel to show.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.checks import CheckConfig, run_checks
from harness.checks.run import build_model, check_rows
from harness.data.datasets import Dataset, load_dataset
from harness.diagnose.conv import conv_causes
from harness.diagnose.evidence import Evidence
from harness.model.specs import ModelSpec, OptimizerSpec
from tests.gallery import cs231n_conv as cs
from tests.gallery import im2col_conv as im


def _digits(n: int = 32) -> Dataset:
    d = load_dataset("digits").as_images((1, 8, 8))
    rows = np.random.default_rng(0).permutation(len(d.y))[:n]
    return Dataset(d.name, d.X[rows], d.y[rows], d.class_names, d.feature_names)


DIGITS = _digits()
RGB = load_dataset("synthetic_images", n_samples=32, input_shape=(3, 6, 6), n_classes=10)
SGD = OptimizerSpec(name="sgd", lr=0.1, momentum=0.9)

POOL = "conv2d(8,3,padding=1),relu,maxpool2d(2),flatten,linear(10)"
THREE = "conv2d(8,3,padding=1),relu,maxpool2d(2),flatten,linear(32),relu,linear(10)"
AVG = "conv2d(8,3,padding=1),relu,avgpool2d(2),flatten,linear(10)"
STRIDE = "conv2d(8,3,stride=2,padding=1),relu,flatten,linear(10)"
NETS = {"pool": POOL, "three": THREE, "avg": AVG, "stride": STRIDE}


def _config(net: str, layers: str, data: Dataset, dtype: str = "float64",
            reference: str = "scratch", **kw) -> CheckConfig:
    spec = ModelSpec(layers=layers, input_shape=data.image_shape, dtype=dtype)
    return CheckConfig(backends=(reference, f"tests.gallery.conv_nets:{net}"), spec=spec,
                       optimizer=SGD, threads=1, **kw)


def check(net, layers, data=DIGITS, dtype="float64", reference="scratch"):
    """(passed, hints) of the equivalence check."""
    result = run_checks(_config(net, layers, data, dtype, reference), data,
                        ["equivalence"]).results[0]
    return result.passed, list(result.hints)


# ------------------------------------------------------------------ the layers themselves
def _torch_conv(x, w, b, stride, pad, dout):
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    out = F.conv2d(xt, wt, bt, stride=stride, padding=pad)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("stride, pad", [(1, 1), (2, 1), (1, 0), (2, 2)])
def test_both_convolutions_equal_torch(stride, pad):
    rng = np.random.default_rng(1)
    x, w, b = rng.normal(size=(3, 2, 7, 7)), rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4)
    out, cache = cs.conv_forward_naive(x, w, b, {"stride": stride, "pad": pad})
    dout = rng.normal(size=out.shape)
    expected = _torch_conv(x, w, b, stride, pad, dout)
    np.testing.assert_allclose(out, expected[0], rtol=1e-12, atol=1e-12)
    for got, want in zip(cs.conv_backward_naive(dout, cache), expected[1:]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    layer = im.Conv2D(w, b, stride, pad)
    np.testing.assert_allclose(layer.forward(x), expected[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.backward(dout), expected[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], expected[2], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], expected[3], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_both_pools_equal_torch_ties_included(mode):
    """Integer pixels in 0..3: most 2x2 windows hold a tie; torch's max pool (CPU) gives a
    window's gradient to its first maximum, and so do both pools."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 4, size=(2, 3, 6, 6)).astype(np.float64)
    dout = rng.normal(size=(2, 3, 3, 3))
    xt = torch.tensor(x, requires_grad=True)
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    out_t = pool(xt, 2)
    out_t.backward(torch.tensor(dout))
    param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    if mode == "max":
        out, cache = cs.max_pool_forward_naive(x, param)
        dx = cs.max_pool_backward_naive(dout, cache)
    else:
        out, cache = cs.avg_pool_forward_naive(x, param)
        dx = cs.avg_pool_backward_naive(dout, cache)
    layer = im.Pool2D(2, 2, mode)
    for got, grad in ((out, dx), (layer.forward(x), layer.backward(dout))):
        np.testing.assert_allclose(got, out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_the_digits_hold_ties_after_the_first_relu():
    """The tie bugs can only show where windows tie: count them on the check's rows."""
    from harness.diagnose.conv_math import emulate, tied_windows
    from harness.model.registry import make_backend

    spec = ModelSpec(layers=POOL, input_shape=(1, 8, 8))
    x, y = check_rows(_config("CS231nConvNet", POOL, DIGITS), DIGITS)
    relu = emulate(spec.network.plain(), make_backend("scratch", spec, SGD).get_params(),
                   x, y)["outs"][1]
    tied, total = tied_windows(relu, {"kernel": 2, "stride": 2})
    assert tied > total // 20, (tied, total)


# ------------------------------------------------------------------ the correct ones
CORRECT = [("CS231nConvNet", "pool", DIGITS), ("Im2colConvNet", "pool", DIGITS),
           ("CS231nConvNet", "three", DIGITS), ("Im2colConvNet", "three", DIGITS),
           ("CS231nConvNet", "avg", RGB), ("Im2colConvNet", "stride", RGB)]
IDS = [f"{c[0]}-{c[1]}-{c[2].image_shape[0]}ch" for c in CORRECT]


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("reference", ["scratch", "torch"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("net, layers, data", CORRECT, ids=IDS)
def test_a_correct_conv_network_passes_the_check(net, layers, data, dtype, reference):
    passed, hints = check(net, NETS[layers], data, dtype, reference)
    assert passed and hints == [], hints


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("reference", ["scratch", "torch"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("net", ["CS231nConvNet", "Im2colConvNet"])
def test_a_correct_conv_network_trains_alike(net, dtype, reference):
    config = _config(net, POOL, DIGITS, dtype, reference, epochs=2, batch_size=16)
    result = run_checks(config, DIGITS, ["training"]).results[0]
    assert result.passed, result.text


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("net, trains_alike", [("KernelFlipped", False),
                                               ("MaxPoolEveryTie", False),
                                               ("MaxPoolLastTie", True)])
def test_the_trajectory_parts_where_the_gradients_do(net, trains_alike):
    config = _config(net, POOL, DIGITS, "float32", "torch", epochs=2, batch_size=16)
    result = run_checks(config, DIGITS, ["training"]).results[0]
    assert result.passed == trains_alike, result.text


@pytest.mark.parametrize("net, layers, data", CORRECT, ids=IDS)
def test_a_correct_conv_network_has_no_conv_cause(net, layers, data):
    """Asked directly (the check would not ask: it passes), the causes find nothing."""
    config = _config(net, NETS[layers], data)
    x, y = check_rows(config, data)
    ev = Evidence.build(config, *config.backends, x, y, builder=build_model)
    assert conv_causes(ev) is None


# ------------------------------------------------------------------ the wrong ones
# (network, layers, data, the start of the first line, text in it)
WRONG = [
    ("KernelFlipped", "pool", DIGITS, "layer 0 (conv2d(8, 3, padding=1)): the kernel is "
     "flipped (a true convolution; torch computes a cross-correlation)", "W[f, c, kh-1-p"),
    ("InputNHWC", "pool", RGB, "the input of layer 0 (conv2d(8, 3, padding=1)): the input "
     "read as (N, H, W, C)", "where it comes as (N, C, H, W) already"),
    ("WeightsInOut", "pool", RGB, "layer 0 (conv2d(8, 3, padding=1)): the weights read as "
     "(in, out, kh, kw)", "W0 is (out, in, kh, kw)"),
    ("FlattenHWC", "pool", DIGITS, "layer 3 (flatten): a flatten in (H, W, C) order",
     "x.transpose(0, 2, 3, 1)"),
    ("FlattenHWC", "three", DIGITS, "layer 3 (flatten): a flatten in (H, W, C) order",
     "nn.Flatten takes (C, H, W)"),
    ("PaddedBottomRight", "pool", DIGITS, "layer 0 (conv2d(8, 3, padding=1)): asymmetric "
     "padding", "all 2 rows and columns of zeros at the bottom and right"),
    ("StrideInBackward", "stride", DIGITS, "layer 0 (conv2d(8, 3, stride=2, padding=1)): "
     "the stride applied to the output in the backward", "(the forward agrees)"),
    ("MaxPoolEveryTie", "pool", DIGITS, "layer 2 (maxpool2d(2)): max-pool gradient on "
     "every tied entry", "windows of its input hold a tie"),
    ("MaxPoolEveryTie", "three", DIGITS, "layer 2 (maxpool2d(2)): max-pool gradient on "
     "every tied entry", "the first maximum in row-major order"),
    ("AvgPoolDivideByK", "avg", DIGITS, "layer 2 (avgpool2d(2)): average pool divided by "
     "the wrong count", "divides its sum by 2 where the 2x2 window holds 4 entries"),
]


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("reference", ["scratch", "torch"])
@pytest.mark.parametrize("net, layers, data, cause, detail", WRONG,
                         ids=[f"{c[0]}-{c[1]}" for c in WRONG])
def test_a_wrong_conv_network_fails_with_its_cause_and_layer(net, layers, data, cause,
                                                             detail, reference):
    passed, hints = check(net, NETS[layers], data, reference=reference)
    assert not passed, hints
    assert hints and hints[0].startswith(cause), hints
    assert detail in hints[0], hints[0]
    assert "checked: your evaluation logits, training loss, gradients" in hints[0], hints[0]


@pytest.mark.parametrize("net, layers, data, cause", [
    ("KernelFlipped", "pool", DIGITS, "layer 0 (conv2d(8, 3, padding=1)): the kernel is"),
    ("MaxPoolEveryTie", "pool", DIGITS, "layer 2 (maxpool2d(2)): max-pool gradient on every"),
    ("FlattenHWC", "pool", DIGITS, "layer 3 (flatten): a flatten in (H, W, C) order"),
])
def test_a_bug_fails_in_float32_too(net, layers, data, cause):
    passed, hints = check(net, NETS[layers], data, "float32")
    assert not passed and hints and hints[0].startswith(cause), hints


@pytest.mark.parametrize("net", ["InputNHWC", "WeightsInOut"])
def test_a_layout_mistake_is_invisible_with_one_channel(net):
    """With one input channel (N, 1, H, W) read as (N, H, W, 1) is the same memory, and an
    (8, 1, 3, 3) weight read as (1, 8, 3, 3) gives the same kernel: the network is right
    on digits, and the check says so."""
    passed, hints = check(net, POOL, DIGITS)
    assert passed and hints == [], hints


def test_the_last_tie_trains_alike_and_shows_in_the_input_gradient():
    """A max pool that routes a tie to its last entry: tied entries of the pool's input
    share their receptive field (constant patches of the digits), so every parameter
    gradient is the same and the check passes; the input gradient dL/dx, which the
    network exposes in its intermediates, differs, and the cause names it from that."""
    passed, hints = check("MaxPoolLastTie", POOL)
    assert passed and hints == [], hints
    config = _config("MaxPoolLastTie", POOL, DIGITS)
    x, y = check_rows(config, DIGITS)
    ev = Evidence.build(config, *config.backends, x, y, builder=build_model)
    line = conv_causes(ev)
    assert line is not None and line.startswith(
        "layer 2 (maxpool2d(2)): max-pool gradient on the last tied entry"), line
    assert "input gradient dL/dx" in line, line


def test_a_mistake_outside_the_catalogue_gets_no_conv_cause():
    """The linear's bias gradient doubled: the check fails, and no conv mistake is named
    (none reproduces the candidate)."""
    passed, hints = check("DenseBiasGradTwice", POOL)
    assert not passed
    assert not any(h.startswith(("layer ", "the input of layer")) for h in hints), hints
    config = _config("DenseBiasGradTwice", POOL, DIGITS)
    x, y = check_rows(config, DIGITS)
    assert conv_causes(Evidence.build(config, *config.backends, x, y,
                                      builder=build_model)) is None

"""Convolutional networks written the way course code writes them, and their bugs.

Each is built as ``Cls(spec, optimizer)`` and reads its layers (conv2d, relu, maxpool2d,
avgpool2d, flatten, linear) from ``spec.network.plain()``; plain SGD (with momentum)
from ``optimizer.lr`` and ``optimizer.momentum``. Batches are (N, C, H, W). Two correct
ones:

* :class:`CS231nConvNet`: cs231n's naive functions (:mod:`tests.gallery.cs231n_conv`),
  weights in a dict under cs231n's own names, 1-based (``W1`` the first conv, ``W2`` the
  next weight layer, ...), which a thin adapter maps to the canonical ``W0``, ``W1``,
  ... The layouts already agree: a conv weight (F, C, HH, WW) is (out, in, kh, kw), an
  affine weight (D, M) is (in, out).
* :class:`Im2colConvNet`: layer objects with forward and backward, an im2col
  convolution (:mod:`tests.gallery.im2col_conv`).

Every other class is one of them with one thing done wrong (its docstring says what).
"""

from __future__ import annotations

import numpy as np

from tests.gallery import cs231n_conv as cs
from tests.gallery import im2col_conv as im
from tests.gallery.layer_nets import _check_optimizer, _decay, _uniform

KINDS = ("conv2d", "relu", "maxpool2d", "avgpool2d", "flatten", "linear")


def _check_layers(layers) -> None:
    for name, _ in layers:
        if name not in KINDS:
            raise ValueError(f"this network has no {name} layer (it has {', '.join(KINDS)})")


def _initial(layers, seed, dtype) -> dict:
    """Canonical W{k}, b{k}, uniform in +-1/sqrt(fan_in) as torch's default."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, kw in layers:
        k = kw.get("index")
        if name == "conv2d":
            fan_in = kw["in"] * kw["kernel"] ** 2
            shape = (kw["out"], kw["in"], kw["kernel"], kw["kernel"])
        elif name == "linear":
            fan_in, shape = kw["in"], (kw["in"], kw["out"])
        else:
            continue
        params[f"W{k}"] = _uniform(rng, fan_in, shape, dtype)
        params[f"b{k}"] = _uniform(rng, fan_in, shape[-1:] if name == "linear"
                                   else shape[:1], dtype)
    return params


class _SGD:
    """The shared momentum step, v = m v - lr g; w += v, on canonical names."""

    def __init__(self, spec, optimizer):
        _check_optimizer(optimizer)
        self.spec = spec
        self.layers = spec.network.plain()
        _check_layers(self.layers)
        self.dims = tuple(spec.dims)
        self.dtype = np.dtype(spec.dtype)
        self.lr, self.momentum = optimizer.lr, optimizer.momentum
        self.opt = optimizer

    def train_step(self, x, y):
        loss, grads = self.loss_and_grads(x, y)
        params = self.get_params()
        if not hasattr(self, "velocity"):
            self.velocity = {k: np.zeros_like(v) for k, v in params.items()}
        for k, w in params.items():
            g = grads[k] + _decay(self.opt, k) * w
            self.velocity[k] = self.momentum * self.velocity[k] - self.lr * g
            params[k] = w + self.velocity[k]
        self.set_params(params)
        return loss


# ====================================================================== cs231n
class CS231nConvNet(_SGD):
    """A conv network on cs231n's naive functions, its weights under cs231n's names."""

    conv_forward = staticmethod(cs.conv_forward_naive)
    conv_backward = staticmethod(cs.conv_backward_naive)
    max_pool_backward = staticmethod(cs.max_pool_backward_naive)

    def __init__(self, spec, optimizer):
        super().__init__(spec, optimizer)
        # cs231n's names: W1, b1 for the first weight layer, 1-based
        self.params = {self.cs_name(k): v
                       for k, v in _initial(self.layers, spec.seed, self.dtype).items()}

    @staticmethod
    def cs_name(canonical: str) -> str:
        """``W0`` -> ``W1``: cs231n counts the weight layers from 1."""
        return f"{canonical[0]}{int(canonical[1:]) + 1}"

    def prepare(self, x):
        """The batch as cs231n's layers take it, (N, C, H, W)."""
        return np.asarray(x, dtype=self.dtype)

    def layer_forward(self, name, kw, x):
        if name == "conv2d":
            k = kw["index"] + 1
            return self.conv_forward(x, self.params[f"W{k}"], self.params[f"b{k}"],
                                     {"stride": kw["stride"], "pad": kw["padding"]})
        if name == "linear":
            k = kw["index"] + 1
            return cs.affine_forward(x, self.params[f"W{k}"], self.params[f"b{k}"])
        if name == "relu":
            return cs.relu_forward(x)
        if name in ("maxpool2d", "avgpool2d"):
            pool_param = {"pool_height": kw["kernel"], "pool_width": kw["kernel"],
                          "stride": kw["stride"]}
            forward = (cs.max_pool_forward_naive if name == "maxpool2d"
                       else cs.avg_pool_forward_naive)
            return forward(x, pool_param)
        return x, None  # flatten: affine_forward flattens for itself, as in cs231n

    def layer_backward(self, name, kw, dout, cache, grads):
        if name in ("conv2d", "linear"):
            k = kw["index"] + 1
            backward = self.conv_backward if name == "conv2d" else cs.affine_backward
            dx, grads[f"W{k}"], grads[f"b{k}"] = backward(dout, cache)
            return dx
        if name == "relu":
            return cs.relu_backward(dout, cache)
        if name == "maxpool2d":
            return self.max_pool_backward(dout, cache)
        if name == "avgpool2d":
            return cs.avg_pool_backward_naive(dout, cache)
        return dout

    def _scores(self, x):
        out, caches = self.prepare(x), []
        for name, kw in self.layers:
            out, cache = self.layer_forward(name, kw, out)
            caches.append(cache)
        return out, caches

    def forward(self, x):
        return self._scores(x)[0]

    def loss_and_grads(self, x, y):
        scores, caches = self._scores(x)
        loss, dout = cs.softmax_loss(scores, np.asarray(y))
        grads = {}
        for (name, kw), cache in zip(reversed(self.layers), reversed(caches)):
            dout = self.layer_backward(name, kw, dout, cache, grads)
        return float(loss), {k: grads[self.cs_name(k)] for k in self.get_params()}

    # ------------------------------------------------------------ the adapter
    def get_params(self):
        """Canonical names: cs231n's W{k+1} is W{k}; the layouts are the same."""
        return {f"{k[0]}{int(k[1:]) - 1}": v.copy() for k, v in self.params.items()}

    def set_params(self, params):
        for k, v in params.items():
            mine = self.cs_name(k)
            if np.shape(v) != self.params[mine].shape:
                raise ValueError(f"{k} must have shape {self.params[mine].shape}")
            self.params[mine] = np.array(v, dtype=self.dtype)


# ====================================================================== im2col objects
class Im2colConvNet(_SGD):
    """A conv network of layer objects with an im2col convolution."""

    conv_class = im.Conv2D
    pool_class = im.Pool2D
    flatten_class = im.Flatten

    def __init__(self, spec, optimizer):
        super().__init__(spec, optimizer)
        params = _initial(self.layers, spec.seed, self.dtype)
        self.objects = []  # (canonical index or None, layer object)
        for name, kw in self.layers:
            k = kw.get("index")
            self.objects.append((k, self.make_layer(name, kw, params)))
        self.loss = im.SoftmaxCrossEntropy()

    def make_layer(self, name, kw, params):
        k = kw.get("index")
        if name == "conv2d":
            return self.conv_class(params[f"W{k}"], params[f"b{k}"], kw["stride"],
                                   kw["padding"])
        if name == "linear":
            return im.Dense(params[f"W{k}"], params[f"b{k}"])
        if name == "relu":
            return im.ReLU()
        if name == "flatten":
            return self.flatten_class()
        return self.pool_class(kw["kernel"], kw["stride"], name[:3])

    def _scores(self, x, training):
        out = np.asarray(x, dtype=self.dtype)
        for _, layer in self.objects:
            out = layer.forward(out, training)
        return out

    def forward(self, x):
        return self._scores(x, False)

    def loss_and_grads(self, x, y):
        loss = self.loss.forward(self._scores(x, True), np.asarray(y))
        d = self.loss.backward()
        for _, layer in reversed(self.objects):
            d = layer.backward(d)
        grads = {f"{p}{k}": layer.grads[p] for k, layer in self.objects if k is not None
                 for p in ("W", "b")}
        return float(loss), grads

    def intermediates(self, x, y):
        """A training pass named as the built-in networks name it: ``out{i}`` (layer i's
        output), from the last layer down ``dout{i}`` and ``dW{k}``, ``db{k}``, then
        ``dinput`` (dL/dx)."""
        outs, h = [], np.asarray(x, dtype=self.dtype)
        for _, layer in self.objects:
            h = layer.forward(h, True)
            outs.append(h)
        self.loss.forward(h, np.asarray(y))
        d = self.loss.backward()
        result = {f"out{i}": out for i, out in enumerate(outs)}
        for i in reversed(range(len(self.objects))):
            k, layer = self.objects[i]
            result[f"dout{i}"] = d
            d = layer.backward(d)
            if k is not None:
                result[f"dW{k}"], result[f"db{k}"] = layer.grads["W"], layer.grads["b"]
        result["dinput"] = d
        return result

    def get_params(self):
        return {f"{p}{k}": layer.params[p].copy() for k, layer in self.objects
                if k is not None for p in ("W", "b")}

    def set_params(self, params):
        for k, layer in self.objects:
            if k is None:
                continue
            for p in ("W", "b"):
                value = np.array(params[f"{p}{k}"], dtype=self.dtype)
                if value.shape != layer.params[p].shape:
                    raise ValueError(f"{p}{k} must have shape {layer.params[p].shape}")
                layer.params[p] = value


# ====================================================================== cs231n's bugs
def _conv_forward_flipped(x, w, b, conv_param):
    """A true convolution: the kernel flipped in both spatial axes before the sums."""
    return cs.conv_forward_naive(x, w[:, :, ::-1, ::-1], b, conv_param)


def _conv_backward_flipped(dout, cache):
    dx, dw_flipped, db = cs.conv_backward_naive(dout, cache)
    return dx, dw_flipped[:, :, ::-1, ::-1], db


def _conv_forward_padded_bottom_right(x, w, b, conv_param):
    """TF "SAME"-style padding put on one side: the 2P zeros all at the bottom and right."""
    pad = conv_param["pad"]
    x_pad = np.pad(x, ((0, 0), (0, 0), (0, 2 * pad), (0, 2 * pad)))
    out, _ = cs.conv_forward_naive(x_pad, w, b, {"stride": conv_param["stride"], "pad": 0})
    return out, (x, w, b, conv_param)


def _conv_backward_padded_bottom_right(dout, cache):
    x, w, b, conv_param = cache
    pad = conv_param["pad"]
    x_pad = np.pad(x, ((0, 0), (0, 0), (0, 2 * pad), (0, 2 * pad)))
    dx_pad, dw, db = cs.conv_backward_naive(
        dout, (x_pad, w, b, {"stride": conv_param["stride"], "pad": 0}))
    return dx_pad[:, :, :x.shape[2], :x.shape[3]], dw, db


def _max_pool_backward_every_tie(dout, cache):
    """Each window's gradient to every entry equal to its maximum (the mask x == max)."""
    x, pool_param = cache
    HH, WW, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            hs, ws = i * stride, j * stride
            window = x[:, :, hs:hs + HH, ws:ws + WW]
            mask = window == np.max(window, axis=(2, 3), keepdims=True)
            dx[:, :, hs:hs + HH, ws:ws + WW] += mask * dout[:, :, i, j][:, :, None, None]
    return dx


class KernelFlipped(CS231nConvNet):
    """A true convolution (the kernel flipped), where torch computes a cross-correlation."""

    conv_forward = staticmethod(_conv_forward_flipped)
    conv_backward = staticmethod(_conv_backward_flipped)


class PaddedBottomRight(CS231nConvNet):
    """The padding all at the bottom and right (2P rows and columns), none at the top
    and left: the output has the right size, every window is moved by P."""

    conv_forward = staticmethod(_conv_forward_padded_bottom_right)
    conv_backward = staticmethod(_conv_backward_padded_bottom_right)


class MaxPoolEveryTie(CS231nConvNet):
    """Max pool's backward as ``dx[window == max] += dout``: every tied entry gets it."""

    max_pool_backward = staticmethod(_max_pool_backward_every_tie)


class InputNHWC(CS231nConvNet):
    """The batch read as (N, H, W, C) and transposed to (N, C, H, W), as for TF data."""

    def prepare(self, x):
        x = np.asarray(x, dtype=self.dtype)
        n, c, h, w = x.shape
        return x.reshape(n, h, w, c).transpose(0, 3, 1, 2)


# ====================================================================== im2col's bugs
class _ConvWeightsInOut(im.Conv2D):
    def kernel(self):
        """The stored weight read as (in, out, k, k) and transposed to (out, in, k, k)."""
        W = self.params["W"]
        f, c, k, _ = W.shape
        return W.reshape(c, f, k, k).transpose(1, 0, 2, 3)

    def kernel_grad(self, dkernel):
        return dkernel.transpose(1, 0, 2, 3).reshape(self.params["W"].shape)


class _ConvStrideInBackward(im.Conv2D):
    """Forward: the stride-1 output subsampled at (s*i, s*j) (right). Backward: dout put
    at the first H' x W' positions of the stride-1 output (wrong: at (s*i, s*j))."""

    def __init__(self, W, b, stride=1, padding=0):
        super().__init__(W, b, 1, padding)
        self.out_stride = stride

    def forward(self, x, training=True):
        full = super().forward(x, training)
        self.full_shape = full.shape
        return full[:, :, ::self.out_stride, ::self.out_stride]

    def backward(self, dout):
        dfull = np.zeros(self.full_shape, dtype=dout.dtype)
        dfull[:, :, :dout.shape[2], :dout.shape[3]] = dout
        return super().backward(dfull)


class _FlattenHWC(im.Flatten):
    """(N, C, H, W) flattened in (H, W, C) order, as a channels-last network does."""

    def forward(self, x, training=True):
        self.shape = x.shape
        return x.transpose(0, 2, 3, 1).reshape(x.shape[0], -1)

    def backward(self, dout):
        n, c, h, w = self.shape
        return dout.reshape(n, h, w, c).transpose(0, 3, 1, 2)


class _PoolLastTie(im.Pool2D):
    def route(self, flat):
        """To the LAST maximum of each window (argmax over the reversed window)."""
        last = flat.shape[-1] - 1 - flat[..., ::-1].argmax(axis=-1)
        return np.arange(flat.shape[-1]) == last[..., None]


class _PoolDivideByK(im.Pool2D):
    def divisor(self):
        """k, where the window has k * k entries."""
        return self.k


class WeightsInOut(Im2colConvNet):
    """The conv weight read as (in, out, kh, kw) where it is (out, in, kh, kw)."""

    conv_class = _ConvWeightsInOut


class StrideInBackward(Im2colConvNet):
    """A strided conv as stride 1 then subsampling; its backward places dout at the wrong
    positions of the stride-1 output."""

    conv_class = _ConvStrideInBackward


class FlattenHWC(Im2colConvNet):
    """Flatten in (H, W, C) order, where nn.Flatten takes (C, H, W)."""

    flatten_class = _FlattenHWC


class MaxPoolLastTie(Im2colConvNet):
    """Max pool's gradient to the last maximum of a tied window, not the first."""

    pool_class = _PoolLastTie


class AvgPoolDivideByK(Im2colConvNet):
    """Average pool divided by k, not by the k * k entries of its window."""

    pool_class = _PoolDivideByK


class _DenseBiasTwice(im.Dense):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["b"] = 2 * self.grads["b"]
        return dx


class DenseBiasGradTwice(Im2colConvNet):
    """A mistake outside the conv catalogue: the linear layer's bias gradient doubled."""

    def make_layer(self, name, kw, params):
        if name == "linear":
            k = kw["index"]
            return _DenseBiasTwice(params[f"W{k}"], params[f"b{k}"])
        return super().make_layer(name, kw, params)

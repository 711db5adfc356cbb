"""A convolutional network written out in float64, and its classic wrong versions.

The likely causes for conv networks (:mod:`harness.diagnose.conv`) compare the candidate
with this emulation at the same weights and batch: when the plain emulation reproduces
the reference and one wrong version, put at one layer, reproduces the candidate, that
version at that layer is the evidence. The wrong versions (:data:`VARIANTS`), by layer:

====================  ===================  ==============================================
layer                 variant              what it computes
====================  ===================  ==============================================
conv2d                ``flipped``          a true convolution: the kernel flipped in both
                                           spatial axes (dW flipped back)
conv2d (the first)    ``nhwc_input``       the (N, C, H, W) batch read as (N, H, W, C) and
                                           transposed to (N, C, H, W)
conv2d                ``weights_in_out``   the weight's memory read as (in, out, kh, kw)
conv2d                ``pad_bottom_right`` all 2P zeros at the bottom and the right
conv2d (stride > 1)   ``stride_backward``  forward right; backward puts dout at the first
                                           H' x W' positions of the stride-1 output
maxpool2d             ``ties_all``         a window's gradient to every tied maximum
maxpool2d             ``ties_last``        ... to the last maximum, not the first
avgpool2d             ``divisor_k``        the window's sum divided by K, not K * K
flatten               ``hwc``              (C, H, W) flattened in (H, W, C) order
====================  ===================  ==============================================

The network is the resolved one, as ``(name, kwargs)`` tuples (``ResolvedNetwork.plain``):
conv, pool, flatten and linear layers and the activations; shapes (N, C, H, W).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from harness.diagnose.layer_math import _act, _loss

#: variant -> the layer kind it applies to
VARIANTS = {"flipped": "conv2d", "nhwc_input": "conv2d", "weights_in_out": "conv2d",
            "pad_bottom_right": "conv2d", "stride_backward": "conv2d",
            "ties_all": "maxpool2d", "ties_last": "maxpool2d", "divisor_k": "avgpool2d",
            "hwc": "flatten"}
#: the layer kinds the emulation knows
KINDS = ("conv2d", "maxpool2d", "avgpool2d", "flatten", "linear", "relu", "leaky_relu",
         "tanh", "sigmoid", "gelu")


# ------------------------------------------------------------------ windows
def _windows(x, k: int, stride: int) -> np.ndarray:
    """(N, C, H, W) -> (N, C, H', W', k, k): the window of every output position."""
    return sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]


def _add_windows(dwin, shape, stride: int) -> np.ndarray:
    """The adjoint of :func:`_windows`: window gradients added back into (N, C, H, W)."""
    _, _, h_out, w_out, k, _ = dwin.shape
    dx = np.zeros(shape)
    for p in range(k):
        for q in range(k):
            dx[:, :, p:p + stride * h_out:stride, q:q + stride * w_out:stride] += dwin[..., p, q]
    return dx


# ------------------------------------------------------------------ conv2d
def _pads(kw, variant) -> tuple[tuple[int, int], tuple[int, int]]:
    p = kw["padding"]
    return ((0, 2 * p), (0, 2 * p)) if variant == "pad_bottom_right" else ((p, p), (p, p))


def _kernel(W, variant):
    """The (out, in, k, k) kernel the variant multiplies with."""
    if variant == "flipped":
        return W[:, :, ::-1, ::-1]
    if variant == "weights_in_out":
        f, c, k, _ = W.shape
        return W.reshape(c, f, k, k).transpose(1, 0, 2, 3)
    return W


def _kernel_grad(dK, W, variant):
    """dL/dW from dL/d(the kernel of :func:`_kernel`)."""
    if variant == "flipped":
        return dK[:, :, ::-1, ::-1]
    if variant == "weights_in_out":
        return dK.transpose(1, 0, 2, 3).reshape(W.shape)
    return dK


def conv_forward(x, W, b, kw, variant=None):
    # out[n, f, i, j] = sum_{c,p,q} xpad[n, c, s*i + p, s*j + q] K[f, c, p, q] + b[f]
    if variant == "nhwc_input":
        n, c, h, w = x.shape
        x = x.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    ph, pw = _pads(kw, variant)
    xp = np.pad(x, ((0, 0), (0, 0), ph, pw))
    cols = _windows(xp, kw["kernel"], kw["stride"])
    out = np.einsum("nchwpq,fcpq->nfhw", cols, _kernel(W, variant)) + b[None, :, None, None]
    return out, (x.shape, xp.shape, cols, xp)


def conv_backward(d, W, cache, kw, variant=None):
    """(dx, dW, db) from d = dL/dout (N, F, H', W')."""
    x_shape, xp_shape, cols, xp = cache
    K, stride = _kernel(W, variant), kw["stride"]
    db = d.sum(axis=(0, 2, 3))
    if variant == "stride_backward" and stride > 1:
        k = kw["kernel"]
        full = np.zeros(d.shape[:2] + (xp_shape[2] - k + 1, xp_shape[3] - k + 1))
        full[:, :, :d.shape[2], :d.shape[3]] = d  # where (s*i, s*j) was meant
        d, stride = full, 1
        cols = _windows(xp, k, 1)
    dK = np.einsum("nfhw,nchwpq->fcpq", d, cols)
    dxp = _add_windows(np.einsum("nfhw,fcpq->nchwpq", d, K), xp_shape, stride)
    (top, _), (left, _) = _pads(kw, variant)
    dx = dxp[:, :, top:top + x_shape[2], left:left + x_shape[3]]
    return dx, _kernel_grad(dK, W, variant), db


# ------------------------------------------------------------------ pools, flatten
def pool_forward(name, x, kw, variant=None):
    """Max or average pooling; the cache is the flat windows (N, C, H', W', k*k)."""
    k = kw["kernel"]
    win = _windows(x, k, kw["stride"])
    flat = win.reshape(win.shape[:4] + (k * k,))
    if name == "maxpool2d":
        return flat.max(axis=-1), (x.shape, flat)
    divisor = k if variant == "divisor_k" else k * k
    return flat.sum(axis=-1) / divisor, (x.shape, flat)


def pool_backward(name, d, cache, kw, variant=None):
    x_shape, flat = cache
    k = kw["kernel"]
    if name == "avgpool2d":
        divisor = k if variant == "divisor_k" else k * k
        dflat = np.broadcast_to((d / divisor)[..., None], flat.shape)
    else:
        dflat = d[..., None] * route(flat, variant)
    return _add_windows(dflat.reshape(d.shape + (k, k)), x_shape, kw["stride"])


def route(flat, variant=None) -> np.ndarray:
    """Where each max window's gradient goes, a 0/1 array like ``flat``: its first
    maximum in row-major order (torch on the CPU); ``ties_all``: every maximum;
    ``ties_last``: the last."""
    if variant == "ties_all":
        return (flat == flat.max(axis=-1, keepdims=True)).astype(np.float64)
    at = (flat.shape[-1] - 1 - flat[..., ::-1].argmax(axis=-1) if variant == "ties_last"
          else flat.argmax(axis=-1))
    return (np.arange(flat.shape[-1]) == at[..., None]).astype(np.float64)


def tied_windows(x, kw) -> tuple[int, int]:
    """(windows whose maximum is held by more than one entry, all windows) of a max pool."""
    k = kw["kernel"]
    win = _windows(x, k, kw["stride"])
    flat = win.reshape(win.shape[:4] + (k * k,))
    ties = (flat == flat.max(axis=-1, keepdims=True)).sum(axis=-1) > 1
    return int(ties.sum()), int(ties.size)


def _flatten(x, variant):
    return x.transpose(0, 2, 3, 1).reshape(len(x), -1) if variant == "hwc" \
        else x.reshape(len(x), -1)


def _unflatten(d, shape, variant):
    if variant == "hwc":
        n, c, h, w = shape
        return d.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    return d.reshape(shape)


# ------------------------------------------------------------------ the passes
def _forward(layers, params, x, at, variant):
    """Logits, each layer's output and the caches; ``variant`` at position ``at``."""
    h, caches, outs = x, [], []
    for pos, (name, kw) in enumerate(layers):
        v = variant if pos == at else None
        k = kw.get("index")
        if name == "conv2d":
            h, cache = conv_forward(h, params[f"W{k}"], params[f"b{k}"], kw, v)
        elif name in ("maxpool2d", "avgpool2d"):
            h, cache = pool_forward(name, h, kw, v)
        elif name == "flatten":
            cache, h = h.shape, (_flatten(h, v) if h.ndim == 4 else h)
        elif name == "linear":
            cache, h = h, h @ params[f"W{k}"] + params[f"b{k}"]
        else:
            h, cache = _act(name, h, kw.get("slope", 0.01))
        caches.append(cache)
        outs.append(h)
    return h, caches, outs


def _backward(layers, params, caches, d, at, variant) -> tuple[dict, np.ndarray]:
    grads = {}
    for pos in reversed(range(len(layers))):
        (name, kw), cache = layers[pos], caches[pos]
        v = variant if pos == at else None
        k = kw.get("index")
        if name == "conv2d":
            d, grads[f"W{k}"], grads[f"b{k}"] = conv_backward(d, params[f"W{k}"], cache, kw, v)
            if v == "nhwc_input":  # back to the layout the batch was handed in
                n, c, h, w = d.shape
                d = d.transpose(0, 2, 3, 1).reshape(n, c, h, w)
        elif name in ("maxpool2d", "avgpool2d"):
            d = pool_backward(name, d, cache, kw, v)
        elif name == "flatten":
            d = _unflatten(d, cache, v) if len(cache) == 4 else d
        elif name == "linear":
            grads[f"W{k}"], grads[f"b{k}"] = cache.T @ d, d.sum(axis=0)
            d = d @ params[f"W{k}"].T
        else:
            d = d * cache
    return grads, d


def emulate(layers, params: dict, x, y, at: int | None = None, variant: str | None = None,
            reduction: str = "mean") -> dict:
    """What the protocol's calls return for the emulated network, float64.

    Parameters
    ----------
    layers : list of (name, kwargs)
    params : dict of ndarray, canonical names (not changed)
    x : ndarray (N, C, H, W), y : ndarray of int (N,)
    at : int, optional
        The position of the layer that computes ``variant``.
    variant : one of :data:`VARIANTS`, optional; it must fit the layer at ``at``

    Returns
    -------
    dict
        ``eval0`` (the logits), ``loss`` and ``grads`` (a training pass), ``outs`` (each
        layer's output), ``dinput`` (dL/dx, x's shape).
    """
    if variant is not None and (variant not in VARIANTS or at is None
                                or layers[at][0] != VARIANTS[variant]):
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)} at a layer of its "
                         f"kind, got {variant!r} at {at!r}")
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = np.asarray(x, dtype=np.float64)
    z, caches, outs = _forward(layers, params, x, at, variant)
    loss, dz = _loss(z, np.asarray(y), reduction)
    grads, dinput = _backward(layers, params, caches, dz, at, variant)
    return {"eval0": z, "loss": loss, "grads": grads, "outs": outs,
            "dinput": dinput.reshape(x.shape)}

"""Convolutional layers as module-level functions, the way the cs231n assignments write them.

Every ``*_forward`` returns ``(out, cache)``, every ``*_backward`` takes ``(dout, cache)``.
The layouts are cs231n's, which are torch's for images and convolution weights:

* x (N, C, H, W); the convolution weight w (F, C, HH, WW), bias b (F,);
* ``conv_param = {"stride": S, "pad": P}``, zero padding on every side;
* ``pool_param = {"pool_height": K, "pool_width": K, "stride": S}``;
* the affine weight w (D, M): rows in, columns out; ``affine_forward`` flattens x in C
  order itself (``x.reshape(N, -1)``), and ``affine_backward`` hands dx back in x's shape.

The naive loops, as the assignments' first versions: slow and readable.
"""

from __future__ import annotations

import numpy as np


def conv_forward_naive(x, w, b, conv_param):
    """out[n, f, i, j] = sum_{c,p,q} xpad[n, c, i*S + p, j*S + q] * w[f, c, p, q] + b[f].

    x (N, C, H, W), w (F, C, HH, WW), b (F,) -> out (N, F, H', W'),
    H' = 1 + (H + 2P - HH) // S. One loop per output position, the batch at once.
    """
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    out = np.zeros((N, F, H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            window = x_pad[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_naive(dout, cache):
    """dout (N, F, H', W') -> dx (N, C, H, W), dw (F, C, HH, WW), db (F,).

    Each output (n, f, i, j) sends dout * w[f] to its window of xpad and
    dout * window to dw[f].
    """
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    for i in range(H_out):
        for j in range(W_out):
            hs, ws = i * stride, j * stride
            window = x_pad[:, :, hs:hs + HH, ws:ws + WW]  # (N, C, HH, WW)
            d = dout[:, :, i, j]  # (N, F)
            dw += np.tensordot(d, window, axes=([0], [0]))
            dx_pad[:, :, hs:hs + HH, ws:ws + WW] += np.tensordot(d, w, axes=([1], [0]))
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db


def max_pool_forward_naive(x, pool_param):
    """out[n, c, i, j] = max of x[n, c] over the window at (i*S, j*S)."""
    HH, WW = pool_param["pool_height"], pool_param["pool_width"]
    stride = pool_param["stride"]
    N, C, H, W = x.shape
    H_out = 1 + (H - HH) // stride
    W_out = 1 + (W - WW) // stride
    out = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            window = x[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
            out[:, :, i, j] = np.max(window, axis=(2, 3))
    cache = (x, pool_param)
    return out, cache


def max_pool_backward_naive(dout, cache):
    """Each window's gradient to its first maximum (row-major), as torch on the CPU."""
    x, pool_param = cache
    HH, WW = pool_param["pool_height"], pool_param["pool_width"]
    stride = pool_param["stride"]
    N, C, _, _ = x.shape
    _, _, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for i in range(H_out):
        for j in range(W_out):
            hs, ws = i * stride, j * stride
            window = x[:, :, hs:hs + HH, ws:ws + WW].reshape(N, C, HH * WW)
            first = np.argmax(window, axis=2)  # the first maximum of each window
            mask = np.arange(HH * WW) == first[:, :, None]
            dx[:, :, hs:hs + HH, ws:ws + WW] += (
                mask * dout[:, :, i, j][:, :, None]).reshape(N, C, HH, WW)
    return dx


def avg_pool_forward_naive(x, pool_param):
    """out[n, c, i, j] = the mean of the HH * WW entries of x[n, c]'s window at (i*S, j*S)."""
    HH, WW = pool_param["pool_height"], pool_param["pool_width"]
    stride = pool_param["stride"]
    N, C, H, W = x.shape
    H_out = 1 + (H - HH) // stride
    W_out = 1 + (W - WW) // stride
    out = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            window = x[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
            out[:, :, i, j] = np.sum(window, axis=(2, 3)) / (HH * WW)
    cache = (x, pool_param)
    return out, cache


def avg_pool_backward_naive(dout, cache):
    """Each window's gradient shared by its HH * WW entries: dout / (HH * WW) each."""
    x, pool_param = cache
    HH, WW = pool_param["pool_height"], pool_param["pool_width"]
    stride = pool_param["stride"]
    _, _, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for i in range(H_out):
        for j in range(W_out):
            hs, ws = i * stride, j * stride
            dx[:, :, hs:hs + HH, ws:ws + WW] += dout[:, :, i, j][:, :, None, None] / (HH * WW)
    return dx


def affine_forward(x, w, b):
    """out = x.reshape(N, D) @ w + b; x (N, d_1, ..., d_k), w (D, M), b (M,)."""
    out = x.reshape(x.shape[0], -1) @ w + b
    cache = (x, w, b)
    return out, cache


def affine_backward(dout, cache):
    """dout (N, M) -> dx (x's shape), dw (D, M), db (M,)."""
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = np.sum(dout, axis=0)
    return dx, dw, db


def relu_forward(x):
    """out = max(0, x), element-wise."""
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    """dx = dout where x > 0, else 0."""
    return dout * (cache > 0)


def softmax_loss(x, y):
    """Mean softmax cross-entropy of the scores x (N, C); returns (loss, dx)."""
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    N = x.shape[0]
    loss = -np.sum(log_probs[np.arange(N), y]) / N
    dx = np.exp(log_probs)
    dx[np.arange(N), y] -= 1
    return loss, dx / N

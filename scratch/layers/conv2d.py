"""The 2-D convolution written as loops: what a learner writes first (cs231n's naive one).

The network uses the same computation vectorised (:mod:`scratch.layers.conv2d_fast`);
the tests hold the two equal. Like torch's ``nn.Conv2d`` (and unlike the convolution of
signal processing) it is a cross-correlation: the kernel is not flipped.

Shapes: x (N, C, H, W), w (F, C, KH, KW), b (F,), out (N, F, H_out, W_out) with
H_out = (H + 2 * padding - KH) // stride + 1 (and W_out alike).
"""

from __future__ import annotations

import numpy as np


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """floor((size + 2 * padding - kernel) / stride) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def pad(x: np.ndarray, padding: int) -> np.ndarray:
    """x (N, C, H, W) with ``padding`` zeros on each side of H and W."""
    if padding == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))


def conv2d_forward_naive(x, w, b, stride=1, padding=0):
    """out[n, f, i, j] = sum_{c, p, q} xp[n, c, i*s + p, j*s + q] * w[f, c, p, q] + b[f].

    Parameters
    ----------
    x : ndarray (N, C, H, W)
    w : ndarray (F, C, KH, KW)
    b : ndarray (F,)
    stride, padding : int

    Returns
    -------
    out : ndarray (N, F, H_out, W_out)
    cache : (x, w, stride, padding), what the backward pass needs
    """
    n_batch, _, h, wd = x.shape
    n_filters, _, kh, kw = w.shape
    xp = pad(x, padding)  # xp: the zero-padded input
    h_out, w_out = output_size(h, kh, stride, padding), output_size(wd, kw, stride, padding)
    out = np.zeros((n_batch, n_filters, h_out, w_out), dtype=x.dtype)
    for n in range(n_batch):
        for f in range(n_filters):
            for i in range(h_out):
                for j in range(w_out):
                    window = xp[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    return out, (x, w, stride, padding)


def conv2d_backward_naive(dout, cache):
    """The same loops backward: each output entry sends its gradient to its window.

    dw[f] += dout[n, f, i, j] * window;  dxp[n, :, window] += dout[n, f, i, j] * w[f];
    db[f] = sum_{n, i, j} dout[n, f, i, j]; dx is dxp without its padding.

    Parameters
    ----------
    dout : ndarray (N, F, H_out, W_out)
    cache : from :func:`conv2d_forward_naive`

    Returns
    -------
    dx : (N, C, H, W),  dw : (F, C, KH, KW),  db : (F,)
    """
    x, w, stride, padding = cache
    n_batch, n_filters, h_out, w_out = dout.shape
    kh, kw = w.shape[2:]
    xp = pad(x, padding)
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for n in range(n_batch):
        for f in range(n_filters):
            for i in range(h_out):
                for j in range(w_out):
                    rows = slice(i * stride, i * stride + kh)
                    cols = slice(j * stride, j * stride + kw)
                    dw[f] += dout[n, f, i, j] * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += dout[n, f, i, j] * w[f]
    db = dout.sum(axis=(0, 2, 3))
    h, wd = x.shape[2:]
    return dxp[:, :, padding:padding + h, padding:padding + wd], dw, db


class Conv2dNaive:
    """The convolution layer on the loops above: ``W{k}`` (F, C, KH, KW), ``b{k}`` (F,).

    Parameters
    ----------
    params : dict of str to ndarray
        The network's parameters; this layer reads ``W{index}`` and ``b{index}``.
    index : int
        The layer's canonical number.
    stride, padding : int
    """

    def __init__(self, params: dict, index: int, stride: int = 1, padding: int = 0):
        self.params = params
        self.w, self.b = f"W{index}", f"b{index}"
        self.stride, self.padding = stride, padding
        self.grads: dict[str, np.ndarray] = {}
        self.cache = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """(N, C, H, W) -> (N, F, H_out, W_out)."""
        out, self.cache = conv2d_forward_naive(x, self.params[self.w], self.params[self.b],
                                               self.stride, self.padding)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, F, H_out, W_out) -> dx (N, C, H, W); dW, db in ``self.grads``."""
        dx, dw, db = conv2d_backward_naive(dout, self.cache)
        self.grads = {self.w: dw, self.b: db}
        return dx

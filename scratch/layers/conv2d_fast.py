"""The 2-D convolution vectorised: im2col and one matrix product per pass.

The loops of :mod:`scratch.layers.conv2d` compute, for every output position, the dot
product of one window of the input with each filter. im2col lays every window out as a
row of a matrix, ``cols`` of shape (N * H_out * W_out, C * KH * KW), so that the whole
forward pass is one matrix product with the filters as columns:

    out = cols @ W.reshape(F, C * KH * KW).T + b        (N * H_out * W_out, F)

and the backward pass two:

    dW = dout_rows.T @ cols    (F, C * KH * KW);    dcols = dout_rows @ W_mat

followed by col2im, which adds each window's gradient back where the window came from:
one strided slice per kernel offset (KH * KW of them), not one per pixel.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from scratch.layers.conv2d import pad


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, padding: int) -> np.ndarray:
    """Every window of x as one row: (N, C, H, W) -> (N, H_out, W_out, C, KH, KW) (a copy).

    ``sliding_window_view`` gives a view of all windows without copying (strides only);
    the stride keeps every ``stride``-th, and the transpose puts the window's entries
    last, in the (C, KH, KW) order of a filter's ``W[f].ravel()``.
    """
    windows = sliding_window_view(pad(x, padding), (kh, kw), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride]  # (N, C, H_out, W_out, KH, KW)
    return np.ascontiguousarray(windows.transpose(0, 2, 3, 1, 4, 5))


def col2im(dcols: np.ndarray, x_shape: tuple, stride: int, padding: int) -> np.ndarray:
    """The adjoint of :func:`im2col`: (N, H_out, W_out, C, KH, KW) -> dx (N, C, H, W).

    A pixel in several windows gets the sum of its gradients from each; kernel offset
    (p, q) of window (i, j) is pixel (i*s + p, j*s + q) of the padded input.
    """
    n, c, h, w = x_shape
    _, h_out, w_out, _, kh, kw = dcols.shape
    dxp = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=dcols.dtype)
    by_offset = dcols.transpose(4, 5, 0, 3, 1, 2)  # (KH, KW, N, C, H_out, W_out)
    for p in range(kh):
        for q in range(kw):
            dxp[:, :, p:p + stride * h_out:stride, q:q + stride * w_out:stride] += by_offset[p, q]
    return dxp[:, :, padding:padding + h, padding:padding + w]


def conv2d_forward(x, w, b, stride=1, padding=0):
    """As :func:`scratch.layers.conv2d.conv2d_forward_naive`, by im2col and one product.

    Returns
    -------
    out : ndarray (N, F, H_out, W_out)
    cache : (x shape, cols, w, stride, padding)
    """
    n_filters, _, kh, kw = w.shape
    cols = im2col(x, kh, kw, stride, padding)  # (N, H_out, W_out, C, KH, KW)
    n, h_out, w_out = cols.shape[:3]
    rows = cols.reshape(n * h_out * w_out, -1)
    out = rows @ w.reshape(n_filters, -1).T + b  # (N * H_out * W_out, F)
    out = out.reshape(n, h_out, w_out, n_filters).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(out), (x.shape, cols, w, stride, padding)


def conv2d_backward(dout, cache, need_dx=True):
    """dx, dw, db of :func:`conv2d_forward` (dx None without ``need_dx``).

    dW = dout_rows.T @ cols,  db = sum of dout over (N, H_out, W_out),
    dx = col2im(dout_rows @ W_mat).
    """
    x_shape, cols, w, stride, padding = cache
    n_filters = w.shape[0]
    drows = dout.transpose(0, 2, 3, 1).reshape(-1, n_filters)  # (N * H_out * W_out, F)
    dw = (drows.T @ cols.reshape(drows.shape[0], -1)).reshape(w.shape)
    db = drows.sum(axis=0)
    if not need_dx:
        return None, dw, db
    dcols = (drows @ w.reshape(n_filters, -1)).reshape(cols.shape)
    return col2im(dcols, x_shape, stride, padding), dw, db


class Conv2d:
    """The convolution layer the network uses: ``W{k}`` (F, C, KH, KW), ``b{k}`` (F,).

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
        out, self.cache = conv2d_forward(x, self.params[self.w], self.params[self.b],
                                         self.stride, self.padding)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, F, H_out, W_out) -> dx (N, C, H, W); dW, db in ``self.grads``."""
        dx, dw, db = conv2d_backward(dout, self.cache)
        self.grads = {self.w: dw, self.b: db}
        return dx

    def param_grads(self, dout: np.ndarray) -> None:
        """dW and db alone (the first layer: no dx is needed)."""
        _, dw, db = conv2d_backward(dout, self.cache, need_dx=False)
        self.grads = {self.w: dw, self.b: db}

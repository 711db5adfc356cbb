"""The 2-D convolution vectorised: im2col and one matrix product per pass.

The loops of :mod:`scratch.layers.conv2d` compute, for every output position, the dot
product of one window of the input with each filter. im2col lays every window out as a
column of a matrix, ``cols`` of shape (C * KH * KW, N * H_out * W_out), so that the whole
forward pass is one matrix product with the filters as rows:

    out = W.reshape(F, C * KH * KW) @ cols + b        (F, N * H_out * W_out)

and the backward pass two:

    dW = dout_mat @ cols.T    (F, C * KH * KW);    dcols = W_mat.T @ dout_mat

followed by col2im, which adds each window's gradient back where the window came from.
Both im2col and col2im take one strided slice of the image per kernel offset (p, q)
(KH * KW slices, not one per pixel): offset (p, q) of window (i, j) is pixel
(i*s + p, j*s + q) of the padded input.

Speed: the images are handled channel first, (C, N, H, W), inside the layer, so that
every slice copied into ``cols`` (and added back by col2im) runs along whole rows of
memory; the layer's input and output stay (N, C, H, W).
"""

from __future__ import annotations

import numpy as np

from scratch.layers.conv2d import output_size, pad


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, padding: int) -> np.ndarray:
    """Every window of x as one column: (N, C, H, W) -> (C, KH, KW, N, H_out, W_out).

    Reshaped to (C * KH * KW, N * H_out * W_out), column (n, i, j) is the window of
    output (i, j) of sample n, in the (C, KH, KW) order of a filter's ``W[f].ravel()``.
    """
    n, c, h, w = x.shape
    h_out, w_out = output_size(h, kh, stride, padding), output_size(w, kw, stride, padding)
    xc = np.ascontiguousarray(pad(x, padding).transpose(1, 0, 2, 3))  # (C, N, Hp, Wp)
    cols = np.empty((c, kh, kw, n, h_out, w_out), dtype=x.dtype)
    for p in range(kh):
        for q in range(kw):
            cols[:, p, q] = xc[:, :, p:p + stride * h_out:stride, q:q + stride * w_out:stride]
    return cols


def col2im(dcols: np.ndarray, x_shape: tuple, stride: int, padding: int) -> np.ndarray:
    """The adjoint of :func:`im2col`: (C, KH, KW, N, H_out, W_out) -> dx (N, C, H, W).

    A pixel in several windows gets the sum of its gradients from each.
    """
    n, c, h, w = x_shape
    _, kh, kw, _, h_out, w_out = dcols.shape
    dxc = np.zeros((c, n, h + 2 * padding, w + 2 * padding), dtype=dcols.dtype)
    for p in range(kh):
        for q in range(kw):
            dxc[:, :, p:p + stride * h_out:stride, q:q + stride * w_out:stride] += dcols[:, p, q]
    dxc = dxc[:, :, padding:padding + h, padding:padding + w]
    return np.ascontiguousarray(dxc.transpose(1, 0, 2, 3))


def conv2d_forward(x, w, b, stride=1, padding=0):
    """As :func:`scratch.layers.conv2d.conv2d_forward_naive`, by im2col and one product.

    Returns
    -------
    out : ndarray (N, F, H_out, W_out)
    cache : (x shape, cols, w, stride, padding)
    """
    n_filters, _, kh, kw = w.shape
    cols = im2col(x, kh, kw, stride, padding)  # (C, KH, KW, N, H_out, W_out)
    n, h_out, w_out = cols.shape[3:]
    out = w.reshape(n_filters, -1) @ cols.reshape(-1, n * h_out * w_out)  # (F, N*H_out*W_out)
    out += b[:, None]
    out = out.reshape(n_filters, n, h_out, w_out).transpose(1, 0, 2, 3)
    return np.ascontiguousarray(out), (x.shape, cols, w, stride, padding)


def conv2d_backward(dout, cache, need_dx=True):
    """dx, dw, db of :func:`conv2d_forward` (dx None without ``need_dx``).

    dW = dout_mat @ cols.T,  db = sum of dout over (N, H_out, W_out),
    dx = col2im(W_mat.T @ dout_mat), with dout_mat = dout as (F, N * H_out * W_out).
    """
    x_shape, cols, w, stride, padding = cache
    n_filters = w.shape[0]
    dmat = np.ascontiguousarray(dout.transpose(1, 0, 2, 3)).reshape(n_filters, -1)
    cols_mat = cols.reshape(-1, dmat.shape[1])
    dw = (dmat @ cols_mat.T).reshape(w.shape)
    db = dmat.sum(axis=1)
    if not need_dx:
        return None, dw, db
    dcols = (w.reshape(n_filters, -1).T @ dmat).reshape(cols.shape)
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

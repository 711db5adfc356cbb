"""Convolutional layers as objects with forward and backward, the numpy-ml / CMU way.

Each layer keeps what its backward needs from its forward; parameters in ``params``,
their gradients in ``grads`` (same keys). The convolution is im2col: every receptive
field of the padded input becomes a row (a strided view, then one copy), and the
convolution is one matrix product; backward is one product per gradient and col2im
(the rows added back to their windows).

Layouts: x (N, C, H, W); Conv2D's W (F, C, K, K), b (F,); Dense's W (D, M), b (M,).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def im2col(x_pad: np.ndarray, k: int, stride: int) -> np.ndarray:
    """(N, C, Hp, Wp) -> cols (N, H', W', C, k, k): the window of every output position.

    A view with ``as_strided`` (no copy): output (i, j)'s window starts at (i*s, j*s).
    """
    n, c, hp, wp = x_pad.shape
    h_out, w_out = (hp - k) // stride + 1, (wp - k) // stride + 1
    sn, sc, sh, sw = x_pad.strides
    return as_strided(x_pad, (n, h_out, w_out, c, k, k),
                      (sn, sh * stride, sw * stride, sc, sh, sw), writeable=False)


def col2im(dcols: np.ndarray, padded_shape: tuple, stride: int) -> np.ndarray:
    """The adjoint of :func:`im2col`: (N, H', W', C, k, k) -> (N, C, Hp, Wp), overlaps added."""
    _, h_out, w_out, _, k, _ = dcols.shape
    dx = np.zeros(padded_shape, dtype=dcols.dtype)
    for p in range(k):
        for q in range(k):
            dx[:, :, p:p + stride * h_out:stride, q:q + stride * w_out:stride] += (
                dcols[:, :, :, :, p, q].transpose(0, 3, 1, 2))
    return dx


class Conv2D:
    """Cross-correlation with a (F, C, k, k) kernel, zero padding on every side."""

    def __init__(self, W: np.ndarray, b: np.ndarray, stride: int = 1, padding: int = 0):
        self.params = {"W": W, "b": b}
        self.grads = {}
        self.stride, self.padding = stride, padding

    def pad(self, x):
        p = self.padding
        return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))

    def unpad(self, dx_pad, shape):
        p = self.padding
        return dx_pad[:, :, p:p + shape[2], p:p + shape[3]]

    def kernel(self):
        """The (F, C, k, k) kernel the products use."""
        return self.params["W"]

    def forward(self, x, training=True):
        """(N, C, H, W) -> (N, F, H', W'): out = cols @ W.reshape(F, -1).T + b."""
        W = self.kernel()
        f, k = W.shape[0], W.shape[2]
        x_pad = self.pad(x)
        cols = im2col(x_pad, k, self.stride)
        n, h_out, w_out = cols.shape[:3]
        rows = cols.reshape(n * h_out * w_out, -1)  # the one copy
        out = rows @ W.reshape(f, -1).T + self.params["b"]
        self.cache = (x.shape, x_pad.shape, rows, cols.shape)
        return out.reshape(n, h_out, w_out, f).transpose(0, 3, 1, 2)

    def backward(self, dout):
        """dout (N, F, H', W') -> dx (N, C, H, W); grads W = dout^T rows, b = sum dout."""
        x_shape, pad_shape, rows, cols_shape = self.cache
        W = self.kernel()
        f = W.shape[0]
        d = dout.transpose(0, 2, 3, 1).reshape(-1, f)
        self.grads = {"W": self.kernel_grad((d.T @ rows).reshape(W.shape)),
                      "b": d.sum(axis=0)}
        dcols = (d @ W.reshape(f, -1)).reshape(cols_shape)
        return self.unpad(col2im(dcols, pad_shape, self.stride), x_shape)

    def kernel_grad(self, dkernel):
        """The gradient of params['W'] from that of :meth:`kernel`'s array."""
        return dkernel


class ReLU:
    def __init__(self):
        self.params, self.grads = {}, {}

    def forward(self, x, training=True):
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class Pool2D:
    """Max or average pooling over k x k windows moved by ``stride``."""

    def __init__(self, k: int, stride: int, mode: str = "max"):
        self.k, self.stride, self.mode = k, stride, mode
        self.params, self.grads = {}, {}

    def forward(self, x, training=True):
        """(N, C, H, W) -> (N, C, H', W')."""
        n, c = x.shape[:2]
        # pooling is a convolution of each channel alone: im2col over (N*C, 1, H, W)
        cols = im2col(x.reshape(n * c, 1, *x.shape[2:]), self.k, self.stride)
        h_out, w_out = cols.shape[1:3]
        flat = cols.reshape(n * c, h_out, w_out, self.k * self.k)
        self.cache = (x.shape, flat)
        if self.mode == "max":
            out = flat.max(axis=-1)
        else:
            out = flat.sum(axis=-1) / self.divisor()
        return out.reshape(n, c, h_out, w_out)

    def divisor(self):
        """What an average window's sum is divided by: its k * k entries."""
        return self.k * self.k

    def route(self, flat):
        """A one-hot (..., k*k) of where a max window's gradient goes: its first maximum."""
        first = flat.argmax(axis=-1)
        return np.arange(flat.shape[-1]) == first[..., None]

    def backward(self, dout):
        x_shape, flat = self.cache
        n, c = x_shape[:2]
        d = dout.reshape(n * c, *dout.shape[2:])[..., None]
        if self.mode == "max":
            dflat = d * self.route(flat)
        else:
            dflat = np.broadcast_to(d / self.divisor(), flat.shape)
        dcols = dflat.reshape(flat.shape[:3] + (1, self.k, self.k))
        dx = col2im(dcols, (n * c, 1) + tuple(x_shape[2:]), self.stride)
        return dx.reshape(x_shape)


class Flatten:
    """(N, C, H, W) -> (N, C*H*W) in C order, as nn.Flatten."""

    def __init__(self):
        self.params, self.grads = {}, {}

    def forward(self, x, training=True):
        self.shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self.shape)


class Dense:
    """out = x @ W + b; x (N, D), W (D, M), b (M,)."""

    def __init__(self, W: np.ndarray, b: np.ndarray):
        self.params = {"W": W, "b": b}
        self.grads = {}

    def forward(self, x, training=True):
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout):
        self.grads = {"W": self.x.T @ dout, "b": dout.sum(axis=0)}
        return dout @ self.params["W"].T


class SoftmaxCrossEntropy:
    """The mean cross-entropy of softmax(z) and its gradient in z."""

    def forward(self, z, y):
        z = z - z.max(axis=1, keepdims=True)
        self.logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        self.y = y
        return -self.logp[np.arange(len(y)), y].mean()

    def backward(self):
        d = np.exp(self.logp)
        d[np.arange(len(self.y)), self.y] -= 1
        return d / len(self.y)

"""Max and average pooling over K x K windows (nn.MaxPool2d, nn.AvgPool2d), no padding.

Shapes: x (N, C, H, W) -> out (N, C, H_out, W_out), H_out = (H - K) // stride + 1.
Each comes twice, as loops (what a learner writes) and vectorised (what the network
uses): the windows are a view of x (``sliding_window_view``), and the backward pass adds
the window gradients back with one strided slice per offset in the window (K * K).

Max pool's tie rule: the gradient of a window goes to ONE entry, the first maximum in
row-major order within the window (``argmax``), as torch does on the CPU; so an
all-equal 2 x 2 window sends its whole gradient to its top-left entry.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _size(size: int, k: int, stride: int) -> int:
    return (size - k) // stride + 1


def max_pool_forward_naive(x, k, stride):
    """out[n, c, i, j] = max of x[n, c, i*s : i*s + k, j*s : j*s + k]."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, _size(h, k, stride), _size(w, k, stride)), dtype=x.dtype)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, i * stride:i * stride + k, j * stride:j * stride + k
                                ].max(axis=(2, 3))
    return out


def max_pool_backward_naive(dout, x, k, stride):
    """dx: each window's gradient on its first maximum (row-major), nothing elsewhere."""
    dx = np.zeros_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    window = x[n, c, i * stride:i * stride + k, j * stride:j * stride + k]
                    p, q = np.unravel_index(np.argmax(window), window.shape)  # first max
                    dx[n, c, i * stride + p, j * stride + q] += dout[n, c, i, j]
    return dx


def avg_pool_forward_naive(x, k, stride):
    """out[n, c, i, j] = mean of x[n, c, i*s : i*s + k, j*s : j*s + k] (k * k entries)."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, _size(h, k, stride), _size(w, k, stride)), dtype=x.dtype)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, i * stride:i * stride + k, j * stride:j * stride + k
                                ].mean(axis=(2, 3))
    return out


def avg_pool_backward_naive(dout, x, k, stride):
    """dx: each window's gradient shared equally, dout / (k * k), by its k * k entries."""
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dx[:, :, i * stride:i * stride + k, j * stride:j * stride + k] += (
                dout[:, :, i, j, None, None] / (k * k))
    return dx


def windows(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """Every pooling window of x as a view: (N, C, H_out, W_out, K, K), no copy."""
    return sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]


def add_windows(dwin: np.ndarray, x_shape: tuple, stride: int) -> np.ndarray:
    """The adjoint of :func:`windows`: (N, C, H_out, W_out, K, K) -> dx (N, C, H, W)."""
    _, _, h_out, w_out, k, _ = dwin.shape
    dx = np.zeros(x_shape, dtype=dwin.dtype)
    for p in range(k):  # offset (p, q) of window (i, j) is pixel (i*s + p, j*s + q)
        for q in range(k):
            dx[:, :, p:p + stride * h_out:stride, q:q + stride * w_out:stride] += dwin[..., p, q]
    return dx


class MaxPool2d:
    """Max pooling, K x K windows moved by ``stride``; the tie rule of the module."""

    def __init__(self, k: int, stride: int | None = None):
        self.k, self.stride = k, k if stride is None else stride
        self.grads: dict[str, np.ndarray] = {}
        self.cache = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """(N, C, H, W) -> (N, C, H_out, W_out)."""
        win = windows(x, self.k, self.stride)
        flat = win.reshape(win.shape[:4] + (self.k * self.k,))  # a copy, row-major window
        first = flat.argmax(axis=-1)  # the first maximum of each window
        self.cache = (x.shape, first)
        return np.take_along_axis(flat, first[..., None], axis=-1)[..., 0]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C, H_out, W_out) -> dx (N, C, H, W), on each window's first maximum."""
        x_shape, first = self.cache
        dwin = np.zeros(dout.shape + (self.k * self.k,), dtype=dout.dtype)
        np.put_along_axis(dwin, first[..., None], dout[..., None], axis=-1)
        return add_windows(dwin.reshape(dout.shape + (self.k, self.k)), x_shape, self.stride)


class AvgPool2d:
    """Average pooling, K x K windows moved by ``stride``, each mean over K * K entries."""

    def __init__(self, k: int, stride: int | None = None):
        self.k, self.stride = k, k if stride is None else stride
        self.grads: dict[str, np.ndarray] = {}
        self.x_shape = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """(N, C, H, W) -> (N, C, H_out, W_out)."""
        self.x_shape = x.shape
        return windows(x, self.k, self.stride).mean(axis=(4, 5))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C, H_out, W_out) -> dx (N, C, H, W): dout / (K * K) to every entry."""
        share = (dout / dout.dtype.type(self.k * self.k))[..., None, None]
        dwin = np.broadcast_to(share, dout.shape + (self.k, self.k))
        return add_windows(dwin, self.x_shape, self.stride)

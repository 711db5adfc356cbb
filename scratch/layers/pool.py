"""Max and average pooling over K x K windows (nn.MaxPool2d, nn.AvgPool2d), no padding.

Shapes: x (N, C, H, W) -> out (N, C, H_out, W_out), H_out = (H - K) // stride + 1.
Each comes twice, as loops (what a learner writes) and vectorised (what the network
uses): one strided slice of x per offset (p, q) in the window picks that entry of every
window at once, so both passes are K * K whole-array operations.

Max pool's tie rule: the gradient of a window goes to ONE entry, the first maximum in
row-major order within the window (``argmax``), as torch does on the CPU; so an
all-equal 2 x 2 window sends its whole gradient to its top-left entry.
"""

from __future__ import annotations

import numpy as np


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


def window_offsets(x_shape: tuple, k: int, stride: int):
    """For each offset (p, q) of a window, row-major: the slices that pick entry (p, q) of
    every window at once, x[:, :, p : p + s*H_out : s, q : q + s*W_out : s] (N, C, H_out, W_out).

    Pooling is then K * K whole-array operations, one per offset, instead of one per window.
    """
    h_out, w_out = _size(x_shape[2], k, stride), _size(x_shape[3], k, stride)
    for p in range(k):
        for q in range(k):
            yield (slice(None), slice(None), slice(p, p + stride * h_out, stride),
                   slice(q, q + stride * w_out, stride))


class MaxPool2d:
    """Max pooling, K x K windows moved by ``stride``; the tie rule of the module."""

    def __init__(self, k: int, stride: int | None = None):
        self.k, self.stride = k, k if stride is None else stride
        self.grads: dict[str, np.ndarray] = {}
        self.cache = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """(N, C, H, W) -> (N, C, H_out, W_out)."""
        best = first = None
        for o, where in enumerate(window_offsets(x.shape, self.k, self.stride)):
            entry = x[where]
            if best is None:
                best, first = entry.copy(), np.zeros(entry.shape, dtype=np.int8 if
                                                     self.k * self.k < 128 else np.int32)
                continue
            larger = entry > best  # strictly: a tie keeps the earlier (row-major) entry
            np.putmask(first, larger, o)
            np.maximum(best, entry, out=best)
        self.cache = (x.shape, first)
        return best

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C, H_out, W_out) -> dx (N, C, H, W), on each window's first maximum."""
        x_shape, first = self.cache
        dx = np.zeros(x_shape, dtype=dout.dtype)
        zero = dout.dtype.type(0)
        for o, where in enumerate(window_offsets(x_shape, self.k, self.stride)):
            dx[where] += np.where(first == o, dout, zero)
        return dx


class AvgPool2d:
    """Average pooling, K x K windows moved by ``stride``, each mean over K * K entries."""

    def __init__(self, k: int, stride: int | None = None):
        self.k, self.stride = k, k if stride is None else stride
        self.grads: dict[str, np.ndarray] = {}
        self.x_shape = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """(N, C, H, W) -> (N, C, H_out, W_out)."""
        self.x_shape = x.shape
        total = None
        for where in window_offsets(x.shape, self.k, self.stride):
            total = x[where].copy() if total is None else total + x[where]
        return total / x.dtype.type(self.k * self.k)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C, H_out, W_out) -> dx (N, C, H, W): dout / (K * K) to every entry."""
        share = dout / dout.dtype.type(self.k * self.k)
        dx = np.zeros(self.x_shape, dtype=dout.dtype)
        for where in window_offsets(self.x_shape, self.k, self.stride):
            dx[where] += share
        return dx

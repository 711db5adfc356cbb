"""Flatten: (N, C, H, W) -> (N, C*H*W) in C order, as nn.Flatten; backward undoes it."""

from __future__ import annotations

import numpy as np


class Flatten:
    """out[n, (c*H + h)*W + w] = x[n, c, h, w]: the rows of C-order ``reshape``.

    On an (N, D) input it is the identity.
    """

    def __init__(self):
        self.grads: dict[str, np.ndarray] = {}
        self.x_shape = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """(N, C, H, W) -> (N, C*H*W)."""
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C*H*W) -> dx (N, C, H, W), the same entries back in place."""
        return dout.reshape(self.x_shape)

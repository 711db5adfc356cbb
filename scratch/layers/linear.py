"""The linear (fully connected) layer: z = x @ W + b."""

from __future__ import annotations

import numpy as np


class Linear:
    """z = x @ W{k} + b{k}, with ``W{k}`` of shape (D_in, D_out), ``b{k}`` of shape (D_out,).

    Parameters
    ----------
    params : dict of str to ndarray
        The network's parameters; this layer reads ``W{index}`` and ``b{index}``.
    index : int
        The layer's canonical number.
    """

    def __init__(self, params: dict, index: int):
        self.params = params
        self.w, self.b = f"W{index}", f"b{index}"
        self.grads: dict[str, np.ndarray] = {}
        self.x = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """(N, D_in) -> (N, D_out)."""
        self.x = x
        return x @ self.params[self.w] + self.params[self.b]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, D_out) -> dx (N, D_in).

        dW = x^T @ dout   (D_in, D_out);  db = sum over rows of dout  (D_out,);
        dx = dout @ W^T   (N, D_in)
        """
        self.param_grads(dout)
        return dout @ self.params[self.w].T

    def param_grads(self, dout: np.ndarray) -> None:
        """dW and db alone, into ``self.grads`` (the first layer: no dx is needed)."""
        self.grads = {self.w: self.x.T @ dout, self.b: dout.sum(axis=0)}

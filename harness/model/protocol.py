"""The contract every backend implements, built-in or the user's own."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Classifier(Protocol):
    """A multi-class MLP classifier the harness can compare.

    Attributes
    ----------
    dims : tuple of int
        Layer widths ``(d_0, ..., d_L)``: features, hidden widths, classes.

    Parameters use the canonical layout: ``W{i}`` of shape (d_i, d_{i+1}) so that
    ``z = a @ W + b``, and ``b{i}`` of shape (d_{i+1},).
    """

    dims: tuple[int, ...]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits of shape (N, d_L), a NumPy array in the model's dtype."""

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """Mean softmax cross-entropy over the batch and its gradient per parameter."""

    def get_params(self) -> dict[str, np.ndarray]:
        """Copies of the parameters, canonical names and layout."""

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        """Copy ``params`` in; ValueError naming the parameter when they do not fit."""

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One optimizer update on the batch; returns the batch loss before the update."""


@runtime_checkable
class ExposesIntermediates(Protocol):
    """Optional extension: named intermediates of one forward and backward pass.

    ``intermediates(x, y)`` returns, in computation order, ``z{i}`` (pre-activations,
    (N, d_{i+1})), ``a{i}`` (hidden activations), then from the output layer down
    ``dz{i}`` (dL/dz_i), ``dW{i}`` and ``db{i}``. Used to locate the first layer
    where two implementations part.
    """

    def intermediates(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]: ...


PROTOCOL_METHODS = ("forward", "loss_and_grads", "get_params", "set_params", "train_step")

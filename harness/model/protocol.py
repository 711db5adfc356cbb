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

    A network written as a list of layers (``ModelSpec(layers=...)``) also has
    ``gamma{k}`` and ``beta{k}`` (k: the number of the linear before the normalisation
    layer) and two modes: ``forward`` is evaluation (running statistics, no dropout);
    ``loss_and_grads`` and ``train_step`` are training passes (batch statistics, dropout
    on), each updating the running statistics. Its optional members are
    :class:`HasBuffers` and :class:`TakesDropoutMasks`.
    """

    dims: tuple[int, ...]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits of shape (N, d_L), a NumPy array in the model's dtype."""

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """The loss over the batch (mean softmax cross-entropy unless the spec names
        another loss: ``ModelSpec.loss``) and its gradient per parameter."""

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


@runtime_checkable
class HasBuffers(Protocol):
    """Optional: batch norm's running statistics ``running_mean{k}``, ``running_var{k}``.

    Buffers are not parameters: the harness copies them between backends with the
    weights and compares them after every step; without these members a model's running
    statistics are NOT CHECKED.
    """

    def get_buffers(self) -> dict[str, np.ndarray]:
        """Copies of the buffers, canonical names."""

    def set_buffers(self, buffers: dict[str, np.ndarray]) -> None:
        """Copy ``buffers`` in; ValueError naming the buffer when they do not fit."""


@runtime_checkable
class TakesDropoutMasks(Protocol):
    """Optional: the dropout masks of the next training pass, drawn by the harness.

    ``set_dropout_masks(masks)``: one 0/1 array (N, D) per dropout layer, in layer order,
    for the next training pass only; kept units are scaled by 1/(1-p) as ``nn.Dropout``
    does. With it, two implementations compare exactly in training mode.
    """

    def set_dropout_masks(self, masks: list[np.ndarray]) -> None: ...


PROTOCOL_METHODS = ("forward", "loss_and_grads", "get_params", "set_params", "train_step")

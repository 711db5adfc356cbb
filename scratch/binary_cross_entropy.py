"""Sigmoid + binary cross-entropy on the logits, one independent 0/1 target per output.

For an output z and its target t (the one-hot row of the class index):

    l(z, t) = -[t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))]
            = max(z, 0) - z t + log(1 + exp(-|z|))       never exp of a large number
    dl/dz   = sigmoid(z) - t

as ``nn.BCEWithLogitsLoss``. The loss reduces over the outputs of a sample (``mean``, as
torch, or ``sum``, as a cost written sum_j over the output neurons) and then over the
batch (``mean`` or ``sum``); torch's default is the mean over both.
"""

from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), without overflow: exp of -|z| only."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def onehot(y: np.ndarray, n_classes: int, dtype) -> np.ndarray:
    """(N,) class indices -> (N, C) rows of 0s with a 1 at the class."""
    t = np.zeros((len(y), n_classes), dtype)
    t[np.arange(len(y)), y] = 1
    return t


def bce_with_logits_grad(logits: np.ndarray, y: np.ndarray, reduction: str = "mean",
                         outputs: str = "mean") -> tuple[float, np.ndarray]:
    """The loss and its gradient with respect to the logits.

    Parameters
    ----------
    logits : ndarray of shape (N, C)
    y : ndarray of int, shape (N,)
        Class indices; the targets are their one-hot rows.
    reduction : {"mean", "sum"}
        Over the batch.
    outputs : {"mean", "sum"}
        Over the C outputs of each sample.

    Returns
    -------
    loss : float
    dlogits : ndarray of shape (N, C), in the logits' dtype
    """
    n, c = logits.shape
    t = onehot(y, c, logits.dtype)
    elementwise = np.maximum(logits, 0) - logits * t + np.log1p(np.exp(-np.abs(logits)))
    scale = (n if reduction == "mean" else 1) * (c if outputs == "mean" else 1)
    loss = float(elementwise.sum(dtype=np.float64) / scale)
    dlogits = (sigmoid(logits) - t) / logits.dtype.type(scale)
    return loss, dlogits

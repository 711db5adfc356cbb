"""Numerical kernels the harness computes itself (outside any backend), in float64."""

from __future__ import annotations

import numpy as np


def log_softmax(logits) -> np.ndarray:
    """log softmax of each row, in float64, through the log-sum-exp of shifted logits.

    Parameters
    ----------
    logits : array_like of shape (N, C)

    Returns
    -------
    ndarray of float64, shape (N, C); NaN rows where a logit is not finite.
    """
    z = np.asarray(logits, dtype=np.float64)
    with np.errstate(all="ignore"):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def mean_cross_entropy(logits, y) -> float:
    """Mean softmax cross-entropy of ``logits`` (N, C) for integer labels ``y`` (N,)."""
    logp = log_softmax(logits)
    with np.errstate(all="ignore"):
        return float(-logp[np.arange(len(y)), y].mean())


def loss_value(logits, y, loss: str = "cross_entropy", reduction: str = "mean",
               outputs: str = "mean", half: bool = False) -> float:
    """The loss ``loss`` of ``logits`` (N, C) for class indices ``y``, in float64.

    ``cross_entropy``: -log softmax(z)_y; ``bce``: the binary cross-entropy of sigmoid(z)
    against the one-hot rows, max(z, 0) - z t + log(1 + exp(-|z|)); ``mse``: (z - t)^2,
    halved with ``half``. bce and mse reduce over the outputs (``outputs``: mean or sum),
    every loss over the batch (``reduction``).
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y)
    n, c = z.shape
    if loss == "cross_entropy":
        per_sample = -log_softmax(z)[np.arange(n), y]
    else:
        t = np.zeros_like(z)
        t[np.arange(n), y] = 1.0
        if loss == "bce":
            elementwise = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
        else:
            elementwise = (z - t) ** 2 * (0.5 if half else 1.0)
        per_sample = elementwise.mean(axis=1) if outputs == "mean" else elementwise.sum(axis=1)
    return float(per_sample.mean() if reduction == "mean" else per_sample.sum())

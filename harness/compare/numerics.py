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

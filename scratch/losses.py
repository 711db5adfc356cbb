"""Softmax cross-entropy, computed through log-sum-exp (never log(softmax))."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax.

    log p_ij = z_ij - m_i - log sum_k exp(z_ik - m_i), with m_i = max_k z_ik, so
    that exp never overflows and the log never sees 0.

    Parameters
    ----------
    logits : ndarray of shape (N, C)

    Returns
    -------
    ndarray of shape (N, C)
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shape (N, C) -> (N, C)."""
    return np.exp(log_softmax(logits))


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean of -log softmax(z)_y over the batch.

    Parameters
    ----------
    logits : ndarray of shape (N, C)
    y : ndarray of int, shape (N,)
        Class indices in 0..C-1.
    """
    logp = log_softmax(logits)
    return float(-logp[np.arange(len(y)), y].mean())


def cross_entropy_grad(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Loss and its gradient with respect to the logits, fused.

    dL/dz_ij = (softmax(z)_ij - [j == y_i]) / N

    Returns
    -------
    loss : float
    dlogits : ndarray of shape (N, C), in the logits' dtype
    """
    n = len(y)
    logp = log_softmax(logits)
    rows = np.arange(n)
    loss = float(-logp[rows, y].mean())
    dlogits = np.exp(logp)
    dlogits[rows, y] -= 1
    dlogits /= n
    return loss, dlogits

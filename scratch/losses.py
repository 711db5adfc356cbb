"""Softmax cross-entropy, computed through log-sum-exp (never log(softmax)).

:func:`cross_entropy_grad` is the readable fused loss and gradient;
:func:`softmax_cross_entropy_t` computes the same numbers in place on transposed
logits, for the fast model.
"""

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


def softmax_cross_entropy_t(logits_t: np.ndarray, y: np.ndarray, row_max: np.ndarray,
                            row_sum: np.ndarray, columns: np.ndarray, flat_index: np.ndarray
                            ) -> float:
    """Loss of transposed logits; their gradient is written over them, in place.

    The maths of :func:`cross_entropy_grad`, with the logits stored class-major,
    shape (C, N): each per-sample reduction (max, sum over classes) then runs along
    axis 0, over contiguous rows of length N, which NumPy does much faster than
    C-element reductions along rows of an (N, C) array::

        m_n = max_c z_cn,   s_n = sum_c exp(z_cn - m_n)
        loss = mean_n [log s_n - (z_{y_n, n} - m_n)]        (each term >= 0)
        dL/dz_cn = (exp(z_cn - m_n) / s_n - [c == y_n]) / N

    Parameters
    ----------
    logits_t : ndarray of shape (C, N), C-contiguous
        Overwritten with dL/dz, transposed.
    y : ndarray of int, shape (N,)
        Class indices in 0..C-1.
    row_max, row_sum : ndarray of shape (N,), the logits' dtype
        Work buffers.
    columns : ndarray of intp, shape (N,)
        0, 1, ..., N-1.
    flat_index : ndarray of intp, shape (N,)
        Work buffer: where each sample's true-class logit sits in ``logits_t.ravel()``.

    Returns
    -------
    loss : float
    """
    n = logits_t.shape[1]
    flat = logits_t.reshape(-1)  # a view: element (c, j) sits at c * N + j
    np.multiply(y, n, out=flat_index)
    np.add(flat_index, columns, out=flat_index)

    np.maximum.reduce(logits_t, axis=0, out=row_max)
    np.subtract(logits_t, row_max, out=logits_t)  # z - m <= 0: exp never overflows
    true_shifted = flat[flat_index]  # z_{y_n, n} - m_n, a fresh (N,) array
    np.exp(logits_t, out=logits_t)
    np.add.reduce(logits_t, axis=0, out=row_sum)
    per_sample = np.log(row_sum, out=row_max)  # row_max is free again
    np.subtract(per_sample, true_shifted, out=per_sample)  # >= 0: no cancellation
    loss = float(np.add.reduce(per_sample)) / n

    np.multiply(row_sum, n, out=row_sum)
    np.divide(logits_t, row_sum, out=logits_t)  # softmax / N
    flat[flat_index] -= 1.0 / n  # minus onehot / N
    return loss

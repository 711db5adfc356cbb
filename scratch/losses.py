"""Softmax cross-entropy, computed through log-sum-exp (never log(softmax)), and the
table of every loss (:func:`loss_grad`: cross-entropy, binary cross-entropy, squared error).

The loss reduces over the batch by its mean (``reduction="mean"``, as
``F.cross_entropy``) or its sum (``"sum"``, as much hand-written code does); the
gradient is that of the reduced loss (divided by N, or not).

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


REDUCTIONS = ("mean", "sum")


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {', '.join(REDUCTIONS)}, "
                         f"got {reduction!r}")


def cross_entropy(logits: np.ndarray, y: np.ndarray, reduction: str = "mean") -> float:
    """Mean (or sum, ``reduction="sum"``) of -log softmax(z)_y over the batch.

    Parameters
    ----------
    logits : ndarray of shape (N, C)
    y : ndarray of int, shape (N,)
        Class indices in 0..C-1.
    reduction : {"mean", "sum"}
    """
    _check_reduction(reduction)
    logp = log_softmax(logits)
    picked = -logp[np.arange(len(y)), y]
    return float(picked.mean() if reduction == "mean" else picked.sum())


def cross_entropy_grad(logits: np.ndarray, y: np.ndarray,
                       reduction: str = "mean") -> tuple[float, np.ndarray]:
    """Loss and its gradient with respect to the logits, fused.

    dL/dz_ij = (softmax(z)_ij - [j == y_i]) / N     (mean; without the / N for sum)

    Returns
    -------
    loss : float
    dlogits : ndarray of shape (N, C), in the logits' dtype
    """
    _check_reduction(reduction)
    n = len(y)
    logp = log_softmax(logits)
    rows = np.arange(n)
    picked = -logp[rows, y]
    loss = float(picked.mean() if reduction == "mean" else picked.sum())
    dlogits = np.exp(logp)
    dlogits[rows, y] -= 1
    if reduction == "mean":
        dlogits /= n
    return loss, dlogits


def softmax_cross_entropy_t(logits_t: np.ndarray, y: np.ndarray, row_max: np.ndarray,
                            row_sum: np.ndarray, columns: np.ndarray, flat_index: np.ndarray,
                            reduction: str = "mean") -> float:
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
    reduction : {"mean", "sum"}
        ``sum``: the loss and its gradient without the division by N.

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
    scale = n if reduction == "mean" else 1
    loss = float(np.add.reduce(per_sample)) / scale

    if scale != 1:
        np.multiply(row_sum, scale, out=row_sum)
    np.divide(logits_t, row_sum, out=logits_t)  # softmax / N
    flat[flat_index] -= 1.0 / scale  # minus onehot / N
    return loss


def add_l2(loss: float, grads: dict[str, np.ndarray], params: dict[str, np.ndarray],
           l2: float, l2_on: str = "all") -> float:
    """``loss`` plus the L2 term ``0.5 * l2 * sum ||p||^2``; adds ``l2 * p`` to ``grads``.

    The weight decay of a model that puts it in the loss. ``l2_on`` is "all" (every
    parameter) or "weights" (the ``W{i}`` only).

    Parameters
    ----------
    loss : float
    grads, params : dict of ndarray, the same names and shapes; ``grads`` changes in place
    l2 : float
    l2_on : {"all", "weights"}
    """
    if not l2:
        return loss
    total = 0.0
    for name, p in params.items():
        if l2_on == "all" or name.startswith("W"):
            total += float(np.vdot(p, p))  # sum ||p||^2
            grads[name] += l2 * p  # d/dp 0.5 l2 ||p||^2 = l2 p
    return loss + 0.5 * l2 * total


#: the losses a network can be trained with; :func:`loss_grad` computes each
LOSS_NAMES = ("cross_entropy", "bce", "mse")
#: how bce and mse reduce over the outputs of a sample
OUTPUT_REDUCTIONS = ("mean", "sum")


def check_loss(loss: str, outputs: str = "mean") -> None:
    """Refuse an unknown loss name or output reduction."""
    if loss not in LOSS_NAMES:
        raise ValueError(f"`loss` must be one of {', '.join(LOSS_NAMES)}, got {loss!r}")
    if outputs not in OUTPUT_REDUCTIONS:
        raise ValueError(f"`loss_outputs` must be one of mean, sum, got {outputs!r}")


def loss_grad(logits: np.ndarray, y: np.ndarray, loss: str = "cross_entropy",
              reduction: str = "mean", outputs: str = "mean", half: bool = False
              ) -> tuple[float, np.ndarray]:
    """The loss ``loss`` of the logits and its gradient with respect to them.

    ``cross_entropy``: softmax cross-entropy (:func:`cross_entropy_grad`); ``bce``:
    sigmoid + binary cross-entropy per output (:mod:`scratch.binary_cross_entropy`);
    ``mse``: squared error against the one-hot targets (:mod:`scratch.squared_error`).
    ``reduction`` is over the batch, ``outputs`` over the outputs of a sample (bce,
    mse), ``half`` the 1/2 of the quadratic cost (mse).
    """
    _check_reduction(reduction)
    if loss == "cross_entropy":
        return cross_entropy_grad(logits, y, reduction)
    if loss == "bce":
        from scratch.binary_cross_entropy import bce_with_logits_grad

        return bce_with_logits_grad(logits, y, reduction, outputs)
    if loss == "mse":
        from scratch.squared_error import squared_error_grad

        return squared_error_grad(logits, y, reduction, outputs, half)
    raise ValueError(f"`loss` must be one of {', '.join(LOSS_NAMES)}, got {loss!r}")

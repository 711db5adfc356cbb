"""The data in the code's own form, and the loss where the code has none.

Published code reads inputs as rows (N, features) or as columns (features, N), labels as
class indices or one-hot rows or columns, and often backpropagates one sample at a time.
These helpers turn the harness's batch (x of shape (N, d_0), y of shape (N,) class
indices) into that form, and per-sample results back into the batch's loss and gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.model.registry import scratch_loss_function


def as_columns(x, dtype=None) -> np.ndarray:
    """Features x samples: ``x`` (N, d) -> (d, N), a fresh contiguous array."""
    x = np.asarray(x, dtype=dtype)
    return np.ascontiguousarray(x.T)


def one_hot(y, classes: int, dtype=np.float64, columns: bool = False) -> np.ndarray:
    """One-hot targets of the class indices ``y`` (N,): (N, classes) rows, or
    (classes, N) columns with ``columns=True``."""
    y = np.asarray(y)
    out = np.zeros((len(y), classes), dtype=dtype)
    out[np.arange(len(y)), y] = 1
    return np.ascontiguousarray(out.T) if columns else out


def loss_and_dlogits(spec, logits, y) -> tuple[float, np.ndarray]:
    """The loss ``spec`` names (its loss, reduction over the batch and outputs) of the
    logits (N, C) and its gradient dL/dlogits (N, C): for code that computes logits and
    backpropagates a gradient it is handed, but has no loss of its own. The scratch
    backend's loss, so the reference's formula, never a copy of it."""
    loss_grad = scratch_loss_function()
    return loss_grad(np.asarray(logits), np.asarray(y), spec.loss, spec.loss_reduction,
                     spec.loss_outputs, spec.mse_half)


def per_sample(fn: Callable, samples, reduction: str = "mean"
               ) -> tuple[float, dict[str, np.ndarray]]:
    """The batch's loss and gradient from a function of one sample.

    Parameters
    ----------
    fn : callable
        ``fn(*sample) -> (loss, grads)`` for one sample, ``grads`` a dict of canonical
        arrays (one sample's gradient, not divided by anything).
    samples : iterable of tuples
        One argument tuple per sample, e.g. ``zip(x, y)``.
    reduction : str
        "mean": the sum over the samples divided by their number (the mean loss's
        gradient, as code that steps with eta / m does); "sum": the sum.
    """
    total, grads, n = 0.0, {}, 0
    for sample in samples:
        loss, g = fn(*sample)
        total += float(loss)
        for k, v in g.items():
            grads[k] = grads[k] + v if k in grads else np.array(v, copy=True)
        n += 1
    if reduction == "mean" and n:
        total /= n
        grads = {k: v / n for k, v in grads.items()}
    return total, grads

"""Squared error between the outputs and the one-hot targets (``nn.MSELoss``).

For an output z and its target t (the one-hot row of the class index):

    l(z, t) = (z - t)^2          dl/dz = 2 (z - t)
    with half=True: l = (z - t)^2 / 2,   dl/dz = z - t      (the "quadratic cost")

reduced over the outputs of a sample (``mean``, as torch, or ``sum``, as ||y - a||^2) and
over the batch (``mean`` or ``sum``); torch's default is the mean over both.
"""

from __future__ import annotations

import numpy as np

from scratch.binary_cross_entropy import onehot


def squared_error_grad(outputs: np.ndarray, y: np.ndarray, reduction: str = "mean",
                       over_outputs: str = "mean", half: bool = False
                       ) -> tuple[float, np.ndarray]:
    """The loss and its gradient with respect to the outputs.

    Parameters
    ----------
    outputs : ndarray of shape (N, C)
        The network's outputs (the logits: no activation after the last layer).
    y : ndarray of int, shape (N,)
    reduction : {"mean", "sum"}
        Over the batch.
    over_outputs : {"mean", "sum"}
        Over the C outputs of each sample.
    half : bool
        The factor 1/2 of the quadratic cost.

    Returns
    -------
    loss : float
    doutputs : ndarray of shape (N, C), in the outputs' dtype
    """
    n, c = outputs.shape
    diff = outputs - onehot(y, c, outputs.dtype)
    factor = 0.5 if half else 1.0
    scale = (n if reduction == "mean" else 1) * (c if over_outputs == "mean" else 1)
    loss = float(factor * np.vdot(diff, diff) / scale)
    doutputs = diff * outputs.dtype.type((1.0 if half else 2.0) / scale)
    return loss, doutputs

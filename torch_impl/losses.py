"""The losses with torch's own functions: ``F.cross_entropy``,
``F.binary_cross_entropy_with_logits`` and ``F.mse_loss`` against the one-hot targets.

bce and mse reduce over the outputs of a sample (``mean``, torch's, or ``sum``) and then
over the batch (``mean`` or ``sum``); torch's own reduction="mean" is the mean over both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_NAMES = ("cross_entropy", "bce", "mse")


def torch_loss(logits: torch.Tensor, y: torch.Tensor, loss: str = "cross_entropy",
               reduction: str = "mean", outputs: str = "mean", half: bool = False
               ) -> torch.Tensor:
    """The loss of (N, C) ``logits`` for (N,) class indices ``y``, differentiable."""
    if loss == "cross_entropy":
        return F.cross_entropy(logits, y, reduction=reduction)
    if loss not in LOSS_NAMES:
        raise ValueError(f"`loss` must be one of {', '.join(LOSS_NAMES)}, got {loss!r}")
    target = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    if loss == "bce":
        elementwise = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        elementwise = F.mse_loss(logits, target, reduction="none") * (0.5 if half else 1.0)
    per_sample = elementwise.mean(dim=1) if outputs == "mean" else elementwise.sum(dim=1)
    return per_sample.mean() if reduction == "mean" else per_sample.sum()

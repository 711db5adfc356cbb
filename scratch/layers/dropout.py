"""Inverted dropout: kept units scaled by 1/(1-p) in training, identity in evaluation."""

from __future__ import annotations

import numpy as np


class Dropout:
    """out = x * mask / (1 - p) in training, with mask_ij = 1 with probability 1 - p.

    Scaling the kept units during training keeps E[out] = x, so evaluation is the
    identity (nothing to rescale at test time).

    Parameters
    ----------
    p : float in [0, 1)
        The probability of dropping a unit; 0 is the identity.
    rng : numpy.random.Generator
        Where masks come from when none was handed in.
    """

    def __init__(self, p: float, rng: np.random.Generator):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = rng
        self.grads: dict[str, np.ndarray] = {}
        self.next_mask = None  # a 0/1 array handed in for the next training pass
        self.scaled_mask = None

    def draw_mask(self, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        """A 0/1 mask of ``shape`` from the layer's generator: 1 (keep) with probability 1 - p
        (uniform numbers drawn in ``dtype``, float32 or float64)."""
        return (self.rng.random(shape, dtype=dtype) >= self.p).astype(dtype)

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """(N, D) -> (N, D)."""
        self.scaled_mask = None
        if not train:  # evaluation: the identity, and a handed mask waits for training
            return x
        mask, self.next_mask = self.next_mask, None  # a handed mask serves one pass only
        if self.p == 0.0:
            return x
        if mask is None:
            mask = self.draw_mask(x.shape, x.dtype if x.dtype == np.float32 else np.float64)
        elif mask.shape != x.shape:
            raise ValueError(f"a dropout mask must have the shape of the layer's input "
                             f"{x.shape}, got {mask.shape}")
        self.scaled_mask = mask.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        return x * self.scaled_mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dx = dout * mask / (1 - p): the same mask as the forward pass."""
        if self.scaled_mask is None:
            return dout
        return dout * self.scaled_mask

"""Float32 witnesses: copies of the reference that round as a second implementation would.

:func:`harness.training.side_by_side.compare_training` trains them beside a float32 comparison
judged by a float64 arbiter; their distance from the arbiter widens the bound like the
reference's own (:mod:`harness.training.trajectory`, "Trajectory tolerance", says why).
"""

from __future__ import annotations

import numpy as np

from harness.model.masks import find_masks


class Witness:
    """A float32 copy of the reference that rounds differently (module docstring).

    Wraps a fresh model of the reference's kind: :meth:`start` gives it the reference's
    parameters moved by one float32 unit each, in seeded random directions, and
    :meth:`train_step` hands it every batch with its rows in a seeded random order.
    Everything else is the wrapped model's.

    Parameters
    ----------
    model : Classifier
        A fresh (no optimizer state) float32 model built like the reference.
    seed : int
    """

    def __init__(self, model, seed: int) -> None:
        self.model = model
        self._rng = np.random.default_rng([int(seed), 0x5EED])

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def start(self, params: dict) -> None:
        """Take ``params`` (the reference's), each entry one unit of roundoff away."""
        moved = {}
        for key, value in params.items():
            v = np.asarray(value)
            if v.dtype.kind == "f":
                towards = np.where(self._rng.random(v.shape) < 0.5, -np.inf, np.inf)
                v = np.nextafter(v, towards.astype(v.dtype)).astype(v.dtype, copy=False)
            moved[key] = v
        self.model.set_params(moved)

    def train_step(self, x, y):
        """One optimizer step on the batch, rows in a random order."""
        order = self._rng.permutation(len(y))
        handed = find_masks(self.model)
        if handed is not None:  # each row keeps its dropout mask
            handed.reorder_next(order)
        return self.model.train_step(x[order], y[order])

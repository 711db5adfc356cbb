"""Witnesses: copies of the reference that round as a second implementation would.

:func:`harness.training.side_by_side.compare_training` trains them beside every trajectory
comparison; their distance from the reference (or from the float64 arbiter) is the spread
of correct runs on that very run, and the bound follows it step by step
(:mod:`harness.training.trajectory`, "Trajectory tolerance", says why).

Two kinds, alternating: every witness starts one unit of roundoff away from the reference
and takes each batch with its rows in a seeded random order (the batch mean and its
gradient are the same sums, added in another order); every second one also holds its
hidden units in a seeded random order (:class:`Witness` ``permute``), so that every
matmul, forward and backward, adds its terms in another order too, as an implementation
written apart does. Both are exact in real arithmetic.
"""

from __future__ import annotations

import numpy as np

from harness.model.masks import find_masks


def hidden_permutations(model, params: dict, rng) -> list[np.ndarray] | None:
    """A random order of each hidden layer's units, or None where ``model`` is not a plain
    chain of ``W{i}``/``b{i}`` layers (buffers, dropout masks or other parameters: such a
    model's units cannot be reordered from outside)."""
    dims = tuple(getattr(model, "dims", ()))
    n = len(dims) - 1
    keys = {f"W{i}" for i in range(n)} | {f"b{i}" for i in range(n)}
    if n < 2 or set(params) != keys or find_masks(model) is not None:
        return None
    if callable(getattr(model, "get_buffers", None)) and model.get_buffers():
        return None
    for i in range(n):
        w, b = np.shape(params[f"W{i}"]), np.shape(params[f"b{i}"])
        if w != (dims[i], dims[i + 1]) or b != (dims[i + 1],):
            return None
    return [rng.permutation(d) for d in dims[1:-1]]


def _permuted(params: dict, perms: list[np.ndarray], inverse: bool) -> dict:
    """``params`` with hidden layer j's units in the order ``perms[j]`` (or back)."""
    out = dict(params)
    for j, perm in enumerate(perms):
        p = np.argsort(perm) if inverse else perm
        out[f"W{j}"] = np.asarray(out[f"W{j}"])[:, p]
        out[f"b{j}"] = np.asarray(out[f"b{j}"])[p]
        out[f"W{j + 1}"] = np.asarray(out[f"W{j + 1}"])[p, :]
    return out


class Witness:
    """A copy of the reference that rounds differently (module docstring).

    Wraps a fresh model of the reference's kind: :meth:`start` gives it the reference's
    parameters moved by one unit each, in seeded random directions (and, with ``permute``,
    its hidden units reordered), and :meth:`train_step` hands it every batch with its rows in
    a seeded random order. :meth:`get_params` gives the parameters in the reference's order.
    Everything else is the wrapped model's.

    Parameters
    ----------
    model : Classifier
        A fresh (no optimizer state) model built like the reference.
    seed : int
    permute : bool, optional
        Also hold the hidden units in a random order, where the model is a plain chain of
        dense layers (:func:`hidden_permutations`); ignored elsewhere.
    """

    def __init__(self, model, seed: int, permute: bool = False) -> None:
        self.model = model
        self.permute = bool(permute)
        self._rng = np.random.default_rng([int(seed), 0x5EED])
        self._perms: list[np.ndarray] | None = None

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    @property
    def permuted(self) -> bool:
        """Whether this witness holds its hidden units in another order."""
        return bool(self._perms)

    def start(self, params: dict) -> None:
        """Take ``params`` (the reference's), each entry one unit of roundoff away."""
        moved = {}
        for key, value in params.items():
            v = np.asarray(value)
            if v.dtype.kind == "f":
                towards = np.where(self._rng.random(v.shape) < 0.5, -np.inf, np.inf)
                v = np.nextafter(v, towards.astype(v.dtype)).astype(v.dtype, copy=False)
            moved[key] = v
        if self.permute:
            self._perms = hidden_permutations(self.model, moved, self._rng)
        if self._perms:
            moved = _permuted(moved, self._perms, inverse=False)
        self.model.set_params(moved)

    def get_params(self) -> dict:
        """The wrapped model's parameters, hidden units in the reference's order."""
        params = self.model.get_params()
        return _permuted(params, self._perms, inverse=True) if self._perms else params

    def train_step(self, x, y):
        """One optimizer step on the batch, rows in a random order."""
        order = self._rng.permutation(len(y))
        handed = find_masks(self.model)
        if handed is not None:  # each row keeps its dropout mask
            handed.reorder_next(order)
        return self.model.train_step(x[order], y[order])

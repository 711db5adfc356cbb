"""One seeded batch order, shared by every backend so they see identical batches."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from harness.errors import ConfigError


def epoch_order(n: int, epoch: int, *, seed: int = 0, shuffle: bool = True) -> np.ndarray:
    """Sample indices for ``epoch``: a permutation drawn from (seed, epoch), or 0..n-1."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


def iterate_batches(n: int, batch_size: int, *, epoch: int = 0, seed: int = 0,
                    shuffle: bool = True) -> Iterator[np.ndarray]:
    """Index arrays of the batches of one epoch; the last partial batch is kept.

    Parameters
    ----------
    n : int
        Number of samples.
    batch_size : int
        Samples per batch (the last batch may be smaller).
    epoch, seed : int
        The shuffle of epoch ``e`` depends on (seed, e) only, so every backend, and
        every rerun, gets the same batches.
    shuffle : bool
        False yields 0..n-1 in order.
    """
    if n < 1:
        raise ConfigError(f"cannot make batches of {n} samples")
    if batch_size < 1:
        raise ConfigError(f"`batch_size` must be >= 1, got {batch_size}")
    order = epoch_order(n, epoch, seed=seed, shuffle=shuffle)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]

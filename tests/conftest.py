"""Shared fixtures: small data, so the suite stays fast on two cores."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits():
    """The digits data set, standardised: (X (1797, 64), y (1797,))."""
    from harness.data.datasets import load_dataset, standardize

    data = load_dataset("digits")
    (X,) = standardize(data.X)
    return X, data.y


@pytest.fixture
def batch():
    """A small random batch factory: batch(n, d, c, seed, scale) -> (x, y)."""

    def make(n=17, d=5, c=3, seed=0, scale=1.0):
        rng = np.random.default_rng(seed)
        return rng.normal(size=(n, d)) * scale, rng.integers(0, c, size=n)

    return make


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a module of tiny models.

    Per-step work is far below what a second thread pays for, and a machine shared
    with other jobs makes torch's spinning worker threads 10-50x slower.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

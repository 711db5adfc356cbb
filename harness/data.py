"""Data sets: scikit-learn's bundled copies, a seeded synthetic set, standardisation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.errors import DataError

BUILTIN_DATASETS: tuple[str, ...] = ("digits", "iris", "wine", "breast_cancer", "synthetic")


@dataclass
class Dataset:
    """Features, integer labels 0..C-1 and the names behind them.

    Attributes
    ----------
    X : ndarray of float64, shape (N, D)
    y : ndarray of int64, shape (N,)
    class_names : list of str, length C; ``class_names[k]`` is the original label of class k
    feature_names : list of str, length D
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    class_names: list[str]
    feature_names: list[str] = field(default_factory=list)

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return int(self.X.shape[0])


def encode_labels(labels) -> tuple[np.ndarray, list[str]]:
    """Map arbitrary labels (strings or integers) to 0..C-1, keeping the sorted originals."""
    labels = np.asarray(labels)
    classes, y = np.unique(labels, return_inverse=True)
    return y.astype(np.int64).reshape(-1), [str(c) for c in classes]


def load_dataset(name: str = "digits", *, seed: int = 0) -> Dataset:
    """One of the built-in data sets, unstandardised.

    ``digits``, ``iris``, ``wine`` and ``breast_cancer`` are scikit-learn's bundled
    copies (no network); ``synthetic`` is ``make_classification`` with 1000 samples,
    20 features and 3 classes, seeded by ``seed``.
    """
    if name not in BUILTIN_DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(BUILTIN_DATASETS)}")
    from sklearn import datasets

    if name == "synthetic":
        X, y = datasets.make_classification(
            n_samples=1000, n_features=20, n_informative=10, n_redundant=2, n_classes=3,
            random_state=seed)
        return Dataset(name, X.astype(np.float64), y.astype(np.int64), ["0", "1", "2"],
                       [f"x{i}" for i in range(20)])
    bunch = getattr(datasets, f"load_{name}")()
    names = [str(n) for n in getattr(bunch, "target_names", np.unique(bunch.target))]
    features = [str(f) for f in getattr(bunch, "feature_names", [])] or [
        f"x{i}" for i in range(bunch.data.shape[1])]
    return Dataset(name, np.asarray(bunch.data, dtype=np.float64),
                   np.asarray(bunch.target, dtype=np.int64), names, features)


def fit_standardizer(X_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and scales of ``X_train``; a constant column gets scale 1."""
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std[std == 0] = 1.0
    return mean, std


def standardize(X_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Standardise ``X_train`` and ``others`` with statistics of ``X_train`` only."""
    mean, std = fit_standardizer(X_train)
    return [(X - mean) / std for X in (X_train, *others)]

"""Random correct configurations: what the false-alarm count is measured over.

:func:`draw_config` draws configuration ``index`` of a run seeded ``seed`` from
``numpy.random.default_rng([seed, index])``: the same pair always gives the same
configuration, whatever order or process computes it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache
from typing import Any

import numpy as np

from harness.model.specs import ACTIVATION_NAMES

BUNDLED = ("iris", "wine", "digits", "breast_cancer")
#: the checks a configuration runs through, in order
CHECKS = ("equivalence", "gradcheck", "training")
#: reference, candidate of each pair
PAIRS: dict[str, tuple[str, str]] = {
    "scratch-torch": ("torch", "scratch"),
    "simple-torch": ("torch", "harness.calibrate.simple:SimpleMLP"),
}
#: sizes of every check's work (rows, entries, epochs)
CHECK_SAMPLES = 48
GRADCHECK_SAMPLES = 16
GRADCHECK_ENTRIES = 6
TRAIN_SAMPLES = 96
EPOCHS = 2


def _log_uniform(rng, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def draw_config(seed: int, index: int) -> dict[str, Any]:
    """Configuration ``index`` of the run seeded ``seed``: a flat dict of plain values.

    Keys: ``index``, ``dataset`` (a bundled set, or ``synthetic`` with ``n_samples``,
    ``n_features``, ``n_classes``, ``data_seed`` and ``feature_scale``), ``hidden``
    (1 to 3 widths in 1..64), ``activation``, ``dtype``, ``optimizer``, ``lr``,
    ``weight_decay``, ``momentum``, ``nesterov``, ``beta1``, ``beta2``, ``eps``,
    ``batch_size``, ``seed``.
    """
    rng = np.random.default_rng([seed, index])
    cfg: dict[str, Any] = {"index": index}
    if rng.random() < 0.6:
        cfg.update(dataset=str(rng.choice(BUNDLED)), n_samples=None, n_features=None,
                   n_classes=None, data_seed=None, feature_scale=1.0)
    else:
        n_classes = int(rng.integers(2, 7))
        cfg.update(dataset="synthetic", n_samples=int(rng.integers(6 * n_classes, 300)),
                   n_features=int(rng.integers(max(2, math.ceil(math.log2(n_classes))), 41)),
                   n_classes=n_classes,
                   data_seed=int(rng.integers(0, 2**31)),
                   feature_scale=float(10.0 ** rng.uniform(-3, 3)))
    n_hidden = int(rng.integers(1, 4))
    cfg["hidden"] = [int(round(_log_uniform(rng, 1, 64))) for _ in range(n_hidden)]
    cfg["activation"] = str(rng.choice(ACTIVATION_NAMES))
    cfg["dtype"] = str(rng.choice(["float32", "float64"]))
    name = str(rng.choice(["sgd", "adam", "adamw"]))
    cfg["optimizer"] = name
    cfg["weight_decay"] = 0.0 if rng.random() < 0.4 else _log_uniform(rng, 1e-5, 1e-1)
    if name == "sgd":
        cfg["lr"] = _log_uniform(rng, 1e-3, 0.5)
        cfg["momentum"] = 0.0 if rng.random() < 0.3 else float(rng.uniform(0.5, 0.99))
        cfg["nesterov"] = bool(cfg["momentum"] > 0 and rng.random() < 0.5)
        cfg.update(beta1=None, beta2=None, eps=None)
    else:
        cfg["lr"] = _log_uniform(rng, 1e-4, 5e-2)
        cfg.update(momentum=None, nesterov=None,
                   beta1=float(rng.choice([0.0, 0.5, 0.8, 0.9, 0.95])),
                   beta2=float(rng.choice([0.9, 0.99, 0.999, 0.9999])),
                   eps=float(rng.choice([1e-8, 1e-6, 1e-4])))
    cfg["batch_size"] = int(rng.choice([4, 8, 16, 32, 64]))
    cfg["seed"] = int(rng.integers(0, 2**16))
    return cfg


@lru_cache(maxsize=16)
def _bundled(name: str):
    from harness.data.datasets import load_dataset

    return load_dataset(name)


def dataset_of(cfg: dict[str, Any]):
    """The :class:`harness.data.datasets.Dataset` of a configuration (bundled sets loaded once)."""
    from harness.data.datasets import make_synthetic

    if cfg["dataset"] != "synthetic":
        return _bundled(cfg["dataset"])
    data = make_synthetic(cfg["n_samples"], cfg["n_features"], cfg["n_classes"],
                          seed=cfg["data_seed"])
    return replace(data, X=data.X * cfg["feature_scale"])


def specs_of(cfg: dict[str, Any], data):
    """``(ModelSpec, OptimizerSpec)`` of a configuration on its data."""
    from harness.model.specs import ModelSpec, OptimizerSpec

    dims = (data.n_features, *cfg["hidden"], data.n_classes)
    spec = ModelSpec(dims, activation=cfg["activation"], dtype=cfg["dtype"], seed=cfg["seed"])
    kw: dict[str, Any] = {"name": cfg["optimizer"], "lr": cfg["lr"],
                          "weight_decay": cfg["weight_decay"]}
    if cfg["optimizer"] == "sgd":
        kw.update(momentum=cfg["momentum"], nesterov=cfg["nesterov"])
    else:
        kw.update(betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"])
    return spec, OptimizerSpec(**kw)

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
#: the checks a configuration runs through, in order: every check the CLI exits on
#: (drift judges the float32 run of the configuration against its float64 one, for
#: either dtype drawn)
CHECKS = ("equivalence", "gradcheck", "training", "drift", "cv")
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
#: cross-validation: folds over a seeded stratified subset of at most CV_SAMPLES rows
CV_FOLDS = 3
CV_SAMPLES = 120
#: how often a configuration is drawn from the amplifying family on purpose (plain SGD
#: with heavy momentum at a high rate on batches of 4, for AMPLIFYING_EPOCHS epochs:
#: the workloads on which rounding differences grow fastest)
AMPLIFYING_P = 0.1
AMPLIFYING_EPOCHS = 8


def _log_uniform(rng, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


#: the optimizers a configuration draws from, equally often
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
#: the learning-rate schedules, with their probabilities ("none" most often)
SCHEDULES = ("none", "step", "inverse_time", "cosine", "exponential")
SCHEDULE_P = (0.5, 0.125, 0.125, 0.125, 0.125)
#: how often a configuration clips its gradients (by global norm or by value, half each)
CLIP_P = 0.25
#: the keys each drawn configuration has beyond the data and the network
OPTIMIZER_KEYS = ("optimizer", "lr", "weight_decay", "momentum", "nesterov", "beta1", "beta2",
                  "eps", "alpha", "centered", "lr_decay", "initial_accumulator_value")
RECIPE_KEYS = ("lr_schedule", "step_size", "gamma", "decay", "t_max", "eta_min",
               "clip_grad_norm", "clip_grad_value")


def draw_config(seed: int, index: int) -> dict[str, Any]:
    """Configuration ``index`` of the run seeded ``seed``: a flat dict of plain values.

    Keys: ``index``, ``dataset`` (a bundled set, or ``synthetic`` with ``n_samples``,
    ``n_features``, ``n_classes``, ``data_seed`` and ``feature_scale``), ``hidden``
    (1 to 3 widths in 1..64), ``activation``, ``dtype``, the optimizer's
    (:data:`OPTIMIZER_KEYS`: ``optimizer``, ``lr``, ``weight_decay``, then each
    optimizer's own settings, None where they do not apply), the schedule's and the
    clipping's (:data:`RECIPE_KEYS`, None where unused), ``batch_size``, ``seed``.
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
    cfg.update(_draw_optimizer(rng))
    cfg.update(_draw_recipe(rng, cfg["lr"]))
    cfg["batch_size"] = int(rng.choice([4, 8, 16, 32, 64]))
    cfg["seed"] = int(rng.integers(0, 2**16))
    cfg.update(_draw_loss(np.random.default_rng([seed, index, 0x1055])))
    cfg.update(_draw_amplifying(np.random.default_rng([seed, index, 0xA4F]), cfg))
    return cfg


def _draw_amplifying(rng, cfg: dict[str, Any]) -> dict[str, Any]:
    """With probability :data:`AMPLIFYING_P` (its own generator: the other keys draw as
    before), the keys that make configuration ``cfg`` an amplifying one: cross-entropy,
    SGD at lr 0.05-0.3 with momentum 0.9 (Nesterov half the time), no decay, schedule or
    clipping, batches of 4, :data:`AMPLIFYING_EPOCHS` epochs. ``amplifying`` says which."""
    if rng.random() >= AMPLIFYING_P:
        return {"amplifying": False, "epochs": EPOCHS}
    out: dict[str, Any] = dict.fromkeys(OPTIMIZER_KEYS)
    out.update(dict.fromkeys(RECIPE_KEYS))
    out.update(optimizer="sgd", lr=float(rng.uniform(0.05, 0.3)), weight_decay=0.0,
               momentum=0.9, nesterov=bool(rng.random() < 0.5), lr_schedule="none",
               batch_size=4, loss="cross_entropy", loss_outputs="mean", mse_half=False,
               amplifying=True, epochs=AMPLIFYING_EPOCHS)
    if cfg["dataset"] == "synthetic":  # features of ordinary size: a rate that trains
        out["feature_scale"] = 1.0
    return out


def _draw_loss(rng) -> dict[str, Any]:
    """The loss (its own generator: the other keys draw as before): cross-entropy 60% of
    the time, bce and mse 20% each, summed or averaged over the outputs, mse with or
    without its 1/2."""
    loss = str(rng.choice(["cross_entropy", "bce", "mse"], p=[0.6, 0.2, 0.2]))
    outputs = "mean" if loss == "cross_entropy" else str(rng.choice(["mean", "sum"]))
    return {"loss": loss, "loss_outputs": outputs,
            "mse_half": bool(loss == "mse" and rng.random() < 0.5)}


def _draw_optimizer(rng) -> dict[str, Any]:
    """The optimizer's keys (:data:`OPTIMIZER_KEYS`), None where a setting does not apply."""
    name = str(rng.choice(OPTIMIZERS))
    cfg: dict[str, Any] = dict.fromkeys(OPTIMIZER_KEYS)
    cfg["optimizer"] = name
    cfg["weight_decay"] = 0.0 if rng.random() < 0.4 else _log_uniform(rng, 1e-5, 1e-1)
    if name == "sgd":
        cfg["lr"] = _log_uniform(rng, 1e-3, 0.5)
        cfg["momentum"] = 0.0 if rng.random() < 0.3 else float(rng.uniform(0.5, 0.99))
        cfg["nesterov"] = bool(cfg["momentum"] > 0 and rng.random() < 0.5)
    elif name in ("adam", "adamw"):
        cfg["lr"] = _log_uniform(rng, 1e-4, 5e-2)
        cfg.update(beta1=float(rng.choice([0.0, 0.5, 0.8, 0.9, 0.95])),
                   beta2=float(rng.choice([0.9, 0.99, 0.999, 0.9999])),
                   eps=float(rng.choice([1e-8, 1e-6, 1e-4])))
    elif name == "rmsprop":
        # the first step is lr g / (sqrt(1 - alpha) |g|): up to 10 lr at alpha 0.99
        cfg["lr"] = _log_uniform(rng, 1e-4, 1e-2)
        cfg.update(alpha=float(rng.choice([0.9, 0.95, 0.99])),
                   momentum=0.0 if rng.random() < 0.5 else float(rng.uniform(0.5, 0.95)),
                   centered=bool(rng.random() < 0.3),
                   eps=float(rng.choice([1e-8, 1e-6, 1e-4])))
    else:  # adagrad: the first step is lr g / |g|
        cfg["lr"] = _log_uniform(rng, 1e-3, 0.1)
        cfg.update(lr_decay=0.0 if rng.random() < 0.5 else _log_uniform(rng, 1e-3, 0.1),
                   initial_accumulator_value=0.0 if rng.random() < 0.5
                   else float(rng.choice([0.01, 0.1, 1.0])),
                   eps=float(rng.choice([1e-10, 1e-8, 1e-6])))
    return cfg


def _draw_recipe(rng, lr: float) -> dict[str, Any]:
    """The schedule's and the clipping's keys (:data:`RECIPE_KEYS`), None where unused.

    The ranges move the rate within a run of a few dozen steps (a step every 1 to 8
    steps, cosine over 2 to 40). Clipping levels span the gradient sizes of the drawn
    networks (global norms about 0.01 to 10), so that some steps clip and some do not.
    """
    cfg: dict[str, Any] = dict.fromkeys(RECIPE_KEYS)
    schedule = str(rng.choice(SCHEDULES, p=SCHEDULE_P))
    cfg["lr_schedule"] = schedule
    if schedule == "step":
        cfg.update(step_size=int(rng.integers(1, 9)), gamma=float(rng.uniform(0.3, 0.95)))
    elif schedule == "exponential":
        cfg["gamma"] = float(rng.uniform(0.8, 0.99))
    elif schedule == "inverse_time":
        cfg["decay"] = _log_uniform(rng, 1e-2, 1.0)
    elif schedule == "cosine":
        cfg.update(t_max=int(rng.integers(2, 41)),
                   eta_min=0.0 if rng.random() < 0.5 else lr * float(rng.uniform(0.0, 0.1)))
    if rng.random() < CLIP_P:
        if rng.random() < 0.5:
            cfg["clip_grad_norm"] = _log_uniform(rng, 1e-2, 10.0)
        else:
            cfg["clip_grad_value"] = _log_uniform(rng, 1e-3, 1.0)
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
    spec = ModelSpec(dims, activation=cfg["activation"], dtype=cfg["dtype"], seed=cfg["seed"],
                     loss=cfg.get("loss", "cross_entropy"),
                     loss_outputs=cfg.get("loss_outputs", "mean"),
                     mse_half=bool(cfg.get("mse_half", False)))
    name = cfg["optimizer"]
    kw: dict[str, Any] = {"name": name, "lr": cfg["lr"], "weight_decay": cfg["weight_decay"]}
    if name == "sgd":
        kw.update(momentum=cfg["momentum"], nesterov=cfg["nesterov"])
    elif name in ("adam", "adamw"):
        kw.update(betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"])
    elif name == "rmsprop":
        kw.update(alpha=cfg["alpha"], momentum=cfg["momentum"], centered=cfg["centered"],
                  eps=cfg["eps"])
    else:
        kw.update(lr_decay=cfg["lr_decay"],
                  initial_accumulator_value=cfg["initial_accumulator_value"], eps=cfg["eps"])
    kw.update({k: cfg[k] for k in RECIPE_KEYS if cfg.get(k) is not None})
    return spec, OptimizerSpec(**kw)

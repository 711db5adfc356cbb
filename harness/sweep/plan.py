"""Sweep plans: a grid file (TOML) read and validated in full before any work starts,
and expanded into a :class:`SweepPlan`: a list of configurations, each a flat dict of plain
values whose :func:`config_hash` keys its row.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError
from harness.sweep.grid import (
    _betas, _bool, _checked, _data_shape, _fail, _grid_input_shapes, _grid_losses, _grid_net,
    _integer, _is_int,
    _is_number, _number, _one_of, _values,
)

#: bump when the meaning of a configuration's fields changes (old rows then stop matching)
HASH_VERSION = 1

#: the checks a sweep can run, in the order a task runs them
CHECKS: tuple[str, ...] = ("equivalence", "gradcheck", "training")
_CHECK_MODULES = {"equivalence": "harness.compare.equivalence", "gradcheck": "harness.gradients.finite_diff",
                  "training": "harness.training.side_by_side"}

#: the most configurations one grid file may expand to
MAX_CONFIGS = 1_000_000

#: conventions (harness.model.specs): a configuration at these defaults keeps the key it had
#: before the conventions existed, so that older results folders still resume
CONVENTION_DEFAULTS: dict[str, Any] = {"loss_reduction": "mean",
                                       "weight_decay_in": "optimizer", "weight_decay_on": "all",
                                       "layers": "none", "input_shape": "none",
                                       "loss": "cross_entropy",
                                       "loss_outputs": "mean", "mse_half": False}
GRID_KEYS: tuple[str, ...] = ("dataset", "hidden", "dims", "layers", "input_shape", "loss",
                              "loss_outputs",
                              "mse_half", "activation", "dtype", "optimizer",
                              "lr", "weight_decay", "momentum", "nesterov", "betas", "eps",
                              "batch_size", "seed", "loss_reduction", "weight_decay_in",
                              "weight_decay_on")
SWEEP_KEYS: tuple[str, ...] = ("mode", "samples", "seed", "backends", "checks", "epochs",
                               "train_samples", "check_samples", "gradcheck_eps",
                               "gradcheck_entries", "rtol", "atol")


# =========================================================================== checks
def available_checks() -> tuple[str, ...]:
    """The checks whose modules are installed here (equivalence always is)."""
    import importlib.util

    return tuple(c for c in CHECKS if importlib.util.find_spec(_CHECK_MODULES[c]) is not None)


# ============================================================================= plan
@dataclass(frozen=True)
class SweepSettings:
    """What every configuration of a sweep shares (the ``[sweep]`` table).

    Attributes
    ----------
    reference, candidate : str
        Backend names (built-in or ``package.module:Class``); the candidate is compared
        with the reference.
    checks : tuple of str
        Subset of ``equivalence``, ``gradcheck``, ``training``.
    epochs : int
        Length of the training trajectory, in epochs over ``train_samples`` rows.
    train_samples, check_samples : int
        Rows of the data set (a fixed seeded subset, at most the whole set) the training
        trajectory and the equivalence check and gradcheck run on.
    gradcheck_eps : float or None
        Finite-difference step of the gradient check (None: its default by dtype).
    gradcheck_entries : int
        Parameter entries the gradient check probes per parameter tensor at most.
    rtol, atol : float or None
        Tolerances of the equivalence check and the training comparison (both or neither;
        None: the defaults by dtype).
    """

    reference: str = "scratch"
    candidate: str = "torch"
    checks: tuple[str, ...] = ("equivalence",)
    epochs: int = 1
    train_samples: int = 256
    check_samples: int = 64
    gradcheck_eps: float | None = None
    gradcheck_entries: int = 16
    rtol: float | None = None
    atol: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "candidate": self.candidate,
                "checks": list(self.checks), "epochs": self.epochs,
                "train_samples": self.train_samples, "check_samples": self.check_samples,
                "gradcheck_eps": self.gradcheck_eps,
                "gradcheck_entries": self.gradcheck_entries,
                "rtol": self.rtol, "atol": self.atol}


@dataclass
class SweepPlan:
    """A validated, expanded sweep: the configurations in order, and how they were chosen."""

    configs: list[dict[str, Any]]
    settings: SweepSettings
    mode: str = "grid"
    grid_size: int = 0
    samples: int | None = None
    draw_seed: int | None = None
    source: str = "<dict>"

    def __len__(self) -> int:
        return len(self.configs)

    @property
    def hashes(self) -> list[str]:
        return [c["config_hash"] for c in self.configs]

    def describe(self) -> str:
        how = (f"all {self.grid_size} configurations of the grid" if self.mode == "grid" else
               f"{len(self)} of {self.grid_size} configurations drawn with seed "
               f"{self.draw_seed}")
        return (f"{self.source}: {how}; checks {', '.join(self.settings.checks)}; "
                f"{self.settings.candidate} against {self.settings.reference}")


def _int_setting(table: dict, key: str, default: int, minimum: int) -> int:
    value = table.get(key, default)
    if not _is_int(value) or value < minimum:
        raise _fail(f"sweep.{key}", f"must be an integer >= {minimum}, got {value!r}")
    return value


def _float_setting(table: dict, key: str, default, *, positive: bool) -> float | None:
    value = table.get(key, default)
    if value is None:
        return None
    if not _is_number(value) or not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise _fail(f"sweep.{key}", f"must be a finite number {'>' if positive else '>='} 0, "
                                    f"got {value!r}")
    return float(value)


def _parse_settings(table: dict) -> tuple[SweepSettings, str, int | None, int | None]:
    if not isinstance(table, dict):
        raise _fail("sweep", f"must be a table, got {type(table).__name__}")
    unknown = [k for k in table if k not in SWEEP_KEYS]
    if unknown:
        raise _fail(f"sweep.{unknown[0]}", f"is not a known key; known keys of [sweep]: "
                                           f"{', '.join(SWEEP_KEYS)}")
    mode = table.get("mode", "grid")
    if mode not in ("grid", "random"):
        raise _fail("sweep.mode", f'must be "grid" or "random", got {mode!r}')
    samples = draw_seed = None
    if mode == "random":
        if "samples" not in table:
            raise _fail("sweep.samples", 'is required with mode = "random" (how many '
                                         'configurations to draw)')
        samples = _int_setting(table, "samples", 1, 1)
        draw_seed = _int_setting(table, "seed", 0, 0)
    else:
        for key in ("samples", "seed"):
            if key in table:
                raise _fail(f"sweep.{key}", 'applies to mode = "random" only')

    from harness.model.registry import validate_backend_name

    backends = table.get("backends", ["scratch", "torch"])
    if (not isinstance(backends, list) or len(backends) != 2
            or not all(isinstance(b, str) for b in backends)):
        raise _fail("sweep.backends", f"must be two backend names [reference, candidate], "
                                      f"got {backends!r}")
    for name in backends:
        try:
            validate_backend_name(name)
        except ConfigError as exc:
            raise _fail("sweep.backends", str(exc)) from None
    if backends[0] == backends[1]:
        raise _fail("sweep.backends", f"names the same backend twice: {backends[0]!r}")

    have = available_checks()
    checks = table.get("checks", list(have))
    if not isinstance(checks, list) or not checks or not all(isinstance(c, str) for c in checks):
        raise _fail("sweep.checks", f"must be a non-empty list of check names "
                                    f"({', '.join(CHECKS)}), got {checks!r}")
    for c in checks:
        if c not in CHECKS:
            raise _fail("sweep.checks", f"names an unknown check {c!r}; choose from "
                                        f"{', '.join(CHECKS)}")
        if c not in have:
            raise _fail("sweep.checks", f"names {c!r}, which this installation does not have "
                                        f"yet ({_CHECK_MODULES[c]} is missing); available: "
                                        f"{', '.join(have)}")
    if len(set(checks)) != len(checks):
        raise _fail("sweep.checks", f"names a check twice: {checks!r}")
    checks = tuple(c for c in CHECKS if c in checks)

    rtol = _float_setting(table, "rtol", None, positive=False)
    atol = _float_setting(table, "atol", None, positive=False)
    if (rtol is None) != (atol is None):
        raise _fail("sweep.rtol" if rtol is None else "sweep.atol",
                    "is missing: give both `rtol` and `atol` or neither")
    settings = SweepSettings(
        reference=backends[0], candidate=backends[1], checks=checks,
        epochs=_int_setting(table, "epochs", 1, 1),
        train_samples=_int_setting(table, "train_samples", 256, 1),
        check_samples=_int_setting(table, "check_samples", 64, 1),
        gradcheck_eps=_float_setting(table, "gradcheck_eps", None, positive=True),
        gradcheck_entries=_int_setting(table, "gradcheck_entries", 16, 1),
        rtol=rtol, atol=atol)
    return settings, mode, samples, draw_seed


def _n_params(dims) -> int:
    return int(sum(a * b + b for a, b in itertools.pairwise(dims)))


@dataclass
class _Factors:
    """The validated factor lists of a grid and the sizes of its mixed-radix product."""

    before: list[tuple[str, list]]
    optimizers: list[tuple[str, list[tuple[str, list]]]]
    after: list[tuple[str, list]]

    def __post_init__(self) -> None:
        self.n_before = math.prod(len(v) for _, v in self.before)
        self.opt_sizes = [math.prod(len(v) for _, v in fs) for _, fs in self.optimizers]
        self.n_mid = sum(self.opt_sizes)
        self.n_after = math.prod(len(v) for _, v in self.after)
        self.total = self.n_before * self.n_mid * self.n_after

    @staticmethod
    def _decode(i: int, factors: list[tuple[str, list]]) -> dict[str, Any]:
        out = {}
        for name, values in reversed(factors):  # the last factor varies fastest
            i, r = divmod(i, len(values))
            out[name] = values[r]
        return out

    def choice(self, index: int) -> dict[str, Any]:
        """The index-th combination, in grid order."""
        rest, i_after = divmod(index, self.n_after)
        i_before, i_mid = divmod(rest, self.n_mid)
        choice = self._decode(i_before, self.before)
        for (name, factors), size in zip(self.optimizers, self.opt_sizes):
            if i_mid < size:
                choice["optimizer"] = name
                choice.update(self._decode(i_mid, factors))
                break
            i_mid -= size
        choice.update(self._decode(i_after, self.after))
        return choice


def _parse_grid(grid: dict) -> _Factors:
    from harness.data.datasets import BUILTIN_DATASETS
    from harness.model.specs import (
        ACTIVATION_NAMES, DTYPE_NAMES, LOSS_REDUCTIONS, OPTIMIZER_NAMES, WEIGHT_DECAY_IN,
        WEIGHT_DECAY_ON,
    )

    if not isinstance(grid, dict):
        raise _fail("grid", f"must be a table, got {type(grid).__name__}")
    unknown = [k for k in grid if k not in GRID_KEYS]
    if unknown:
        raise _fail(f"grid.{unknown[0]}", f"is not a known key; known keys of [grid]: "
                                          f"{', '.join(GRID_KEYS)}")
    if "hidden" in grid and "dims" in grid:
        raise _fail("grid.dims", "and `grid.hidden` both given; give one: `hidden` (widths "
                                 "between the data's features and classes) or `dims`")
    if "layers" in grid and ("hidden" in grid or "dims" in grid or "activation" in grid):
        other = next(k for k in ("hidden", "dims", "activation") if k in grid)
        raise _fail("grid.layers", f"and `grid.{other}` both given; a layer list names its "
                                   f"widths and activations itself")
    datasets = _checked("dataset", _values(grid, "dataset"), _one_of(BUILTIN_DATASETS))
    shapes = _grid_input_shapes(grid, datasets)
    net = _grid_net(grid, datasets, shapes)

    activations = _checked("activation", _values(grid, "activation"), _one_of(ACTIVATION_NAMES))
    dtypes = _checked("dtype", _values(grid, "dtype"), _one_of(DTYPE_NAMES))
    optimizers = _checked("optimizer", _values(grid, "optimizer"), _one_of(OPTIMIZER_NAMES))
    lrs = _checked("lr", _values(grid, "lr"), _number(minimum=0, strict=True))
    decays = _checked("weight_decay", _values(grid, "weight_decay"), _number(minimum=0,
                                                                             strict=False))
    momenta = _checked("momentum", _values(grid, "momentum"),
                       _number(minimum=0, strict=False, below=1))
    nesterovs = _checked("nesterov", _values(grid, "nesterov"), _bool)
    betas = _checked("betas", _values(grid, "betas"), _betas)
    epss = _checked("eps", _values(grid, "eps"), _number(minimum=0, strict=True))
    batch_sizes = _checked("batch_size", _values(grid, "batch_size"), _integer(1))
    seeds = _checked("seed", _values(grid, "seed"), _integer(0))
    reductions = _checked("loss_reduction", _values(grid, "loss_reduction"),
                          _one_of(LOSS_REDUCTIONS))
    decay_in = _checked("weight_decay_in", _values(grid, "weight_decay_in"),
                        _one_of(WEIGHT_DECAY_IN))
    decay_on = _checked("weight_decay_on", _values(grid, "weight_decay_on"),
                        _one_of(WEIGHT_DECAY_ON))

    # hyper-parameters multiply only the optimizers they apply to
    sgd_pairs = [(m, n) for m in momenta for n in nesterovs if not (n and m == 0.0)]
    if "sgd" in optimizers and not sgd_pairs:
        raise _fail("grid.nesterov", "= true needs a `grid.momentum` value > 0")
    for key, applies in (("momentum", "sgd"), ("nesterov", "sgd"), ("betas", "adam or adamw"),
                         ("eps", "adam or adamw or rmsprop or adagrad")):
        if key in grid and not any(o in applies.split(" or ") for o in optimizers):
            raise _fail(f"grid.{key}", f"applies to {applies} only, and `grid.optimizer` "
                                       f"lists neither")
    opt_blocks = []
    for name in optimizers:
        # adamw decays the parameters themselves: "in the loss" does not apply to it
        where = [d for d in decay_in if name != "adamw" or d == "optimizer"]
        if not where:
            raise _fail("grid.weight_decay_in", "= [\"loss\"] does not apply to adamw (its "
                                                "decay is decoupled: optimizer only)")
        factors = [("lr", lrs), ("weight_decay", decays), ("weight_decay_in", where),
                   ("weight_decay_on", decay_on)]
        factors += ([("sgd_momentum", sgd_pairs)] if name == "sgd" else
                    [("betas", betas), ("eps", epss)] if name in ("adam", "adamw") else
                    [("eps", epss)])  # rmsprop, adagrad: their own settings at torch's defaults
        opt_blocks.append((name, factors))
    factors = _Factors(
        before=[("dataset", datasets), net, *([("input_shape", shapes)] if shapes else []),
                ("activation", activations), ("dtype", dtypes),
                ("loss_reduction", reductions), ("loss_choice", _grid_losses(grid))],
        optimizers=opt_blocks,
        after=[("batch_size", batch_sizes), ("seed", seeds)])
    if factors.total > MAX_CONFIGS:
        raise _fail("grid", f"expands to {factors.total} configurations, more than "
                            f"{MAX_CONFIGS}; use mode = \"random\" with `sweep.samples`")
    return factors


def _make_config(choice: dict[str, Any], settings: SweepSettings) -> dict[str, Any]:
    dataset = choice["dataset"]
    n_params = None
    if "layers" in choice:
        from harness.model.layer_spec import resolve

        _, n_feat, n_cls = _data_shape(dataset)
        network = resolve(choice["layers"], choice.get("input_shape") or n_feat, n_cls)
        dims = list(network.dims)
        if "input_shape" in choice:  # a conv network: its own count, not the flat widths'
            n_params = sum(int(np.prod(s)) for s in network.param_shapes.values())
    elif "dims" in choice:
        dims = list(choice["dims"])
    else:
        _, n_feat, n_cls = _data_shape(dataset)
        dims = [n_feat, *choice["hidden"], n_cls]
    sgd = choice["optimizer"] == "sgd"
    momentum, nesterov = choice["sgd_momentum"] if sgd else (None, None)
    beta1, beta2 = choice.get("betas", (None, None))
    config = {
        "dataset": dataset,
        "dims": "-".join(map(str, dims)),
        "hidden": "-".join(map(str, dims[1:-1])) or "none",
        "n_params": _n_params(dims) if n_params is None else n_params,
        "activation": choice["activation"],
        "layers": choice.get("layers", CONVENTION_DEFAULTS["layers"]),
        "input_shape": (",".join(map(str, choice["input_shape"])) if "input_shape" in choice
                        else CONVENTION_DEFAULTS["input_shape"]),
        **dict(zip(("loss", "loss_outputs", "mse_half"), choice.get(
            "loss_choice", ("cross_entropy", "mean", False)))),
        "dtype": choice["dtype"],
        "optimizer": choice["optimizer"],
        "lr": choice["lr"],
        "weight_decay": choice["weight_decay"],
        "momentum": momentum,
        "nesterov": nesterov,
        "beta1": beta1,
        "beta2": beta2,
        "eps": None if sgd else choice["eps"],
        "batch_size": choice["batch_size"],
        "seed": choice["seed"],
        "loss_reduction": choice.get("loss_reduction", CONVENTION_DEFAULTS["loss_reduction"]),
        "weight_decay_in": choice.get("weight_decay_in", CONVENTION_DEFAULTS["weight_decay_in"]),
        "weight_decay_on": choice.get("weight_decay_on", CONVENTION_DEFAULTS["weight_decay_on"]),
        "reference": settings.reference,
        "candidate": settings.candidate,
        "checks": ",".join(settings.checks),
        "epochs": settings.epochs,
        "train_samples": settings.train_samples,
        "check_samples": settings.check_samples,
        "gradcheck_eps": settings.gradcheck_eps,
        "gradcheck_entries": settings.gradcheck_entries,
        "rtol": settings.rtol,
        "atol": settings.atol,
    }
    return {"config_hash": config_hash(config), **config}


def config_hash(config: dict[str, Any]) -> str:
    """A stable 16-hex-digit key of a configuration (its fields, not their order).

    ``config_hash`` itself and the derived ``hidden`` and ``n_params`` are left out, so
    the key depends only on what the task computes with; so are conventions at their
    defaults (:data:`CONVENTION_DEFAULTS`), so that a configuration keeps the key it had
    before they existed.
    """
    fields = {k: v for k, v in config.items() if k not in ("config_hash", "hidden", "n_params")
              and not (k in CONVENTION_DEFAULTS and v == CONVENTION_DEFAULTS[k])}
    text = json.dumps({"hash_version": HASH_VERSION, **fields}, sort_keys=True,
                      separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_from_dict(doc: dict, *, source: str = "<dict>") -> SweepPlan:
    """Validate a parsed grid document and expand it into a :class:`SweepPlan`.

    Raises :class:`~harness.errors.ConfigError` with a one-line message naming the key.
    """
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: a grid file is a table with [sweep] and [grid]")
    unknown = [k for k in doc if k not in ("sweep", "grid")]
    if unknown:
        raise _fail(unknown[0], "is not a known table or key; a grid file has the tables "
                                "[sweep] and [grid]")
    if "grid" not in doc:
        raise ConfigError(f"{source}: no [grid] table; it lists the values to sweep, "
                          f"e.g. activation = [\"relu\", \"tanh\"]")
    settings, mode, samples, draw_seed = _parse_settings(doc.get("sweep", {}))
    factors = _parse_grid(doc["grid"])
    if mode == "grid":
        indices: Iterable[int] = range(factors.total)
    else:
        if samples > factors.total:
            raise _fail("sweep.samples", f"is {samples}, more than the {factors.total} "
                                         f"configurations of the grid; lower it or use "
                                         f'mode = "grid"')
        rng = np.random.default_rng(draw_seed)
        indices = sorted(int(i) for i in rng.choice(factors.total, size=samples, replace=False))
    configs = [_make_config(factors.choice(i), settings) for i in indices]
    return SweepPlan(configs, settings, mode=mode, grid_size=factors.total, samples=samples,
                     draw_seed=draw_seed, source=source)


def load_plan(path: str | os.PathLike) -> SweepPlan:
    """Read, validate and expand a grid file (TOML); see the README's sweep section."""
    import tomllib  # the project requires Python 3.11
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"grid file {str(p)!r} does not exist" if not p.exists()
                          else f"grid file {str(p)!r} is not a file")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"grid file {str(p)!r} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"grid file {str(p)!r} is not valid TOML: {exc}") from None
    try:
        return plan_from_dict(doc, source=p.name)
    except ConfigError as exc:
        raise ConfigError(f"{p.name}: {exc}") from None

"""Sweeps: the comparison run over a grid (or a seeded random sample) of configurations on
Dask's distributed scheduler, with results appended to a Parquet folder keyed by a hash of
each configuration, so an interrupted sweep resumes where it stopped.

The pieces, in the order a sweep uses them:

* :func:`load_plan` / :func:`plan_from_dict` read and validate a grid file (TOML) in full
  before any work starts, and expand it into a :class:`SweepPlan`: a list of
  configurations, each a flat dict of plain values whose :func:`config_hash` keys its row.
* :func:`run_config` is the task: one configuration in, one row (a flat dict) out. It never
  raises; a failure becomes an error row carrying the exception's message.
* :class:`ResultsStore` is the results folder: one Parquet part file per flushed batch of
  rows, each written to a hidden temporary file and renamed into place, so an interrupted
  or killed process leaves whole part files only.
* :func:`run_sweep` submits the configurations that have no row yet, one task each, to a
  Dask cluster (a LocalCluster of its own, or an existing scheduler), records rows as they
  finish, and turns a task that raised or a worker that died into an error row.
* :func:`summarize` gives pass rates per factor and the worst cases first.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError
from datetime import UTC

#: bump when the meaning of a configuration's fields changes (old rows then stop matching)
HASH_VERSION = 1

#: the checks a sweep can run, in the order a task runs them
CHECKS: tuple[str, ...] = ("equivalence", "gradcheck", "training")
_CHECK_MODULES = {"equivalence": "harness.compare", "gradcheck": "harness.gradcheck",
                  "training": "harness.training"}

#: scheduler settings a sweep's own LocalCluster is created with (set them on a cluster of
#: your own as well): a task whose worker dies is failed at once instead of being retried
#: on up to three more workers, and a worker holds one task per thread, so a dying worker
#: takes only the task it was running with it
SCHEDULER_CONFIG: dict[str, Any] = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.scheduler.worker-saturation": 1.0,
}

#: the most configurations one grid file may expand to
MAX_CONFIGS = 1_000_000

#: row columns that differ between two runs of the same configuration
VOLATILE_COLUMNS: tuple[str, ...] = (
    "t_equivalence_s", "t_gradcheck_s", "t_training_s", "t_total_s",
    "worker", "task_id", "run_id", "finished_at",
)

_GRID_DEFAULTS: dict[str, list] = {
    "dataset": ["digits"],
    "hidden": [[32]],
    "activation": ["relu"],
    "dtype": ["float64"],
    "optimizer": ["adam"],
    "lr": [1e-3],
    "weight_decay": [1e-4],
    "momentum": [0.0],
    "nesterov": [False],
    "betas": [[0.9, 0.999]],
    "eps": [1e-8],
    "batch_size": [32],
    "seed": [0],
}
GRID_KEYS: tuple[str, ...] = ("dataset", "hidden", "dims", "activation", "dtype", "optimizer",
                              "lr", "weight_decay", "momentum", "nesterov", "betas", "eps",
                              "batch_size", "seed")
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


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"`{where}` {message}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


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

    from harness.registry import validate_backend_name

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


def _values(grid: dict, key: str) -> list:
    """The list of values of a grid factor (a bare scalar is a list of one)."""
    value = grid.get(key, _GRID_DEFAULTS.get(key))
    if key in ("hidden", "dims", "betas"):  # values that are lists themselves
        if not isinstance(value, list) or not value or not all(isinstance(v, list) for v in value):
            example = {"hidden": "[[32], [16, 16]]", "dims": "[[64, 32, 10]]",
                       "betas": "[[0.9, 0.999]]"}[key]
            raise _fail(f"grid.{key}", f"must be a non-empty list of lists, e.g. {example}; "
                                       f"got {value!r}")
        return value
    if not isinstance(value, list):
        value = [value]
    if not value:
        raise _fail(f"grid.{key}", "must list at least one value")
    return value


def _checked(key: str, values: list, check: Callable[[Any], Any]) -> list:
    """Each value through ``check`` (which normalises it or raises ConfigError); no repeats."""
    out = []
    for i, v in enumerate(values):
        where = f"grid.{key}" if len(values) == 1 else f"grid.{key}[{i}]"
        try:
            norm = check(v)
        except ConfigError as exc:
            raise _fail(where, str(exc).replace(f"`{key}` ", "")) from None
        if norm in out:
            raise _fail(f"grid.{key}", f"lists {v!r} twice")
        out.append(norm)
    return out


def _one_of(names) -> Callable:
    def check(v):
        if not isinstance(v, str) or v not in names:
            raise ConfigError(f"must be one of {', '.join(names)}, got {v!r}")
        return v
    return check


def _number(*, minimum: float, strict: bool, below: float | None = None) -> Callable:
    def check(v):
        bad = not _is_number(v) or not math.isfinite(v) or v < minimum or (strict and v == minimum)
        if below is not None and not bad:
            bad = v >= below
        if bad:
            rng = f"{'>' if strict else '>='} {minimum:g}"
            if below is not None:
                rng = f"in [{minimum:g}, {below:g})"
            raise ConfigError(f"must be a finite number {rng}, got {v!r}")
        return float(v)
    return check


def _integer(minimum: int) -> Callable:
    def check(v):
        if not _is_int(v) or v < minimum:
            raise ConfigError(f"must be an integer >= {minimum}, got {v!r}")
        return int(v)
    return check


def _bool(v):
    if not isinstance(v, bool):
        raise ConfigError(f"must be true or false, got {v!r}")
    return v


def _widths(allow_empty: bool) -> Callable:
    def check(v):
        if not all(_is_int(d) and d >= 1 for d in v) or (not v and not allow_empty):
            raise ConfigError(f"must hold positive integer widths, got {v!r}")
        return tuple(v)
    return check


def _betas(v):
    if len(v) != 2 or not all(_is_number(b) and 0 <= b < 1 for b in v):
        raise ConfigError(f"must be pairs of numbers in [0, 1), got {v!r}")
    return (float(v[0]), float(v[1]))


@cache
def _data_shape(name: str) -> tuple[int, int, int]:
    """(samples, features, classes) of a built-in data set."""
    from harness.data import load_dataset

    data = load_dataset(name)
    return len(data), data.n_features, data.n_classes


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
    from harness.data import BUILTIN_DATASETS
    from harness.specs import ACTIVATION_NAMES, DTYPE_NAMES, OPTIMIZER_NAMES

    if not isinstance(grid, dict):
        raise _fail("grid", f"must be a table, got {type(grid).__name__}")
    unknown = [k for k in grid if k not in GRID_KEYS]
    if unknown:
        raise _fail(f"grid.{unknown[0]}", f"is not a known key; known keys of [grid]: "
                                          f"{', '.join(GRID_KEYS)}")
    if "hidden" in grid and "dims" in grid:
        raise _fail("grid.dims", "and `grid.hidden` both given; give one: `hidden` (widths "
                                 "between the data's features and classes) or `dims`")
    datasets = _checked("dataset", _values(grid, "dataset"), _one_of(BUILTIN_DATASETS))
    if "dims" in grid:
        dims = _checked("dims", _values(grid, "dims"), _widths(False))
        for i, d in enumerate(dims):
            if len(d) < 2:
                raise _fail(f"grid.dims[{i}]", f"needs at least two widths (features, "
                                               f"classes), got {list(d)}")
            for name in datasets:
                _, n_feat, n_cls = _data_shape(name)
                if d[0] != n_feat or d[-1] != n_cls:
                    raise _fail(f"grid.dims[{i}]", f"{list(d)} does not fit dataset {name!r} "
                                                   f"({n_feat} features, {n_cls} classes); give "
                                                   f"`hidden` widths instead so that the ends "
                                                   f"come from each data set")
        net = ("dims", dims)
    else:
        net = ("hidden", _checked("hidden", _values(grid, "hidden"), _widths(True)))

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

    # hyper-parameters multiply only the optimizers they apply to
    sgd_pairs = [(m, n) for m in momenta for n in nesterovs if not (n and m == 0.0)]
    if "sgd" in optimizers and not sgd_pairs:
        raise _fail("grid.nesterov", "= true needs a `grid.momentum` value > 0")
    for key, applies in (("momentum", "sgd"), ("nesterov", "sgd"), ("betas", "adam or adamw"),
                         ("eps", "adam or adamw")):
        if key in grid and not any(o in applies.split(" or ") for o in optimizers):
            raise _fail(f"grid.{key}", f"applies to {applies} only, and `grid.optimizer` "
                                       f"lists neither")
    opt_blocks = []
    for name in optimizers:
        factors = [("lr", lrs), ("weight_decay", decays)]
        factors += ([("sgd_momentum", sgd_pairs)] if name == "sgd" else
                    [("betas", betas), ("eps", epss)])
        opt_blocks.append((name, factors))
    factors = _Factors(
        before=[("dataset", datasets), net, ("activation", activations), ("dtype", dtypes)],
        optimizers=opt_blocks,
        after=[("batch_size", batch_sizes), ("seed", seeds)])
    if factors.total > MAX_CONFIGS:
        raise _fail("grid", f"expands to {factors.total} configurations, more than "
                            f"{MAX_CONFIGS}; use mode = \"random\" with `sweep.samples`")
    return factors


def _make_config(choice: dict[str, Any], settings: SweepSettings) -> dict[str, Any]:
    dataset = choice["dataset"]
    if "dims" in choice:
        dims = list(choice["dims"])
    else:
        _, n_feat, n_cls = _data_shape(dataset)
        dims = [n_feat, *choice["hidden"], n_cls]
    sgd = choice["optimizer"] == "sgd"
    momentum, nesterov = choice["sgd_momentum"] if sgd else (None, None)
    beta1, beta2 = (None, None) if sgd else choice["betas"]
    config = {
        "dataset": dataset,
        "dims": "-".join(map(str, dims)),
        "hidden": "-".join(map(str, dims[1:-1])) or "none",
        "n_params": _n_params(dims),
        "activation": choice["activation"],
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
    the key depends only on what the task computes with.
    """
    fields = {k: v for k, v in config.items() if k not in ("config_hash", "hidden", "n_params")}
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


# ============================================================================= task
@lru_cache(maxsize=8)
def _standardized(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A built-in data set, standardised, rows in a fixed seeded order (per process)."""
    from harness.data import load_dataset, standardize

    data = load_dataset(name)
    (X,) = standardize(data.X)
    order = np.random.default_rng(0).permutation(len(data))
    return X[order], data.y[order]


def _specs(config: dict[str, Any]):
    from harness.specs import ModelSpec, OptimizerSpec

    dims = tuple(int(d) for d in config["dims"].split("-"))
    spec = ModelSpec(dims, activation=config["activation"], dtype=config["dtype"],
                     seed=config["seed"])
    opt = {"name": config["optimizer"], "lr": config["lr"],
           "weight_decay": config["weight_decay"]}
    if config["optimizer"] == "sgd":
        opt.update(momentum=config["momentum"], nesterov=config["nesterov"])
    else:
        opt.update(betas=(config["beta1"], config["beta2"]), eps=config["eps"])
    return spec, OptimizerSpec(**opt)


def _worker_name() -> str:
    import socket

    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _error_text(exc: BaseException) -> str:
    """``Type: message (at file:line in function)``, on one line."""
    import traceback

    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        f = frames[-1]
        text += f" (at {Path(f.filename).name}:{f.lineno} in {f.name})"
    return text[:2000]


def _empty_result() -> dict[str, Any]:
    return {
        "status": None, "passed": None,
        "equivalence_passed": None, "equivalence_first_failure": None,
        "equivalence_max_abs_err": None, "equivalence_max_rel_err": None,
        "grad_max_abs_err": None, "grad_max_rel_err": None,
        "gradcheck_passed": None, "gradcheck_first_failure": None,
        "gradcheck_max_abs_err": None, "gradcheck_max_rel_err": None,
        "training_passed": None, "training_steps": None, "first_divergence_step": None,
        "training_divergence": None, "training_max_loss_diff": None,
        "training_max_param_diff": None,
        "error_type": None, "error": None,
        "t_equivalence_s": None, "t_gradcheck_s": None, "t_training_s": None,
        "t_total_s": None,
        "worker": None, "task_id": uuid.uuid4().hex, "run_id": None, "finished_at": None,
    }


def _max_of(values) -> float | None:
    """The largest value, NaN and None left out (inf kept: it marks a mismatch); None if none."""
    values = [float(v) for v in values if v is not None and not (isinstance(v, float)
                                                                  and math.isnan(v))]
    return max(values) if values else None


def _equivalence(config, spec, opt, x, y, row) -> bool:
    from harness.compare import check_equivalence
    from harness.registry import make_backend

    reference = make_backend(config["reference"], spec, opt)
    candidate = make_backend(config["candidate"], spec, opt)
    report = check_equivalence(reference, candidate, x, y, rtol=config["rtol"],
                               atol=config["atol"], reference_name=config["reference"],
                               candidate_name=config["candidate"])
    grads = [r for r in report.rows if r.quantity.startswith("grads[")]
    first = report.first_failure
    row.update(
        equivalence_passed=bool(report.passed),
        equivalence_first_failure=None if first is None else first.quantity,
        equivalence_max_abs_err=_max_of(r.max_abs_err for r in report.rows),
        equivalence_max_rel_err=_max_of(r.max_rel_err for r in report.rows),
        grad_max_abs_err=_max_of(r.max_abs_err for r in grads),
        grad_max_rel_err=_max_of(r.max_rel_err for r in grads),
    )
    return bool(report.passed)


def _gradcheck(config, spec, opt, x, y, row) -> bool:
    """Finite differences against the analytic gradients of both backends."""
    from harness.gradcheck import gradcheck
    from harness.registry import make_backend

    reports = []
    for side in ("reference", "candidate"):
        model = make_backend(config[side], spec, opt)
        reports.append((config[side], gradcheck(
            model, x, y, eps=config["gradcheck_eps"], max_entries=config["gradcheck_entries"],
            seed=config["seed"], name=config[side])))
    failed = [(name, r.first_failure) for name, r in reports if not r.passed]
    params = [p for _, r in reports for p in r.params]
    row.update(
        gradcheck_passed=not failed,
        gradcheck_first_failure=None if not failed else f"{failed[0][0]} {failed[0][1].name}",
        gradcheck_max_abs_err=_max_of(p.max_abs_err for p in params),
        gradcheck_max_rel_err=_max_of(p.max_rel_err for p in params),
    )
    return not failed


def _training(config, spec, opt, X, y, row) -> bool:
    """Train both backends side by side from the same parameters; compare trajectories."""
    import warnings

    from harness.registry import make_backend
    from harness.training import compare_training

    reference = make_backend(config["reference"], spec, opt)
    candidate = make_backend(config["candidate"], spec, opt)
    names = (config["reference"], config["candidate"])
    if names[0] == names[1]:
        names = (f"{names[0]} (reference)", f"{names[1]} (candidate)")
    with warnings.catch_warnings():  # a batch larger than the data is clamped: steps say so
        warnings.simplefilter("ignore", UserWarning)
        report = compare_training(reference, candidate, X, y, epochs=config["epochs"],
                                  batch_size=config["batch_size"], seed=config["seed"],
                                  rtol=config["rtol"], atol=config["atol"],
                                  reference_name=names[0], candidate_name=names[1])
    div = report.first_divergence
    step = div.step if div is not None else (
        report.error.step if report.error is not None else None)
    message = str(div) if div is not None else (
        str(report.error) if report.error is not None else None)
    row.update(
        training_passed=bool(report.passed), training_steps=int(report.steps),
        first_divergence_step=step, training_divergence=message,
        training_max_loss_diff=_nan_to_none(report.max_loss_diff),
        training_max_param_diff=_nan_to_none(report.max_param_diff),
    )
    return bool(report.passed)


def _nan_to_none(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


_RUNNERS = {"equivalence": _equivalence, "gradcheck": _gradcheck, "training": _training}


def run_config(config: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration's checks; return its row (configuration + verdicts + timings).

    This is the task a sweep sends to the workers: it must stay importable at module
    level. It never raises: an exception becomes an error row (``status`` "error",
    ``error_type``, ``error`` with the message and where it was raised).
    """
    t_start = time.perf_counter()
    row = {**config, **_empty_result()}
    row["worker"] = _worker_name()
    try:
        X, y = _standardized(config["dataset"])
        spec, opt = _specs(config)
        # copies: the cached arrays must survive whatever a backend does to its input
        x_check, y_check = X[:config["check_samples"]].copy(), y[:config["check_samples"]].copy()
        X_train, y_train = X[:config["train_samples"]].copy(), y[:config["train_samples"]].copy()
        verdicts = []
        for check in config["checks"].split(","):
            t0 = time.perf_counter()
            if check == "training":
                verdicts.append(_RUNNERS[check](config, spec, opt, X_train, y_train, row))
            else:
                verdicts.append(_RUNNERS[check](config, spec, opt, x_check, y_check, row))
            row[f"t_{check}_s"] = time.perf_counter() - t0
        row.update(status="ok", passed=all(verdicts))
    except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
        row.update(status="error", passed=None, error_type=type(exc).__name__,
                   error=_error_text(exc))
    row["t_total_s"] = time.perf_counter() - t_start
    row["finished_at"] = _now()
    return row


def _now() -> str:
    from datetime import datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds")


def error_row(config: dict[str, Any], error_type: str, message: str, *,
              worker: str | None = None) -> dict[str, Any]:
    """The row of a configuration whose task did not return one (raised, or its worker died)."""
    row = {**config, **_empty_result()}
    row.update(status="error", error_type=error_type, error=" ".join(message.split())[:2000],
               worker=worker, finished_at=_now())
    return row


# ========================================================================== storage
def _schema():
    import pyarrow as pa

    s, i, f, b = pa.string(), pa.int64(), pa.float64(), pa.bool_()
    return pa.schema([
        ("config_hash", s), ("dataset", s), ("dims", s), ("hidden", s), ("n_params", i),
        ("activation", s), ("dtype", s), ("optimizer", s), ("lr", f), ("weight_decay", f),
        ("momentum", f), ("nesterov", b), ("beta1", f), ("beta2", f), ("eps", f),
        ("batch_size", i), ("seed", i), ("reference", s), ("candidate", s), ("checks", s),
        ("epochs", i), ("train_samples", i), ("check_samples", i), ("gradcheck_eps", f),
        ("gradcheck_entries", i), ("rtol", f), ("atol", f),
        ("status", s), ("passed", b),
        ("equivalence_passed", b), ("equivalence_first_failure", s),
        ("equivalence_max_abs_err", f), ("equivalence_max_rel_err", f),
        ("grad_max_abs_err", f), ("grad_max_rel_err", f),
        ("gradcheck_passed", b), ("gradcheck_first_failure", s),
        ("gradcheck_max_abs_err", f), ("gradcheck_max_rel_err", f),
        ("training_passed", b), ("training_steps", i), ("first_divergence_step", i),
        ("training_divergence", s), ("training_max_loss_diff", f),
        ("training_max_param_diff", f),
        ("error_type", s), ("error", s),
        ("t_equivalence_s", f), ("t_gradcheck_s", f), ("t_training_s", f), ("t_total_s", f),
        ("worker", s), ("task_id", s), ("run_id", s), ("finished_at", s),
    ])


def columns() -> list[str]:
    """The columns of a results table, in order."""
    return list(_schema().names)


class ResultsStore:
    """A results folder: Parquet part files of rows, appended atomically.

    The rows live in ``rows/``: every :meth:`append` writes one new ``part-*.parquet``
    file there through a hidden temporary file and a rename, so a reader (or a resumed
    sweep) sees whole part files or none; temporary files left by a killed writer are
    ignored (by ``pandas.read_parquet(".../rows")`` too, as their names start with a
    dot). A configuration may have more than one row (``--retry-errors`` writes a new
    one); :meth:`read` keeps the last written. Beside ``rows/`` are ``plan.json`` (the
    latest sweep's configurations, in order) and the summary plot.
    """

    PART_GLOB = "part-*.parquet"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows_dir = self.path / "rows"
        self._seq = 0
        self._tag = uuid.uuid4().hex[:8]

    # ---------------------------------------------------------------- checks
    def check(self) -> None:
        """Refuse (ConfigError) a path that is a file or a non-empty folder of other things."""
        p = self.path
        if p.exists() and not p.is_dir():
            raise ConfigError(f"results folder {str(p)!r} exists and is not a folder")
        if p.is_dir() and any(p.iterdir()) and not self.is_results_dir():
            raise ConfigError(f"{str(p)!r} is not empty and holds no sweep results; choose "
                              f"another folder with --out")

    def ensure(self) -> None:
        """:meth:`check`, then create the folder if it is missing."""
        self.check()
        self.path.mkdir(parents=True, exist_ok=True)

    def is_results_dir(self) -> bool:
        return self.path.is_dir() and (any(self.rows_dir.glob(self.PART_GLOB))
                                       or (self.path / "plan.json").exists())

    def parts(self) -> list[Path]:
        """The part files, oldest first (names start with the write time)."""
        return sorted(self.rows_dir.glob(self.PART_GLOB))

    # ---------------------------------------------------------------- writing
    def append(self, rows: list[dict[str, Any]]) -> Path | None:
        """Write ``rows`` as one new part file (atomically); return its path."""
        if not rows:
            return None
        import pyarrow as pa

        schema = _schema()
        table = pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows],
                                     schema=schema)
        self._seq += 1
        name = f"part-{time.time_ns():020d}-{self._tag}-{self._seq:06d}.parquet"
        return self._write(table, name)

    def _write(self, table, name: str) -> Path:
        import pyarrow.parquet as pq

        self.rows_dir.mkdir(parents=True, exist_ok=True)
        final = self.rows_dir / name
        tmp = self.rows_dir / f".{name}.{os.getpid()}.tmp"
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return final

    def compact(self) -> Path | None:
        """Merge the part files into one (rows deduplicated); None when there is at most one.

        The merged file is in place before the parts it replaces are removed, so a crash
        in between leaves duplicate rows, which :meth:`read` ignores, and loses none.
        """
        parts = self.parts()
        if len(parts) < 2:
            return None
        import pyarrow as pa

        df = _dedupe(self._read_parts(parts))
        table = pa.Table.from_pandas(df[[c for c in columns() if c in df.columns]],
                                     schema=_schema(), preserve_index=False)
        stamp = parts[-1].name.split("-")[1]
        merged = self._write(table, f"part-{stamp}-merged-{uuid.uuid4().hex[:8]}.parquet")
        for p in parts:
            p.unlink(missing_ok=True)
        return merged

    # ---------------------------------------------------------------- reading
    def _read_parts(self, parts: list[Path]):
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        mapper = {pa.bool_(): pd.BooleanDtype(), pa.int64(): pd.Int64Dtype()}.get
        frames = []
        for p in parts:
            try:
                frames.append(pq.read_table(p).to_pandas(types_mapper=mapper))
            except FileNotFoundError:
                continue  # merged away by a concurrent compaction; its rows are elsewhere
            except Exception as exc:  # noqa: BLE001 - any unreadable file
                raise ConfigError(f"results file {str(p)!r} is not readable Parquet ({exc}); "
                                  f"move it out of the folder to go on") from None
        if not frames:
            return _empty_frame()
        frames = [f for f in frames if len(f)] or frames[:1]
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        for col in columns():
            if col not in df.columns:
                df[col] = None
        return df[columns() + [c for c in df.columns if c not in columns()]]

    def read_raw(self):
        """Every row of every part file, in write order (duplicates kept)."""
        return self._read_parts(self.parts()) if self.rows_dir.is_dir() else _empty_frame()

    def read(self):
        """The results table: one row per configuration, the last written."""
        return _dedupe(self.read_raw())

    def write_plan(self, plan: SweepPlan) -> None:
        from harness.io import atomic_write_json

        atomic_write_json(self.path / "plan.json", {
            "source": plan.source, "mode": plan.mode, "grid_size": plan.grid_size,
            "samples": plan.samples, "draw_seed": plan.draw_seed,
            "settings": plan.settings.to_dict(), "hashes": plan.hashes})

    def read_plan(self) -> dict | None:
        p = self.path / "plan.json"
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


def _empty_frame():
    import pandas as pd
    import pyarrow as pa

    mapper = {pa.bool_(): pd.BooleanDtype(), pa.int64(): pd.Int64Dtype()}.get
    return _schema().empty_table().to_pandas(types_mapper=mapper)


def _dedupe(df):
    if not len(df):
        return df
    return df.drop_duplicates("config_hash", keep="last").reset_index(drop=True)


def _ordered(df, hashes: list[str]):
    """Rows of ``df`` whose hash is in ``hashes``, in that order."""
    pos = {h: i for i, h in enumerate(hashes)}
    df = df[df["config_hash"].isin(pos)].copy()
    df["_pos"] = df["config_hash"].map(pos)
    return df.sort_values("_pos").drop(columns="_pos").reset_index(drop=True)


# ======================================================================== execution
@dataclass
class SweepOutcome:
    """What :func:`run_sweep` did.

    Attributes
    ----------
    table : DataFrame
        One row per configuration of the plan that has a row, in plan order.
    results : Path
        The results folder.
    skipped : int
        Configurations that already had a row and were not recomputed.
    submitted : list of str
        Hashes of the configurations sent to the cluster by this run.
    recorded : list of str
        Hashes of the rows this run wrote, in the order they finished.
    lost : list of str
        Submitted but without a row (cancelled by the cluster); a rerun computes them.
    elapsed_s : float
    """

    table: Any
    results: Path
    skipped: int = 0
    submitted: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    workers: int = 0

    @property
    def complete(self) -> bool:
        return not self.lost


def validate_executor(executor: str) -> str:
    """``local`` or a scheduler address such as ``tcp://HOST:8786``."""
    if executor == "local":
        return executor
    scheme, sep, rest = executor.partition("://")
    host, colon, port = rest.rpartition(":")
    if (not sep or scheme not in ("tcp", "tls") or not colon or not host
            or not port.isdigit()):
        raise ConfigError(f"`--executor` must be local or a scheduler address like "
                          f"tcp://HOST:8786, got {executor!r}")
    return executor


def start_local_cluster(n_workers: int | None = None, *, quiet: bool = True):
    """A LocalCluster of one single-threaded worker process per core (or ``n_workers``),
    on loopback, with :data:`SCHEDULER_CONFIG`."""
    import logging

    import dask
    from distributed import LocalCluster

    n = n_workers or os.cpu_count() or 1
    with dask.config.set(SCHEDULER_CONFIG):
        return LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                            host="127.0.0.1", dashboard_address=None,
                            silence_logs=logging.CRITICAL if quiet else logging.WARNING)


def _ignore_interrupts() -> None:
    """Run on each worker of a sweep's own local cluster: ignore SIGINT.

    Ctrl-C in a terminal reaches every process of its process group, the local
    workers included; the client stops the sweep and closes them, so they need not
    print tracebacks of their own. (It runs in the worker's main thread.)
    """
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _warm_config(checks: tuple[str, ...]) -> dict[str, Any]:
    """A tiny configuration with the built-in backends, to warm a worker up."""
    settings = SweepSettings(checks=checks, epochs=1, train_samples=8, check_samples=8,
                             gradcheck_entries=2)
    choice = {"dataset": "iris", "hidden": (2,), "activation": "tanh", "dtype": "float64",
              "optimizer": "sgd", "lr": 0.01, "weight_decay": 0.0,
              "sgd_momentum": (0.0, False), "batch_size": 4, "seed": 0}
    return _make_config(choice, settings)


def _prepare_workers(client, checks: tuple[str, ...], timeout: float) -> int:
    """Wait for a worker and warm every worker up with a tiny configuration.

    The warm-up imports torch and runs each check once, so that the timings of the
    sweep's first tasks are not inflated and a worker that cannot run the checks (the
    package missing or a different version there) stops the sweep before it starts.
    Returns the number of worker threads.
    """
    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception:  # noqa: BLE001 - TimeoutError flavours differ between versions
        raise ConfigError(f"the Dask cluster at {client.scheduler.address} has no workers "
                          f"(waited {timeout:g} s)") from None
    config = _warm_config(checks)
    futures = {w: client.submit(run_config, config, workers=[w], allow_other_workers=True,
                                pure=False, key=f"nn-sweep-warm-up-{uuid.uuid4().hex[:8]}")
               for w in client.nthreads()}
    for worker, future in futures.items():
        try:
            row = future.result()
        except Exception as exc:  # noqa: BLE001 - most often harness is not installed there
            raise ConfigError(f"worker {worker} cannot run sweep tasks ({type(exc).__name__}: "
                              f"{exc}); install this package on every worker") from None
        if row.get("status") != "ok":
            raise ConfigError(f"worker {worker} failed a warm-up configuration: {row['error']}; "
                              f"install the same version of this package on every worker")
    return sum(client.nthreads().values())


class _Writer:
    """Buffers rows; flushes a part file every ``flush_rows`` rows or ``flush_seconds``."""

    def __init__(self, store: ResultsStore, flush_rows: int, flush_seconds: float):
        self.store, self.flush_rows, self.flush_seconds = store, flush_rows, flush_seconds
        self.buffer: list[dict] = []
        self.last = time.monotonic()

    def add(self, row: dict) -> None:
        self.buffer.append(row)
        if (len(self.buffer) >= self.flush_rows
                or time.monotonic() - self.last >= self.flush_seconds):
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.store.append(self.buffer)
            self.buffer = []
        self.last = time.monotonic()


def _row_of(future, config: dict[str, Any]) -> dict[str, Any] | None:
    """The row of a finished future; an error row when it raised or its worker died."""
    from distributed import KilledWorker

    if future.status == "finished":
        try:
            row = future.result()
        except Exception as exc:  # noqa: BLE001 - the result could not be fetched
            return error_row(config, type(exc).__name__, _error_text(exc))
        if not isinstance(row, dict) or row.get("config_hash") != config["config_hash"]:
            return error_row(config, "BadResult", f"the task returned {type(row).__name__}, "
                                                  f"not this configuration's row")
        return row
    if future.status == "error":
        exc = future.exception()
        if isinstance(exc, KilledWorker):
            last = getattr(exc, "last_worker", None)
            where = getattr(last, "address", None) or "a worker"
            return error_row(config, "KilledWorker",
                             f"the worker process ({where}) died while running this "
                             f"configuration", worker=getattr(last, "address", None))
        return error_row(config, type(exc).__name__, _error_text(exc))
    return None  # cancelled: no row; a rerun computes it


def run_sweep(plan: SweepPlan, results: str | os.PathLike, *, client=None,
              executor: str = "local", n_workers: int | None = None,
              retry_errors: bool = False, progress: bool = True,
              on_row: Callable[[dict, int], None] | None = None,
              flush_rows: int = 50, flush_seconds: float = 1.0,
              max_in_flight: int | None = None, connect_timeout: float = 10.0) -> SweepOutcome:
    """Run every configuration of ``plan`` that has no row in ``results`` yet.

    Parameters
    ----------
    plan : SweepPlan
    results : path
        The results folder (created if missing). Rows already there (matched by
        configuration hash) are not recomputed; error rows neither, unless
        ``retry_errors``.
    client : distributed.Client, optional
        Use this client's cluster; otherwise ``executor`` says which.
    executor : str
        ``local`` (a LocalCluster of ``n_workers`` single-threaded processes, default one
        per core, closed at the end) or a scheduler address ``tcp://HOST:PORT``.
    on_row : callable, optional
        Called as ``on_row(row, n_recorded)`` after each row is buffered; an exception
        it raises stops the sweep like Ctrl-C does (buffered rows are written first).
    flush_rows, flush_seconds : int, float
        A part file is written when this many rows are buffered or this much time has
        passed since the last, and always at the end or on an interruption.
    max_in_flight : int, optional
        Tasks submitted at once (default one per worker thread); more are submitted as
        these finish. Each submission is its own task group, so the scheduler sends
        every submitted task to a worker at once: with more tasks in flight than
        threads, a worker that dies takes the tasks waiting on it down too (each would
        become a KilledWorker row).
    connect_timeout : float
        Seconds to wait for the scheduler, and for a first worker.

    Nothing is written to ``results`` before the cluster is up and its workers have
    run a warm-up configuration, so a sweep that cannot start leaves no trace.
    """
    import contextlib

    t_start = time.perf_counter()
    store = ResultsStore(results)
    store.check()
    if store.path.is_dir():
        store.compact()
    existing = store.read()
    done = existing
    if retry_errors and len(existing):
        done = existing[existing["status"] != "error"]
    done_hashes = set(done["config_hash"])
    todo = [c for c in plan.configs if c["config_hash"] not in done_hashes]
    outcome = SweepOutcome(table=None, results=store.path, skipped=len(plan) - len(todo))
    if not todo:
        store.ensure()
        store.write_plan(plan)
    else:
        with contextlib.ExitStack() as stack:
            if client is None:
                from distributed import Client

                if validate_executor(executor) == "local":
                    cluster = stack.enter_context(start_local_cluster(n_workers))
                    client = stack.enter_context(Client(cluster))
                    client.run(_ignore_interrupts)
                else:
                    try:
                        client = stack.enter_context(
                            Client(executor, timeout=f"{connect_timeout:g}s"))
                    except (OSError, TimeoutError) as exc:
                        raise ConfigError(f"cannot reach the Dask scheduler at {executor}: "
                                          f"{exc}") from None
            threads = _prepare_workers(client, plan.settings.checks, connect_timeout)
            outcome.workers = len(client.nthreads())
            store.ensure()  # nothing is written until the cluster is ready
            store.write_plan(plan)
            _execute(client, todo, store, outcome, progress=progress, on_row=on_row,
                     writer=_Writer(store, flush_rows, flush_seconds),
                     window=max_in_flight or threads)
        store.compact()
    outcome.table = _ordered(store.read(), plan.hashes)
    outcome.elapsed_s = time.perf_counter() - t_start
    return outcome


def _execute(client, todo, store, outcome, *, progress, on_row, writer, window) -> None:
    import contextlib

    from distributed import as_completed

    from harness.progress import progress as bar

    run_id = uuid.uuid4().hex[:12]
    queue = iter(todo)
    pending: dict[str, tuple[Any, dict]] = {}
    ac = as_completed()

    def submit_next() -> None:
        config = next(queue, None)
        if config is None:
            return
        future = client.submit(run_config, config, pure=False, retries=0,
                               key=f"nn-sweep-{config['config_hash']}-{uuid.uuid4().hex[:8]}")
        pending[future.key] = (future, config)
        outcome.submitted.append(config["config_hash"])
        ac.add(future)

    pbar = bar(total=len(todo), desc="sweep", quiet=not progress)
    failed = 0
    try:
        for _ in range(min(window, len(todo))):
            submit_next()
        for future in ac:
            _, config = pending.pop(future.key)
            row = _row_of(future, config)
            future.release()
            submit_next()
            if row is None:
                outcome.lost.append(config["config_hash"])
                continue
            row["run_id"] = run_id
            writer.add(row)
            outcome.recorded.append(config["config_hash"])
            failed += row["status"] == "error" or not row["passed"]
            pbar.update(1)
            pbar.set_postfix(failed=failed, refresh=False)
            if on_row is not None:
                on_row(row, len(outcome.recorded))
    finally:
        writer.flush()
        pbar.close()
        if pending:
            with contextlib.suppress(Exception):
                client.cancel([f for f, _ in pending.values()])


# ========================================================================== summary
#: factors a summary can group by
FACTORS: tuple[str, ...] = ("dataset", "hidden", "dims", "activation", "dtype", "optimizer",
                            "lr", "weight_decay", "momentum", "nesterov", "beta1", "beta2",
                            "eps", "batch_size", "seed")


@dataclass
class SweepSummary:
    """Pass rates of a results table.

    Attributes
    ----------
    counts : dict  configurations, passed, failed, errors
    checks : DataFrame  per check: configurations run, passed, pass rate
    by : tuple of str  the factors of ``cross``
    cross : DataFrame  pass rate per combination of ``by`` (one row each)
    factors : dict of DataFrame  pass rate per value of every factor that varies
    worst : DataFrame  errors first, then failures, then by largest gradient error
    pending : int or None  configurations of the latest plan without a row
    """

    counts: dict[str, int]
    checks: Any
    by: tuple[str, ...]
    cross: Any
    factors: dict[str, Any]
    worst: Any
    pending: int | None = None

    @property
    def passed(self) -> bool:
        return self.counts["failed"] == 0 and self.counts["errors"] == 0

    def text(self, *, worst: int = 10) -> str:
        c = self.counts
        n = c["configurations"]
        lines = [f"{n} configurations: {c['passed']} passed, {c['failed']} failed, "
                 f"{c['errors']} errors" + (f"; {self.pending} pending" if self.pending else "")]
        if n == 0:
            return lines[0]
        lines.append("")
        lines.append("per check:")
        for _, r in self.checks.iterrows():
            lines.append(f"  {r['check']:<12} {r['passed']:>5}/{r['run']:<5} passed "
                         f"({_pct(r['passed'], r['run'])})")
        lines.append("")
        lines.append(f"pass rate by {' x '.join(self.by)}:")
        lines.extend("  " + ln for ln in _cross_text(self.cross, self.by).splitlines())
        # factors with two or more values (not counting "n/a": the hyper-parameters of
        # the other optimizers); dims only adds the data's ends to hidden
        varying = {k: v for k, v in self.factors.items()
                   if v[k].map(lambda x: not _isna(x)).sum() > 1 and k not in self.by
                   and not (k == "dims" and "hidden" in self.factors)}
        if varying:
            lines.append("")
            lines.append("pass rate by factor:")
            for name, t in varying.items():
                cells = ", ".join(f"{_fmt(v)} {p}/{n_} ({_pct(p, n_)})" for v, p, n_ in
                                  zip(t[name], t["passed"], t["configurations"]))
                lines.append(f"  {name}: {cells}")
        bad = self.worst[self.worst["verdict"] != "pass"]
        if len(bad):
            lines.append("")
            lines.append(f"worst cases ({min(worst, len(bad))} of {len(bad)} not passing):")
            lines.extend("  " + ln for ln in _worst_text(bad.head(worst)).splitlines())
        return "\n".join(lines)


def _pct(p, n) -> str:
    return f"{100.0 * p / n:.0f}%" if n else "-"


def _fmt(v) -> str:
    if _isna(v):
        return "n/a"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _verdicts(table):
    import pandas as pd

    status = table["status"].astype(object)
    passed = table["passed"].astype("boolean")
    return pd.Series(np.where(status == "error", "error",
                              np.where(passed.fillna(False).to_numpy(bool), "pass", "FAIL")),
                     index=table.index)


def summarize(table, *, by: tuple[str, ...] = ("activation", "dtype"),
              pending: int | None = None) -> SweepSummary:
    """Pass rates per check, per ``by`` combination and per factor; the worst cases first."""
    import pandas as pd

    for name in by:
        if name not in FACTORS:
            raise ConfigError(f"`--by` names an unknown factor {name!r}; choose from "
                              f"{', '.join(FACTORS)}")
    t = table.copy()
    t["verdict"] = _verdicts(t)
    t["_pass"] = t["verdict"] == "pass"
    counts = {"configurations": len(t), "passed": int(t["_pass"].sum()),
              "failed": int((t["verdict"] == "FAIL").sum()),
              "errors": int((t["verdict"] == "error").sum())}
    check_rows = []
    for check in CHECKS:
        col = t[f"{check}_passed"].astype("boolean")
        ran = col.notna()
        if ran.any():
            check_rows.append({"check": check, "run": int(ran.sum()),
                               "passed": int(col.fillna(False).sum())})
    checks = pd.DataFrame(check_rows, columns=["check", "run", "passed"])

    def rates(keys):
        if not len(t):
            return pd.DataFrame(columns=[*keys, "configurations", "passed", "failed", "errors",
                                         "pass_rate"])
        g = t.groupby(list(keys), dropna=False, sort=True)
        out = g.agg(configurations=("_pass", "size"), passed=("_pass", "sum"),
                    failed=("verdict", lambda v: int((v == "FAIL").sum())),
                    errors=("verdict", lambda v: int((v == "error").sum()))).reset_index()
        out["passed"] = out["passed"].astype(int)
        out["pass_rate"] = out["passed"] / out["configurations"]
        return out

    cross = rates(by)
    factors = {name: rates((name,)) for name in FACTORS if name in t.columns}
    rank = t["verdict"].map({"error": 0, "FAIL": 1, "pass": 2})
    err = pd.to_numeric(t["grad_max_abs_err"], errors="coerce").fillna(-1.0)
    worst = t.assign(_rank=rank, _err=err).sort_values(["_rank", "_err"],
                                                       ascending=[True, False], kind="stable")
    worst = worst.drop(columns=["_rank", "_err", "_pass"]).reset_index(drop=True)
    return SweepSummary(counts, checks, tuple(by), cross, factors, worst, pending)


def _cross_text(cross, by) -> str:
    if len(by) == 2 and len(cross):
        a, b = by
        cols = sorted(cross[b].unique(), key=_fmt)
        rows = sorted(cross[a].unique(), key=_fmt)
        width = max(12, *(len(_fmt(c)) + 2 for c in cols))
        head = f"{'':<14}" + "".join(f"{_fmt(c):>{width}}" for c in cols)
        lines = [head]
        for r in rows:
            cells = []
            for c in cols:
                m = cross[(cross[a].map(_fmt) == _fmt(r)) & (cross[b].map(_fmt) == _fmt(c))]
                cells.append("-" if not len(m) else
                             f"{int(m['passed'].iloc[0])}/{int(m['configurations'].iloc[0])}"
                             f" {_pct(m['passed'].iloc[0], m['configurations'].iloc[0]):>4}")
            lines.append(f"{_fmt(r):<14}" + "".join(f"{s:>{width}}" for s in cells))
        return "\n".join(lines)
    lines = []
    for _, r in cross.iterrows():
        key = ", ".join(f"{k}={_fmt(r[k])}" for k in by)
        lines.append(f"{key}: {int(r['passed'])}/{int(r['configurations'])} "
                     f"({_pct(r['passed'], r['configurations'])})")
    return "\n".join(lines)


def _worst_text(rows) -> str:
    lines = []
    for _, r in rows.iterrows():
        opt = f"{r['optimizer']} lr={_fmt(r['lr'])}"
        head = (f"{r['verdict']:<5} {r['config_hash']}  {r['dataset']} {r['dims']} "
                f"{r['activation']} {r['dtype']} {opt} bs={r['batch_size']} seed={r['seed']}")
        if r["verdict"] == "error":
            detail = f"{r['error']}"
        else:
            failing = [c for c in CHECKS
                       if not _isna(r.get(f"{c}_passed")) and not bool(r[f"{c}_passed"])]
            parts = [f"failed: {', '.join(failing)}"]
            if r["equivalence_first_failure"] is not None and not _isna(
                    r["equivalence_first_failure"]):
                parts.append(f"first: {r['equivalence_first_failure']}")
            if not _isna(r["grad_max_abs_err"]):
                parts.append(f"grad err {r['grad_max_abs_err']:.3e}")
            if not _isna(r["gradcheck_first_failure"]):
                parts.append(f"gradcheck: {r['gradcheck_first_failure']}")
            if not _isna(r["gradcheck_max_abs_err"]):
                parts.append(f"gradcheck err {r['gradcheck_max_abs_err']:.3e}")
            if not _isna(r["training_divergence"]):
                parts.append(f"training: {r['training_divergence']}")
            detail = "; ".join(parts)
        lines.append(head)
        lines.append(f"      {detail}")
    return "\n".join(lines)


def _isna(v) -> bool:
    import pandas as pd

    return v is None or bool(pd.isna(v))


#: :func:`summarize` under the name ``harness`` exports it as
summarize_sweep = summarize

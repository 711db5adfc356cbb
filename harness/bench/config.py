"""What a benchmark run measures: the grids, the operations, :class:`BenchConfig`,
and bench TOML files (:func:`load_config_file`)."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

#: ``--grid full``: up to 2048-wide layers, (dims, batch size); minutes of run time
FULL_GRID: tuple[tuple[tuple[int, ...], int], ...] = (
    ((64, 32, 10), 64),
    ((64, 32, 10), 1797),
    ((784, 256, 10), 128),
    ((784, 1024, 1024, 10), 512),
    ((2048, 2048, 2048, 10), 1024),
)
#: the default grid: the small networks of the full one (the digits and MNIST sizes)
DEFAULT_GRID: tuple[tuple[tuple[int, ...], int], ...] = FULL_GRID[:3]
#: what ``--quick`` measures: the two smallest points, briefly
QUICK_GRID: tuple[tuple[tuple[int, ...], int], ...] = FULL_GRID[:1] + FULL_GRID[2:3]
#: the named grids of ``--grid NAME``
NAMED_GRIDS = {"default": DEFAULT_GRID, "full": FULL_GRID, "quick": QUICK_GRID}
DEFAULT_DTYPES: tuple[str, ...] = ("float32", "float64")
OPS: tuple[str, ...] = ("forward", "loss_and_grads", "train_step", "epoch", "matmuls")
#: the library whose matrix products each built-in backend uses (``matmuls`` rows and
#: the own-library matmul peak)
BACKEND_LIBRARY = {("scratch", "cpu"): "numpy", ("torch", "cpu"): "torch",
                   ("torch", "cuda"): "torch-cuda"}
BACKENDS: tuple[str, ...] = ("scratch", "torch")


@dataclass(frozen=True)
class BenchConfig:
    """What to measure and how long.

    Parameters
    ----------
    grid : sequence of (dims, batch_size)
    dtypes : sequence of "float32" / "float64"
    backends : names for :func:`harness.model.registry.make_backend`; "torch" is the reference
        of the time ratios
    device : "cpu", or "cuda" to also run the torch backend on the GPU
    threads : int or None
        Threads for every library; None: all cores this process may use.
    repeats : int
        Rounds; each round measures every backend once, in turn.
    min_time : float
        Seconds of timed runs per measurement (``blocked_autorange``'s min_run_time).
    ops : which of forward, loss_and_grads, train_step, epoch
    epoch_samples : int
        Samples in the epoch (the default is the digits set's 1797); the last
        batch may be partial.
    optimizer, lr, momentum, weight_decay : the optimizer of train_step and epoch,
        with torch.optim's meanings (its other settings keep torch's defaults)
    weight_decay_in, weight_decay_on : where the decay goes ("optimizer" or "loss") and
        on what ("all" or "weights"), as :class:`harness.model.specs.OptimizerSpec`
    activation, seed : of every model
    loss_reduction : "mean" or "sum", as :class:`harness.model.specs.ModelSpec`
    layers : str, optional
        A layer network (:mod:`harness.model.layer_spec`) measured instead of the MLP of
        each grid point's dims: every point's dims must be the network's own on its
        ``dims[0]`` inputs (:func:`layer_grid` builds such a grid). Each backend draws its
        own dropout masks here (the comparisons hand both the same ones; a benchmark
        measures each implementation's own dropout). The ``matmuls`` rows and the GFLOP
        columns count the linear layers only; on images also the convolutions' products
        (and there are no ``matmuls`` rows).
    input_shape : tuple (C, H, W), optional
        With ``layers``: the network takes images (N, C, H, W), and each grid point's
        ``dims[0]`` is C*H*W; the data are seeded normal images of that shape.
    batchnorm conventions: ``bn_momentum``, ``bn_momentum_convention``,
        ``bn_running_var``, ``norm_eps``, as :class:`harness.model.specs.ModelSpec`.
    memory : bool
        Measure the peak memory of a train_step.
    peak_size : int
        Side of the square matmuls that measure the machine's peak.
    """

    grid: tuple = DEFAULT_GRID
    dtypes: tuple = DEFAULT_DTYPES
    backends: tuple = BACKENDS
    device: str = "cpu"
    threads: int | None = None
    repeats: int = 5
    min_time: float = 0.1
    ops: tuple = OPS
    epoch_samples: int = 1797
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    weight_decay_in: str = "optimizer"
    weight_decay_on: str = "all"
    activation: str = "relu"
    seed: int = 0
    loss_reduction: str = "mean"
    layers: str | None = None
    input_shape: tuple | None = None
    bn_momentum: float = 0.1
    bn_momentum_convention: str = "torch"
    bn_running_var: str = "unbiased"
    norm_eps: float = 1e-5
    memory: bool = True
    peak_size: int = 4096

    def __post_init__(self) -> None:
        grid = []
        for point in self.grid:
            try:
                dims, batch = point
                dims = tuple(int(d) for d in dims)
                batch = int(batch)
            except (TypeError, ValueError):
                raise ConfigError(f"a grid point must be (dims, batch_size), got {point!r}") from None
            if len(dims) < 2 or min(dims) < 1:
                raise ConfigError(f"grid dims must be at least two positive widths, got {dims}")
            if batch < 1:
                raise ConfigError(f"grid batch size must be >= 1, got {batch}")
            grid.append((dims, batch))
        if not grid:
            raise ConfigError("the grid is empty")
        object.__setattr__(self, "grid", tuple(grid))
        for d in self.dtypes:
            if d not in DEFAULT_DTYPES:
                raise ConfigError(f"dtype must be one of float32, float64, got {d!r}")
        if not self.dtypes:
            raise ConfigError("no dtypes to measure")
        object.__setattr__(self, "dtypes", tuple(self.dtypes))
        for op in self.ops:
            if op not in OPS:
                raise ConfigError(f"op must be one of {', '.join(OPS)}, got {op!r}")
        object.__setattr__(self, "ops", tuple(o for o in OPS if o in self.ops))
        if not self.ops:
            raise ConfigError("no operations to measure")
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"`device` must be cpu or cuda, got {self.device!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"`threads` must be >= 1, got {self.threads}")
        if self.repeats < 1:
            raise ConfigError(f"`repeats` must be >= 1, got {self.repeats}")
        if not (self.min_time > 0 and math.isfinite(self.min_time)):
            raise ConfigError(f"`min_time` must be a positive number of seconds, got {self.min_time}")
        if self.epoch_samples < 1:
            raise ConfigError(f"`epoch_samples` must be >= 1, got {self.epoch_samples}")
        if self.peak_size < 16:
            raise ConfigError(f"`peak_size` must be >= 16, got {self.peak_size}")
        if not self.backends:
            raise ConfigError("no backends to measure")
        object.__setattr__(self, "backends", tuple(self.backends))
        self.optimizer_spec()  # refuses a bad optimizer setting now, before any work
        from harness.model.specs import LOSS_REDUCTIONS

        if self.loss_reduction not in LOSS_REDUCTIONS:
            raise ConfigError(f"`loss_reduction` must be one of {', '.join(LOSS_REDUCTIONS)}, "
                              f"got {self.loss_reduction!r}")
        if self.input_shape is not None:
            if self.layers is None:
                raise ConfigError("`input_shape` goes with `layers` (a network on images)")
            object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        if self.layers is not None:
            for dims, _ in self.grid:
                spec = self.model_spec(dims, self.dtypes[0])
                if spec.dims != dims:
                    raise ConfigError(f"grid dims {dims} are not those of the layers "
                                      f"{spec.layers} on {dims[0]} inputs ({spec.dims})")
            object.__setattr__(self, "layers", spec.layers)

    def model_spec(self, dims: tuple[int, ...], dtype: str):
        """The :class:`harness.model.specs.ModelSpec` measured at a grid point."""
        from harness.model.specs import ModelSpec

        common = dict(dtype=dtype, seed=self.seed, loss_reduction=self.loss_reduction)
        if self.layers is None:
            return ModelSpec(dims, activation=self.activation, **common)
        shape = (dims[0],) if self.input_shape is None else self.input_shape
        return ModelSpec(layers=self.layers, input_shape=shape, bn_momentum=self.bn_momentum,
                         bn_momentum_convention=self.bn_momentum_convention,
                         bn_running_var=self.bn_running_var, norm_eps=self.norm_eps, **common)

    def optimizer_spec(self):
        """The :class:`harness.model.specs.OptimizerSpec` of train_step and epoch."""
        from harness.model.specs import OptimizerSpec

        return OptimizerSpec(name=self.optimizer, lr=self.lr, momentum=self.momentum,
                             weight_decay=self.weight_decay,
                             weight_decay_in=self.weight_decay_in,
                             weight_decay_on=self.weight_decay_on)

    @classmethod
    def quick(cls, **overrides) -> BenchConfig:
        """A run of a few seconds: the two smallest grid points, short measurements."""
        kw = dict(grid=QUICK_GRID, repeats=3, min_time=0.02, peak_size=1024,
                  epoch_samples=512)
        kw.update(overrides)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["grid"] = [{"dims": list(dims), "batch_size": b} for dims, b in self.grid]
        for k in ("dtypes", "backends", "ops"):
            d[k] = list(d[k])
        if d["input_shape"] is not None:
            d["input_shape"] = list(d["input_shape"])
        return d


def layer_grid(layers, features: int, batch_sizes, input_shape=None) -> tuple:
    """The grid of a layer network on ``features`` inputs (or on images of
    ``input_shape`` (C, H, W)): its dims at every batch size."""
    from harness.model.specs import ModelSpec

    shape = (int(features),) if input_shape is None else tuple(input_shape)
    dims = ModelSpec(layers=layers, input_shape=shape).dims
    return tuple((dims, int(b)) for b in batch_sizes)


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a bench TOML file into BenchConfig keyword arguments.

    Keys: ``threads``, ``dtypes``, ``repeats``, ``min_time``, ``ops``, ``backends``,
    ``device``, ``epoch_samples``, ``optimizer``, ``lr``, ``momentum``,
    ``weight_decay``, ``weight_decay_in``, ``weight_decay_on``, ``activation``, ``seed``,
    ``loss_reduction``, ``layers``, ``input_shape``,
    ``memory``, ``peak_size``, and ``[[grid]]`` tables with ``dims`` and
    ``batch_sizes``::

        dtypes = ["float32"]
        [[grid]]
        dims = [64, 32, 10]
        batch_sizes = [64, 1797]
    """
    import tomllib  # the project requires Python 3.11
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc}") from None
    known = {f for f in BenchConfig.__dataclass_fields__} - {"grid"}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "grid":
            if not isinstance(value, list):
                raise ConfigError(f"{path}: `grid` must be an array of tables [[grid]]")
            grid = []
            for entry in value:
                if not isinstance(entry, dict) or "dims" not in entry:
                    raise ConfigError(f"{path}: each [[grid]] needs `dims` and `batch_sizes`")
                sizes = entry.get("batch_sizes", entry.get("batch_size"))
                if sizes is None:
                    raise ConfigError(f"{path}: [[grid]] with dims {entry['dims']} needs "
                                      f"`batch_sizes`")
                sizes = sizes if isinstance(sizes, list) else [sizes]
                unknown = set(entry) - {"dims", "batch_sizes", "batch_size"}
                if unknown:
                    raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r} in [[grid]]")
                grid.extend((tuple(entry["dims"]), b) for b in sizes)
            out["grid"] = tuple(grid)
        elif key in known:
            out[key] = tuple(value) if isinstance(value, list) else value
        else:
            raise ConfigError(f"{path}: unknown key {key!r}; known: grid, "
                              f"{', '.join(sorted(known))}")
    return out


def series_names(config: BenchConfig) -> list[tuple[str, str]]:
    """(backend, device) pairs; torch also on cuda when asked."""
    series = [(b, "cpu") for b in config.backends]
    if config.device == "cuda" and "torch" in config.backends:
        series.append(("torch", "cuda"))
    return series


def series_label(backend: str, device: str) -> str:
    """The name of a (backend, device) series in the text and the timing keys."""
    return backend if device == "cpu" else f"{backend}-{device}"


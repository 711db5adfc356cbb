"""Benchmarks of the backends side by side.

For every grid point (layer widths, batch size, dtype) and every backend, this
times ``forward``, ``loss_and_grads``, ``train_step``, one epoch, and the matrix
products of one training step alone (``matmuls``, through NumPy for the scratch
backend and through torch for torch: the floor a step cannot go below), all in one
process, with the same thread count for everyone (threadpoolctl for NumPy's BLAS,
``torch.set_num_threads`` for torch), in alternation: each of ``repeats`` rounds
measures every backend once, in turn, so that a change in the machine's load hits
both sides alike. Each measurement is a ``torch.utils.benchmark.Timer`` (it times
any Python callable, NumPy code included) with its own warm-up; the statistics are
the median and interquartile range over the blocks of all rounds.

Beside times, a run records

* achieved GFLOP/s, counting 2·N·d_in·d_out per layer forward and twice that
  backward, less the first layer's input gradient, which no one computes;
* the machine's matmul peak, measured in the same run with large float32 and
  float64 matmuls through NumPy and through torch, so that a reader sees how
  close each backend comes to the hardware limit;
* the peak memory of one training step per backend, against what its parameters,
  gradients, optimizer state and activations need;
* machine facts: CPU model, cores, BLAS libraries with their core type, versions,
  thread count, date, load average.

:func:`save_run` keeps every run in its own time-stamped folder (never
overwritten) as ``bench.csv`` and ``bench.json``; :func:`compare_runs` lines two
saved runs up row by row.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import sys
import timeit
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError
from harness.threads import default_threads, limit_threads

#: the default grid: (dims, batch size)
DEFAULT_GRID: tuple[tuple[tuple[int, ...], int], ...] = (
    ((64, 32, 10), 64),
    ((64, 32, 10), 1797),
    ((784, 256, 10), 128),
    ((784, 1024, 1024, 10), 512),
    ((2048, 2048, 2048, 10), 1024),
)
#: what ``--quick`` measures: the two smallest points, briefly
QUICK_GRID: tuple[tuple[tuple[int, ...], int], ...] = DEFAULT_GRID[:1] + DEFAULT_GRID[2:3]
DEFAULT_DTYPES: tuple[str, ...] = ("float32", "float64")
OPS: tuple[str, ...] = ("forward", "loss_and_grads", "train_step", "epoch", "matmuls")
#: the library whose matrix products each built-in backend uses (``matmuls`` rows and
#: the own-library matmul peak)
BACKEND_LIBRARY = {("scratch", "cpu"): "numpy", ("torch", "cpu"): "torch",
                   ("torch", "cuda"): "torch-cuda"}
BACKENDS: tuple[str, ...] = ("scratch", "torch")
#: the targets the fast scratch backend is held to (issue 6)
SMALL_POINT = ((64, 32, 10), 64, "float32")
SMALL_RATIO_LIMIT = 0.25
RATIO_LIMIT = 1.0
LARGE_POINT = ((2048, 2048, 2048, 10), 1024, "float32")
PEAK_FRACTION_LIMIT = 0.90
MEMORY_RATIO_LIMIT = 1.2
#: the memory target is judged where the need is at least this: below, fixed costs
#: of some tens of kB (NumPy's casting buffers, per-sample work vectors, the
#: optimizer's work block) dominate
MEMORY_TARGET_MIN_NEED = 2**20
#: warn when other processes used more than this share of the CPU during a run
OTHER_LOAD_WARNING = 0.05

FORMAT = "nn-harness-bench/1"
KEY = ["backend", "device", "dims", "batch_size", "dtype", "op"]


# ------------------------------------------------------------------ configuration
@dataclass(frozen=True)
class BenchConfig:
    """What to measure and how long.

    Parameters
    ----------
    grid : sequence of (dims, batch_size)
    dtypes : sequence of "float32" / "float64"
    backends : names for :func:`harness.registry.make_backend`; "torch" is the reference
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
    activation, seed : of every model
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
    activation: str = "relu"
    seed: int = 0
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

    def optimizer_spec(self):
        """The :class:`harness.specs.OptimizerSpec` of train_step and epoch."""
        from harness.specs import OptimizerSpec

        return OptimizerSpec(name=self.optimizer, lr=self.lr, momentum=self.momentum,
                             weight_decay=self.weight_decay)

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
        return d


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a bench TOML file into BenchConfig keyword arguments.

    Keys: ``threads``, ``dtypes``, ``repeats``, ``min_time``, ``ops``, ``backends``,
    ``device``, ``epoch_samples``, ``optimizer``, ``lr``, ``momentum``,
    ``weight_decay``, ``activation``, ``seed``,
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


# ------------------------------------------------------------------ arithmetic
def forward_flops(dims: tuple[int, ...], n: int) -> int:
    """2·N·d_in·d_out per layer: the matmuls of one forward pass."""
    return sum(2 * n * a * b for a, b in zip(dims[:-1], dims[1:]))


def train_flops(dims: tuple[int, ...], n: int) -> int:
    """Forward plus backward (twice the forward, less the first layer's input gradient)."""
    f = forward_flops(dims, n)
    return 3 * f - 2 * n * dims[0] * dims[1]


def epoch_batches(n_samples: int, batch: int) -> list[int]:
    """Batch sizes of one epoch over ``n_samples`` (the last may be partial)."""
    return [min(batch, n_samples - s) for s in range(0, n_samples, batch)]


def op_flops(op: str, dims: tuple[int, ...], n: int, epoch_samples: int) -> int:
    if op == "forward":
        return forward_flops(dims, n)
    if op in ("loss_and_grads", "train_step", "matmuls"):
        return train_flops(dims, n)
    return sum(train_flops(dims, b) for b in epoch_batches(epoch_samples, n))


def memory_need(dims: tuple[int, ...], n: int, dtype: str, optimizer: str = "sgd",
                momentum: float = 0.0) -> int:
    """Bytes a training step cannot do without: parameters, gradients, optimizer
    state, and the activations backprop keeps (every hidden layer's output and the
    logits, N·(d_1 + ... + d_L) numbers)."""
    n_params = sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))
    state = {"sgd": 1 if momentum else 0, "adam": 2, "adamw": 2}.get(optimizer, 0)
    activations = n * sum(dims[1:])
    return (n_params * (2 + state) + activations) * np.dtype(dtype).itemsize


def dims_label(dims: Iterable[int]) -> str:
    return "-".join(str(d) for d in dims)


def parse_dims_label(label: str) -> tuple[int, ...]:
    return tuple(int(t) for t in str(label).split("-"))


# ------------------------------------------------------------------ machine facts
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def physical_cores() -> int | None:
    """Distinct (socket, core) pairs in /proc/cpuinfo; None where it cannot tell."""
    try:
        pairs, phys = set(), None
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("physical id"):
                    phys = line.split(":", 1)[1].strip()
                elif line.startswith("core id"):
                    pairs.add((phys, line.split(":", 1)[1].strip()))
        return len(pairs) or None
    except OSError:
        return None


def machine_info(threads: int, device: str = "cpu") -> dict[str, Any]:
    """Facts a reader needs to judge the numbers: CPU, cores, BLAS, versions, date."""
    import threadpoolctl
    import torch

    pools = threadpoolctl.threadpool_info()
    libs = sorted(({k: info.get(k) for k in ("user_api", "internal_api", "version",
                                             "architecture", "threading_layer", "num_threads")}
                   | {"file": os.path.basename(str(info.get("filepath", "")))}
                   for info in pools),
                  key=lambda lib: (str(lib["user_api"]), lib["file"], str(lib["version"])))
    # threadpoolctl lists libraries in no fixed order, SciPy's OpenBLAS among them when
    # SciPy is loaded: name the one NumPy itself loaded (from its wheel's numpy.libs)
    numpy_blas = _numpy_blas(pools)
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical_cores(),
        "usable_cores": default_threads(),
        "threads": threads,
        "numpy_blas": None if numpy_blas is None else
        f"{numpy_blas['internal_api']} {numpy_blas['version']}",
        "numpy_blas_core_type": None if numpy_blas is None else numpy_blas.get("architecture"),
        "threadpools": libs,
        "torch_blas": "mkl" if torch.backends.mkl.is_available() else "other",
        "torch_cpu_capability": _torch_cpu_capability(),
        "numpy_version": np.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "load_average_before": _loadavg(),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda_version"] = torch.version.cuda
    return info


def _numpy_blas(pools: list[dict]) -> dict[str, Any] | None:
    """The BLAS library NumPy loaded: the one in its wheel's numpy.libs or its package."""
    from pathlib import Path

    root = Path(np.__file__).resolve().parent
    blas = [lib for lib in pools if lib.get("user_api") == "blas"]
    for lib in blas:
        where = Path(str(lib.get("filepath", ""))).resolve().parent
        if where == root.parent / "numpy.libs" or root in where.parents:
            return lib
    return blas[0] if len(blas) == 1 else None


def _torch_cpu_capability() -> str | None:
    try:
        import torch

        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # an old torch
        return None


class CpuShare:
    """Share of the machine's CPU time that other processes used between start and stop.

    Linux only (``/proc/stat``); elsewhere :meth:`stop` returns None.
    """

    def start(self) -> CpuShare:
        self._t0, self._busy0, self._own0 = timeit.default_timer(), _busy_seconds(), _own_seconds()
        return self

    def stop(self) -> float | None:
        busy = _busy_seconds()
        if busy is None or self._busy0 is None:
            return None
        wall = timeit.default_timer() - self._t0
        others = (busy - self._busy0) - (_own_seconds() - self._own0)
        cores = os.cpu_count() or 1
        return round(max(0.0, others) / (wall * cores), 3) if wall > 0 else None


def _busy_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot, from /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


# ------------------------------------------------------------------ timing
def _cuda_sync_timer() -> float:
    import torch

    torch.cuda.synchronize()
    return timeit.default_timer()


def make_timer(fn: Callable[[], Any], threads: int, device: str = "cpu"):
    """A ``torch.utils.benchmark.Timer`` around ``fn``; on cuda it synchronises
    before every reading of the clock."""
    from torch.utils.benchmark import Timer

    clock = _cuda_sync_timer if device == "cuda" else timeit.default_timer
    return Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads, timer=clock)


@dataclass
class Timing:
    """Per-call seconds of every timed block, and their statistics."""

    times: list[float]

    @property
    def median(self) -> float:
        return float(np.median(self.times))

    @property
    def q25(self) -> float:
        return float(np.percentile(self.times, 25))

    @property
    def q75(self) -> float:
        return float(np.percentile(self.times, 75))

    @property
    def iqr(self) -> float:
        return self.q75 - self.q25


def measure_alternating(fns: dict[str, Callable[[], Any]], *, threads: int, repeats: int,
                        min_time: float, devices: dict[str, str] | None = None,
                        before_round: Callable[[str], None] | None = None
                        ) -> dict[str, Timing]:
    """Time each callable in ``fns``, in alternation, ``repeats`` rounds.

    Every round runs ``blocked_autorange`` for each callable in turn (the order
    reversed every other round); its block-size search doubles as a warm-up.
    ``before_round(name)`` runs untimed before each of them (e.g. to restore the
    initial parameters).
    """
    from torch.utils.benchmark import Measurement

    devices = devices or {}
    timers = {name: make_timer(fn, threads, devices.get(name, "cpu")) for name, fn in fns.items()}
    for fn in fns.values():  # first call: lazy initialisation, buffers, caches
        fn()
    measured: dict[str, list] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            if before_round is not None:
                before_round(name)
            measured[name].append(timers[name].blocked_autorange(min_run_time=min_time))
    out = {}
    for name, ms in measured.items():
        (merged,) = Measurement.merge(ms)
        out[name] = Timing([float(t) for t in merged.times])
    return out


def matmul_peaks(size: int, dtypes: Iterable[str], *, threads: int, device: str = "cpu",
                 min_time: float = 0.5) -> list[dict[str, Any]]:
    """GFLOP/s of a (size x size) @ (size x size) matmul through NumPy and torch.

    The float64 matmul uses half the side on a float32 side above 2048 (its peak
    is reached well before, and it takes 2x longer per flop).
    """
    rows = []
    for dtype in dtypes:
        s = size if dtype == "float32" or size <= 2048 else max(2048, size // 2)
        fns, devices = _matmul_fns(s, dtype, device)
        timings = measure_alternating(fns, threads=threads, repeats=2, min_time=min_time,
                                      devices=devices)
        for lib, t in timings.items():
            rows.append({"library": lib, "device": devices.get(lib, "cpu"), "dtype": dtype,
                         "size": s, "median_s": t.median, "iqr_s": t.iqr,
                         "gflops": 2 * s**3 / t.median / 1e9})
    return rows


def _matmul_fns(s: int, dtype: str, device: str):
    """Callables multiplying two random (s, s) matrices into a preallocated one."""
    import torch

    rng = np.random.default_rng(0)
    a = rng.standard_normal((s, s)).astype(dtype)
    b = rng.standard_normal((s, s)).astype(dtype)
    c = np.empty((s, s), dtype)
    ta, tb, tc = (torch.from_numpy(v) for v in (a, b, c))
    fns: dict[str, Callable[[], Any]] = {
        "numpy": lambda: np.matmul(a, b, out=c),
        "torch": lambda: torch.matmul(ta, tb, out=tc),
    }
    devices: dict[str, str] = {}
    if device == "cuda":
        ga, gb = ta.cuda(), tb.cuda()
        gc = torch.empty_like(ga)
        fns["torch-cuda"] = lambda: torch.matmul(ga, gb, out=gc)
        devices["torch-cuda"] = "cuda"
    return fns, devices


def matmul_skeleton(library: str, dims: tuple[int, ...], n: int,
                    dtype: str) -> Callable[[], Any]:
    """The matrix products of one training step, and nothing else, through ``library``.

    Forward ``a_i @ W_i`` for every layer; backward ``a_i^T @ dz_i`` for every layer
    and ``dz_i @ W_i^T`` for every layer but the first: the ``train_flops`` of the
    step, into preallocated outputs, on random data. ``library`` is "numpy", "torch"
    or "torch-cuda". Its time is the floor of a train_step with that library's BLAS.
    """
    rng = np.random.default_rng(0)
    shapes = list(zip(dims[:-1], dims[1:]))
    a = [rng.standard_normal((n, d_in)).astype(dtype) for d_in, _ in shapes]
    w = [rng.standard_normal(s).astype(dtype) for s in shapes]
    dz = [rng.standard_normal((n, d_out)).astype(dtype) for _, d_out in shapes]
    z = [np.empty((n, d_out), dtype) for _, d_out in shapes]
    dw = [np.empty(s, dtype) for s in shapes]
    da = [np.empty((n, d_in), dtype) for d_in, _ in shapes[1:]]  # none for the first layer
    mm = np.matmul
    if library != "numpy":
        import torch

        def to(v):
            v = torch.from_numpy(v)
            return v.cuda() if library == "torch-cuda" else v

        a, w, dz, z, dw, da = ([to(v) for v in group] for group in (a, w, dz, z, dw, da))
        mm = torch.matmul
    layers = range(len(shapes))

    def step():
        for i in layers:
            mm(a[i], w[i], out=z[i])
        for i in reversed(layers):
            mm(a[i].T, dz[i], out=dw[i])
            if i > 0:
                mm(dz[i], w[i].T, out=da[i - 1])
    return step


def peak_by_device_dtype(peaks: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """{device: {dtype: best GFLOP/s over the libraries}}."""
    out: dict[str, dict[str, float]] = {}
    for row in peaks:
        d = out.setdefault(row["device"], {})
        d[row["dtype"]] = max(d.get(row["dtype"], 0.0), row["gflops"])
    return out


def peak_by_library_dtype(peaks: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """{(library, dtype): GFLOP/s}."""
    return {(row["library"], row["dtype"]): row["gflops"] for row in peaks}


# ------------------------------------------------------------------ memory
def peak_memory_numpy(build: Callable[[], Any], x, y) -> dict[str, int]:
    """Peak bytes NumPy holds during one train_step (after a first one), tracemalloc.

    Counts everything allocated since the model was built: parameters, optimizer
    state, gradient and work buffers, and what the step allocates on the way.
    """
    import gc
    import tracemalloc

    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        model = build()
        model.train_step(x, y)  # buffers and optimizer state now exist
        held = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.reset_peak()
        model.train_step(x, y)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return {"held_bytes": int(held), "peak_bytes": int(peak)}


def peak_memory_torch(model, x, y) -> dict[str, int]:
    """Peak bytes of one torch train_step (after a first one).

    CUDA: the caching allocator's own statistics. CPU: the allocations and frees
    the torch profiler records during the step, on top of what lives before it
    (parameters, optimizer state).
    """
    import torch

    model.train_step(x, y)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        held = torch.cuda.memory_allocated()
        model.train_step(x, y)
        torch.cuda.synchronize()
        return {"held_bytes": int(held), "peak_bytes": int(torch.cuda.max_memory_allocated())}
    held = sum(p.numel() * p.element_size() for p in model.module.parameters())
    held += sum(p.grad.numel() * p.grad.element_size() for p in model.module.parameters()
                if p.grad is not None)
    for state in model.optimizer.state.values():
        held += sum(v.numel() * v.element_size() for v in state.values()
                    if torch.is_tensor(v) and v.dim() > 0)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model.train_step(x, y)
    events = []

    def walk(nodes):
        for node in nodes:
            if str(node.tag).endswith("Allocation"):
                events.append((node.start_time_ns, int(node.extra_fields.alloc_size)))
            walk(node.children)

    walk(prof.profiler.kineto_results.experimental_event_tree())
    events.sort()
    running, top = 0, 0
    for _, size in events:
        running += size
        top = max(top, running)
    return {"held_bytes": int(held), "peak_bytes": int(held + top)}


# ------------------------------------------------------------------ the run
@dataclass
class BenchResult:
    """A benchmark run: the tidy table, the machine, the peaks, the targets."""

    table: Any  # pandas.DataFrame, one row per (backend, device, dims, batch, dtype, op)
    machine: dict[str, Any]
    config: dict[str, Any]
    peaks: list[dict[str, Any]]
    targets: list[dict[str, Any]] = field(default_factory=list)
    times: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        rows = json.loads(self.table.to_json(orient="records"))
        return {"format": FORMAT, "machine": self.machine, "config": self.config,
                "matmul_peaks": self.peaks, "targets": self.targets, "rows": rows,
                "times_s": self.times}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchResult:
        import pandas as pd

        if d.get("format") != FORMAT:
            raise ConfigError(f"not a bench result (format {d.get('format')!r}, "
                              f"expected {FORMAT!r})")
        return cls(pd.DataFrame(d["rows"]), d.get("machine", {}), d.get("config", {}),
                   d.get("matmul_peaks", []), d.get("targets", []), d.get("times_s", {}))


def _series_names(config: BenchConfig) -> list[tuple[str, str]]:
    """(backend, device) pairs; torch also on cuda when asked."""
    series = [(b, "cpu") for b in config.backends]
    if config.device == "cuda" and "torch" in config.backends:
        series.append(("torch", "cuda"))
    return series


def _label(backend: str, device: str) -> str:
    return backend if device == "cpu" else f"{backend}-{device}"


def run_bench(config: BenchConfig, *, log: Callable[[str], None] | None = None
              ) -> BenchResult:
    """Measure everything ``config`` asks for; see the module docstring."""
    import pandas as pd
    import torch

    from harness.specs import ModelSpec

    log = log or (lambda message: None)
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("`--device cuda` was asked for but no CUDA device is available")
    series = _series_names(config)
    optimizer = config.optimizer_spec()

    records: list[dict[str, Any]] = []
    times: dict[str, list[float]] = {}
    others = CpuShare().start()
    with limit_threads(config.threads) as threads:
        machine = machine_info(threads, config.device)
        log(f"matmul peak: {config.peak_size}x{config.peak_size}, "
            f"{', '.join(config.dtypes)}")
        peaks = matmul_peaks(config.peak_size, config.dtypes, threads=threads,
                             device=config.device, min_time=max(config.min_time, 0.2))
        n_points = len(config.grid) * len(config.dtypes)
        k = 0
        for dims, batch in config.grid:
            for dtype in config.dtypes:
                k += 1
                log(f"[{k}/{n_points}] dims {dims_label(dims)}, batch {batch}, {dtype}")
                spec = ModelSpec(dims, activation=config.activation, dtype=dtype,
                                 seed=config.seed)
                records.extend(_bench_point(spec, batch, config, series, optimizer,
                                            threads, times))
        machine["load_average_after"] = _loadavg()
        machine["other_processes_cpu_share"] = others.stop()
    table = pd.DataFrame(records)
    table = add_derived_columns(table, peak_by_device_dtype(peaks), peak_by_library_dtype(peaks))
    result = BenchResult(table, machine, config.to_dict() | {"threads": threads}, peaks,
                         times=times)
    result.targets = evaluate_targets(result.table)
    return result


def _bench_point(spec, batch: int, config: BenchConfig, series, optimizer, threads: int,
                 times: dict) -> list[dict]:
    """Every op of every backend at one (dims, batch, dtype); the table's rows.

    The per-block times go into ``times`` under the row's key.
    """
    from harness.batches import iterate_batches
    from harness.params import copy_params
    from harness.registry import make_backend

    dims, dtype = spec.dims, spec.dtype
    rng = np.random.default_rng(config.seed)
    n_data = max(batch, config.epoch_samples)
    X = rng.standard_normal((n_data, dims[0])).astype(dtype)
    Y = rng.integers(0, dims[-1], size=n_data)
    x, y = X[:batch], Y[:batch]

    def build(backend, device):
        return make_backend(backend, spec, optimizer, device=device)

    models = {}
    for backend, device in series:
        models[_label(backend, device)] = build(backend, device)
    first = next(iter(models.values()))
    for m in list(models.values())[1:]:
        copy_params(first, m)  # the same starting point everywhere
    initial = first.get_params()
    epoch_counter = {name: 0 for name in models}

    def restore(name):
        models[name].set_params(initial)

    def op_fn(op, name):
        model = models[name]
        if op == "forward":
            return lambda: model.forward(x)
        if op == "loss_and_grads":
            return lambda: model.loss_and_grads(x, y)
        if op == "train_step":
            return lambda: model.train_step(x, y)

        def epoch():
            e = epoch_counter[name]
            epoch_counter[name] = e + 1
            for idx in iterate_batches(config.epoch_samples, batch, epoch=e, seed=config.seed):
                model.train_step(X[idx], Y[idx])
        return epoch

    # matmuls are measured in the same rounds as train_step, so that "train_step minus
    # its matmuls" compares times taken under the same machine load
    groups = [[op] for op in config.ops if op != "matmuls"]
    if "matmuls" in config.ops:
        if "train_step" in config.ops:
            next(g for g in groups if g[0] == "train_step").append("matmuls")
        else:
            groups.append(["matmuls"])
    rows = []
    for group in groups:
        fns, devices, owners = {}, {}, {}
        for op in group:
            for backend, device in series:
                name = _label(backend, device)
                if op != "matmuls":
                    fn = op_fn(op, name)
                elif (backend, device) in BACKEND_LIBRARY:  # a built-in: its library is known
                    fn = matmul_skeleton(BACKEND_LIBRARY[(backend, device)], dims, batch, dtype)
                else:
                    continue
                key = f"{name} {op}"
                fns[key], devices[key], owners[key] = fn, device, (backend, device, op, name)

        def before_round(key, owners=owners):
            if owners[key][2] in ("train_step", "epoch"):
                restore(owners[key][3])

        timings = measure_alternating(fns, threads=threads, repeats=config.repeats,
                                      min_time=config.min_time, devices=devices,
                                      before_round=before_round)
        for key, t in timings.items():
            backend, device, op, _ = owners[key]
            row = {"backend": backend, "device": device, "dims": dims_label(dims),
                   "batch_size": batch, "dtype": dtype, "op": op, "median_s": t.median,
                   "iqr_s": t.iqr, "q25_s": t.q25, "q75_s": t.q75, "n_blocks": len(t.times),
                   "threads": threads,
                   "gflop": op_flops(op, dims, batch, config.epoch_samples) / 1e9}
            times["|".join(str(row[k]) for k in KEY)] = t.times
            rows.append(row)
    if config.memory and "train_step" in config.ops:
        need = memory_need(dims, batch, dtype, optimizer.name, optimizer.momentum)
        for backend, device in series:
            name = _label(backend, device)
            try:
                if backend == "torch":
                    mem = peak_memory_torch(build(backend, device), x, y)
                else:
                    mem = peak_memory_numpy(lambda b=backend, d=device: build(b, d), x, y)
            except Exception as exc:  # noqa: BLE001 - reported in the table, not fatal
                mem = {"held_bytes": None, "peak_bytes": None, "error": str(exc)}
            for row in rows:
                if row["op"] == "train_step" and _label(row["backend"], row["device"]) == name:
                    row["peak_mem_bytes"] = mem["peak_bytes"]
                    row["need_mem_bytes"] = need
                    row["mem_ratio"] = (mem["peak_bytes"] / need
                                        if mem["peak_bytes"] is not None else None)
    return rows


def add_derived_columns(table, peaks: dict[str, dict[str, float]],
                        library_peaks: dict[tuple[str, str], float] | None = None):
    """GFLOP/s, fractions of the matmul peaks, and the time ratio to torch on the CPU.

    ``peak_gflops`` is the machine's: the best of the libraries on the row's device
    and dtype. ``library_peak_gflops`` is that of the library the backend multiplies
    with (NumPy's BLAS for scratch), NaN for a backend whose library is unknown.
    """
    import pandas as pd

    if table.empty:
        return table
    library_peaks = library_peaks or {}
    table = table.copy()
    table["gflops"] = table["gflop"] / table["median_s"]
    table["peak_gflops"] = [peaks.get(dev, {}).get(dt, math.nan)
                            for dev, dt in zip(table["device"], table["dtype"])]
    table["fraction_of_peak"] = table["gflops"] / table["peak_gflops"]
    table["library_peak_gflops"] = [
        library_peaks.get((BACKEND_LIBRARY.get((b, dev)), dt), math.nan)
        for b, dev, dt in zip(table["backend"], table["device"], table["dtype"])]
    table["fraction_of_library_peak"] = table["gflops"] / table["library_peak_gflops"]
    ref = table[(table["backend"] == "torch") & (table["device"] == "cpu")]
    ref = ref.set_index(["dims", "batch_size", "dtype", "op"])["median_s"]
    keys = pd.MultiIndex.from_frame(table[["dims", "batch_size", "dtype", "op"]])
    table["ratio_to_torch_cpu"] = (table["median_s"].to_numpy()
                                   / ref.reindex(keys).to_numpy())
    for col in ("peak_mem_bytes", "need_mem_bytes", "mem_ratio"):
        if col not in table:
            table[col] = math.nan
    columns = ["backend", "device", "dims", "batch_size", "dtype", "op", "median_s", "iqr_s",
               "q25_s", "q75_s", "n_blocks", "ratio_to_torch_cpu", "gflop", "gflops",
               "peak_gflops", "fraction_of_peak", "library_peak_gflops",
               "fraction_of_library_peak", "peak_mem_bytes", "need_mem_bytes",
               "mem_ratio", "threads"]
    return table[columns]


# ------------------------------------------------------------------ targets
def evaluate_targets(table, backend: str = "scratch") -> list[dict[str, Any]]:
    """The issue's targets for ``backend``, judged on the points the table holds."""
    out: list[dict[str, Any]] = []
    if table.empty:
        return out
    mine = table[(table["backend"] == backend) & (table["device"] == "cpu")
                 & (table["op"] == "train_step")]
    point_key = ["dims", "batch_size", "dtype"]
    # the backend's matrix products alone, where measured: the floor its BLAS sets
    mats = table[(table["backend"] == backend) & (table["device"] == "cpu")
                 & (table["op"] == "matmuls")].set_index(point_key)
    for _, row in mine.iterrows():
        point = (parse_dims_label(row["dims"]), int(row["batch_size"]), row["dtype"])
        ratio = row["ratio_to_torch_cpu"]
        if ratio is None or not math.isfinite(ratio):
            continue
        limit = SMALL_RATIO_LIMIT if point == SMALL_POINT else RATIO_LIMIT
        target = {"target": f"train_step time {backend}/torch",
                  "point": f"{row['dims']} batch {row['batch_size']} {row['dtype']}",
                  "value": float(ratio), "limit": limit, "kind": "at most",
                  "passed": bool(ratio <= limit)}
        key = (row["dims"], row["batch_size"], row["dtype"])
        if key in mats.index:
            floor = float(mats.loc[key, "median_s"]) / (row["median_s"] / ratio)
            target["note"] = f"its matrix products alone take {floor:.3f} of torch's train_step"
        out.append(target)
    for _, row in mine.iterrows():
        point = (parse_dims_label(row["dims"]), int(row["batch_size"]), row["dtype"])
        if point == LARGE_POINT and math.isfinite(row["fraction_of_peak"]):
            target = {"target": f"train_step GFLOP/s of {backend} / float32 matmul peak",
                      "point": f"{row['dims']} batch {row['batch_size']} {row['dtype']}",
                      "value": float(row["fraction_of_peak"]), "limit": PEAK_FRACTION_LIMIT,
                      "kind": "at least",
                      "passed": bool(row["fraction_of_peak"] >= PEAK_FRACTION_LIMIT)}
            notes = []
            own = row.get("fraction_of_library_peak", math.nan)
            if own is not None and math.isfinite(own):
                notes.append(f"{own:.3f} of the peak of its own library "
                             f"({BACKEND_LIBRARY.get((backend, 'cpu'))})")
            key = (row["dims"], row["batch_size"], row["dtype"])
            if key in mats.index and math.isfinite(mats.loc[key, "fraction_of_peak"]):
                notes.append(f"its matrix products alone reach "
                             f"{float(mats.loc[key, 'fraction_of_peak']):.3f}")
            if notes:
                target["note"] = "; ".join(notes)
            out.append(target)
    for _, row in mine.iterrows():
        ratio, need = row.get("mem_ratio"), row.get("need_mem_bytes")
        if ratio is None or need is None or not math.isfinite(ratio) or not math.isfinite(need):
            continue
        if need < MEMORY_TARGET_MIN_NEED:
            continue
        out.append({"target": f"train_step peak memory of {backend} / need",
                    "point": f"{row['dims']} batch {row['batch_size']} {row['dtype']}",
                    "value": float(ratio), "limit": MEMORY_RATIO_LIMIT, "kind": "at most",
                    "passed": bool(ratio <= MEMORY_RATIO_LIMIT)})
    return out


# ------------------------------------------------------------------ saving
def new_run_dir(root: str | os.PathLike, now: _dt.datetime | None = None) -> Path:
    """Create and return ``root/bench-YYYYmmdd-HHMMSS`` (``-2``, ``-3``... if taken).

    The folder is created with ``os.mkdir``, which fails on an existing one, so two
    runs can never write into the same folder.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"`--out` {str(root)!r} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    stamp = (now or _dt.datetime.now()).strftime("bench-%Y%m%d-%H%M%S")
    for k in range(1, 10_000):
        path = root / (stamp if k == 1 else f"{stamp}-{k}")
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        return path
    raise ConfigError(f"cannot find a free run folder name under {str(root)!r}")


def save_run(result: BenchResult, root: str | os.PathLike, *, plots: bool = True) -> Path:
    """Write ``bench.csv``, ``bench.json`` (and the plots) into a new folder under ``root``."""
    from harness.io import atomic_write_json, atomic_write_text

    path = new_run_dir(root)
    atomic_write_text(path / "bench.csv", result.table.to_csv(index=False))
    atomic_write_json(path / "bench.json", result.to_dict())
    if plots:
        from harness.plots.bench import plot_all

        plot_all(result, path)
    return path


def load_run(path: str | os.PathLike) -> BenchResult:
    """A saved run, from its ``bench.json`` (or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "bench.json"
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"bench result {str(path)!r} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read bench result {str(path)!r}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{str(path)!r} is not a bench result")
    return BenchResult.from_dict(data)


def compare_runs(old: BenchResult, new: BenchResult):
    """Row-by-row change of the median time between two runs.

    Returns a DataFrame with the key columns, ``old_s``, ``new_s``, ``change``
    (new/old - 1) and ``verdict``: "faster"/"slower" when the medians differ by more
    than half the sum of the two interquartile ranges, else "same". Rows present in
    only one run are listed with NaN on the other side.
    """
    import pandas as pd

    cols = KEY + ["median_s", "iqr_s"]
    a = old.table[cols].rename(columns={"median_s": "old_s", "iqr_s": "old_iqr_s"})
    b = new.table[cols].rename(columns={"median_s": "new_s", "iqr_s": "new_iqr_s"})
    merged = pd.merge(a, b, on=KEY, how="outer", sort=False)
    # the new run's row order, then what only the old run has
    order = {k: i for i, k in enumerate(dict.fromkeys(
        [tuple(r) for r in b[KEY].itertuples(index=False)]
        + [tuple(r) for r in a[KEY].itertuples(index=False)]))}
    merged["_order"] = [order[tuple(r)] for r in merged[KEY].itertuples(index=False)]
    merged = merged.sort_values("_order", kind="stable").reset_index(drop=True)
    merged["change"] = merged["new_s"] / merged["old_s"] - 1
    noise = (merged["old_iqr_s"] + merged["new_iqr_s"]) / 2
    diff = merged["new_s"] - merged["old_s"]
    merged["verdict"] = np.where(merged["old_s"].isna() | merged["new_s"].isna(), "only one",
                                 np.where(diff > noise, "slower",
                                          np.where(-diff > noise, "faster", "same")))
    return merged[KEY + ["old_s", "new_s", "change", "verdict"]]


# ------------------------------------------------------------------ text
def _fmt_time(s: float) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    if s < 0:  # a difference of two medians can be
        return "-" + _fmt_time(-s)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def _fmt(v: float, spec: str = ".2f") -> str:
    return "-" if v is None or not math.isfinite(float(v)) else format(float(v), spec)


def format_result(result: BenchResult) -> str:
    """The run as text: machine, peaks, one table per op, ratios, memory, targets."""
    t = result.table
    m = result.machine
    lines = [
        (f"machine: {m.get('cpu_model')}, {m.get('usable_cores')} usable cores "
         f"({m.get('physical_cores')} physical), {m.get('threads')} threads"),
        (f"numpy {m.get('numpy_version')} with {m.get('numpy_blas')} "
         f"(core type {m.get('numpy_blas_core_type')}); torch {m.get('torch_version')} "
         f"with {m.get('torch_blas')}; {m.get('date')}"),
        (f"load average before/after: {m.get('load_average_before')} / "
         f"{m.get('load_average_after')}; other processes' share of the CPU during the "
         f"run: {_fmt(100 * (m.get('other_processes_cpu_share') or math.nan), '.0f')}%"),
        *_load_warning(m),
        "matmul peak: " + ", ".join(
            f"{p['library']} {p['dtype']} {p['size']}^3: {p['gflops']:.1f} GFLOP/s"
            for p in result.peaks),
        "",
    ]
    if t.empty:
        return "\n".join(lines + ["no measurements"])
    header = (f"{'op':<15}{'dims':<20}{'batch':>6} {'dtype':<8}{'backend':<12}"
              f"{'median':>10}{'IQR':>10}{'GFLOP/s':>9}{'% peak':>8}{'% own':>7}{'x torch':>9}")
    lines += [header, "-" * len(header)]
    for _, r in t.iterrows():
        own = r.get("fraction_of_library_peak", math.nan)
        lines.append(
            f"{r['op']:<15}{r['dims']:<20}{r['batch_size']:>6} {r['dtype']:<8}"
            f"{_label(r['backend'], r['device']):<12}{_fmt_time(r['median_s']):>10}"
            f"{_fmt_time(r['iqr_s']):>10}{_fmt(r['gflops'], '.1f'):>9}"
            f"{_fmt(100 * r['fraction_of_peak'], '.0f'):>8}{_fmt(100 * own, '.0f'):>7}"
            f"{_fmt(r['ratio_to_torch_cpu'], '.3f'):>9}")
    lines += ["", "% peak: of the best matmul measured above; % own: of the matmul of the "
              "backend's own library (NumPy's BLAS for scratch)"]
    lines += _beyond_matmuls(t)
    mem = t[(t["op"] == "train_step") & t["peak_mem_bytes"].notna()]
    if not mem.empty:
        lines += ["", "peak memory of a train_step (MiB): measured / needed = ratio"]
        for _, r in mem.iterrows():
            lines.append(f"  {r['dims']:<20} batch {r['batch_size']:>5} {r['dtype']:<8} "
                         f"{_label(r['backend'], r['device']):<12}"
                         f"{r['peak_mem_bytes'] / 2**20:>10.2f} / "
                         f"{r['need_mem_bytes'] / 2**20:<10.2f} = {_fmt(r['mem_ratio'])}")
    if result.targets:
        lines += ["", "targets:"]
        for tg in result.targets:
            note = f"; {tg['note']}" if tg.get("note") else ""
            lines.append(f"  {'PASS' if tg['passed'] else 'FAIL'}  {tg['target']} at "
                         f"{tg['point']}: {tg['value']:.3f} ({tg['kind']} {tg['limit']:g}{note})")
    return "\n".join(lines)


def beyond_matmuls(table):
    """Per point and backend: train_step, its matrix products alone, and the rest.

    A DataFrame with the key columns but ``op``, then ``train_step_s``, ``matmuls_s``
    and ``rest_s`` (their difference: activations, loss, bias terms, the optimizer,
    Python); empty unless the table has both ops.
    """
    import pandas as pd

    keys = ["backend", "device", "dims", "batch_size", "dtype"]
    step = table[table["op"] == "train_step"][keys + ["median_s"]]
    mats = table[table["op"] == "matmuls"][keys + ["median_s"]]
    if step.empty or mats.empty:
        return pd.DataFrame(columns=keys + ["train_step_s", "matmuls_s", "rest_s"])
    out = step.rename(columns={"median_s": "train_step_s"}).merge(
        mats.rename(columns={"median_s": "matmuls_s"}), on=keys, how="inner", sort=False)
    out["rest_s"] = out["train_step_s"] - out["matmuls_s"]
    return out.reset_index(drop=True)


def _beyond_matmuls(table) -> list[str]:
    rows = beyond_matmuls(table)
    if rows.empty:
        return []
    lines = ["", "train_step = its matrix products alone + everything else (median times):"]
    for _, r in rows.iterrows():
        lines.append(f"  {r['dims']:<20} batch {r['batch_size']:>5} {r['dtype']:<8} "
                     f"{_label(r['backend'], r['device']):<12}{_fmt_time(r['train_step_s']):>10}"
                     f" = {_fmt_time(r['matmuls_s']):>9} + {_fmt_time(r['rest_s']):>9}")
    return lines


def _load_warning(machine: dict[str, Any]) -> list[str]:
    """A warning line when other processes kept the cores busy during the run."""
    share = machine.get("other_processes_cpu_share")
    if share is not None and share > OTHER_LOAD_WARNING:
        return [(f"warning: other processes used {100 * share:.0f}% of the machine's CPU "
                 f"time during this run; the timings are disturbed (rerun on an idle machine)")]
    return []


def format_comparison(table) -> str:
    header = (f"{'op':<15}{'dims':<20}{'batch':>6} {'dtype':<8}{'backend':<12}"
              f"{'old':>10}{'new':>10}{'change':>9}  verdict")
    lines = [header, "-" * len(header)]
    for _, r in table.iterrows():
        change = "-" if not math.isfinite(r["change"]) else f"{100 * r['change']:+.1f}%"
        lines.append(
            f"{r['op']:<15}{r['dims']:<20}{r['batch_size']:>6} {r['dtype']:<8}"
            f"{_label(r['backend'], r['device']):<12}{_fmt_time(r['old_s']):>10}"
            f"{_fmt_time(r['new_s']):>10}{change:>9}  {r['verdict']}")
    return "\n".join(lines)


def _log_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

"""Timing of the backends: :func:`run_bench` and what it is made of.

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

Beside times, a run records the machine's matmul peak (large float32 and float64
matmuls through NumPy and through torch, measured in the same run), the peak
memory of one training step per backend, and the machine facts of
:mod:`harness.runtime.machine`.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.bench.arithmetic import (add_derived_columns, dims_label, memory_need,
                                      network_memory_need, op_flops,
                                      peak_by_device_dtype, peak_by_library_dtype)
from harness.bench.config import BACKEND_LIBRARY, BenchConfig, series_label, series_names
from harness.bench.quality import add_flags
from harness.bench.store import KEY, BenchResult
from harness.bench.targets import evaluate_targets
from harness.errors import ConfigError
from harness.runtime.machine import CpuShare, load_average, machine_info
from harness.runtime.threads import limit_threads


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

    from harness.runtime.console import quiet_profiler

    # the profiler prints lines of its own to stderr (USDT probes, CPUAllocator warnings)
    with quiet_profiler(), profile(activities=[ProfilerActivity.CPU],
                                   profile_memory=True) as prof:
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
def run_bench(config: BenchConfig, *, log: Callable[[str], None] | None = None
              ) -> BenchResult:
    """Measure everything ``config`` asks for; see the module docstring."""
    import pandas as pd
    import torch

    log = log or (lambda message: None)
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("`--device cuda` was asked for but no CUDA device is available")
    series = series_names(config)
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
        started = timeit.default_timer()
        for dims, batch in config.grid:
            for dtype in config.dtypes:
                k += 1
                elapsed = timeit.default_timer() - started
                what = (f"dims {dims_label(dims)}" if config.layers is None
                        else f"layers {config.layers} ({dims_label(dims)})")
                log(f"[{k}/{n_points}] {what}, batch {batch}, {dtype} "
                    f"({elapsed:.0f} s so far)")
                spec = config.model_spec(dims, dtype)
                records.extend(_bench_point(spec, batch, config, series, optimizer,
                                            threads, times))
        machine["load_average_after"] = load_average()
        machine["other_processes_cpu_share"] = others.stop()
    table = pd.DataFrame(records)
    table = add_derived_columns(table, peak_by_device_dtype(peaks), peak_by_library_dtype(peaks))
    table = add_flags(table)
    result = BenchResult(table, machine, config.to_dict() | {"threads": threads}, peaks,
                         times=times)
    result.targets = evaluate_targets(result.table)
    return result


def _bench_point(spec, batch: int, config: BenchConfig, series, optimizer, threads: int,
                 times: dict) -> list[dict]:
    """Every op of every backend at one (dims, batch, dtype); the table's rows.

    The per-block times go into ``times`` under the row's key.
    """
    from harness.training.batches import iterate_batches
    from harness.model.transfer import copy_params
    from harness.model.masks import unwrap
    from harness.model.registry import make_backend

    dims, dtype = spec.dims, spec.dtype
    rng = np.random.default_rng(config.seed)
    n_data = max(batch, config.epoch_samples)
    image = config.input_shape is not None  # seeded normal images (N, C, H, W)
    X = rng.standard_normal((n_data,) + (config.input_shape if image else (dims[0],))
                            ).astype(dtype)
    Y = rng.integers(0, dims[-1], size=n_data)
    x, y = X[:batch], Y[:batch]

    def build(backend, device):  # each backend with its own dropout masks
        return unwrap(make_backend(backend, spec, optimizer, device=device))

    models = {}
    for backend, device in series:
        models[series_label(backend, device)] = build(backend, device)
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

    rows = []
    network = spec.network if image else None  # its products are not those of its dims
    ops = [op for op in config.ops if not (image and op == "matmuls")]
    for group in _op_groups(ops):
        rows.extend(_time_group(group, series, op_fn, restore, dims, batch, dtype, config,
                                threads, times, network))
    if config.memory and "train_step" in config.ops:
        _add_memory(rows, series, build, x, y, dims, batch, dtype, optimizer, network)
    return rows


def _op_groups(ops) -> list[list[str]]:
    """The ops measured together in one round each."""
    # matmuls are measured in the same rounds as train_step, so that "train_step minus
    # its matmuls" compares times taken under the same machine load
    groups = [[op] for op in ops if op != "matmuls"]
    if "matmuls" in ops:
        if "train_step" in ops:
            next(g for g in groups if g[0] == "train_step").append("matmuls")
        else:
            groups.append(["matmuls"])
    return groups


def _time_group(group, series, op_fn, restore, dims, batch: int, dtype, config: BenchConfig,
                threads: int, times: dict, network=None) -> list[dict]:
    """Time one group of ops on every backend, alternating; their rows."""
    fns, devices, owners = {}, {}, {}
    for op in group:
        for backend, device in series:
            name = series_label(backend, device)
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
    rows = []
    for key, t in timings.items():
        backend, device, op, _ = owners[key]
        row = {"backend": backend, "device": device, "dims": dims_label(dims),
               "batch_size": batch, "dtype": dtype, "op": op, "median_s": t.median,
               "iqr_s": t.iqr, "q25_s": t.q25, "q75_s": t.q75, "n_blocks": len(t.times),
               "threads": threads,
               "gflop": op_flops(op, dims, batch, config.epoch_samples, network) / 1e9}
        times["|".join(str(row[k]) for k in KEY)] = t.times
        rows.append(row)
    return rows


def _add_memory(rows: list[dict], series, build, x, y, dims, batch: int, dtype,
                optimizer, network=None) -> None:
    """Peak and needed memory of a train_step, added to each backend's train_step row."""
    need = (memory_need(dims, batch, dtype, optimizer.name, optimizer.momentum)
            if network is None else
            network_memory_need(network, batch, dtype, optimizer.name, optimizer.momentum))
    for backend, device in series:
        name = series_label(backend, device)
        try:
            if backend == "torch":
                mem = peak_memory_torch(build(backend, device), x, y)
            else:
                mem = peak_memory_numpy(lambda b=backend, d=device: build(b, d), x, y)
        except Exception as exc:  # noqa: BLE001 - reported in the table, not fatal
            mem = {"held_bytes": None, "peak_bytes": None, "error": str(exc)}
        for row in rows:
            if row["op"] == "train_step" and series_label(row["backend"], row["device"]) == name:
                row["peak_mem_bytes"] = mem["peak_bytes"]
                row["need_mem_bytes"] = need
                row["mem_ratio"] = (mem["peak_bytes"] / need
                                    if mem["peak_bytes"] is not None else None)

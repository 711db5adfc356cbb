"""Benchmarks of the backends side by side.

For every grid point (layer widths, batch size, dtype) and every backend, a run
times ``forward``, ``loss_and_grads``, ``train_step``, one epoch, and the matrix
products of one training step alone (``matmuls``), in one process, with the same
thread count for everyone, in alternating rounds (:mod:`harness.bench.timing`).

Beside times, a run records

* achieved GFLOP/s, counting 2·N·d_in·d_out per layer forward and twice that
  backward, less the first layer's input gradient, which no one computes
  (:mod:`harness.bench.arithmetic`);
* the machine's matmul peak, measured in the same run with large float32 and
  float64 matmuls through NumPy and through torch, so that a reader sees how
  close each backend comes to the hardware limit;
* the peak memory of one training step per backend, against what its parameters,
  gradients, optimizer state and activations need;
* machine facts (:mod:`harness.runtime.machine`): CPU model, cores, BLAS libraries with
  their core type, versions, thread count, date, load average;
* the scratch backend's targets, passed or missed (:mod:`harness.bench.targets`):
  the project's engineering goals, shown only when asked for (``bench --targets``);
* how far the run can be trusted (:mod:`harness.bench.quality`): a disturbed
  machine, noisy rows, rows above the measured peak.

The modules: :mod:`~harness.bench.config` (what to measure),
:mod:`~harness.bench.arithmetic`, :mod:`~harness.bench.timing`,
:mod:`~harness.bench.targets`, :mod:`~harness.bench.store` (saved runs and their
comparison) and :mod:`~harness.bench.format` (text). The figures live a layer up,
in :mod:`harness.plots.bench`; nothing here imports them.
"""

from __future__ import annotations

from harness.bench.arithmetic import (add_derived_columns, beyond_matmuls, dims_label,
                                      epoch_batches, forward_flops, memory_need, op_flops,
                                      parse_dims_label, peak_by_device_dtype,
                                      peak_by_library_dtype, train_flops)
from harness.bench.config import (BACKEND_LIBRARY, BACKENDS, DEFAULT_DTYPES, DEFAULT_GRID,
                                  FULL_GRID, NAMED_GRIDS, OPS, QUICK_GRID, BenchConfig,
                                  load_config_file)
from harness.bench.format import format_comparison, format_result
from harness.bench.quality import (OTHER_LOAD_WARNING, ROW_FLAGS, add_flags, assess,
                                   disturbance_message, disturbed, run_differences)
from harness.bench.store import (FORMAT, KEY, BenchResult, compare_runs, load_run,
                                 new_run_dir, save_run)
from harness.bench.targets import (LARGE_POINT, MEMORY_RATIO_LIMIT, MEMORY_TARGET_MIN_NEED,
                                   PEAK_FRACTION_LIMIT, RATIO_LIMIT, SMALL_POINT,
                                   SMALL_RATIO_LIMIT, evaluate_targets)
from harness.bench.timing import (Timing, make_timer, matmul_peaks, matmul_skeleton,
                                  measure_alternating, peak_memory_numpy, peak_memory_torch,
                                  run_bench)
from harness.runtime.machine import CpuShare, cpu_model, machine_info, physical_cores

__all__ = [
    "BACKENDS", "BACKEND_LIBRARY", "DEFAULT_DTYPES", "DEFAULT_GRID", "FORMAT", "FULL_GRID",
    "KEY", "NAMED_GRIDS", "ROW_FLAGS", "add_flags", "assess", "disturbance_message",
    "disturbed", "run_differences",
    "LARGE_POINT", "MEMORY_RATIO_LIMIT", "MEMORY_TARGET_MIN_NEED", "OPS", "OTHER_LOAD_WARNING",
    "PEAK_FRACTION_LIMIT", "QUICK_GRID", "RATIO_LIMIT", "SMALL_POINT", "SMALL_RATIO_LIMIT",
    "BenchConfig", "BenchResult", "CpuShare", "Timing",
    "add_derived_columns", "beyond_matmuls", "compare_runs", "cpu_model", "dims_label",
    "epoch_batches", "evaluate_targets", "format_comparison", "format_result",
    "forward_flops", "load_config_file", "load_run", "machine_info", "make_timer",
    "matmul_peaks", "matmul_skeleton", "measure_alternating", "memory_need", "new_run_dir",
    "op_flops", "parse_dims_label", "peak_by_device_dtype", "peak_by_library_dtype",
    "peak_memory_numpy", "peak_memory_torch", "physical_cores", "run_bench", "save_run",
    "train_flops",
]

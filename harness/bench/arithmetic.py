"""Arithmetic of a benchmark: FLOP counts, the memory a training step needs, grid
labels, and the columns derived from the measured times (GFLOP/s, fractions of the
matmul peaks, ratios to torch, the split of a step into its matrix products and the
rest)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from harness.bench.config import BACKEND_LIBRARY


def forward_flops(dims: tuple[int, ...], n: int) -> int:
    """2·N·d_in·d_out per layer: the matmuls of one forward pass."""
    return sum(2 * n * a * b for a, b in zip(dims[:-1], dims[1:]))


def train_flops(dims: tuple[int, ...], n: int) -> int:
    """Forward plus backward (twice the forward, less the first layer's input gradient)."""
    f = forward_flops(dims, n)
    return 3 * f - 2 * n * dims[0] * dims[1]


def _layer_flops(spec, shape_in: tuple, shape_out: tuple, n: int) -> int:
    """2·N·in·out of a linear, 2·N·H_out·W_out·F·C·KH·KW of a conv2d (im2col's product)."""
    if spec.name == "linear":
        return 2 * n * shape_in[0] * shape_out[0]
    if spec.name == "conv2d":
        return 2 * n * math.prod(shape_out) * shape_in[0] * spec.args[1] ** 2
    return 0


def network_forward_flops(network, n: int) -> int:
    """The matrix products of one forward pass of a layer network."""
    return sum(_layer_flops(*layer, n) for layer in zip(network.layers, network.shapes_in,
                                                         network.shapes_out))


def network_train_flops(network, n: int) -> int:
    """Forward plus backward (twice the forward), less the first layer's input gradient."""
    layers = list(zip(network.layers, network.shapes_in, network.shapes_out))
    first = next(layer for layer in layers if layer[0].name in ("linear", "conv2d"))
    return 3 * network_forward_flops(network, n) - _layer_flops(*first, n)


def epoch_batches(n_samples: int, batch: int) -> list[int]:
    """Batch sizes of one epoch over ``n_samples`` (the last may be partial)."""
    return [min(batch, n_samples - s) for s in range(0, n_samples, batch)]


def op_flops(op: str, dims: tuple[int, ...], n: int, epoch_samples: int,
             network=None) -> int:
    """The FLOPs of ``op``: of the MLP of ``dims``, or of ``network`` (a resolved layer
    network on images, whose products are not those of its dims)."""
    if network is not None:
        if op == "forward":
            return network_forward_flops(network, n)
        if op in ("loss_and_grads", "train_step"):
            return network_train_flops(network, n)
        return sum(network_train_flops(network, b) for b in epoch_batches(epoch_samples, n))
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
    state = {"sgd": 1 if momentum else 0, "adam": 2, "adamw": 2,
             "rmsprop": 1 + (1 if momentum else 0), "adagrad": 1}.get(optimizer, 0)
    activations = n * sum(dims[1:])
    return (n_params * (2 + state) + activations) * np.dtype(dtype).itemsize


def network_memory_need(network, n: int, dtype: str, optimizer: str = "sgd",
                        momentum: float = 0.0) -> int:
    """:func:`memory_need` of a layer network: its parameters (gradients, optimizer state)
    and every layer's output, N·(sum of the flat widths) numbers (im2col's buffers are
    work memory, not counted as needed)."""
    n_params = sum(math.prod(shape) for shape in network.param_shapes.values())
    state = {"sgd": 1 if momentum else 0, "adam": 2, "adamw": 2,
             "rmsprop": 1 + (1 if momentum else 0), "adagrad": 1}.get(optimizer, 0)
    activations = n * sum(network.widths_out)
    return (n_params * (2 + state) + activations) * np.dtype(dtype).itemsize


def dims_label(dims: Iterable[int]) -> str:
    return "-".join(str(d) for d in dims)


def parse_dims_label(label: str) -> tuple[int, ...]:
    return tuple(int(t) for t in str(label).split("-"))



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


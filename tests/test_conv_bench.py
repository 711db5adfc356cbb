"""The benchmark times conv networks on images: the grid, the FLOP counts, the flags."""

from __future__ import annotations

import pytest

from harness.bench.arithmetic import (network_forward_flops, network_memory_need,
                                      network_train_flops)
from harness.bench.config import BenchConfig, layer_grid
from harness.errors import ConfigError
from harness.model.layer_spec import resolve

NET = "conv2d(8,3,padding=1),relu,maxpool2d(2),flatten,linear(10)"


def test_flops_count_the_convolutions_and_linears():
    net = resolve(NET, (1, 8, 8))
    n = 64
    conv = 2 * n * (8 * 8 * 8) * 1 * 3 * 3  # 2·N·(F·H_out·W_out)·C·KH·KW
    linear = 2 * n * 128 * 10
    assert network_forward_flops(net, n) == conv + linear
    assert network_train_flops(net, n) == 3 * (conv + linear) - conv  # no dx of the first
    params = 8 * 9 + 8 + 128 * 10 + 10
    assert network_memory_need(net, n, "float32", "adam") == (
        params * 4 + n * sum(net.widths_out)) * 4


def test_a_grid_of_images_and_its_refusals():
    grid = layer_grid(NET, 64, (64,), (1, 8, 8))
    assert grid == (((64, 512, 10), 64),)
    config = BenchConfig(grid=grid, layers=NET, input_shape=[1, 8, 8])
    assert config.input_shape == (1, 8, 8)
    spec = config.model_spec((64, 512, 10), "float32")
    assert spec.input_shape == (1, 8, 8) and spec.is_layered
    assert config.to_dict()["input_shape"] == [1, 8, 8]
    with pytest.raises(ConfigError, match="`input_shape` goes with `layers`"):
        BenchConfig(input_shape=(1, 8, 8))


def test_bench_flags_take_an_input_shape():
    from harness.cli import build_parser
    from harness.cli.bench import build_config

    def config(*flags):
        return build_config(build_parser().parse_args(["bench", *flags]))

    got = config("--layers", NET, "--input-shape", "1,8,8", "--batch-sizes", "32")
    assert got.grid == (((64, 512, 10), 32),) and got.input_shape == (1, 8, 8)
    with pytest.raises(ConfigError, match="`--input-shape` goes with --layers"):
        config("--input-shape", "1,8,8")
    with pytest.raises(ConfigError, match="not both"):
        config("--layers", NET, "--input-shape", "1,8,8", "--features", "64")
    with pytest.raises(ConfigError, match="three positive integers C,H,W, got 8,8"):
        config("--layers", NET, "--input-shape", "8,8")
    with pytest.raises(ConfigError, match=r"needs a \(C, H, W\) activation"):
        config("--layers", NET)


def test_a_tiny_run_times_both_backends_on_images():
    from harness.bench import run_bench

    config = BenchConfig(grid=layer_grid(NET, 64, (16,), (1, 8, 8)), layers=NET,
                         input_shape=(1, 8, 8), dtypes=("float32",), repeats=1,
                         min_time=0.005, ops=("forward", "train_step", "matmuls"),
                         peak_size=64, epoch_samples=32, threads=1)
    table = run_bench(config).table
    assert set(table["backend"]) == {"scratch", "torch"}
    assert set(table["op"]) == {"forward", "train_step"}  # no matmul skeleton for convs
    net = resolve(NET, (1, 8, 8))
    step = table[table["op"] == "train_step"]
    assert (step["gflop"] == network_train_flops(net, 16) / 1e9).all()
    assert (step["peak_mem_bytes"] > 0).all()

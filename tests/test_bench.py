"""`nn-harness bench` and harness.bench on a tiny grid: what is measured, saved,
compared and judged. Never a timing assertion: the numbers only have to be there."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest

from harness import bench
from harness.bench import BenchConfig
from harness.cli import main
from harness.errors import ConfigError

TINY = dict(grid=(((8, 6, 3), 5),), dtypes=("float32",), repeats=2, min_time=0.002,
            peak_size=64, epoch_samples=12, threads=1)


@pytest.fixture(scope="module")
def tiny_result():
    return bench.run_bench(BenchConfig(**TINY))


def test_flop_counts_follow_the_stated_rule():
    dims, n = (64, 32, 10), 64
    fwd = 2 * n * (64 * 32 + 32 * 10)
    assert bench.forward_flops(dims, n) == fwd
    # backward: twice the forward, less the first layer's input gradient
    assert bench.train_flops(dims, n) == fwd + 2 * fwd - 2 * n * 64 * 32
    assert bench.epoch_batches(1797, 1024) == [1024, 773]
    assert bench.op_flops("epoch", dims, 64, 130) == 2 * bench.train_flops(dims, 64) + \
        bench.train_flops(dims, 2)
    assert bench.op_flops("loss_and_grads", dims, n, 1797) == bench.train_flops(dims, n)


def test_memory_need_counts_params_grads_state_and_activations():
    dims, n = (4, 3, 2), 5
    p = 4 * 3 + 3 + 3 * 2 + 2
    acts = n * (3 + 2)
    assert bench.memory_need(dims, n, "float64") == (2 * p + acts) * 8
    assert bench.memory_need(dims, n, "float32", "adam") == (4 * p + acts) * 4
    assert bench.memory_need(dims, n, "float32", "sgd", momentum=0.9) == (3 * p + acts) * 4


def test_tiny_run_has_every_row_and_column(tiny_result):
    t = tiny_result.table
    assert len(t) == 2 * 4  # two backends, four operations
    assert set(t["op"]) == set(bench.OPS)
    assert set(t["backend"]) == {"scratch", "torch"}
    assert (t["median_s"] > 0).all() and (t["iqr_s"] >= 0).all()
    assert (t["n_blocks"] >= 2).all()  # at least one block per round
    torch_rows = t[t["backend"] == "torch"]
    np.testing.assert_allclose(torch_rows["ratio_to_torch_cpu"], 1.0)
    assert np.isfinite(t["ratio_to_torch_cpu"]).all()
    assert np.isfinite(t["gflops"]).all() and np.isfinite(t["fraction_of_peak"]).all()
    step = t[t["op"] == "train_step"]
    assert (step["peak_mem_bytes"] > 0).all()
    assert (step["need_mem_bytes"] == bench.memory_need((8, 6, 3), 5, "float32")).all()
    assert t[t["op"] != "train_step"]["peak_mem_bytes"].isna().all()
    assert (t["threads"] == 1).all()


def test_tiny_run_records_the_machine_and_the_matmul_peaks(tiny_result):
    m = tiny_result.machine
    for key in ("cpu_model", "logical_cores", "numpy_blas", "numpy_blas_core_type",
                "numpy_version", "torch_version", "threads", "date",
                "other_processes_cpu_share"):
        assert key in m
    assert m["threads"] == 1
    libs = {(p["library"], p["dtype"]) for p in tiny_result.peaks}
    assert libs == {("numpy", "float32"), ("torch", "float32")}
    assert all(p["gflops"] > 0 for p in tiny_result.peaks)
    assert tiny_result.targets  # the ratio target applies to every grid point
    assert all(t["limit"] == 1.0 for t in tiny_result.targets)


def test_targets_are_judged_on_the_issue_points():
    import pandas as pd

    rows = []
    for dims, batch, ratio, frac, mem, need in [
            ("64-32-10", 64, 0.2, 0.1, 1.0e5, 5e4),
            ("2048-2048-2048-10", 1024, 0.9, 0.91, 1.1e8, 1e8),
            ("784-256-10", 128, 1.1, 0.5, 5e5, 2e5)]:
        rows.append(dict(backend="scratch", device="cpu", dims=dims, batch_size=batch,
                         dtype="float32", op="train_step", ratio_to_torch_cpu=ratio,
                         fraction_of_peak=frac, mem_ratio=mem / need, need_mem_bytes=need))
    targets = bench.evaluate_targets(pd.DataFrame(rows))
    small = next(t for t in targets if t["point"].startswith("64-32-10") and "time" in t["target"])
    assert small["limit"] == 0.25 and small["passed"]
    mid = next(t for t in targets if t["point"].startswith("784") and "time" in t["target"])
    assert mid["limit"] == 1.0 and not mid["passed"]
    peak = next(t for t in targets if "peak" in t["target"] and "GFLOP" in t["target"])
    assert peak["passed"] and peak["limit"] == 0.9
    memory = [t for t in targets if "memory" in t["target"]]
    assert len(memory) == 1 and memory[0]["point"].startswith("2048")  # only big needs
    assert memory[0]["passed"]


def test_runs_are_saved_in_new_folders_and_never_overwritten(tiny_result, tmp_path):
    a = bench.save_run(tiny_result, tmp_path, plots=False)
    b = bench.save_run(tiny_result, tmp_path, plots=False)
    assert a != b and a.parent == b.parent == tmp_path
    for folder in (a, b):
        assert (folder / "bench.csv").is_file() and (folder / "bench.json").is_file()
    data = json.loads((a / "bench.json").read_text())
    assert data["format"] == bench.FORMAT
    assert {"machine", "config", "matmul_peaks", "targets", "rows", "times_s"} <= set(data)
    loaded = bench.load_run(a)
    assert list(loaded.table.columns) == list(tiny_result.table.columns)
    assert len(loaded.table) == len(tiny_result.table)
    import pandas as pd

    csv = pd.read_csv(a / "bench.csv")
    assert list(csv.columns) == list(tiny_result.table.columns)


def test_run_folder_names_are_unique_within_the_same_second(tmp_path):
    now = dt.datetime(2024, 5, 1, 12, 0, 0)
    first = bench.new_run_dir(tmp_path, now)
    second = bench.new_run_dir(tmp_path, now)
    assert first.name == "bench-20240501-120000"
    assert second.name == "bench-20240501-120000-2"


def test_compare_lines_up_rows_and_reports_the_change(tiny_result):
    import pandas as pd

    new = bench.BenchResult(tiny_result.table.copy(), {}, {}, [])
    new.table["median_s"] = new.table["median_s"] * 2
    new.table["iqr_s"] = 0.0
    old = bench.BenchResult(tiny_result.table.copy(), {}, {}, [])
    old.table["iqr_s"] = 0.0
    extra = old.table.iloc[:1].copy()
    extra["dims"] = "1-1"
    old.table = pd.concat([old.table, extra], ignore_index=True)
    cmp = bench.compare_runs(old, new)
    assert len(cmp) == len(tiny_result.table) + 1
    both = cmp[cmp["verdict"] != "only one"]
    np.testing.assert_allclose(both["change"], 1.0)
    assert (both["verdict"] == "slower").all()
    assert (cmp["verdict"] == "only one").sum() == 1
    text = bench.format_comparison(cmp)
    assert "+100.0%" in text and "only one" in text


def test_plots_are_written(tiny_result, tmp_path):
    from harness.plots.bench import plot_all

    paths = plot_all(tiny_result, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["gflops.png", "memory.png", "ratio.png", "time_vs_batch.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_text_report_names_ratios_peaks_and_memory(tiny_result):
    text = bench.format_result(tiny_result)
    assert "matmul peak" in text and "x torch" in text and "peak memory" in text
    assert "targets:" in text


def test_config_file_sets_the_grid_and_flags_win(tmp_path):
    from harness.cli import build_parser
    from harness.cli.bench import build_config

    path = tmp_path / "bench.toml"
    path.write_text('dtypes = ["float64"]\nrepeats = 3\n'
                    '[[grid]]\ndims = [8, 4, 3]\nbatch_sizes = [5, 7]\n'
                    '[[grid]]\ndims = [6, 3]\nbatch_sizes = [2]\n')
    kw = bench.load_config_file(path)
    assert kw["grid"] == (((8, 4, 3), 5), ((8, 4, 3), 7), ((6, 3), 2))
    assert kw["dtypes"] == ("float64",) and kw["repeats"] == 3
    args = build_parser().parse_args(["bench", "--config", str(path), "--repeats", "2"])
    config = build_config(args)
    assert config.repeats == 2 and config.dtypes == ("float64",) and len(config.grid) == 3
    args = build_parser().parse_args(["bench", "--dims", "8,4,3", "--dims", "6,3",
                                      "--batch-sizes", "5,9", "--quick"])
    config = build_config(args)
    assert config.grid == (((8, 4, 3), 5), ((8, 4, 3), 9), ((6, 3), 5), ((6, 3), 9))
    assert config.repeats == BenchConfig.quick().repeats
    args = build_parser().parse_args(["bench", "--grid", "8,4,3:5,9", "--grid", "6,3:2"])
    assert build_config(args).grid == (((8, 4, 3), 5), ((8, 4, 3), 9), ((6, 3), 2))


@pytest.mark.parametrize("text, message", [
    ('colour = "blue"\n', "unknown key 'colour'"),
    ('[[grid]]\ndims = [4, 3]\n', "batch_sizes"),
    ('dtypes = [', "cannot read"),
])
def test_bad_config_files_are_refused(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        bench.load_config_file(path)


@pytest.mark.parametrize("kw, message", [
    (dict(grid=()), "empty"),
    (dict(grid=(((8,), 4),)), "two positive"),
    (dict(grid=(((8, 3), 0),)), "batch size"),
    (dict(dtypes=("float16",)), "dtype"),
    (dict(ops=("backward",)), "op must be"),
    (dict(threads=0), "threads"),
    (dict(repeats=0), "repeats"),
    (dict(min_time=-1.0), "min_time"),
    (dict(device="tpu"), "device"),
])
def test_bad_configs_are_refused(kw, message):
    with pytest.raises(ConfigError, match=message):
        BenchConfig(**kw)


CLI_TINY = ["bench", "--grid", "8,6,3:5", "--dtypes", "float32", "--repeats", "1",
            "--min-time", "0.002", "--peak-size", "64", "--epoch-samples", "12",
            "--threads", "1", "--quiet", "--no-plots", "--ops", "train_step,forward"]


def test_cli_runs_saves_and_compares(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(CLI_TINY + ["--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "train_step" in text and "saved:" in text
    assert main(CLI_TINY + ["--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == bench.FORMAT and len(data["rows"]) == 4
    runs = sorted(out.iterdir())
    assert len(runs) == 2
    assert main(["bench", "--compare", str(runs[0] / "bench.json"),
                 str(runs[1] / "bench.json")]) == 0
    text = capsys.readouterr().out
    assert "verdict" in text and "train_step" in text and "%" in text


@pytest.mark.parametrize("argv, message", [
    (["bench", "--grid", "8,6,3"], "DIMS:BATCH_SIZES"),
    (["bench", "--dtypes", "float16", "--no-save"], "dtype"),
    (["bench", "--config", "/nonexistent/bench.toml"], "does not exist"),
    (["bench", "--batch-sizes", "4"], "goes with --dims"),
    (["bench", "--grid", "8,3:4", "--dims", "8,3"], "either"),
    (["bench", "--compare", "/nonexistent/a.json", "/nonexistent/b.json"], "does not exist"),
    (["bench", "--backends", "nope"], "unknown backend"),
])
def test_cli_refuses_bad_input_with_exit_code_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv))
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_cuda_is_refused_cleanly_without_a_gpu(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(CLI_TINY + ["--device", "cuda", "--no-save"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.cuda
def test_cuda_rows_beside_the_cpu_ones(tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    result = bench.run_bench(BenchConfig(**TINY, device="cuda"))
    t = result.table
    cuda = t[t["device"] == "cuda"]
    assert set(cuda["backend"]) == {"torch"} and len(cuda) == 4
    assert (cuda["median_s"] > 0).all() and np.isfinite(cuda["ratio_to_torch_cpu"]).all()
    assert (cuda[cuda["op"] == "train_step"]["peak_mem_bytes"] > 0).all()
    assert any(p["device"] == "cuda" for p in result.peaks)
    assert "gpu" in result.machine
    assert bench.save_run(result, tmp_path).is_dir()


def test_timing_uses_torch_benchmark_and_alternates():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    rounds = []
    out = bench.measure_alternating(fns, threads=1, repeats=3, min_time=1e-4,
                                    before_round=rounds.append)
    assert rounds == ["a", "b", "b", "a", "a", "b"]  # alternating order, every round
    assert set(out) == {"a", "b"}
    assert all(t.median > 0 and t.iqr >= 0 and len(t.times) >= 3 for t in out.values())
    assert math.isfinite(out["a"].q75)

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
    assert len(t) == 2 * 5  # two backends, five operations
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
    a = bench.save_run(tiny_result, tmp_path)
    b = bench.save_run(tiny_result, tmp_path)
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
    # one batch size per network: bars per grid point, no plot against batch size
    assert names == ["breakdown.png", "gflops.png", "memory.png", "ratio.png", "times.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def _legend_labels(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend()
            for t in ax.get_legend().get_texts()]


def test_time_against_batch_size_only_for_networks_with_several(tiny_result, tmp_path):
    from harness.plots.bench import plot_time_vs_batch

    assert plot_time_vs_batch(tiny_result.table, tmp_path / "t.png") is None
    two = tiny_result.table.copy()
    more = two.copy()
    more["batch_size"] = 9
    import pandas as pd

    path = plot_time_vs_batch(pd.concat([two, more]), tmp_path / "t.png")
    assert path is not None and path.exists()


def test_the_ratio_plot_shows_the_target_only_when_asked(tiny_result):
    from harness.plots.bench import ratio_figure

    assert not any("target" in t for t in _legend_labels(ratio_figure(tiny_result.table)))
    assert any("target" in t for t in
               _legend_labels(ratio_figure(tiny_result.table, targets=True)))


def test_a_bar_above_the_peak_is_marked(tiny_result):
    from harness.plots.bench import gflops_figure

    t = tiny_result.table.copy()
    peaks = [dict(p, gflops=1e-6) for p in tiny_result.peaks]  # every bar beats it
    fig = gflops_figure(t, peaks)
    texts = [x.get_text() for ax in fig.axes for x in ax.texts]
    assert any(x.startswith("above peak") for x in texts)
    assert any("matmul peak" in x for x in _legend_labels(fig))
    fig = gflops_figure(t, [dict(p, gflops=1e9) for p in tiny_result.peaks])
    assert not [x for ax in fig.axes for x in ax.texts if "above peak" in x.get_text()]


def test_text_report_names_ratios_peaks_and_memory(tiny_result):
    text = bench.format_result(tiny_result)
    assert "matmul peak" in text and "x torch" in text and "peak memory" in text
    # the scratch backend's own goals are the project's, shown only when asked for
    assert "target" not in text and "FAIL" not in text
    assert "targets of the scratch backend" in bench.format_result(tiny_result, targets=True)


def test_unreliable_rows_are_flagged_and_a_disturbed_run_warned_about(tiny_result):
    import copy

    result = copy.deepcopy(tiny_result)
    result.machine["other_processes_cpu_share"] = 0.714
    t = result.table
    t.loc[0, "iqr_s"] = 2 * t.loc[0, "median_s"]
    t.loc[1, "fraction_of_peak"] = 3.52
    assert bench.quality.row_flags(t.loc[0]) == ["noisy"]
    assert "above peak" in bench.quality.row_flags(t.loc[1])
    q = bench.assess(result)
    assert q["disturbed"] and q["other_processes_cpu_share"] == 0.714
    assert q["n_noisy"] >= 1 and q["n_above_peak"] >= 1
    text = bench.format_result(result)
    assert "71% of the machine's CPU" in text and "disturbed" in text
    assert "flag 'noisy'" in text and "flag 'above peak'" in text
    assert result.to_dict()["quality"]["disturbed"] is True
    assert "targets" not in result.to_dict(targets=False)
    result.machine["other_processes_cpu_share"] = 0.01
    assert not bench.assess(result)["disturbed"]
    assert "timings are disturbed" not in bench.format_result(result)


def test_compare_names_what_differs_between_the_runs(tiny_result):
    import copy

    old, new = copy.deepcopy(tiny_result), copy.deepcopy(tiny_result)
    for r in (old, new):
        r.machine["other_processes_cpu_share"] = 0.0
    assert bench.run_differences(old, new) == []
    new.config["threads"], new.config["epoch_samples"] = 2, 1797
    new.machine["other_processes_cpu_share"] = 0.5
    diff = bench.run_differences(old, new)
    assert "threads: 1 (old) vs 2 (new)" in diff
    assert "epoch samples: 12 (old) vs 1797 (new)" in diff
    assert any("new run was disturbed" in d for d in diff)
    text = bench.format_comparison(bench.compare_runs(old, new), diff)
    assert text.startswith("warning: the runs differ") and "threads: 1 (old) vs 2" in text


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
    assert "targets" not in data  # the project's goals only with --targets
    # a run with other settings: the comparison says what differs
    assert main(CLI_TINY + ["--out", str(out), "--epoch-samples", "7"]) == 0
    capsys.readouterr()
    third = sorted(out.iterdir())[-1]
    assert main(["bench", "--compare", str(runs[0] / "bench.json"),
                 str(third / "bench.json")]) == 0
    assert "epoch samples: 12 (old) vs 7 (new)" in capsys.readouterr().out


def test_cli_shows_targets_only_when_asked(capsys):
    assert main(CLI_TINY + ["--no-save"]) == 0
    assert "target" not in capsys.readouterr().out
    assert main(CLI_TINY + ["--no-save", "--targets"]) == 0
    assert "targets of the scratch backend" in capsys.readouterr().out
    assert main(CLI_TINY + ["--no-save", "--json"]) == 0
    assert "targets" not in json.loads(capsys.readouterr().out)
    assert main(CLI_TINY + ["--no-save", "--json", "--strict"]) in (0, 1)
    assert "targets" in json.loads(capsys.readouterr().out)  # --strict implies --targets


def test_named_grids_and_a_small_default():
    from harness.cli import build_parser
    from harness.cli.bench import build_config

    assert build_config(build_parser().parse_args(["bench"])).grid == bench.DEFAULT_GRID
    assert max(max(d) for d, _ in bench.DEFAULT_GRID) <= 1024
    full = build_config(build_parser().parse_args(["bench", "--grid", "full"])).grid
    assert full == bench.FULL_GRID and ((2048, 2048, 2048, 10), 1024) in full


def test_the_profiler_writes_nothing_to_stderr(capfd):
    from harness.bench.timing import peak_memory_torch
    from harness.model.registry import make_backend
    from harness.model.specs import ModelSpec, OptimizerSpec

    model = make_backend("torch", ModelSpec((8, 6, 3)), OptimizerSpec("sgd", lr=0.1, weight_decay=0.0))
    x = np.random.default_rng(0).standard_normal((5, 8))
    y = np.arange(5) % 3
    capfd.readouterr()
    assert peak_memory_torch(model, x, y)["peak_bytes"] > 0
    err = capfd.readouterr().err
    assert "USDT" not in err and "CPUAllocator" not in err and "profiler" not in err


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
    assert set(cuda["backend"]) == {"torch"} and len(cuda) == 5
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


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("dims", [(8, 6, 3), (5, 7, 4, 2), (4, 3)])
def test_matmul_skeleton_does_the_matrix_products_of_a_train_step(library, dims, monkeypatch):
    """Its products add up to train_flops, by the stated rule, and each has the shapes
    of one of the step's: x W, a^T dz, dz W^T."""
    import torch

    n = 5
    seen = []
    module = np if library == "numpy" else torch
    real = module.matmul

    def recording(a, b, out=None):
        seen.append((tuple(a.shape), tuple(b.shape), tuple(out.shape)))
        return real(a, b, out=out)

    monkeypatch.setattr(module, "matmul", recording)
    bench.matmul_skeleton(library, dims, n, "float32")()
    flops = sum(2 * a[0] * a[1] * b[1] for a, b, _ in seen)
    assert flops == bench.train_flops(dims, n)
    layers = list(zip(dims[:-1], dims[1:]))
    expected = [((n, i), (i, o), (n, o)) for i, o in layers]
    for k, (i, o) in reversed(list(enumerate(layers))):
        expected.append(((i, n), (n, o), (i, o)))
        if k > 0:
            expected.append(((n, o), (o, i), (n, i)))
    assert seen == expected


def test_train_step_is_split_into_its_matmuls_and_the_rest():
    import pandas as pd

    base = dict(device="cpu", dims="8-6-3", batch_size=5, dtype="float32")
    table = pd.DataFrame([
        dict(base, backend="scratch", op="train_step", median_s=3.0e-3),
        dict(base, backend="scratch", op="matmuls", median_s=2.0e-3),
        dict(base, backend="torch", op="train_step", median_s=4.0e-3),
        dict(base, backend="torch", op="matmuls", median_s=1.5e-3),
        dict(base, backend="scratch", op="forward", median_s=1.0e-3),
    ])
    split = bench.beyond_matmuls(table).set_index("backend")
    assert split.loc["scratch", "rest_s"] == pytest.approx(1.0e-3)
    assert split.loc["torch", "rest_s"] == pytest.approx(2.5e-3)
    from harness.bench.format import _beyond_matmuls

    text = "\n".join(_beyond_matmuls(table))
    assert "3 ms =      2 ms +      1 ms" in text
    assert bench.beyond_matmuls(table[table["op"] != "matmuls"]).empty


def test_train_step_and_its_matmuls_are_timed_in_the_same_rounds(monkeypatch):
    from harness.bench import timing

    groups = []
    real = timing.measure_alternating

    def recording(fns, **kw):
        groups.append(sorted(fns))
        return real(fns, **kw)

    monkeypatch.setattr(timing, "measure_alternating", recording)
    bench.run_bench(BenchConfig(**(TINY | dict(ops=("train_step", "matmuls", "forward")))))
    point_groups = [g for g in groups if any(" " in name for name in g)]  # not the peaks
    assert ["scratch matmuls", "scratch train_step", "torch matmuls",
            "torch train_step"] in point_groups
    assert ["scratch forward", "torch forward"] in point_groups


def test_each_backend_is_also_judged_against_its_own_librarys_peak(tiny_result):
    t = tiny_result.table
    peaks = {(p["library"], p["dtype"]): p["gflops"] for p in tiny_result.peaks}
    scratch, torch_rows = t[t["backend"] == "scratch"], t[t["backend"] == "torch"]
    assert (scratch["library_peak_gflops"] == peaks[("numpy", "float32")]).all()
    assert (torch_rows["library_peak_gflops"] == peaks[("torch", "float32")]).all()
    np.testing.assert_allclose(t["fraction_of_library_peak"],
                               t["gflops"] / t["library_peak_gflops"])
    assert (t["peak_gflops"] == max(peaks.values())).all()  # the machine's: the best one


def test_the_peak_target_names_the_fraction_of_the_own_library_peak():
    import pandas as pd

    row = dict(backend="scratch", device="cpu", dims="2048-2048-2048-10", batch_size=1024,
               dtype="float32", op="train_step", ratio_to_torch_cpu=1.05,
               fraction_of_peak=0.84, fraction_of_library_peak=0.88, mem_ratio=1.0,
               need_mem_bytes=1e8)
    peak = next(t for t in bench.evaluate_targets(pd.DataFrame([row]))
                if "GFLOP" in t["target"])
    assert peak["value"] == 0.84 and not peak["passed"]
    assert peak["note"] == "0.880 of the peak of its own library (numpy)"


def test_bench_optimizer_takes_momentum_and_weight_decay():
    from harness.cli import build_parser
    from harness.cli.bench import build_config

    args = build_parser().parse_args(["bench", "--optimizer", "sgd", "--momentum", "0.9",
                                      "--weight-decay", "0.01", "--lr", "0.1"])
    spec = build_config(args).optimizer_spec()
    assert (spec.name, spec.lr, spec.momentum, spec.weight_decay) == ("sgd", 0.1, 0.9, 0.01)
    with pytest.raises(ConfigError, match="weight_decay"):
        BenchConfig(weight_decay=-1.0)
    with pytest.raises(ConfigError, match="momentum"):
        BenchConfig(optimizer="sgd", momentum=1.5)


def test_targets_say_how_much_of_torchs_step_the_matrix_products_alone_take():
    import pandas as pd

    base = dict(device="cpu", dims="784-1024-1024-10", batch_size=512, dtype="float32",
                fraction_of_peak=0.5, mem_ratio=math.nan, need_mem_bytes=math.nan)
    table = pd.DataFrame([
        dict(base, backend="scratch", op="train_step", median_s=22e-3, ratio_to_torch_cpu=1.1),
        dict(base, backend="torch", op="train_step", median_s=20e-3, ratio_to_torch_cpu=1.0),
        dict(base, backend="scratch", op="matmuls", median_s=19.6e-3, ratio_to_torch_cpu=1.2),
    ])
    (target,) = [t for t in bench.evaluate_targets(table) if "time" in t["target"]]
    assert not target["passed"]
    assert target["note"] == "its matrix products alone take 0.980 of torch's train_step"


def _noisy_split_table():
    import pandas as pd

    base = dict(device="cpu", dims="8-6-3", batch_size=5, dtype="float32")
    return pd.DataFrame([
        # the matmuls alone timed longer than the whole step: a negative difference
        dict(base, backend="scratch", op="train_step", median_s=2.0e-3, iqr_s=1e-4),
        dict(base, backend="scratch", op="matmuls", median_s=2.5e-3, iqr_s=1e-4),
        dict(base, backend="torch", op="train_step", median_s=4.0e-3, iqr_s=1e-4),
        dict(base, backend="torch", op="matmuls", median_s=1.5e-3, iqr_s=1e-4),
        # a second point whose step is noisy (IQR above its median)
        dict(base, batch_size=9, backend="scratch", op="train_step", median_s=3e-3, iqr_s=4e-3),
        dict(base, batch_size=9, backend="scratch", op="matmuls", median_s=1e-3, iqr_s=1e-4),
        dict(base, batch_size=9, backend="torch", op="train_step", median_s=4e-3, iqr_s=1e-4),
        dict(base, batch_size=9, backend="torch", op="matmuls", median_s=1e-3, iqr_s=1e-4),
    ])


def test_a_split_the_timings_cannot_resolve_is_never_shown_as_a_split():
    from harness.bench.format import _beyond_matmuls
    from harness.plots.bench import breakdown_figure

    table = _noisy_split_table()
    split = bench.beyond_matmuls(table)
    assert split["resolved"].tolist() == [False, True, False, True]
    text = "\n".join(_beyond_matmuls(table))
    assert "-" not in text.split("median times):")[1].replace("8-6-3", "")  # no negative time
    assert text.count("not split") == 2
    fig = breakdown_figure(table)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if p.get_height() > 0]
    # each noisy point is one empty outline as tall as its whole step over torch's
    outlines = [p for p in bars if not p.get_fill()]
    heights = sorted(round(p.get_height(), 6) for p in outlines)
    assert heights == [0.5, 0.75]
    # nothing of the noisy points is stacked: the filled bars are torch's two points
    filled = [p for p in ax.patches if p.get_fill()]
    assert len(filled) == 4  # torch: matmuls + rest at two points
    assert sum("noisy" in t.get_text() for t in ax.texts) == 2


def test_figures_of_a_disturbed_run_carry_the_warning(tiny_result, tmp_path, monkeypatch):
    import dataclasses

    from harness.plots import bench as plots

    seen = []
    real = plots.save

    def recording(fig, path, *, warning=None):
        real(fig, path, warning=warning)
        seen.append((str(path), [t.get_text() for t in fig.texts]))

    monkeypatch.setattr(plots, "save", recording)
    disturbed = dataclasses.replace(tiny_result, machine=dict(
        tiny_result.machine, other_processes_cpu_share=0.6))
    plots.plot_all(disturbed, tmp_path / "a")
    assert seen and all(any("other processes used 60%" in t for t in texts)
                        for _, texts in seen)
    seen.clear()
    quiet = dataclasses.replace(tiny_result, machine=dict(
        tiny_result.machine, other_processes_cpu_share=0.0))
    plots.plot_all(quiet, tmp_path / "b")
    assert seen and not any("warning" in t for _, texts in seen for t in texts)

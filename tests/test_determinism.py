"""Determinism: the same command and seed give the same bits, run after run, process after process.

Scratch and torch results are bit-identical between runs (for the same thread
count); reports are identical apart from timings and timestamps. The runs compared
here happen in separate processes with different hash seeds, so that nothing may
depend on the order of a set or a dict built from one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main

ROOT = Path(__file__).resolve().parents[1]

TRAIN = ["train", "--dataset", "wine", "--dims", "13,8,3", "--epochs", "3", "--batch-size",
         "32", "--dtype", "float32", "--optimizer", "adamw", "--lr", "0.01", "--quiet",
         "--threads", "1"]
REPORT = ["report", "--dataset", "iris", "--dims", "4,8,3", "--epochs", "2", "--folds", "2",
          "--samples", "24", "--max-entries", "8", "--no-bench", "--quiet"]

#: what may differ between two runs of a report: timings and timestamps
TIMING_KEYS = {"created", "elapsed_s", "seconds", "stage_seconds", "date",
               "load_average_before", "load_average_after", "other_processes_cpu_share"}
_DURATION = re.compile(r"\b\d+(?:\.\d+)?(?:e-?\d+)? ?(?:s|ms|µs|us|ns)\b")
_STAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[+-]\d\d:\d\d| UTC)?")
_LOAD = re.compile(r"(<th>load average</th><td>)[^<]*")


def cli_process(args, cwd, hash_seed):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": str(hash_seed)}
    proc = subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def without_timings(obj):
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items()
                if k not in TIMING_KEYS and not k.startswith("train_time_s")
                and not (k.startswith("t_") and k.endswith("_s"))}  # a check's duration
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def masked(text: str) -> str:
    text = _LOAD.sub(r"\1<load>", text)  # the machine's load average, a measurement
    return _DURATION.sub("<time>", _STAMP.sub("<stamp>", text))


def test_train_is_bit_identical_across_processes(tmp_path, monkeypatch, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    out_a = cli_process([*TRAIN, "--out", "run"], a, 1).stdout
    monkeypatch.chdir(b)
    assert main([*TRAIN, "--out", "run"]) == 0  # and once in this process
    assert capsys.readouterr().out == out_a
    first, second = tree(a / "run"), tree(b / "run")
    assert sorted(first) == ["accuracy.png", "differences.png", "history.csv", "loss.png",
                             "summary.json"]
    assert first == second  # every byte, the figures included
    history = pd.read_csv(a / "run" / "history.csv")
    assert history["value"].notna().all() and len(history) > 50


def test_a_report_is_identical_apart_from_timings_and_timestamps(tmp_path, monkeypatch,
                                                                  capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    cli_process([*REPORT, "--out", "r"], a, 3)
    monkeypatch.chdir(b)
    assert main([*REPORT, "--out", "r"]) == 0  # and once in this process
    capsys.readouterr()
    first, second = tree(a / "r"), tree(b / "r")
    assert sorted(first) == sorted(second)
    for name in first:
        x, y = first[name], second[name]
        if name == "results.json":
            x, y = (without_timings(json.loads(v)) for v in (x, y))
            assert x == y
        elif name.endswith(".csv") and b"train_time_s" in x:
            x, y = (pd.read_csv(p / "r" / name) for p in (a, b))
            keep = [c for c in x.columns if not c.startswith("train_time_s")]
            pd.testing.assert_frame_equal(x[keep], y[keep], check_exact=True)
        elif name.endswith((".md", ".html")):
            assert masked(x.decode()) == masked(y.decode()), name
        else:
            assert x == y, name
    doc = json.loads(first["results.json"])
    assert doc["machine"]["numpy_blas"] == json.loads(second["results.json"])["machine"][
        "numpy_blas"]


def test_the_masks_hide_only_timings():
    text = "took 3.91 s, 38.5 ms, 593 µs; 4 steps, 50 epochs, made 2026-11-30 09:51:24 UTC"
    assert masked(text) == ("took <time>, <time>, <time>; 4 steps, 50 epochs, made <stamp>")
    assert masked("<th>load average</th><td>[0.5, 1.0, 1.1]</td>") == \
        "<th>load average</th><td><load></td>"
    assert without_timings({"a": 1, "seconds": 2, "b": [{"train_time_s_mean": 3, "c": 4}]}) \
        == {"a": 1, "b": [{"c": 4}]}


def test_torch_models_run_with_deterministic_algorithms():
    import torch

    from harness.model.registry import make_backend
    from harness.model.specs import ModelSpec

    torch.use_deterministic_algorithms(False)
    make_backend("torch", ModelSpec((3, 4, 2)))
    assert torch.are_deterministic_algorithms_enabled()
    assert os.environ.get("CUBLAS_WORKSPACE_CONFIG") in (":4096:8", ":16:8")


def test_the_same_seed_gives_the_same_bits_in_process_for_both_backends():
    import numpy as np

    from harness.model.registry import make_backend
    from harness.model.specs import ModelSpec, OptimizerSpec

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(33, 6)), rng.integers(0, 3, 33)
    for name in ("scratch", "torch"):
        runs = []
        for _ in range(2):
            model = make_backend(name, ModelSpec((6, 9, 3), seed=4),
                                 OptimizerSpec("adam", lr=0.01, weight_decay=1e-4))
            losses = [model.train_step(x, y) for _ in range(5)]
            runs.append((losses, model.get_params()))
        assert runs[0][0] == runs[1][0], name
        for key in runs[0][1]:
            assert runs[0][1][key].tobytes() == runs[1][1][key].tobytes(), (name, key)


def machine_facts_of_a_new_process() -> dict:
    code = ("import json; from harness.runtime.machine import machine_info; "
            "print(json.dumps(machine_info(1)))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    return without_timings(json.loads(proc.stdout))


def test_a_dask_cluster_leaves_the_environment_of_later_processes_as_it_was():
    """A sweep's cluster sets OMP_NUM_THREADS=1 and the like for its workers in this
    process; once closed, a process started here must see the machine as before."""
    pytest.importorskip("distributed")
    from distributed import Client

    from harness.sweep import start_local_cluster

    environ, facts = dict(os.environ), machine_facts_of_a_new_process()
    with start_local_cluster(1) as cluster, Client(cluster) as client:
        client.restart()  # a worker spawned again sets them again
    assert dict(os.environ) == environ
    assert machine_facts_of_a_new_process() == facts

"""`nn-harness sweep`: grid files, hashing, the task, the results folder, Dask execution,
error rows, interruption and resumption, the summary and the command line.

The Dask tests share one LocalCluster of two single-threaded worker processes on
loopback, started once for the module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.errors import ConfigError
from harness.sweep import (
    VOLATILE_COLUMNS,
    ResultsStore,
    available_checks,
    config_hash,
    load_plan,
    plan_from_dict,
    run_config,
    run_sweep,
    start_local_cluster,
    summarize,
)
from scratch import MLP
from scratch.optimizers import make_optimizer

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------ backends for the tests
class FaultyMLP(MLP):
    """The scratch MLP behind the plug-in constructor, with faults chosen by the seed.

    seed 6: the constructor raises. seed 7: ``loss_and_grads`` raises. seed 8: the process
    dies when constructed inside a Dask worker (never in the test process). seed 9: the
    gradient of ``b0`` is halved, so the equivalence check and the gradient check fail.
    seed 10: from the third call on, ``train_step`` takes its step twice, so the training
    trajectories part after step 3.
    Any other seed: correct.
    """

    def __init__(self, spec, optimizer):
        if spec.seed == 6:
            raise RuntimeError("injected construction fault")
        if spec.seed == 8 and _in_dask_worker():
            os._exit(17)
        super().__init__(spec.dims, spec.activation, spec.dtype, spec.seed,
                         optimizer=make_optimizer(**optimizer.to_dict()))
        self.fault = spec.seed

    def loss_and_grads(self, x, y):
        if self.fault == 7:
            raise RuntimeError("injected fault for seed 7")
        loss, grads = super().loss_and_grads(x, y)
        if self.fault == 9:
            grads["b0"] = grads["b0"] * 0.5
        return loss, grads

    def train_step(self, x, y):
        self.steps = getattr(self, "steps", 0) + 1
        loss = super().train_step(x, y)
        if self.fault == 10 and self.steps >= 3:
            super().train_step(x, y)
        return loss


class SlowMLP(MLP):
    """The scratch MLP, 0.4 s slow to construct: keeps a sweep running long enough to kill."""

    def __init__(self, spec, optimizer):
        time.sleep(0.4)
        super().__init__(spec.dims, spec.activation, spec.dtype, spec.seed,
                         optimizer=make_optimizer(**optimizer.to_dict()))


def _in_dask_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


# ------------------------------------------------------------------------ grids
def tiny(sweep=None, **grid):
    """A grid document: iris, one tiny hidden layer, few rows; keyword args override."""
    base_sweep = {"check_samples": 16, "train_samples": 32, "checks": ["equivalence"]}
    base_grid = {"dataset": ["iris"], "hidden": [[3]], "optimizer": ["sgd"], "lr": [0.05]}
    return {"sweep": {**base_sweep, **(sweep or {})}, "grid": {**base_grid, **grid}}


def strip(table: pd.DataFrame) -> pd.DataFrame:
    """A results table without the columns that differ between runs (timings, ids)."""
    return table.drop(columns=list(VOLATILE_COLUMNS)).reset_index(drop=True)


# ===================================================================== plan (no Dask)
def test_grid_expands_every_combination_with_optimizer_specific_factors():
    plan = plan_from_dict(tiny(
        activation=["relu", "tanh"], dtype=["float32", "float64"], optimizer=["sgd", "adam"],
        lr=[0.01, 0.1], momentum=[0.0, 0.9], nesterov=[False, True],
        betas=[[0.9, 0.999], [0.8, 0.99]], seed=[0, 1]))
    # sgd: lr 2 x (momentum, nesterov) pairs 3 (nesterov needs momentum > 0);
    # adam: lr 2 x betas 2 x eps 1. Times activation 2, dtype 2, seed 2.
    assert len(plan) == 2 * 2 * (2 * 3 + 2 * 2) * 2 == 80
    assert plan.grid_size == 80 and len(set(plan.hashes)) == 80
    sgd = [c for c in plan.configs if c["optimizer"] == "sgd"]
    adam = [c for c in plan.configs if c["optimizer"] == "adam"]
    assert {(c["momentum"], c["nesterov"]) for c in sgd} == {(0.0, False), (0.9, False),
                                                            (0.9, True)}
    assert all(c["beta1"] is None and c["eps"] is None for c in sgd)
    assert all(c["momentum"] is None for c in adam)
    assert {(c["beta1"], c["beta2"]) for c in adam} == {(0.9, 0.999), (0.8, 0.99)}
    first, last = plan.configs[0], plan.configs[-1]
    assert (first["activation"], first["dtype"], first["optimizer"], first["seed"]) == (
        "relu", "float32", "sgd", 0)
    assert (last["activation"], last["dtype"], last["optimizer"], last["seed"]) == (
        "tanh", "float64", "adam", 1)
    assert first["dims"] == "4-3-3" and first["n_params"] == 4 * 3 + 3 + 3 * 3 + 3


def test_rmsprop_and_adagrad_in_a_grid_are_not_multiplied_by_adams_betas():
    from harness.sweep.task import _specs

    plan = plan_from_dict(tiny(optimizer=["adam", "rmsprop", "adagrad"], eps=[1e-8, 1e-6],
                               betas=[[0.9, 0.999], [0.8, 0.99]]))
    by_name = {n: [c for c in plan.configs if c["optimizer"] == n]
               for n in ("adam", "rmsprop", "adagrad")}
    assert [len(v) for v in by_name.values()] == [4, 2, 2]
    for name in ("rmsprop", "adagrad"):
        assert all(c["beta1"] is None and c["momentum"] is None for c in by_name[name])
        _, opt = _specs(by_name[name][1])
        assert (opt.name, opt.eps) == (name, 1e-6)


def test_hidden_takes_the_ends_from_each_dataset_and_dims_must_fit():
    plan = plan_from_dict(tiny(dataset=["iris", "wine"], hidden=[[8], [6, 5], []]))
    assert [c["dims"] for c in plan.configs] == ["4-8-3", "4-6-5-3", "4-3", "13-8-3",
                                                 "13-6-5-3", "13-3"]
    assert [c["hidden"] for c in plan.configs][:3] == ["8", "6-5", "none"]
    plan = plan_from_dict({"grid": {"dataset": ["iris"], "dims": [[4, 7, 3]]}})
    assert [c["dims"] for c in plan.configs] == ["4-7-3"]
    with pytest.raises(ConfigError, match=r"`grid.dims\[0\]` \[4, 7, 3\] does not fit dataset "
                                          r"'wine' \(13 features, 3 classes\); give `hidden`"):
        plan_from_dict({"grid": {"dataset": ["iris", "wine"], "dims": [[4, 7, 3]]}})


def test_hashes_are_stable_and_depend_on_what_is_computed():
    a = plan_from_dict(tiny(activation=["relu", "tanh"], seed=[0, 1]))
    b = plan_from_dict(tiny(seed=[0, 1], activation=["relu", "tanh"]))
    assert a.hashes == b.hashes
    reordered = dict(reversed(list(a.configs[0].items())))
    assert config_hash(reordered) == a.hashes[0]
    # an integer learning rate means the same as the float
    assert plan_from_dict(tiny(lr=[1])).hashes == plan_from_dict(tiny(lr=[1.0])).hashes
    longer = plan_from_dict(tiny(sweep={"epochs": 2}, activation=["relu", "tanh"], seed=[0, 1]))
    assert not set(longer.hashes) & set(a.hashes)
    # a bigger grid keeps the hashes of the configurations it shares
    more = plan_from_dict(tiny(activation=["relu", "tanh"], seed=[0, 1, 2]))
    assert set(a.hashes) < set(more.hashes)


def test_random_mode_draws_a_seeded_subset_of_the_grid():
    grid = {"activation": ["relu", "tanh", "gelu"], "dtype": ["float32", "float64"],
            "seed": [0, 1, 2, 3]}
    full = plan_from_dict(tiny(**grid))
    draw = plan_from_dict(tiny(sweep={"mode": "random", "samples": 5, "seed": 3}, **grid))
    again = plan_from_dict(tiny(sweep={"mode": "random", "samples": 5, "seed": 3}, **grid))
    other = plan_from_dict(tiny(sweep={"mode": "random", "samples": 5, "seed": 4}, **grid))
    assert len(draw) == 5 and draw.grid_size == 24
    assert draw.hashes == again.hashes and draw.hashes != other.hashes
    assert set(draw.hashes) <= set(full.hashes)
    assert draw.hashes == [h for h in full.hashes if h in set(draw.hashes)]  # grid order
    with pytest.raises(ConfigError, match="`sweep.samples` is 25, more than the 24 "):
        plan_from_dict(tiny(sweep={"mode": "random", "samples": 25}, **grid))


@settings(max_examples=25, deadline=None)
@given(n_act=st.integers(1, 5), n_lr=st.integers(1, 3), n_mom=st.integers(1, 3),
       n_seed=st.integers(1, 4), opts=st.sets(st.sampled_from(["sgd", "adam", "adamw"]),
                                              min_size=1))
def test_grid_size_is_the_product_of_the_factors_that_apply(n_act, n_lr, n_mom, n_seed, opts):
    acts = ["relu", "tanh", "sigmoid", "leaky_relu", "gelu"][:n_act]
    grid = {"activation": acts, "lr": [0.01 * (i + 1) for i in range(n_lr)],
            "seed": list(range(n_seed)), "optimizer": sorted(opts)}
    if "sgd" in opts:  # momentum applies to sgd only; listed without it, it is refused
        grid["momentum"] = [0.3 * i for i in range(n_mom)]
    else:
        n_mom = 1
    plan = plan_from_dict(tiny(**grid))
    per_opt = sum(n_lr * (n_mom if o == "sgd" else 1) for o in opts)
    assert len(plan) == n_act * per_opt * n_seed
    assert len(set(plan.hashes)) == len(plan)


@pytest.mark.parametrize("doc, message", [
    ({"grid": {"learning_rate": [0.1]}}, "`grid.learning_rate` is not a known key"),
    ({"grid": {}, "sweeps": {}}, "`sweeps` is not a known table"),
    ({"sweep": {"mode": "grid"}}, "no [grid] table"),
    ({"grid": {"activation": ["relu", "swish"]}},
     "`grid.activation[1]` must be one of relu, tanh, sigmoid, leaky_relu, gelu, got 'swish'"),
    ({"grid": {"dtype": "float16"}}, "`grid.dtype` must be one of float32, float64"),
    ({"grid": {"dataset": ["mnist"]}}, "`grid.dataset` must be one of digits, iris"),
    ({"grid": {"hidden": [32, 16]}}, "`grid.hidden` must be a non-empty list of lists"),
    ({"grid": {"hidden": [[32, 0]]}}, "`grid.hidden` must hold positive integer widths"),
    ({"grid": {"hidden": [[8]], "dims": [[64, 8, 10]]}}, "give one: `hidden`"),
    ({"grid": {"dims": [[64, 8, 9]]}}, "`grid.dims[0]` [64, 8, 9] does not fit dataset 'digits'"),
    ({"grid": {"lr": [0.1, -1]}}, "`grid.lr[1]` must be a finite number > 0, got -1"),
    ({"grid": {"lr": [0.1, 0.1]}}, "`grid.lr` lists 0.1 twice"),
    ({"grid": {"momentum": [1.0], "optimizer": ["sgd"]}},
     "`grid.momentum` must be a finite number in [0, 1), got 1.0"),
    ({"grid": {"momentum": [0.9]}}, "`grid.momentum` applies to sgd only"),
    ({"grid": {"optimizer": ["sgd"], "nesterov": [True], "momentum": [0.0]}},
     "`grid.nesterov` = true needs a `grid.momentum` value > 0"),
    ({"grid": {"batch_size": [0]}}, "`grid.batch_size` must be an integer >= 1, got 0"),
    ({"grid": {"seed": [1.5]}}, "`grid.seed` must be an integer >= 0, got 1.5"),
    ({"grid": {"betas": [[0.9]]}}, "`grid.betas` must be pairs of numbers in [0, 1)"),
    ({"sweep": {"samples": 3}, "grid": {}}, '`sweep.samples` applies to mode = "random" only'),
    ({"sweep": {"mode": "random"}, "grid": {}}, '`sweep.samples` is required with mode'),
    ({"sweep": {"mode": "sample"}, "grid": {}}, '`sweep.mode` must be "grid" or "random"'),
    ({"sweep": {"epochs": 0}, "grid": {}}, "`sweep.epochs` must be an integer >= 1, got 0"),
    ({"sweep": {"rtol": 1e-5}, "grid": {}}, "`sweep.atol` is missing: give both"),
    ({"sweep": {"checks": ["equivalence", "speed"]}, "grid": {}},
     "`sweep.checks` names an unknown check 'speed'"),
    ({"sweep": {"backends": ["scratch", "jax"]}, "grid": {}},
     "`sweep.backends` unknown backend 'jax'"),
    ({"sweep": {"backends": ["torch", "torch"]}, "grid": {}},
     "`sweep.backends` names the same backend twice"),
    ({"sweep": {"workers": 2}, "grid": {}}, "`sweep.workers` is not a known key"),
])
def test_a_bad_grid_is_refused_with_a_message_naming_the_key(doc, message):
    with pytest.raises(ConfigError) as info:
        plan_from_dict(doc)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_check_this_installation_lacks_is_refused(monkeypatch):
    monkeypatch.setattr("harness.sweep.plan.available_checks", lambda: ("equivalence",))
    with pytest.raises(ConfigError, match=r"`sweep.checks` names 'training', which this "
                                          r"installation does not have yet \(harness.training.side_by_side"):
        plan_from_dict({"sweep": {"checks": ["equivalence", "training"]}, "grid": {}})
    assert plan_from_dict({"grid": {}}).settings.checks == ("equivalence",)


def test_load_plan_reads_toml_and_names_the_file_in_errors(tmp_path):
    example = load_plan(ROOT / "examples" / "sweep_small.toml")
    assert len(example) == 96 and example.settings.epochs == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid]\nactivation = [relu]\n")
    with pytest.raises(ConfigError, match=r"grid file '.*bad.toml' is not valid TOML"):
        load_plan(bad)
    bad.write_text('[grid]\nactivation = ["relu", "swish"]\n')
    with pytest.raises(ConfigError, match=r"^bad.toml: `grid.activation\[1\]` must be one of"):
        load_plan(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_plan(tmp_path / "missing.toml")


# ===================================================================== task (no Dask)
def test_run_config_returns_verdicts_errors_and_failures_as_rows():
    plan = plan_from_dict(tiny(sweep={"backends": ["torch", "tests.test_sweep:FaultyMLP"]},
                               dtype=["float64"], seed=[0, 7, 9]))
    ok, raised, wrong = (run_config(c) for c in plan.configs)
    assert ok["status"] == "ok" and ok["passed"] is True and ok["equivalence_passed"] is True
    assert 0 <= ok["grad_max_abs_err"] < 1e-12 and ok["t_equivalence_s"] > 0
    assert ok["config_hash"] == plan.hashes[0] and ok["error"] is None

    # an exception raised by the code under test is a finding (a failed check), with
    # the line of the user's file that raised it; not an error of the sweep
    assert raised["status"] == "ok" and raised["passed"] is False
    assert raised["equivalence_status"] == "FAIL" and raised["error"] is None
    assert raised["equivalence_findings"].startswith(
        "tests.test_sweep:FaultyMLP.loss_and_grads raised RuntimeError: injected fault for "
        "seed 7 (at test_sweep.py:")

    assert wrong["status"] == "ok" and wrong["passed"] is False
    assert wrong["equivalence_first_failure"] == "grads['b0']"
    assert wrong["grad_max_abs_err"] > 1e-6


def test_run_config_runs_gradcheck_and_training_when_asked():
    have = available_checks()
    if "gradcheck" not in have or "training" not in have:
        pytest.skip(f"this tree has only the checks {have}")
    plan = plan_from_dict(tiny(
        sweep={"backends": ["torch", "tests.test_sweep:FaultyMLP"], "epochs": 2,
               "train_samples": 40, "gradcheck_entries": 4,
               "checks": ["equivalence", "gradcheck", "training"]},
        dtype=["float64"], batch_size=[10], seed=[0, 9, 10]))
    ok, bad_grad, bad_step = (run_config(c) for c in plan.configs)
    assert ok["status"] == "ok" and ok["passed"] is True
    assert ok["gradcheck_passed"] is True and ok["gradcheck_max_abs_err"] < 1e-6
    assert ok["training_passed"] is True and ok["training_steps"] == 8  # 2 epochs x 4 batches
    assert ok["first_divergence_step"] is None and ok["training_max_param_diff"] < 1e-12
    assert all(ok[f"t_{c}_s"] > 0 for c in ("equivalence", "gradcheck", "training"))

    assert bad_grad["passed"] is False and bad_grad["gradcheck_passed"] is False
    assert bad_grad["gradcheck_first_failure"] == "tests.test_sweep:FaultyMLP b0"
    assert bad_grad["gradcheck_max_abs_err"] > 1e-3

    assert bad_step["passed"] is False and bad_step["training_passed"] is False
    assert bad_step["gradcheck_passed"] is True
    # the loss is taken before each update: the double step 3 shows in the loss of step 4
    assert bad_step["first_divergence_step"] == 4
    assert bad_step["training_divergence"].startswith("step 4 (epoch 1): loss difference")


# ======================================================================== results folder
def _rows(plan, **result):
    return [{**c, "status": "ok", "passed": True, "equivalence_passed": True,
             "task_id": f"t{i}", **result} for i, c in enumerate(plan.configs)]


def test_results_store_appends_atomically_dedupes_and_compacts(tmp_path):
    plan = plan_from_dict(tiny(seed=[0, 1, 2, 3]))
    store = ResultsStore(tmp_path / "res")
    store.ensure()
    assert store.read().empty and list(store.read().columns) == list(store.read_raw().columns)
    rows = _rows(plan)
    store.append(rows[:2])
    store.append(rows[2:])
    # a retried configuration: the later row wins
    store.append([{**rows[1], "status": "error", "passed": None, "task_id": "retry"}])
    # a write killed half-way leaves a hidden temporary file, which is never read
    (store.rows_dir / ".part-00000000000000000001-x-000001.parquet.123.tmp").write_bytes(
        b"PAR1junk")
    assert len(store.parts()) == 3
    raw, table = store.read_raw(), store.read()
    assert len(raw) == 5 and len(table) == 4
    assert table.set_index("config_hash").loc[plan.hashes[1], "task_id"] == "retry"
    assert table["passed"].dtype == "boolean" and table["seed"].dtype == "Int64"
    assert table["momentum"].tolist() == [0.0] * 4 and table["beta1"].isna().all()
    merged = store.compact()
    assert store.parts() == [merged]
    pd.testing.assert_frame_equal(store.read(), table)
    assert len(store.read_raw()) == 4
    # the rows folder is a plain Parquet data set (the temporary file is skipped)
    plain = pd.read_parquet(store.rows_dir)
    assert sorted(plain["config_hash"]) == sorted(plan.hashes)


def test_results_store_refuses_foreign_folders_and_unreadable_parts(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not empty and holds no sweep results"):
        ResultsStore(tmp_path).ensure()
    store = ResultsStore(tmp_path / "res")
    store.ensure()
    store.rows_dir.mkdir()
    (store.rows_dir / "part-00000000000000000001-x-000001.parquet").write_bytes(b"not parquet")
    with pytest.raises(ConfigError, match="is not readable Parquet"):
        store.read()


# =========================================================================== summary
def test_summary_pass_rates_worst_cases_and_plot(tmp_path):
    plan = plan_from_dict(tiny(activation=["relu", "tanh"], dtype=["float32", "float64"],
                               hidden=[[3], [8, 8]]))
    rows = _rows(plan, grad_max_abs_err=1e-15)
    by_key = {(c["activation"], c["dtype"], c["hidden"]): r for c, r in zip(plan.configs, rows)}
    by_key["tanh", "float32", "3"].update(passed=False, equivalence_passed=False,
                                         equivalence_first_failure="grads['W0']",
                                         grad_max_abs_err=1e-3)
    by_key["tanh", "float32", "8-8"].update(passed=False, equivalence_passed=False,
                                           grad_max_abs_err=1e-2)
    by_key["relu", "float64", "8-8"].update(status="error", passed=None,
                                           equivalence_passed=None, grad_max_abs_err=None,
                                           error_type="KilledWorker", error="worker died")
    store = ResultsStore(tmp_path / "res")
    store.ensure()
    store.append(rows)
    summary = summarize(store.read())
    assert summary.counts == {"configurations": 8, "passed": 5, "failed": 2, "errors": 1}
    assert not summary.passed
    cross = summary.cross.set_index(["activation", "dtype"])
    assert cross.loc[("tanh", "float32"), "pass_rate"] == 0.0
    assert cross.loc[("relu", "float64"), ["passed", "errors"]].tolist() == [1, 1]
    assert cross.loc[("relu", "float32"), "pass_rate"] == 1.0
    hidden = summary.factors["hidden"].set_index("hidden")
    assert hidden.loc["8-8", "passed"] == 2 and hidden.loc["3", "passed"] == 3
    assert summary.worst["verdict"].tolist()[:3] == ["error", "FAIL", "FAIL"]
    assert summary.worst["grad_max_abs_err"].tolist()[1:3] == [1e-2, 1e-3]
    text = summary.text()
    assert "8 configurations: 5 passed, 2 failed, 1 errors" in text
    assert "worst cases (3 of 3 not passing)" in text and "first: grads['W0']" in text
    assert "hidden: 3 3/4 (75%), 8-8 2/4 (50%)" in text

    from harness.plots.sweep import plot_grad_error_vs_size

    path = plot_grad_error_vs_size(store.read(), tmp_path / "plot.png")
    assert path.exists() and path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ConfigError, match="`--by` names an unknown factor 'colour'"):
        summarize(store.read(), by=("colour",))


# ======================================================================== on Dask
@pytest.fixture(scope="module")
def cluster():
    cl = start_local_cluster(2, quiet=False)
    yield cl
    cl.close()


@pytest.fixture(scope="module")
def client(cluster):
    from distributed import Client

    with Client(cluster) as c:
        yield c


def _two_workers(client):
    client.wait_for_workers(2, timeout=60)


def test_small_sweep_runs_on_two_workers_and_a_rerun_computes_nothing(client, tmp_path):
    checks = list(available_checks())  # every check this tree has, run on the workers
    plan = plan_from_dict(tiny(sweep={"checks": checks, "gradcheck_entries": 3, "epochs": 1},
                               activation=["relu", "tanh"], dtype=["float32", "float64"],
                               seed=[0, 1]))
    out = run_sweep(plan, tmp_path / "res", client=client, progress=False)
    table = out.table
    assert out.skipped == 0 and len(out.submitted) == len(out.recorded) == 8 and out.complete
    assert table["config_hash"].tolist() == plan.hashes  # plan order, whatever finished first
    assert (table["status"] == "ok").all() and table["passed"].all()
    assert set(table["worker"]) <= set(client.nthreads())
    assert (table["grad_max_abs_err"] < 1e-5).all()
    for check in checks:
        assert table[f"{check}_passed"].all() and (table[f"t_{check}_s"] > 0).all()
    assert (table["t_total_s"] > 0).all() and table["run_id"].nunique() == 1
    assert len(ResultsStore(out.results).parts()) == 1  # compacted at the end

    again = run_sweep(plan, tmp_path / "res", client=client, progress=False)
    assert again.skipped == 8 and again.submitted == []
    pd.testing.assert_frame_equal(again.table, table)


def test_a_task_that_raises_and_a_worker_that_dies_become_error_rows(client, tmp_path):
    _two_workers(client)
    plan = plan_from_dict(tiny(sweep={"backends": ["torch", "tests.test_sweep:FaultyMLP"]},
                               seed=[0, 6, 7, 8, 9, 1]))
    out = run_sweep(plan, tmp_path / "res", client=client, progress=False)
    t = out.table.set_index("seed")
    assert len(t) == 6 and out.complete
    assert t.loc[0, "passed"] and t.loc[1, "passed"]
    # a class that cannot be built: the task raises, an error row
    assert t.loc[6, "status"] == "error"
    assert "injected construction fault" in t.loc[6, "error"]
    # the code under test raising inside a method: a failed check with its finding
    assert t.loc[7, "status"] == "ok" and not t.loc[7, "passed"]
    assert "injected fault for seed 7" in t.loc[7, "equivalence_findings"]
    assert t.loc[8, "status"] == "error" and t.loc[8, "error_type"] == "KilledWorker"
    assert "died while running this configuration" in t.loc[8, "error"]
    assert t.loc[9, "status"] == "ok" and not t.loc[9, "passed"]
    assert t.loc[9, "equivalence_first_failure"] == "grads['b0']"

    # error rows are kept on a rerun unless asked to retry them; a smaller grid with the
    # same configurations maps onto the same rows (seed 8 is left out: one dead worker
    # is enough)
    _two_workers(client)
    again = run_sweep(plan, tmp_path / "res", client=client, progress=False)
    assert again.submitted == [] and again.skipped == 6
    subset = plan_from_dict(tiny(sweep={"backends": ["torch", "tests.test_sweep:FaultyMLP"]},
                                 seed=[0, 6]))
    retried = run_sweep(subset, tmp_path / "res", client=client, progress=False,
                        retry_errors=True)
    assert retried.submitted == [plan.hashes[1]] and retried.skipped == 1
    assert retried.table["error_type"].isna().tolist() == [True, False]
    assert "injected construction fault" in retried.table["error"].iloc[1]
    assert len(ResultsStore(tmp_path / "res").read_raw()) == 6  # the new row replaced it


class Stop(KeyboardInterrupt):
    """Stands in for Ctrl-C after a given number of rows."""


def test_an_interrupted_sweep_resumes_without_recomputing_or_losing_rows(client, tmp_path):
    _two_workers(client)
    plan = plan_from_dict(tiny(activation=["relu", "tanh", "sigmoid"],
                               dtype=["float32", "float64"], seed=[0, 1]))
    assert len(plan) == 12

    def stop_after_5(row, n):
        if n == 5:
            raise Stop

    res = tmp_path / "res"
    with pytest.raises(Stop):
        run_sweep(plan, res, client=client, progress=False, on_row=stop_after_5,
                  flush_rows=2, flush_seconds=60)
    store = ResultsStore(res)
    first = store.read_raw()
    assert len(first) == 5 and first["config_hash"].is_unique  # the buffered row was kept
    assert len(store.parts()) == 3  # two full flushes and the one on the interruption

    resumed = run_sweep(plan, res, client=client, progress=False)
    assert resumed.skipped == 5 and resumed.complete
    assert sorted(resumed.submitted) == sorted(set(plan.hashes) - set(first["config_hash"]))
    raw = store.read_raw()
    assert len(raw) == 12 and raw["config_hash"].is_unique  # nothing computed twice
    kept = raw.set_index("config_hash").loc[first["config_hash"]]
    assert kept["task_id"].tolist() == first["task_id"].tolist()  # nothing lost or redone
    assert kept["run_id"].nunique() == 1
    assert resumed.table["run_id"].nunique() == 2

    uninterrupted = run_sweep(plan, tmp_path / "fresh", client=client, progress=False)
    pd.testing.assert_frame_equal(strip(resumed.table), strip(uninterrupted.table))


def test_a_killed_command_line_sweep_resumes_and_summarises(client, cluster, tmp_path, capsys):
    _two_workers(client)
    grid = tmp_path / "slow.toml"
    grid.write_text(
        '[sweep]\nbackends = ["torch", "tests.test_sweep:SlowMLP"]\nchecks = ["equivalence"]\n'
        'check_samples = 16\n'
        '[grid]\ndataset = ["iris"]\nhidden = [[3]]\nactivation = ["relu", "tanh"]\n'
        'dtype = ["float32", "float64"]\nseed = [0, 1, 2, 3]\n')
    plan = load_plan(grid)
    res = tmp_path / "res"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "sweep", str(grid), "--out", str(res),
         "--executor", cluster.scheduler_address, "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = ResultsStore(res)
    deadline = time.monotonic() + 90
    try:
        while not store.parts():
            assert proc.poll() is None, f"the sweep ended before it was killed: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no rows were written in 90 s"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    before = store.read_raw()
    assert 0 < len(before) < len(plan) and before["config_hash"].is_unique

    _two_workers(client)
    resumed = run_sweep(plan, res, client=client, progress=False)
    assert resumed.skipped == len(before)
    assert not set(resumed.submitted) & set(before["config_hash"])
    raw = store.read_raw()
    assert len(raw) == len(plan) and raw["config_hash"].is_unique
    kept = raw.set_index("config_hash").loc[before["config_hash"], "task_id"]
    assert kept.tolist() == before["task_id"].tolist()

    capsys.readouterr()
    assert main(["sweep", "--summary", str(res), "--by", "activation,seed"]) == 0
    out = capsys.readouterr().out
    assert f"results: {res} (16 rows)" in out
    assert "16 configurations: 16 passed, 0 failed, 0 errors" in out
    assert "pass rate by activation x seed:" in out and "dtype: float32 8/8 (100%)" in out
    assert (res / "grad_error_vs_size.png").exists()


# ======================================================================= command line
def test_cli_dry_run_counts_without_running(tmp_path, capsys):
    grid = tmp_path / "g.toml"
    grid.write_text('[grid]\ndataset = "iris"\nactivation = ["relu", "tanh"]\nseed = [0, 1]\n')
    out = tmp_path / "res"
    assert main(["sweep", str(grid), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "g.toml: all 4 configurations of the grid" in text
    assert f"4 to run, 0 already in {out}" in text
    assert not out.exists()


@pytest.mark.parametrize("args, grid_text, message", [
    ([], '[grid]\nlr = [0]\n', "g.toml: `grid.lr` must be a finite number > 0, got 0"),
    (["--executor", "http://x"], "[grid]\n", "`--executor` must be local or a scheduler address"),
    (["--workers", "0"], "[grid]\n", "`--workers` must be >= 1, got 0"),
    (["--by", "colour"], "[grid]\n", "`--by` names an unknown factor 'colour'"),
    (["--summary", "nowhere"], "[grid]\n", "give either a grid file to run or --summary"),
])
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(args, grid_text, message,
                                                                tmp_path, capsys):
    grid = tmp_path / "g.toml"
    grid.write_text(grid_text)
    out = tmp_path / "res"
    assert main(["sweep", str(grid), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_cli_summary_of_a_missing_folder_exits_2(tmp_path, capsys):
    assert main(["sweep", "--summary", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["sweep"]) == 2
    assert "give a grid file to run" in capsys.readouterr().err


def test_a_plugin_that_hangs_in_a_sweep_is_a_fail_row_and_frees_its_worker():
    from harness.sweep import plan_from_dict
    from harness.sweep.task import check_config, run_config

    plan = plan_from_dict({"sweep": {"backends": ["scratch", "tests.gallery.hangs:SpinsAtStep3"],
                                     "checks": ["training"], "epochs": 3, "train_samples": 64,
                                     "timeout": 1},
                           "grid": {"dataset": ["iris"], "dims": [[4, 8, 3]]}})
    assert plan.settings.timeout == 1.0
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a worker thread, as Dask's
        row = pool.submit(run_config, plan.configs[0], call_timeout=1.0).result(timeout=60)
    assert row["status"] == "ok" and row["passed"] is False, row
    text = " ".join(str(v) for v in row.values())
    assert "SpinsAtStep3.train_step" in text and "did not return within 1 s" in text
    assert check_config(plan.configs[0]) is not None

"""Sweeps: the comparison run over a grid (or a seeded random sample) of configurations on
Dask's distributed scheduler, with results appended to a Parquet folder keyed by a hash of
each configuration, so an interrupted sweep resumes where it stopped.

The modules, in the order a sweep uses them (each imports only those before it):

* :mod:`~harness.sweep.plan`: :func:`load_plan` / :func:`plan_from_dict` read and validate
  a grid file (TOML) in full before any work starts, and expand it into a
  :class:`SweepPlan`: a list of configurations, each a flat dict of plain values whose
  :func:`config_hash` keys its row.
* :mod:`~harness.sweep.task`: :func:`run_config` is the task: one configuration in, one
  row (a flat dict) out. It never raises; a failure becomes an error row carrying the
  exception's message.
* :mod:`~harness.sweep.store`: :class:`ResultsStore` is the results folder: one Parquet
  part file per flushed batch of rows, each written to a hidden temporary file and
  renamed into place, so an interrupted or killed process leaves whole part files only.
* :mod:`~harness.sweep.execute`: :func:`run_sweep` submits the configurations that have no
  row yet, one task each, to a Dask cluster (a LocalCluster of its own, or an existing
  scheduler), records rows as they finish, and turns a task that raised or a worker that
  died into an error row.
* :mod:`~harness.sweep.summary`: :func:`summarize` gives pass rates per factor and the
  worst cases first.
"""

from __future__ import annotations

from harness.sweep.execute import (
    SCHEDULER_CONFIG,
    SweepOutcome,
    run_sweep,
    start_local_cluster,
    validate_executor,
)
from harness.sweep.plan import (
    CHECKS,
    GRID_KEYS,
    HASH_VERSION,
    MAX_CONFIGS,
    SWEEP_KEYS,
    SweepPlan,
    SweepSettings,
    available_checks,
    config_hash,
    load_plan,
    plan_from_dict,
)
from harness.sweep.store import VOLATILE_COLUMNS, ResultsStore, columns
from harness.sweep.summary import FACTORS, SweepSummary, summarize, summarize_sweep
from harness.sweep.task import error_row, run_config

__all__ = [
    "CHECKS", "FACTORS", "GRID_KEYS", "HASH_VERSION", "MAX_CONFIGS", "SCHEDULER_CONFIG",
    "SWEEP_KEYS", "VOLATILE_COLUMNS", "ResultsStore", "SweepOutcome", "SweepPlan",
    "SweepSettings", "SweepSummary", "available_checks", "columns", "config_hash",
    "error_row", "load_plan", "plan_from_dict", "run_config", "run_sweep",
    "start_local_cluster", "summarize", "summarize_sweep", "validate_executor",
]

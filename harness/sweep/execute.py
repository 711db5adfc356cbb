"""Running a sweep on Dask: the cluster, the workers' warm-up, the writer, :func:`run_sweep`.

The configurations that have no row yet are submitted one task each to a Dask cluster (a
LocalCluster of its own, or an existing scheduler); rows are recorded as they finish, and
a task that raised or a worker that died becomes an error row.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.sweep.plan import SweepPlan, SweepSettings, _make_config
from harness.sweep.store import ResultsStore, _ordered
from harness.sweep.task import _error_text, error_row, run_config

#: scheduler settings a sweep's own LocalCluster is created with (set them on a cluster of
#: your own as well): a task whose worker dies is failed at once instead of being retried
#: on up to three more workers, and a worker holds one task per thread, so a dying worker
#: takes only the task it was running with it
SCHEDULER_CONFIG: dict[str, Any] = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.scheduler.worker-saturation": 1.0,
}


@dataclass
class SweepOutcome:
    """What :func:`run_sweep` did.

    Attributes
    ----------
    table : DataFrame
        One row per configuration of the plan that has a row, in plan order.
    results : Path
        The results folder.
    skipped : int
        Configurations that already had a row and were not recomputed.
    submitted : list of str
        Hashes of the configurations sent to the cluster by this run.
    recorded : list of str
        Hashes of the rows this run wrote, in the order they finished.
    lost : list of str
        Submitted but without a row (cancelled by the cluster); a rerun computes them.
    elapsed_s : float
    """

    table: Any
    results: Path
    skipped: int = 0
    submitted: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    workers: int = 0

    @property
    def complete(self) -> bool:
        return not self.lost


def validate_executor(executor: str) -> str:
    """``local`` or a scheduler address such as ``tcp://HOST:8786``."""
    if executor == "local":
        return executor
    scheme, sep, rest = executor.partition("://")
    host, colon, port = rest.rpartition(":")
    if (not sep or scheme not in ("tcp", "tls") or not colon or not host
            or not port.isdigit()):
        raise ConfigError(f"`--executor` must be local or a scheduler address like "
                          f"tcp://HOST:8786, got {executor!r}")
    return executor


def start_local_cluster(n_workers: int | None = None, *, quiet: bool = True):
    """A LocalCluster of one single-threaded worker process per core (or ``n_workers``),
    on loopback, with :data:`SCHEDULER_CONFIG`.

    Closing it gives this process back the environment it had before: a Dask nanny sets
    variables for its worker in its own process's ``os.environ`` before each spawn
    (``OMP_NUM_THREADS=1``, ``OPENBLAS_NUM_THREADS=1``, ``PYTHONHASHSEED``, ...) and
    never removes them, so every process started later would inherit them (with one
    BLAS thread, say, and other machine facts in its results).
    """
    import logging

    import dask

    cluster_class = _environ_keeping_cluster()  # imports distributed: its config keys first
    n = n_workers or os.cpu_count() or 1
    with dask.config.set(SCHEDULER_CONFIG):
        return cluster_class(
            n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=logging.CRITICAL if quiet else logging.WARNING)


def _restore_environ(saved: dict[str, str]) -> None:
    """Set ``os.environ`` back to ``saved``, touching only the variables that differ."""
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


@functools.cache
def _environ_keeping_cluster() -> type:
    """A LocalCluster class whose ``close`` puts back the environment its start found."""
    from distributed import LocalCluster

    class EnvironKeepingCluster(LocalCluster):
        def __init__(self, *args, **kwargs):
            self._saved_environ = dict(os.environ)
            try:
                super().__init__(*args, **kwargs)
            except BaseException:
                _restore_environ(self._saved_environ)
                raise

        def close(self, timeout: float | None = None):
            try:
                return super().close(timeout)
            finally:
                saved, self._saved_environ = self._saved_environ, None
                if saved is not None:  # once: a second close must not undo later changes
                    _restore_environ(saved)

    return EnvironKeepingCluster


def _ignore_interrupts() -> None:
    """Run on each worker of a sweep's own local cluster: ignore SIGINT.

    Ctrl-C in a terminal reaches every process of its process group, the local
    workers included; the client stops the sweep and closes them, so they need not
    print tracebacks of their own. (It runs in the worker's main thread.)
    """
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _warm_config(checks: tuple[str, ...]) -> dict[str, Any]:
    """A tiny configuration with the built-in backends, to warm a worker up."""
    settings = SweepSettings(checks=checks, epochs=1, train_samples=8, check_samples=8,
                             gradcheck_entries=2)
    choice = {"dataset": "iris", "hidden": (2,), "activation": "tanh", "dtype": "float64",
              "optimizer": "sgd", "lr": 0.01, "weight_decay": 0.0,
              "sgd_momentum": (0.0, False), "batch_size": 4, "seed": 0}
    return _make_config(choice, settings)


def _prepare_workers(client, checks: tuple[str, ...], timeout: float) -> int:
    """Wait for a worker and warm every worker up with a tiny configuration.

    The warm-up imports torch and runs each check once, so that the timings of the
    sweep's first tasks are not inflated and a worker that cannot run the checks (the
    package missing or a different version there) stops the sweep before it starts.
    Returns the number of worker threads.
    """
    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception:  # noqa: BLE001 - TimeoutError flavours differ between versions
        raise ConfigError(f"the Dask cluster at {client.scheduler.address} has no workers "
                          f"(waited {timeout:g} s)") from None
    config = _warm_config(checks)
    futures = {w: client.submit(run_config, config, workers=[w], allow_other_workers=True,
                                pure=False, key=f"nn-sweep-warm-up-{uuid.uuid4().hex[:8]}")
               for w in client.nthreads()}
    for worker, future in futures.items():
        try:
            row = future.result()
        except Exception as exc:  # noqa: BLE001 - most often harness is not installed there
            raise ConfigError(f"worker {worker} cannot run sweep tasks ({type(exc).__name__}: "
                              f"{exc}); install this package on every worker") from None
        if row.get("status") != "ok":
            raise ConfigError(f"worker {worker} failed a warm-up configuration: {row['error']}; "
                              f"install the same version of this package on every worker")
    return sum(client.nthreads().values())


class _Writer:
    """Buffers rows; flushes a part file every ``flush_rows`` rows or ``flush_seconds``."""

    def __init__(self, store: ResultsStore, flush_rows: int, flush_seconds: float):
        self.store, self.flush_rows, self.flush_seconds = store, flush_rows, flush_seconds
        self.buffer: list[dict] = []
        self.last = time.monotonic()

    def add(self, row: dict) -> None:
        self.buffer.append(row)
        if (len(self.buffer) >= self.flush_rows
                or time.monotonic() - self.last >= self.flush_seconds):
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.store.append(self.buffer)
            self.buffer = []
        self.last = time.monotonic()


def _row_of(future, config: dict[str, Any]) -> dict[str, Any] | None:
    """The row of a finished future; an error row when it raised or its worker died."""
    from distributed import KilledWorker

    if future.status == "finished":
        try:
            row = future.result()
        except Exception as exc:  # noqa: BLE001 - the result could not be fetched
            return error_row(config, type(exc).__name__, _error_text(exc))
        if not isinstance(row, dict) or row.get("config_hash") != config["config_hash"]:
            return error_row(config, "BadResult", f"the task returned {type(row).__name__}, "
                                                  f"not this configuration's row")
        return row
    if future.status == "error":
        exc = future.exception()
        if isinstance(exc, KilledWorker):
            last = getattr(exc, "last_worker", None)
            where = getattr(last, "address", None) or "a worker"
            return error_row(config, "KilledWorker",
                             f"the worker process ({where}) died while running this "
                             f"configuration", worker=getattr(last, "address", None))
        return error_row(config, type(exc).__name__, _error_text(exc))
    return None  # cancelled: no row; a rerun computes it


def run_sweep(plan: SweepPlan, results: str | os.PathLike, *, client=None,
              executor: str = "local", n_workers: int | None = None,
              retry_errors: bool = False, progress: bool = True,
              on_row: Callable[[dict, int], None] | None = None,
              flush_rows: int = 50, flush_seconds: float = 1.0,
              max_in_flight: int | None = None, connect_timeout: float = 10.0) -> SweepOutcome:
    """Run every configuration of ``plan`` that has no row in ``results`` yet.

    Parameters
    ----------
    plan : SweepPlan
    results : path
        The results folder (created if missing). Rows already there (matched by
        configuration hash) are not recomputed; error rows neither, unless
        ``retry_errors``.
    client : distributed.Client, optional
        Use this client's cluster; otherwise ``executor`` says which.
    executor : str
        ``local`` (a LocalCluster of ``n_workers`` single-threaded processes, default one
        per core, closed at the end) or a scheduler address ``tcp://HOST:PORT``.
    on_row : callable, optional
        Called as ``on_row(row, n_recorded)`` after each row is buffered; an exception
        it raises stops the sweep like Ctrl-C does (buffered rows are written first).
    flush_rows, flush_seconds : int, float
        A part file is written when this many rows are buffered or this much time has
        passed since the last, and always at the end or on an interruption.
    max_in_flight : int, optional
        Tasks submitted at once (default one per worker thread); more are submitted as
        these finish. Each submission is its own task group, so the scheduler sends
        every submitted task to a worker at once: with more tasks in flight than
        threads, a worker that dies takes the tasks waiting on it down too (each would
        become a KilledWorker row).
    connect_timeout : float
        Seconds to wait for the scheduler, and for a first worker.

    Nothing is written to ``results`` before the cluster is up and its workers have
    run a warm-up configuration, so a sweep that cannot start leaves no trace.
    """
    import contextlib

    t_start = time.perf_counter()
    store = ResultsStore(results)
    store.check()
    if store.path.is_dir():
        store.compact()
    todo = _todo(plan, store, retry_errors)
    outcome = SweepOutcome(table=None, results=store.path, skipped=len(plan) - len(todo))
    if not todo:
        store.ensure()
        store.write_plan(plan)
    else:
        with contextlib.ExitStack() as stack:
            if client is None:
                client = _connect(stack, executor, n_workers, connect_timeout)
            threads = _prepare_workers(client, plan.settings.checks, connect_timeout)
            outcome.workers = len(client.nthreads())
            store.ensure()  # nothing is written until the cluster is ready
            store.write_plan(plan)
            _execute(client, todo, store, outcome, progress=progress, on_row=on_row,
                     writer=_Writer(store, flush_rows, flush_seconds),
                     window=max_in_flight or threads, call_timeout=plan.settings.timeout)
        store.compact()
    outcome.table = _ordered(store.read(), plan.hashes)
    outcome.elapsed_s = time.perf_counter() - t_start
    return outcome


def _todo(plan: SweepPlan, store: ResultsStore, retry_errors: bool) -> list[dict]:
    """The configurations of ``plan`` with no row in ``store`` yet (error rows count as none
    with ``retry_errors``)."""
    existing = store.read()
    done = existing
    if retry_errors and len(existing):
        done = existing[existing["status"] != "error"]
    done_hashes = set(done["config_hash"])
    return [c for c in plan.configs if c["config_hash"] not in done_hashes]


def _connect(stack, executor: str, n_workers: int | None, connect_timeout: float):
    """A client of a new local cluster or of the scheduler at ``executor``, closed with
    ``stack``."""
    from distributed import Client

    if validate_executor(executor) == "local":
        cluster = stack.enter_context(start_local_cluster(n_workers))
        client = stack.enter_context(Client(cluster))
        client.run(_ignore_interrupts)
        return client
    try:
        return stack.enter_context(Client(executor, timeout=f"{connect_timeout:g}s"))
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"cannot reach the Dask scheduler at {executor}: "
                          f"{exc}") from None


def _execute(client, todo, store, outcome, *, progress, on_row, writer, window,
             call_timeout: float | None = None) -> None:
    import contextlib

    from distributed import as_completed

    from harness.runtime.console import progress as bar

    run_id = uuid.uuid4().hex[:12]
    queue = iter(todo)
    pending: dict[str, tuple[Any, dict]] = {}
    ac = as_completed()

    def submit_next() -> None:
        config = next(queue, None)
        if config is None:
            return
        future = client.submit(run_config, config, call_timeout=call_timeout, pure=False,
                               retries=0,
                               key=f"nn-sweep-{config['config_hash']}-{uuid.uuid4().hex[:8]}")
        pending[future.key] = (future, config)
        outcome.submitted.append(config["config_hash"])
        ac.add(future)

    pbar = bar(total=len(todo), desc="sweep", quiet=not progress)
    failed = 0
    try:
        for _ in range(min(window, len(todo))):
            submit_next()
        for future in ac:
            _, config = pending.pop(future.key)
            row = _row_of(future, config)
            future.release()
            submit_next()
            if row is None:
                outcome.lost.append(config["config_hash"])
                continue
            row["run_id"] = run_id
            writer.add(row)
            outcome.recorded.append(config["config_hash"])
            failed += row["status"] == "error" or not row["passed"]
            pbar.update(1)
            pbar.set_postfix(failed=failed, refresh=False)
            if on_row is not None:
                on_row(row, len(outcome.recorded))
    finally:
        writer.flush()
        pbar.close()
        if pending:
            with contextlib.suppress(Exception):
                client.cancel([f for f, _ in pending.values()])

"""The task a sweep's workers run: one configuration in, one row (a flat dict) out.

:func:`run_config` is the only entry point; it never raises, a failure becomes an error
row carrying the exception's message. Each check fills its own columns of the row.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from datetime import UTC
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np


@lru_cache(maxsize=8)
def _standardized(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A built-in data set, standardised, rows in a fixed seeded order (per process)."""
    from harness.data import load_dataset, standardize

    data = load_dataset(name)
    (X,) = standardize(data.X)
    order = np.random.default_rng(0).permutation(len(data))
    return X[order], data.y[order]


def _specs(config: dict[str, Any]):
    from harness.specs import ModelSpec, OptimizerSpec

    dims = tuple(int(d) for d in config["dims"].split("-"))
    spec = ModelSpec(dims, activation=config["activation"], dtype=config["dtype"],
                     seed=config["seed"])
    opt = {"name": config["optimizer"], "lr": config["lr"],
           "weight_decay": config["weight_decay"]}
    if config["optimizer"] == "sgd":
        opt.update(momentum=config["momentum"], nesterov=config["nesterov"])
    else:
        opt.update(betas=(config["beta1"], config["beta2"]), eps=config["eps"])
    return spec, OptimizerSpec(**opt)


def _worker_name() -> str:
    import socket

    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _error_text(exc: BaseException) -> str:
    """``Type: message (at file:line in function)``, on one line."""
    import traceback

    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        f = frames[-1]
        text += f" (at {Path(f.filename).name}:{f.lineno} in {f.name})"
    return text[:2000]


def _empty_result() -> dict[str, Any]:
    return {
        "status": None, "passed": None,
        "equivalence_passed": None, "equivalence_first_failure": None,
        "equivalence_max_abs_err": None, "equivalence_max_rel_err": None,
        "grad_max_abs_err": None, "grad_max_rel_err": None,
        "gradcheck_passed": None, "gradcheck_first_failure": None,
        "gradcheck_max_abs_err": None, "gradcheck_max_rel_err": None,
        "training_passed": None, "training_steps": None, "first_divergence_step": None,
        "training_divergence": None, "training_max_loss_diff": None,
        "training_max_param_diff": None,
        "error_type": None, "error": None,
        "t_equivalence_s": None, "t_gradcheck_s": None, "t_training_s": None,
        "t_total_s": None,
        "worker": None, "task_id": uuid.uuid4().hex, "run_id": None, "finished_at": None,
    }


def _max_of(values) -> float | None:
    """The largest value, NaN and None left out (inf kept: it marks a mismatch); None if none."""
    values = [float(v) for v in values if v is not None and not (isinstance(v, float)
                                                                  and math.isnan(v))]
    return max(values) if values else None


def _equivalence(config, spec, opt, x, y, row) -> bool:
    from harness.compare import check_equivalence
    from harness.registry import make_backend

    reference = make_backend(config["reference"], spec, opt)
    candidate = make_backend(config["candidate"], spec, opt)
    report = check_equivalence(reference, candidate, x, y, rtol=config["rtol"],
                               atol=config["atol"], reference_name=config["reference"],
                               candidate_name=config["candidate"])
    grads = [r for r in report.rows if r.quantity.startswith("grads[")]
    first = report.first_failure
    row.update(
        equivalence_passed=bool(report.passed),
        equivalence_first_failure=None if first is None else first.quantity,
        equivalence_max_abs_err=_max_of(r.max_abs_err for r in report.rows),
        equivalence_max_rel_err=_max_of(r.max_rel_err for r in report.rows),
        grad_max_abs_err=_max_of(r.max_abs_err for r in grads),
        grad_max_rel_err=_max_of(r.max_rel_err for r in grads),
    )
    return bool(report.passed)


def _gradcheck(config, spec, opt, x, y, row) -> bool:
    """Finite differences against the analytic gradients of both backends."""
    from harness.gradcheck import gradcheck
    from harness.registry import make_backend

    reports = []
    for side in ("reference", "candidate"):
        model = make_backend(config[side], spec, opt)
        reports.append((config[side], gradcheck(
            model, x, y, eps=config["gradcheck_eps"], max_entries=config["gradcheck_entries"],
            seed=config["seed"], name=config[side])))
    failed = [(name, r.first_failure) for name, r in reports if not r.passed]
    params = [p for _, r in reports for p in r.params]
    row.update(
        gradcheck_passed=not failed,
        gradcheck_first_failure=None if not failed else f"{failed[0][0]} {failed[0][1].name}",
        gradcheck_max_abs_err=_max_of(p.max_abs_err for p in params),
        gradcheck_max_rel_err=_max_of(p.max_rel_err for p in params),
    )
    return not failed


def _training(config, spec, opt, X, y, row) -> bool:
    """Train both backends side by side from the same parameters; compare trajectories."""
    import warnings

    from harness.registry import make_backend
    from harness.training import compare_training

    reference = make_backend(config["reference"], spec, opt)
    candidate = make_backend(config["candidate"], spec, opt)
    names = (config["reference"], config["candidate"])
    if names[0] == names[1]:
        names = (f"{names[0]} (reference)", f"{names[1]} (candidate)")
    with warnings.catch_warnings():  # a batch larger than the data is clamped: steps say so
        warnings.simplefilter("ignore", UserWarning)
        report = compare_training(reference, candidate, X, y, epochs=config["epochs"],
                                  batch_size=config["batch_size"], seed=config["seed"],
                                  rtol=config["rtol"], atol=config["atol"],
                                  reference_name=names[0], candidate_name=names[1])
    div = report.first_divergence
    step = div.step if div is not None else (
        report.error.step if report.error is not None else None)
    message = str(div) if div is not None else (
        str(report.error) if report.error is not None else None)
    row.update(
        training_passed=bool(report.passed), training_steps=int(report.steps),
        first_divergence_step=step, training_divergence=message,
        training_max_loss_diff=_nan_to_none(report.max_loss_diff),
        training_max_param_diff=_nan_to_none(report.max_param_diff),
    )
    return bool(report.passed)


def _nan_to_none(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


#: each check's runner: ``runner(config, spec, opt, X, y, row) -> passed``; it fills the
#: check's columns of ``row`` (those of :func:`_empty_result`) and returns its verdict
_RUNNERS = {"equivalence": _equivalence, "gradcheck": _gradcheck, "training": _training}


def run_config(config: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration's checks; return its row (configuration + verdicts + timings).

    This is the task a sweep sends to the workers: Dask pickles it by reference, so it
    must stay a module-level function here (``harness.sweep.task.run_config``), the
    workers import it from this module. It never raises: an exception becomes an error
    row (``status`` "error", ``error_type``, ``error`` with the message and where it was
    raised).
    """
    t_start = time.perf_counter()
    row = {**config, **_empty_result()}
    row["worker"] = _worker_name()
    try:
        X, y = _standardized(config["dataset"])
        spec, opt = _specs(config)
        # copies: the cached arrays must survive whatever a backend does to its input
        x_check, y_check = X[:config["check_samples"]].copy(), y[:config["check_samples"]].copy()
        X_train, y_train = X[:config["train_samples"]].copy(), y[:config["train_samples"]].copy()
        verdicts = []
        for check in config["checks"].split(","):
            t0 = time.perf_counter()
            if check == "training":
                verdicts.append(_RUNNERS[check](config, spec, opt, X_train, y_train, row))
            else:
                verdicts.append(_RUNNERS[check](config, spec, opt, x_check, y_check, row))
            row[f"t_{check}_s"] = time.perf_counter() - t0
        row.update(status="ok", passed=all(verdicts))
    except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
        row.update(status="error", passed=None, error_type=type(exc).__name__,
                   error=_error_text(exc))
    row["t_total_s"] = time.perf_counter() - t_start
    row["finished_at"] = _now()
    return row


def _now() -> str:
    from datetime import datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds")


def error_row(config: dict[str, Any], error_type: str, message: str, *,
              worker: str | None = None) -> dict[str, Any]:
    """The row of a configuration whose task did not return one (raised, or its worker died)."""
    row = {**config, **_empty_result()}
    row.update(status="error", error_type=error_type, error=" ".join(message.split())[:2000],
               worker=worker, finished_at=_now())
    return row

"""The task a sweep's workers run: one configuration in, one row (a flat dict) out.

:func:`run_config` is the only entry point; it never raises, a failure becomes an error
row carrying the exception's message. Each check fills its own columns of the row.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC
from functools import lru_cache
from pathlib import Path
from typing import Any



@lru_cache(maxsize=8)
def _dataset(name: str):
    """A built-in data set, loaded once per process."""
    from harness.data.datasets import load_dataset

    return load_dataset(name)


def _specs(config: dict[str, Any]):
    from harness.model.specs import ModelSpec, OptimizerSpec

    dims = tuple(int(d) for d in config["dims"].split("-"))
    common = dict(dtype=config["dtype"], seed=config["seed"],
                  loss_reduction=config.get("loss_reduction") or "mean",
                  loss=config.get("loss") or "cross_entropy",
                  loss_outputs=config.get("loss_outputs") or "mean",
                  mse_half=bool(config.get("mse_half") or False))
    layers = config.get("layers")
    shape = _input_shape(config)
    if layers and layers != "none":
        spec = ModelSpec(layers=layers, input_shape=shape or (dims[0],), **common)
    else:
        spec = ModelSpec(dims, activation=config["activation"], **common)
    opt = {"name": config["optimizer"], "lr": config["lr"],
           "weight_decay": config["weight_decay"],
           "weight_decay_in": config.get("weight_decay_in") or "optimizer",
           "weight_decay_on": config.get("weight_decay_on") or "all"}
    if config["optimizer"] == "sgd":
        opt.update(momentum=config["momentum"], nesterov=config["nesterov"])
    elif config.get("beta1") is not None:
        opt.update(betas=(config["beta1"], config["beta2"]), eps=config["eps"])
    else:  # rmsprop, adagrad
        opt.update(eps=config["eps"])
    return spec, OptimizerSpec(**opt)


def _input_shape(config: dict[str, Any]) -> tuple[int, ...] | None:
    """The configuration's image shape (C, H, W), or None for rows."""
    text = config.get("input_shape")
    if not text or text == "none":
        return None
    return tuple(int(d) for d in str(text).split(","))


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
    from harness.sweep.store import result_columns

    row: dict[str, Any] = dict.fromkeys(result_columns())
    row["task_id"] = uuid.uuid4().hex
    return row


def check_config(config: dict[str, Any]):
    """The :class:`harness.checks.CheckConfig` of one sweep configuration.

    The equivalence and gradient checks use the first ``check_samples`` rows of the
    standardised data set in a fixed seeded order (the gradient check all of them),
    the training trajectory the first ``train_samples``; one thread per task (a
    worker process runs one task at a time).
    """
    from harness.checks import CheckConfig

    spec, opt = _specs(config)
    return CheckConfig(
        (config["reference"], config["candidate"]), spec, opt, rtol=config["rtol"],
        atol=config["atol"], threads=1, check_samples=config["check_samples"],
        gradcheck_samples=None, gradcheck_max_entries=config["gradcheck_entries"],
        gradcheck_eps=config["gradcheck_eps"], epochs=config["epochs"],
        batch_size=config["batch_size"], train_samples=config["train_samples"],
        val_fraction=0.0)


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
        from harness.checks import run_checks

        data = _dataset(config["dataset"])
        shape = _input_shape(config)
        run = run_checks(check_config(config), data if shape is None else data.as_images(shape),
                         config["checks"].split(","))
        row.update(run.row())
        row.update(status="ok", passed=run.passed)
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

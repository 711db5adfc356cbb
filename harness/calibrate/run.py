"""Measuring the harness's verdicts both ways: false alarms, detections, resolution.

* :func:`false_alarms`: random correct configurations (:mod:`harness.calibrate.configs`)
  through every check, for the pairs scratch/torch and simple/torch; every row is one
  (configuration, pair, check) with its verdict. A correct pair that fails is a false
  alarm.
* :func:`detections`: every bug of :data:`harness.calibrate.entries.CATALOGUE`
  against torch, per case (data set and hidden widths), dtype and check; a row says
  whether the check caught it.
* :func:`resolution`: bisects the relative error of one gradient entry until the
  equivalence check stops catching it.

Every check is run through the checks layer (:mod:`harness.checks`): a
:class:`~harness.checks.CheckConfig` per configuration and the layer's runners, the
injected bugs named as plug-in backends (``harness.calibrate.catalogue:Class``).
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from harness.calibrate import configs as C
from harness.calibrate.catalogue import perturbed_backend
from harness.calibrate.entries import CATALOGUE, Bug

#: the catalogue's (data set, hidden widths) cases; --quick runs the first only
CASES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("iris", (16, 16)), ("wine", (16, 16)), ("digits", (32, 32)))
DTYPES = ("float32", "float64")
#: the sizes of the catalogue's checks (rows, entries, epochs)
CATALOGUE_SIZES = {"check_samples": 64, "gradcheck_samples": 32,
                   "gradcheck_max_entries": 20, "epochs": 3, "batch_size": 16,
                   "train_samples": 128}


def check_config(backends, spec, optimizer, *, threads: int = 1, init_params=None,
                 **sizes):
    """The :class:`~harness.checks.CheckConfig` of one calibration run."""
    from harness.checks import CheckConfig

    kw = {"check_samples": C.CHECK_SAMPLES, "gradcheck_samples": C.GRADCHECK_SAMPLES,
          "gradcheck_max_entries": C.GRADCHECK_ENTRIES, "epochs": C.EPOCHS,
          "train_samples": C.TRAIN_SAMPLES, **sizes}
    return CheckConfig(tuple(backends), spec, optimizer, threads=threads,
                       init_params=init_params, val_fraction=0.0, **kw)


def cv_subset(data, seed: int):
    """At most :data:`~harness.calibrate.configs.CV_SAMPLES` rows of ``data``, drawn
    stratified with ``seed`` (all of them for a smaller set, or one whose classes are
    too small to stratify)."""
    import dataclasses

    from sklearn.model_selection import train_test_split

    if len(data.y) <= C.CV_SAMPLES:
        return data
    idx = np.arange(len(data.y))
    try:
        keep, _ = train_test_split(idx, train_size=C.CV_SAMPLES, stratify=data.y,
                                   random_state=seed)
    except ValueError:
        keep = np.random.default_rng(seed).permutation(idx)[:C.CV_SAMPLES]
    keep = np.sort(keep)
    return dataclasses.replace(data, X=data.X[keep], y=data.y[keep])


def _run(check: str, config, data, names=None):
    from harness.checks import run_cv, run_drift, run_equivalence, run_gradcheck, run_training

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if check == "equivalence":
            return run_equivalence(config, data)
        if check == "gradcheck":
            return run_gradcheck(config, data, names=names)
        if check == "drift":  # the float32 run of the workload, judged from float64
            return run_drift(config.with_dtype("float64"), data)
        if check == "cv":
            return run_cv(dataclasses.replace(config, folds=C.CV_FOLDS),
                          cv_subset(data, config.spec.seed))
        return run_training(config, data)


def _first_words(text: str | None, n: int = 500) -> str:
    return "" if not text else " ".join(str(text).split())[:n]


# ------------------------------------------------------------------ (a) false alarms
def config_rows(seed: int, index: int, *, threads: int = 1,
                checks: tuple[str, ...] = C.CHECKS) -> list[dict[str, Any]]:
    """Every (pair, check) row of configuration ``index``, for ``checks`` (never raises)."""
    cfg = C.draw_config(seed, index)
    base = {"index": index, **{k: v for k, v in cfg.items() if k != "index"}}
    base["hidden"] = "-".join(map(str, cfg["hidden"]))
    rows = []
    try:
        data = C.dataset_of(cfg)
        spec, opt = C.specs_of(cfg, data)
        batch = min(cfg["batch_size"], min(len(data.y), C.TRAIN_SAMPLES))
    except Exception as exc:  # noqa: BLE001 - a configuration the harness refused
        return [{**base, "pair": pair, "check": check, "status": "ERROR", "passed": False,
                 "seconds": 0.0, "summary": _first_words(f"{type(exc).__name__}: {exc}")}
                for pair in C.PAIRS for check in checks]
    base["dims"] = "-".join(map(str, spec.dims))
    for pair, backends in C.PAIRS.items():
        config = check_config(backends, spec, opt, threads=threads, batch_size=batch,
                              epochs=cfg.get("epochs", C.EPOCHS))
        for check in checks:
            names = None if pair == "scratch-torch" else (backends[1],)
            t0 = time.perf_counter()
            try:
                result = _run(check, config, data, names)
                status, passed, summary = result.status, result.passed, result.summary
                if getattr(result.report, "diverged_together", False) or (
                        result.fields or {}).get("cv_diverged_together"):
                    # both sides blew up at one step: a FAIL of the workload, not an alarm
                    # about the code; counted with the cautions
                    status, passed = "WARN", True
            except Exception as exc:  # noqa: BLE001 - the harness itself raised
                status, passed = "ERROR", False
                summary = f"{type(exc).__name__}: {exc}"
            rows.append({**base, "pair": pair, "check": check, "status": status,
                         "passed": bool(passed), "seconds": time.perf_counter() - t0,
                         "summary": _first_words(summary)})
    return rows


def _chunk(args) -> list[dict[str, Any]]:
    seed, indices, threads, checks = args
    return [row for i in indices
            for row in config_rows(seed, i, threads=threads, checks=checks)]


def false_alarms(n: int, seed: int, *, threads: int = 1, workers: int = 1,
                 log: Callable[[str], None] | None = None,
                 checks: tuple[str, ...] = C.CHECKS) -> list[dict[str, Any]]:
    """The rows of ``n`` random correct configurations (``workers`` processes) through
    ``checks``."""
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    step = max(1, min(50, n // 20 or 1))
    chunks = [list(range(s, min(n, s + step))) for s in range(0, n, step)]

    def progress(done: int) -> None:
        if log is not None:
            dt = time.perf_counter() - t0
            alarms = sorted({r["index"] for r in rows if not r["passed"]})
            so_far = (f"; {len(alarms)} with a false alarm so far: "
                      f"{', '.join(map(str, alarms[:20]))}" if alarms else "")
            log(f"false alarms: {done}/{n} configurations, {dt:.0f} s "
                f"({done / dt if dt else 0:.2f}/s){so_far}")

    if workers <= 1:
        for chunk in chunks:
            rows.extend(_chunk((seed, chunk, threads, checks)))
            progress(chunk[-1] + 1)
    else:
        from concurrent.futures import ProcessPoolExecutor

        done = 0
        with ProcessPoolExecutor(workers) as pool:
            for chunk, part in zip(chunks, pool.map(
                    _chunk, [(seed, c, threads, checks) for c in chunks])):
                rows.extend(part)
                done += len(chunk)
                progress(done)
    return rows


# ------------------------------------------------------------------ (b) detection
def bug_config(bug: Bug, dataset: str, hidden: tuple[int, ...], dtype: str, seed: int, *,
               threads: int = 1):
    """``(CheckConfig, data)`` of one catalogue entry on one case, torch the reference."""
    from harness.checks.run import build_model
    from harness.model.specs import ModelSpec, OptimizerSpec

    data = C._bundled(dataset)
    spec = ModelSpec((data.n_features, *hidden, data.n_classes), activation=bug.activation,
                     dtype=dtype, seed=seed, **bug.model)
    opt = OptimizerSpec(**{"weight_decay": 0.0, **bug.optimizer})  # no decay unless named
    config = check_config(("torch", bug.backend), spec, opt, threads=threads,
                          **CATALOGUE_SIZES)
    if bug.logit_scale != 1.0:
        params = build_model(config, "torch").get_params()
        last = spec.n_layers - 1
        for key in (f"W{last}", f"b{last}"):
            params[key] = params[key] * bug.logit_scale
        config = check_config(("torch", bug.backend), spec, opt, threads=threads,
                              init_params=params, **CATALOGUE_SIZES)
    return config, data


def _cases_of(bug: Bug, cases) -> list[tuple[str, tuple[int, ...]]]:
    if bug.cls == "LazyAdam":
        # exact zero gradients are what lazy Adam mishandles: digits has pixels that
        # are 0 in every image, so the first layer's rows for them get none but decay
        return [("digits", (16, 16))]
    return list(cases)


def detections(bugs: Iterable[Bug] = CATALOGUE, *, cases=CASES, dtypes=DTYPES,
               seed: int = 0, threads: int = 1,
               log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """One row per (bug, case, dtype, check): caught or missed, and the verdict."""
    rows = []
    for bug in bugs:
        for dataset, hidden in _cases_of(bug, cases):
            for dtype in dtypes:
                config, data = bug_config(bug, dataset, hidden, dtype, seed, threads=threads)
                for check in C.CHECKS:
                    t0 = time.perf_counter()
                    try:
                        result = _run(check, config, data, (bug.backend,))
                        status, summary = result.status, result.summary
                    except Exception as exc:  # noqa: BLE001 - the harness itself raised
                        status, summary = "ERROR", f"{type(exc).__name__}: {exc}"
                    rows.append({
                        "bug": bug.key, "class": bug.cls, "expect": bug.expected(dtype),
                        "dataset": dataset, "dims": "-".join(map(str, config.spec.dims)),
                        "activation": bug.activation, "optimizer": bug.optimizer["name"],
                        "dtype": dtype, "check": check, "status": status,
                        "caught": status not in ("PASS", "INFO", "WARN"),
                        "seconds": time.perf_counter() - t0,
                        "summary": _first_words(summary)})
        if log is not None:
            log(f"catalogue: {bug.key} done")
    return rows


# ------------------------------------------------------------------ (c) resolution
RESOLUTION_CASE = ("wine", (32, 32))


def _caught(rel: float, dtype: str, seed: int, threads: int) -> bool:
    from harness.checks import run_equivalence

    bug = Bug("one_entry", perturbed_backend(rel).split(":")[1], "", activation="tanh")
    config, data = bug_config(bug, *RESOLUTION_CASE, dtype, seed, threads=threads)
    return not run_equivalence(config, data).passed


def resolution(dtype: str = "float64", *, seed: int = 0, threads: int = 1, lo: float = 1e-13,
               hi: float = 1e-2, steps: int = 24) -> dict[str, Any]:
    """The smallest relative error of one gradient entry the equivalence check catches.

    Bisects log10(rel) between ``lo`` (must pass) and ``hi`` (must be caught); after
    ``steps`` halvings the bracket is a factor of (hi/lo)^(2^-steps) wide. The entry is
    :class:`~harness.calibrate.catalogue.OneEntryOff`'s (median magnitude of the
    middle weight gradient) on :data:`RESOLUTION_CASE`, tanh.
    """
    from harness.checks.run import build_model, check_rows

    caught_lo, caught_hi = _caught(lo, dtype, seed, threads), _caught(hi, dtype, seed, threads)
    a, b = math.log10(lo), math.log10(hi)
    if not caught_lo and caught_hi:
        for _ in range(steps):
            mid = (a + b) / 2
            if _caught(10 ** mid, dtype, seed, threads):
                b = mid
            else:
                a = mid
    # the entry and what the tolerance predicts for it
    from harness.compare.equivalence import default_tolerances

    bug = Bug("one_entry", "OneEntryOff", "", activation="tanh")
    config, data = bug_config(bug, *RESOLUTION_CASE, dtype, seed, threads=threads)
    model = build_model(config, "torch")
    x, y = check_rows(config, data)
    _, grads = model.loss_and_grads(x.astype(dtype), y)
    key = f"W{config.spec.n_layers // 2}"
    g = abs(grads[key]).ravel()
    nz = g[g > 0]
    entry = float(sorted(nz)[len(nz) // 2]) if nz.size else 0.0
    rtol, atol = default_tolerances(dtype)
    predicted = (rtol + atol * max(1.0, float(g.max())) / entry) if entry else math.inf
    return {"dtype": dtype, "dims": "-".join(map(str, config.spec.dims)),
            "dataset": RESOLUTION_CASE[0], "gradient": key, "gradient_size": int(g.size),
            "entry_magnitude": entry, "gradient_max": float(g.max()),
            "bracket_lo": lo, "bracket_hi": hi, "caught_at_lo": caught_lo,
            "caught_at_hi": caught_hi,
            "smallest_caught": 10 ** b if (not caught_lo and caught_hi) else None,
            "largest_missed": 10 ** a if (not caught_lo and caught_hi) else None,
            "predicted_by_tolerance": predicted, "rtol": rtol, "atol": atol}

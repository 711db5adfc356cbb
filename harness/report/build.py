"""Running the stages of a report and writing its folder.

:func:`build_report` validates the settings, runs the stages of
:class:`~harness.report.stages._Run` in order inside a staged folder, and writes
``results.json``, ``report.md`` and ``index.html`` beside the stages' own files.

The correctness stages (1 to 5) run with one thread for NumPy's BLAS and for torch:
their matrices are tiny, and extra threads only add synchronisation (and on a busy
machine, many times the run time). The benchmark uses every core. ``threads`` in
the settings (``--threads``) sets both.

``results.json`` (schema version 1) holds: ``schema``, ``schema_version``, ``name``,
``created`` (ISO 8601), ``elapsed_s``, ``harness_version``, ``command``, ``passed``,
``exit_code`` (0 or 1), ``verdicts`` (a list: ``key``, ``title``, ``verdict``
PASS/FAIL/INFO/SKIPPED, ``counts`` (whether it decides the overall verdict),
``summary``, ``seconds``), ``settings``, ``data``, ``stages`` (one entry per stage
key: the stage's own ``to_dict()`` output plus ``files``; None when skipped),
``machine`` and ``files`` (every file of the folder, relative paths). The
``gradcheck`` stage holds one report per backend under ``backends``. Non-finite
numbers are written as the strings ``"nan"``, ``"inf"`` and ``"-inf"``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.report.model import SKIPPED, STAGES, ReportOutcome, StageResult, Verdict
from harness.report.settings import ReportSettings, validate_settings
from harness.report.stages import _Run
from harness.runtime.console import to_stderr
from harness.runtime.values import jsonable

SCHEMA = "nn-harness-report"
SCHEMA_VERSION = 1


def build_report(data, settings: ReportSettings, out: str | os.PathLike, *,
                 force: bool = False, quiet: bool = False,
                 log: Callable[[str], None] | None = None,
                 command: list[str] | None = None) -> ReportOutcome:
    """Run every stage on ``data`` and write the report folder ``out``.

    Parameters
    ----------
    data : harness.data.datasets.Dataset
        Unstandardised; each stage standardises as it needs (the whole set for the
        equivalence and gradient checks, the training part's statistics for training
        and for every CV fold).
    settings : ReportSettings
    out : path
        The report folder. An existing non-empty one is refused (ConfigError) unless
        ``force``, before anything runs.
    quiet : bool
        No progress lines.
    log : callable, optional
        Where progress lines go (default: stderr).
    command : list of str, optional
        The command line, recorded in the report.

    Returns
    -------
    ReportOutcome
        ``passed`` is True when every check passed.

    Raises
    ------
    ConfigError
        Bad settings or ``out``; nothing is written.
    KeyboardInterrupt
        Passed on; nothing is left behind.
    """
    from harness.data.atomic import check_output_dir, staged_dir
    from harness.model.registry import make_backend

    started = time.perf_counter()
    validate_settings(settings, data)
    out = Path(out)
    check_output_dir(out, force=force)
    for name in settings.backends:  # a class that cannot be built is bad input: refuse now
        model = make_backend(name, settings.spec, settings.optimizer, device=settings.device)
        if settings.init_params is not None:
            model.set_params(settings.init_params)
    say = (lambda m: None) if quiet else (log or to_stderr)
    created = _dt.datetime.now().astimezone()

    plan, drift_refused = _stage_plan(settings, data)

    # staged: an interrupted or failed run leaves nothing behind, and a folder someone
    # else filled meanwhile is kept (a ConfigError)
    correctness_threads = settings.threads or 1
    with staged_dir(out, force=force, keep_partial=False, what="report") as tmp:
        run = _Run(settings, data, tmp, say, quiet)
        results: dict[str, StageResult] = {}
        for k, (key, label) in enumerate(plan, start=1):
            results[key] = _run_stage(run, key, f"[{k}/{len(plan)}] {label}", settings,
                                      say, correctness_threads)
        say("writing the report ...")
        machine = _machine(results.get("bench"), correctness_threads)
        outcome = _write(tmp, out, data, settings, results, machine, created,
                         started, command, drift_refused=drift_refused)
    outcome.path = out
    return outcome


def _stage_plan(settings: ReportSettings, data) -> tuple[list[tuple[str, str]], str | None]:
    """The stages to run, (key, label) in order; and why the drift run was refused, or None."""
    plan = [("equivalence", "equivalence check"), ("gradcheck", "gradient checks"),
            ("training", (f"training trajectories, {settings.spec.dtype}, "
                          f"{settings.epochs} epochs")),
            ("drift", "float32 drift run"),
            ("cv", f"{settings.folds}-fold cross-validation, {settings.epochs} epochs per fold"),
            ("bench", "benchmark (quick)")]
    drift_refused = None
    if settings.spec.dtype != "float64" or not settings.drift:
        plan = [p for p in plan if p[0] != "drift"]
    else:  # a plug-in that computes in float64 only has no float32 run to compare
        drift_refused = _float32_refused(settings, data)
        if drift_refused is not None:
            plan = [p for p in plan if p[0] != "drift"]
    if settings.bench is None or not _bench_times(settings.spec):
        plan = [p for p in plan if p[0] != "bench"]
    return plan, drift_refused


def _bench_times(spec) -> bool:
    """Whether the benchmark can time ``spec``'s network: a conv network on images
    needs ``BenchConfig.input_shape``."""
    from dataclasses import fields

    from harness.bench import BenchConfig

    if len(spec.input_shape or ()) != 3:
        return True
    return any(f.name == "input_shape" for f in fields(BenchConfig))


def _run_stage(run: _Run, key: str, prefix: str, settings: ReportSettings, say,
               correctness_threads: int) -> StageResult:
    """Run one stage (the correctness stages under the thread limit), timed, with its lines."""
    from harness.runtime.threads import limit_threads

    say(f"{prefix} ...")
    t0 = time.perf_counter()
    if key == "bench":
        stage = getattr(run, key)()
    else:
        with limit_threads(correctness_threads, backends=settings.backends):
            stage = getattr(run, key)()
    stage.seconds = time.perf_counter() - t0
    for v in stage.verdicts:
        if v.seconds is None:
            v.seconds = stage.seconds
    say(f"{prefix}: "
        f"{', '.join(_short(v) for v in stage.verdicts)} "
        f"({stage.seconds:.1f} s)")
    return stage


def _float32_refused(settings: ReportSettings, data) -> str | None:
    """Why the float32 drift run cannot run (a plug-in computes in float64 only), or None."""
    if not any(":" in name for name in settings.backends):
        return None
    from harness.checks import CheckConfig, preflight
    from harness.errors import ConfigError

    config = CheckConfig(tuple(settings.backends), settings.spec, settings.optimizer,
                         init_params=settings.init_params, device=settings.device)
    try:
        preflight(config, data, dtype="float32")
    except ConfigError as exc:
        return " ".join(str(exc).split())
    return None


def _short(v: Verdict) -> str:
    return v.verdict if v.key.count(":") == 0 else f"{v.key.split(':', 1)[1]} {v.verdict}"


def _machine(bench: StageResult | None, threads: int) -> dict[str, Any]:
    from harness.runtime.machine import machine_info

    if bench is not None and bench.view is not None:
        info = dict(bench.view["machine"])
    else:
        info = machine_info(threads)
    info["threads_correctness_stages"] = threads
    return info


def _write(tmp: Path, out: Path, data, settings: ReportSettings,
           results: dict[str, StageResult], machine: dict[str, Any],
           created: _dt.datetime, started: float, command, *,
           drift_refused: str | None = None) -> ReportOutcome:
    from harness import __version__
    from harness.report.render import render_html, render_markdown

    verdicts = [v for stage in results.values() for v in stage.verdicts]
    skipped = []
    if "drift" not in results:
        why = (f"the configured dtype is {settings.spec.dtype}: the training stage is the "
               f"float32 run" if settings.spec.dtype != "float64" else
               drift_refused or "not asked for")
        skipped.append(Verdict("drift", "float32 drift", SKIPPED, why, counts=False,
                               anchor="drift"))
    if "bench" not in results:
        why = ("not run (--no-bench)" if settings.bench is None else
               "not run (the benchmark does not time image inputs (N, C, H, W) here)")
        skipped.append(Verdict("bench", "Benchmark", SKIPPED, why, counts=False,
                               anchor="bench"))
    order = {k: i for i, k in enumerate(STAGES)}
    verdicts = sorted(verdicts + skipped, key=lambda v: order[v.key.split(":")[0]])
    counted = [v for v in verdicts if v.counts]
    passed = all(v.passed for v in counted)
    files = sorted({f for stage in results.values() for f in stage.files})
    files += ["index.html", "report.md", "results.json"]
    elapsed = round(time.perf_counter() - started, 3)  # the page and the JSON say the same
    data_info = {"name": data.name, "n_samples": len(data), "n_features": data.n_features,
                 "n_classes": data.n_classes, "class_names": list(data.class_names)}
    if data.image_shape is not None:
        data_info["input_shape"] = list(data.image_shape)
    doc = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "name": out.name,
        "created": created.isoformat(timespec="seconds"),
        "elapsed_s": elapsed,
        "harness_version": __version__,
        "command": list(command) if command else None,
        "passed": passed,
        "exit_code": 0 if passed else 1,
        "verdicts": [v.to_dict() for v in verdicts],
        "settings": settings.to_dict(),
        "data": data_info,
        "stages": {key: (results[key].json if key in results else None) for key in STAGES},
        "stage_seconds": {key: round(r.seconds, 3) for key, r in results.items()},
        "machine": machine,
        "files": sorted(files),
    }
    doc = jsonable(doc)
    # plain writes: the whole folder is staged, and mkstemp's private mode would stick
    (tmp / "results.json").write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n",
                                      encoding="utf-8")
    context = {
        "doc": doc, "verdicts": verdicts, "passed": passed,
        "n_counted": len(counted), "n_passed": sum(v.passed for v in counted),
        "settings": settings, "data": data_info, "machine": machine,
        "stages": {key: r.view for key, r in results.items()},
        "stage_seconds": doc["stage_seconds"], "elapsed_s": elapsed,
        "created": created, "name": out.name, "version": __version__,
        "reference": settings.backends[0], "candidate": settings.backends[1],
        "files": doc["files"],
    }
    (tmp / "report.md").write_text(render_markdown(context), encoding="utf-8")
    (tmp / "index.html").write_text(render_html(context, tmp), encoding="utf-8")
    return ReportOutcome(out, passed, verdicts, elapsed, doc)

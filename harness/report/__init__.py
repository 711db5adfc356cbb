"""One command, one report: every comparison of two backends side by side.

:func:`build_report` runs, in order,

1. ``equivalence``: :func:`harness.compare.equivalence.check_equivalence` on the whole
   (standardised) data set as one batch;
2. ``gradcheck``: :func:`harness.gradients.finite_diff.gradcheck` of each backend on a seeded
   subset of the samples;
3. ``training``: :func:`harness.training.side_by_side.compare_training` in the configured dtype,
   with a stratified validation part;
4. ``drift``: the same workload in float32 (when the configured dtype is float64),
   to show where float32 trajectories of two implementations drift apart;
5. ``cv``: :func:`harness.training.cv.cross_validate`, k folds, both backends on the same folds;
6. ``bench``: a short benchmark (:meth:`harness.bench.BenchConfig.quick`);

and writes, into one folder, ``index.html`` (a self-contained page: images embedded
as data URIs, no script, no network), ``report.md`` (the same in Markdown, image
links), ``results.json`` (everything machine-readable, :data:`SCHEMA` version
:data:`SCHEMA_VERSION`) and the CSV and PNG files behind every table and figure,
one sub-folder per stage.

The folder is built in a temporary folder beside it and moved into place only when
complete: an interrupted or failed run leaves nothing behind, and an existing report
of the same name is refused unless ``force``.

Verdicts: every stage but the benchmark is a check (PASS or FAIL); the report passes
when all of them do. The benchmark is a measurement (INFO) and never fails a report.

The package: :mod:`~harness.report.settings` (the settings, their defaults and
validation), :mod:`~harness.report.stages` (one method per stage),
:mod:`~harness.report.build` (the run and the folder, ``results.json``'s layout),
:mod:`~harness.report.render` and :mod:`~harness.report.figures` (the page).
"""

from __future__ import annotations

from harness.report.build import SCHEMA, SCHEMA_VERSION, build_report
from harness.report.model import (
    FAIL,
    INFO,
    PASS,
    SKIPPED,
    STAGES,
    ReportOutcome,
    StageResult,
    Verdict,
)
from harness.report.settings import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_FOLDS,
    DEFAULT_GRADCHECK_MAX_ENTRIES,
    DEFAULT_GRADCHECK_SAMPLES,
    DEFAULT_MIN_AGREEMENT,
    DEFAULT_SPLIT_SEED,
    DEFAULT_VAL_FRACTION,
    ReportSettings,
    default_name,
    default_out,
    safe_name,
    validate_settings,
)
from harness.runtime.values import jsonable

__all__ = [
    "DEFAULT_BATCH_SIZE", "DEFAULT_EPOCHS", "DEFAULT_FOLDS", "DEFAULT_GRADCHECK_MAX_ENTRIES",
    "DEFAULT_GRADCHECK_SAMPLES", "DEFAULT_MIN_AGREEMENT", "DEFAULT_SPLIT_SEED",
    "DEFAULT_VAL_FRACTION", "FAIL", "INFO", "PASS", "SCHEMA", "SCHEMA_VERSION", "SKIPPED",
    "STAGES", "ReportOutcome", "ReportSettings", "StageResult", "Verdict", "build_report",
    "default_name", "default_out", "jsonable", "safe_name", "validate_settings",
]

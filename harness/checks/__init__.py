"""The checks layer: the one place that builds backends, runs checks and shapes results.

Given a :class:`CheckConfig` (backends, model and optimizer specs, tolerances, the
settings of each check) and a data set, :func:`run_checks` builds the backends
through :mod:`harness.model.registry`, runs each check that was asked for and returns a
:class:`CheckRun` of typed :class:`CheckResult` objects. Every result has one
dictionary form (``to_dict()``), one flat row (``row()``, the columns a sweep stores)
and one text form (``text()``, what the command line prints). The command line, the
report and the sweep all call this layer; none of them builds backends or flattens
results by itself, so a field added to a result here shows up in all three.

Checks, in the order :func:`run_checks` runs them (:data:`CHECKS`):

* ``equivalence``: copy the reference's weights into the candidate; compare
  parameters, logits, loss, gradients and one optimizer step.
* ``gradcheck``: every backend's gradients against central finite differences.
* ``training``: both backends trained side by side on identical batches.
* ``drift``: the training workload again in float32 (only for a float64 run).
* ``cv``: k-fold cross-validation of every backend on the same folds.
* ``bench``: timings side by side (a measurement, never a failure).
"""

from __future__ import annotations

from harness.checks.config import CHECKS, CheckConfig
from harness.checks.preflight import preflight
from harness.checks.result import (
    FAIL, INFO, NOT_CHECKED, PASS, STATUSES, WARN, CheckResult, CheckRun, Finding, Verdict,
    columns, worst_status,
)
from harness.checks.run import (
    build_models, run_bench, run_check, run_checks, run_cv, run_drift, run_equivalence,
    run_gradcheck, run_training,
)

__all__ = [
    "CHECKS", "CheckConfig", "CheckResult", "CheckRun", "Finding", "Verdict",
    "PASS", "FAIL", "WARN", "INFO", "NOT_CHECKED", "STATUSES", "columns", "worst_status",
    "build_models", "preflight", "run_check", "run_checks", "run_equivalence", "run_gradcheck",
    "run_training", "run_drift", "run_cv", "run_bench",
]

"""Side-by-side comparison harness for a from-scratch NumPy MLP and a PyTorch MLP.

The public names below are imported lazily, so that ``import harness`` (and
``nn-harness --help``) stays instant: torch, pandas, matplotlib and scikit-learn
load only when a command needs them.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Classifier": "harness.model.protocol",
    "ExposesIntermediates": "harness.model.protocol",
    "ModelSpec": "harness.model.specs",
    "OptimizerSpec": "harness.model.specs",
    "make_backend": "harness.model.registry",
    "copy_params": "harness.model.transfer",
    "check_equivalence": "harness.compare.equivalence",
    "EquivalenceReport": "harness.compare.equivalence",
    "DEFAULT_TOLERANCES": "harness.compare.equivalence",
    "locate_divergence": "harness.diagnose.localize",
    "gradcheck": "harness.gradients.finite_diff",
    "GradcheckReport": "harness.gradients.gradcheck_report",
    "compare_with_autograd": "harness.gradients.autograd",
    "torch_gradcheck": "harness.gradients.autograd",
    "compare_training": "harness.training.side_by_side",
    "TrajectoryReport": "harness.training.trajectory",
    "train": "harness.training.side_by_side",
    "train_side_by_side": "harness.training.side_by_side",
    "Dataset": "harness.data.datasets",
    "load_dataset": "harness.data.datasets",
    "load_data_file": "harness.data.datasets",
    "cross_validate": "harness.training.cv",
    "CVReport": "harness.training.cv",
    "HarnessError": "harness.errors",
    "ConfigError": "harness.errors",
    "ParamError": "harness.errors",
    "DataError": "harness.errors",
    "ProtocolError": "harness.errors",
    "NumericalError": "harness.errors",
    "WeightsError": "harness.errors",
    "save_weights": "harness.data.weights",
    "load_weights": "harness.data.weights",
    "SweepPlan": "harness.sweep",
    "SweepSummary": "harness.sweep",
    "ResultsStore": "harness.sweep",
    "load_plan": "harness.sweep",
    "run_sweep": "harness.sweep",
    "summarize_sweep": "harness.sweep",
    "BenchConfig": "harness.bench",
    "BenchResult": "harness.bench",
    "run_bench": "harness.bench",
    "compare_runs": "harness.bench",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__

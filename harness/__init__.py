"""Side-by-side comparison harness for a from-scratch NumPy MLP and a PyTorch MLP.

The public names below are imported lazily, so that ``import harness`` (and
``nn-harness --help``) stays instant: torch, pandas, matplotlib and scikit-learn
load only when a command needs them.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Classifier": "harness.protocol",
    "ExposesIntermediates": "harness.protocol",
    "ModelSpec": "harness.specs",
    "OptimizerSpec": "harness.specs",
    "make_backend": "harness.registry",
    "copy_params": "harness.params",
    "check_equivalence": "harness.compare",
    "EquivalenceReport": "harness.compare",
    "DEFAULT_TOLERANCES": "harness.compare",
    "locate_divergence": "harness.localize",
    "gradcheck": "harness.gradcheck",
    "GradcheckReport": "harness.gradcheck",
    "compare_with_autograd": "harness.autograd_check",
    "torch_gradcheck": "harness.autograd_check",
    "compare_training": "harness.training",
    "TrajectoryReport": "harness.training",
    "train": "harness.training",
    "train_side_by_side": "harness.training",
    "Dataset": "harness.data",
    "load_dataset": "harness.data",
    "load_data_file": "harness.data",
    "cross_validate": "harness.cv",
    "CVReport": "harness.cv",
    "HarnessError": "harness.errors",
    "ConfigError": "harness.errors",
    "ParamError": "harness.errors",
    "DataError": "harness.errors",
    "ProtocolError": "harness.errors",
    "NumericalError": "harness.errors",
    "WeightsError": "harness.errors",
    "save_weights": "harness.weights",
    "load_weights": "harness.weights",
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

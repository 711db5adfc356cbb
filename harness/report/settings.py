"""The report's settings: :class:`ReportSettings`, their defaults and their validation,
and the default name and folder of a report."""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError, DataError
from harness.runtime.values import check_int

#: defaults of the report (the command line shows them in --help)
DEFAULT_EPOCHS = 50
DEFAULT_BATCH_SIZE = 64
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_FOLDS = 5
DEFAULT_SPLIT_SEED = 42
DEFAULT_MIN_AGREEMENT = 0.99
DEFAULT_GRADCHECK_SAMPLES = 128
DEFAULT_GRADCHECK_MAX_ENTRIES = 200


# ------------------------------------------------------------------- settings
@dataclass
class ReportSettings:
    """Everything a report run needs besides the data.

    Parameters
    ----------
    spec : ModelSpec
    optimizer : OptimizerSpec
    backends : (reference, candidate)
    rtol, atol : float, optional
        Tolerances of the equivalence check and of the trajectory comparison in
        ``spec.dtype`` (both or neither; default by dtype). The float32 drift run
        always uses the float32 defaults.
    epochs, batch_size, shuffle, val_fraction :
        Training: the trajectory comparison, the drift run and every CV fold train
        ``epochs`` epochs of ``batch_size``; ``val_fraction`` of the samples is held
        out (stratified) for validation in the trajectory runs; ``shuffle`` applies to
        those runs (CV always reshuffles each epoch).
    folds, stratify, split_seed, min_agreement :
        Cross-validation; it passes when at least ``min_agreement`` of all validation
        predictions are identical across the two backends.
    gradcheck_samples, gradcheck_max_entries :
        Samples the finite-difference loss is computed on, and entries checked per
        parameter (seeded random subsets).
    drift : bool
        Run the float32 drift run (only when ``spec.dtype`` is float64).
    bench : BenchConfig, "quick" or None
        The benchmark to run; "quick" is :meth:`harness.bench.BenchConfig.quick` for
        the two backends and this report's optimizer and learning rate, with this
        report's network and batch size added to its grid when they are not in it;
        None skips it.
    device : "cpu" or "cuda" (torch backend)
    threads : int, optional
        Threads of NumPy's BLAS and torch in every stage; None: one for the checks
        (stages 1 to 5) and every core for the benchmark.
    init_params : dict, optional
        Initial parameters (canonical layout) of every model instead of the seeded
        initialisation; cast to float32 for the drift run.
    init_from : str, optional
        Where ``init_params`` came from (recorded in the report).
    """

    spec: Any
    optimizer: Any
    backends: tuple[str, str] = ("scratch", "torch")
    rtol: float | None = None
    atol: float | None = None
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    shuffle: bool = True
    val_fraction: float = DEFAULT_VAL_FRACTION
    folds: int = DEFAULT_FOLDS
    stratify: bool = True
    split_seed: int = DEFAULT_SPLIT_SEED
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    gradcheck_samples: int = DEFAULT_GRADCHECK_SAMPLES
    gradcheck_max_entries: int = DEFAULT_GRADCHECK_MAX_ENTRIES
    drift: bool = True
    bench: Any = "quick"
    device: str = "cpu"
    threads: int | None = None
    init_params: dict | None = field(default=None, repr=False)
    init_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items()
             if k not in ("spec", "optimizer", "bench", "init_params")}
        d["backends"] = list(self.backends)
        d["model"] = self.spec.to_dict()
        d["optimizer"] = self.optimizer.to_dict()
        bench = self.bench
        d["bench"] = None if bench is None else ("quick" if isinstance(bench, str)
                                                 else bench.to_dict())
        return d


def validate_settings(settings: ReportSettings, data) -> None:
    """Refuse bad settings for ``data`` with a ConfigError, before anything runs."""
    from harness.compare.equivalence import resolve_tolerances
    from harness.model.registry import validate_backend_name
    from harness.model.specs import ModelSpec, OptimizerSpec
    from harness.training.side_by_side import validate_training_args

    s = settings
    if not isinstance(s.spec, ModelSpec):
        raise ConfigError(f"`spec` must be a ModelSpec, got {type(s.spec).__name__}")
    if not isinstance(s.optimizer, OptimizerSpec):
        raise ConfigError(f"`optimizer` must be an OptimizerSpec, got "
                          f"{type(s.optimizer).__name__}")
    backends = tuple(s.backends)
    if len(backends) != 2:
        raise ConfigError(f"`--backends` for report takes exactly two names (reference, "
                          f"candidate), got {','.join(backends)}")
    for name in backends:
        validate_backend_name(name)
    if backends[0] == backends[1]:
        raise ConfigError(f"`--backends` names a backend twice: {','.join(backends)}")
    if s.spec.dims[0] != data.n_features or s.spec.dims[-1] != data.n_classes:
        raise ConfigError(f"`dims` {s.spec.dims} do not fit {data.name}: it has "
                          f"{data.n_features} features and {data.n_classes} classes")
    resolve_tolerances(s.spec.dtype, s.rtol, s.atol)
    validate_training_args(s.epochs, s.batch_size)
    v = s.val_fraction
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or not 0 <= v < 1:
        raise ConfigError(f"`--val-fraction` must be in [0, 1), got {v}")
    if math.ceil(v * len(data)) >= len(data):
        raise DataError(f"`--val-fraction` {v:g} leaves no training samples out of {len(data)}")
    folds = check_int("folds", s.folds, 2)
    check_int("folds", folds, 2, len(data), " (the number of samples)")
    if s.stratify:
        counts = np.bincount(data.y, minlength=data.n_classes)
        k = int(np.argmin(counts))
        if counts[k] < folds:
            raise DataError(f"class {data.class_names[k]!r} has {counts[k]} member"
                            f"{'s' if counts[k] != 1 else ''}, fewer than the {folds} folds of "
                            f"stratified splitting; use fewer folds or --no-stratify")
    check_int("split_seed", s.split_seed, 0)
    m = s.min_agreement
    if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0.0 <= m <= 1.0:
        raise ConfigError(f"`--min-agreement` must be between 0 and 1, got {m}")
    check_int("--samples", s.gradcheck_samples, 1)
    check_int("--max-entries", s.gradcheck_max_entries, 1)
    if s.device not in ("cpu", "cuda"):
        raise ConfigError(f"`--device` must be one of cpu, cuda, got {s.device!r}")
    from harness.runtime.threads import validate_threads

    validate_threads(s.threads)
    if s.init_params is not None:
        from harness.model.layout import validate_params

        validate_params(s.init_params, s.spec.dims, s.spec.dtype)
    if s.bench is not None and not isinstance(s.bench, str):
        from harness.bench import BenchConfig

        if not isinstance(s.bench, BenchConfig):
            raise ConfigError(f"`bench` must be a BenchConfig, 'quick' or None, got "
                              f"{type(s.bench).__name__}")
    elif isinstance(s.bench, str) and s.bench != "quick":
        raise ConfigError(f"`bench` must be a BenchConfig, 'quick' or None, got {s.bench!r}")


# ------------------------------------------------------------------- names
def default_name(dataset: str, now: _dt.datetime | None = None) -> str:
    """``<dataset>-YYYYmmdd-HHMMSS``, the data set's name made safe for a folder."""
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    return f"{safe_name(dataset)}-{stamp}"


def default_out(dataset: str, root: str | os.PathLike = "reports") -> Path:
    """A free ``root/<dataset>-<timestamp>`` (``-2``, ``-3``... when taken)."""
    base = Path(root) / default_name(dataset)
    path, k = base, 1
    while path.exists() or path.with_name(path.name + ".partial").exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def safe_name(text: str) -> str:
    """``text`` with every character but letters, digits, ``._-`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "data"

"""One command, one report: every comparison of two backends side by side.

:func:`build_report` runs, in order,

1. ``equivalence``: :func:`harness.compare.check_equivalence` on the whole
   (standardised) data set as one batch;
2. ``gradcheck``: :func:`harness.gradcheck.gradcheck` of each backend on a seeded
   subset of the samples;
3. ``training``: :func:`harness.training.compare_training` in the configured dtype,
   with a stratified validation part;
4. ``drift``: the same workload in float32 (when the configured dtype is float64),
   to show where float32 trajectories of two implementations drift apart;
5. ``cv``: :func:`harness.cv.cross_validate`, k folds, both backends on the same folds;
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

import contextlib
import datetime as _dt
import math
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError, DataError, NumericalError

SCHEMA = "nn-harness-report"
SCHEMA_VERSION = 1

#: the stages, in the order they run
STAGES: tuple[str, ...] = ("equivalence", "gradcheck", "training", "drift", "cv", "bench")

#: defaults of the report (the command line shows them in --help)
DEFAULT_EPOCHS = 50
DEFAULT_BATCH_SIZE = 64
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_FOLDS = 5
DEFAULT_SPLIT_SEED = 42
DEFAULT_MIN_AGREEMENT = 0.99
DEFAULT_GRADCHECK_SAMPLES = 128
DEFAULT_GRADCHECK_MAX_ENTRIES = 200

PASS, FAIL, INFO, SKIPPED = "PASS", "FAIL", "INFO", "SKIPPED"


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


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"`{name}` must be an integer >= {minimum}, got {value!r}")
    return int(value)


def validate_settings(settings: ReportSettings, data) -> None:
    """Refuse bad settings for ``data`` with a ConfigError, before anything runs."""
    from harness.compare import resolve_tolerances
    from harness.registry import validate_backend_name
    from harness.specs import ModelSpec, OptimizerSpec
    from harness.training import validate_training_args

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
    folds = _check_int("folds", s.folds, 2)
    if folds > len(data):
        raise ConfigError(f"`folds` must be between 2 and {len(data)} (the number of "
                          f"samples), got {folds}")
    if s.stratify:
        counts = np.bincount(data.y, minlength=data.n_classes)
        k = int(np.argmin(counts))
        if counts[k] < folds:
            raise DataError(f"class {data.class_names[k]!r} has {counts[k]} member"
                            f"{'s' if counts[k] != 1 else ''}, fewer than the {folds} folds of "
                            f"stratified splitting; use fewer folds or --no-stratify")
    _check_int("split_seed", s.split_seed, 0)
    m = s.min_agreement
    if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0.0 <= m <= 1.0:
        raise ConfigError(f"`--min-agreement` must be between 0 and 1, got {m}")
    for flag, value in (("--samples", s.gradcheck_samples),
                        ("--max-entries", s.gradcheck_max_entries)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"`{flag}` must be >= 1, got {value}")
    if s.device not in ("cpu", "cuda"):
        raise ConfigError(f"`--device` must be one of cpu, cuda, got {s.device!r}")
    from harness.threads import validate_threads

    validate_threads(s.threads)
    if s.init_params is not None:
        from harness.layout import validate_params

        validate_params(s.init_params, s.spec.dims, s.spec.dtype)
    if s.bench is not None and not isinstance(s.bench, str):
        from harness.bench import BenchConfig

        if not isinstance(s.bench, BenchConfig):
            raise ConfigError(f"`bench` must be a BenchConfig, 'quick' or None, got "
                              f"{type(s.bench).__name__}")
    elif isinstance(s.bench, str) and s.bench != "quick":
        raise ConfigError(f"`bench` must be a BenchConfig, 'quick' or None, got {s.bench!r}")


# ------------------------------------------------------------------- results
@dataclass
class Verdict:
    """One line of the verdict table."""

    key: str
    title: str
    verdict: str
    summary: str
    counts: bool = True
    seconds: float | None = None
    anchor: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict != FAIL

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "verdict": self.verdict,
                "counts": self.counts, "summary": self.summary, "seconds": self.seconds}


@dataclass
class StageResult:
    """What a stage hands to the report: verdicts, JSON, template data, files."""

    key: str
    verdicts: list[Verdict]
    json: dict[str, Any] | None
    view: dict[str, Any] | None
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class ReportOutcome:
    """Returned by :func:`build_report`."""

    path: Path
    passed: bool
    verdicts: list[Verdict]
    elapsed_s: float
    results: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    @property
    def index(self) -> Path:
        return self.path / "index.html"


# ------------------------------------------------------------------- helpers
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


def jsonable(obj):
    """``obj`` with NumPy and pandas scalars made plain and non-finite floats as strings."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    try:
        import pandas as pd

        if obj is pd.NA or obj is pd.NaT:
            return None
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def records(frame) -> list[dict[str, Any]]:
    """A DataFrame as a list of plain dicts (NaN as None)."""
    out = []
    for row in frame.to_dict(orient="records"):
        clean = {}
        for k, v in row.items():
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, float) and math.isnan(v):
                v = None
            clean[str(k)] = v
        out.append(clean)
    return out


#: figures drawn across the page's width; the others sit two to a row
_WIDE = {"loss.png", "drift.png", "cv_loss_curves.png", "time_vs_batch.png", "gflops.png",
         "breakdown.png"}


def _figure(path: str, title: str, caption: str) -> dict[str, Any]:
    return {"path": path, "title": title, "caption": caption,
            "wide": path.rsplit("/", 1)[-1] in _WIDE}


def _csv(frame, tmp: Path, rel: str, files: list[str]) -> None:
    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(tmp / rel, index=False)
    files.append(rel)


def _sci(x) -> str:
    from harness.report.render import sci

    return sci(x)


# ------------------------------------------------------------------- stages
class _Run:
    """State shared by the stages of one report."""

    def __init__(self, settings: ReportSettings, data, tmp: Path, log, quiet: bool):
        from harness.data import standardize

        self.s = settings
        self.data = data
        self.tmp = tmp
        self.log = log
        self.quiet = quiet
        self.ref, self.cand = settings.backends
        (self.X,) = standardize(data.X)
        self.y = data.y
        self.trajectory: dict[str, Any] = {}

    def make(self, name: str, dtype: str | None = None):
        from dataclasses import replace

        from harness.registry import make_backend

        spec = self.s.spec if dtype is None else replace(self.s.spec, dtype=dtype)
        model = make_backend(name, spec, self.s.optimizer, device=self.s.device)
        if self.s.init_params is not None:  # set_params casts to the model's dtype
            model.set_params(self.s.init_params)
        return model

    # 1 -------------------------------------------------------------- equivalence
    def equivalence(self) -> StageResult:
        from harness.compare import check_equivalence

        s = self.s
        report = check_equivalence(self.make(self.ref), self.make(self.cand), self.X, self.y,
                                   rtol=s.rtol, atol=s.atol, reference_name=self.ref,
                                   candidate_name=self.cand)
        files: list[str] = []
        _csv(report.table, self.tmp, "equivalence/equivalence.csv", files)
        n_bad = sum(not r.passed for r in report.rows)
        worst = max((r.max_abs_err for r in report.rows), default=0.0)
        if report.passed:
            summary = (f"all {len(report.rows)} quantities agree (parameters, logits, loss, "
                       f"gradients, one optimizer step); largest absolute difference "
                       f"{_sci(worst)}")
        else:
            summary = (f"{n_bad} of {len(report.rows)} quantities differ; first: "
                       f"{report.first_failure.quantity}")
            if report.divergence and report.divergence.get("message"):
                summary += f"; first divergence: {report.divergence['message']}"
        title = f"Equivalence: {self.cand} against {self.ref}, {report.dtype}"
        verdict = Verdict("equivalence", title, PASS if report.passed else FAIL, summary,
                          anchor="equivalence")
        json = {**report.to_dict(), "n_samples": len(self.y), "files": files}
        view = {"report": report, "rows": [r.row() | {"n_elements": r.n_elements}
                                           for r in report.rows],
                "n_samples": len(self.y), "csv": files[0]}
        return StageResult("equivalence", [verdict], json, view, files)

    # 2 -------------------------------------------------------------- gradcheck
    def gradcheck(self) -> StageResult:
        from harness.batches import epoch_order
        from harness.gradcheck import gradcheck

        s = self.s
        rows = epoch_order(len(self.y), 0, seed=s.spec.seed)[:s.gradcheck_samples]
        verdicts, json, views, files = [], {}, [], []
        for name in (self.ref, self.cand):
            t0 = time.perf_counter()
            report = gradcheck(self.make(name), self.X[rows], self.y[rows],
                               max_entries=s.gradcheck_max_entries, seed=s.spec.seed, name=name)
            rel = f"gradcheck/{safe_name(name)}.csv"
            _csv(report.table, self.tmp, rel, files)
            checked = sum(p.checked for p in report.params)
            kinks = sum(p.kinks for p in report.params)
            total = sum(p.size for p in report.params)
            if report.passed:
                summary = (f"{checked - kinks} of {checked} checked entries (of {total}) agree "
                           f"with central differences; {kinks} skipped at kinks")
            else:
                bad = [p.name for p in report.params if not p.passed]
                summary = (f"{len(bad)} of {len(report.params)} parameters differ from central "
                           f"differences ({', '.join(bad)})")
            verdicts.append(Verdict(f"gradcheck:{name}", f"Gradient check: {name}",
                                    PASS if report.passed else FAIL, summary,
                                    seconds=time.perf_counter() - t0, anchor="gradcheck"))
            json[name] = {**report.to_dict(), "files": [rel]}
            views.append({"name": name, "report": report,
                          "rows": [p.row() for p in report.params], "csv": rel,
                          "checked": checked, "kinks": kinks, "total": total})
        view = {"backends": views, "n_samples": len(rows)}
        json = {"backends": json, "n_samples": len(rows), "files": files}
        return StageResult("gradcheck", verdicts, json, view, files)

    # 3, 4 ---------------------------------------------------------- training
    def _trajectory(self, dtype: str, folder: str, *, tolerances: bool):
        from harness.data import split_validation, standardize
        from harness.training import compare_training

        s = self.s
        X_tr, y_tr, X_va, y_va, stratified = split_validation(self.data.X, self.y,
                                                              s.val_fraction, s.spec.seed)
        if X_va is None:
            (X_tr,) = standardize(X_tr)
        else:
            X_tr, X_va = standardize(X_tr, X_va)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a batch larger than the data
            report = compare_training(
                self.make(self.ref, dtype), self.make(self.cand, dtype), X_tr, y_tr,
                epochs=s.epochs, batch_size=s.batch_size, seed=s.spec.seed, X_val=X_va,
                y_val=y_va, rtol=s.rtol if tolerances else None,
                atol=s.atol if tolerances else None, shuffle=s.shuffle,
                reference_name=self.ref, candidate_name=self.cand)
        files: list[str] = []
        _csv(report.history, self.tmp, f"{folder}/history.csv", files)
        _csv(report.drift, self.tmp, f"{folder}/drift.csv", files)
        split = {"n_train": len(y_tr), "n_val": 0 if y_va is None else len(y_va),
                 "val_fraction": s.val_fraction, "stratified": stratified}
        return report, files, split

    def _trajectory_summary(self, report) -> str:
        if report.error is not None:
            return f"numerical failure: {report.error}"
        if report.first_divergence is not None:
            return f"first divergence at {report.first_divergence}"
        return (f"within tolerance for all {report.steps} steps; largest loss difference "
                f"{_sci(report.max_loss_diff)}, largest parameter difference "
                f"{_sci(report.max_param_diff)}")

    def _trajectory_view(self, report, split, files, figures) -> dict[str, Any]:
        final = []
        for backend, m in report.final.items():
            final.append({"backend": backend, **m})
        drift = [{"threshold": float(t), "loss_diff_step": None if _na(a) else int(a),
                  "param_diff_step": None if _na(b) else int(b)}
                 for t, a, b in zip(report.drift["threshold"], report.drift["loss_diff_step"],
                                    report.drift["param_diff_step"])]
        return {"report": report, "final": final, "drift": drift, "split": split,
                "figures": figures, "files": files,
                "first_divergence": None if report.first_divergence is None
                else str(report.first_divergence),
                "error": None if report.error is None else str(report.error)}

    def training(self) -> StageResult:
        from harness.plots.training import write_training_plots

        dtype = self.s.spec.dtype
        report, files, split = self._trajectory(dtype, "training", tolerances=True)
        paths = write_training_plots(report.history, self.tmp / "training")
        captions = {
            "loss": ("Training loss", ("Batch loss per optimizer step (left) and mean "
                                       "training loss per epoch (right) of both backends; the "
                                       "lines lie on top of each other when the "
                                       "implementations agree.")),
            "accuracy": ("Accuracy", ("Validation accuracy per epoch of both backends "
                                      "(training accuracy when no validation part is held "
                                      "out).")),
            "differences": ("Differences", ("Absolute loss difference per step and largest "
                                            "parameter difference per epoch, log scale, with "
                                            "the allowed difference dotted; exact zeros are "
                                            "not drawn.")),
        }
        figures = []
        for kind, path in paths.items():
            rel = f"training/{path.name}"
            files.append(rel)
            figures.append(_figure(rel, *captions.get(kind, (kind, ""))))
        self.trajectory[dtype] = report
        title = (f"Training trajectories: {self.cand} against {self.ref}, {dtype}, "
                 f"{self.s.epochs} epochs")
        verdict = Verdict("training", title, PASS if report.passed else FAIL,
                          self._trajectory_summary(report), anchor="training")
        json = {**report.to_dict(), **split, "files": files}
        view = self._trajectory_view(report, split, files, figures)
        return StageResult("training", [verdict], json, view, files)

    def drift(self) -> StageResult | None:
        if self.s.spec.dtype != "float64" or not self.s.drift:
            return None
        from harness.report.figures import drift_figure

        report, files, split = self._trajectory("float32", "drift", tolerances=False)
        self.trajectory["float32"] = report
        reports = {"float64": self.trajectory.get("float64"), "float32": report}
        _, table = drift_figure({k: v for k, v in reports.items() if v is not None},
                                   self.tmp / "drift" / "drift.png")
        _csv(table, self.tmp, "drift/differences.csv", files)
        files.append("drift/drift.png")
        figures = [_figure("drift/drift.png", "float64 and float32 trajectories apart",
                           "Largest parameter difference at each epoch end (markers) and "
                           "absolute loss difference per step (thin lines) between the two "
                           "backends, float64 and float32 on the same workload, log scale; "
                           "dotted: what the float32 tolerance allows. Exact zeros are not "
                           "drawn.")]
        crossed = [d for d in report.to_dict()["drift"] if d["param_diff_step"] is not None]
        where = (f"; parameter difference first exceeded {crossed[-1]['threshold']:.0e} at step "
                 f"{crossed[-1]['param_diff_step']}" if crossed else "")
        if report.passed:
            summary = (f"float32 trajectories stay within the float32 tolerance for all "
                       f"{report.steps} steps; largest parameter difference "
                       f"{_sci(report.max_param_diff)}{where}")
        elif report.error is not None:
            summary = self._trajectory_summary(report)
        else:
            summary = (self._trajectory_summary(report) + " (the float64 run above tells "
                       "float32 drift from a wrong update rule)")
        verdict = Verdict("drift", "float32 drift: the same workload in float32",
                          PASS if report.passed else FAIL, summary, anchor="drift")
        json = {**report.to_dict(), **split, "files": files}
        view = self._trajectory_view(report, split, files, figures)
        return StageResult("drift", [verdict], json, view, files)

    # 5 -------------------------------------------------------------- cv
    def cv(self) -> StageResult:
        from harness.cv import cross_validate
        from harness.plots.cv import plot_fold_accuracy, plot_loss_curves

        s = self.s
        title = f"{s.folds}-fold cross-validation, {s.epochs} epochs per fold"
        try:
            report = cross_validate(
                [self.ref, self.cand], self.data.X, self.y, spec=s.spec, optimizer=s.optimizer,
                folds=s.folds, stratified=s.stratify, seed=s.split_seed, epochs=s.epochs,
                batch_size=s.batch_size, device=s.device, class_names=self.data.class_names,
                quiet=self.quiet)
        except NumericalError as exc:
            verdict = Verdict("cv", title, FAIL, f"numerical failure: {exc}", anchor="cv")
            return StageResult("cv", [verdict], {"passed": False, "error": str(exc),
                                                 "min_agreement": s.min_agreement,
                                                 "files": []},
                               {"error": str(exc)})
        files: list[str] = []
        for name, frame in (("folds", report.table), ("summary", report.summary),
                            ("agreement", report.agreement), ("curves", report.curves)):
            _csv(frame, self.tmp, f"cv/{name}.csv", files)
        plot_fold_accuracy(report, self.tmp / "cv" / "cv_accuracy.png")
        plot_loss_curves(report, self.tmp / "cv" / "cv_loss_curves.png")
        files += ["cv/cv_accuracy.png", "cv/cv_loss_curves.png"]
        agreement = report.agreement_fraction
        passed = bool(agreement >= s.min_agreement)
        n = int(report.agreement["n_val"].sum())
        same = int(report.agreement["n_identical"].sum())
        summary_rows = records(report.summary)
        accs = ", ".join(f"{r['backend']} {r['val_acc_mean']:.4f} ± {r['val_acc_std']:.4f}"
                         for r in summary_rows)
        summary = (f"validation accuracy {accs}; {same} of {n} validation predictions "
                   f"identical ({agreement:.2%}, {'at least' if passed else 'below'} the "
                   f"{s.min_agreement:.0%} required)")
        verdict = Verdict("cv", title, PASS if passed else FAIL, summary, anchor="cv")
        figures = [
            _figure("cv/cv_accuracy.png", "Validation accuracy per fold",
                    "Validation accuracy of both backends in every fold, and their mean "
                    "with its standard deviation over the folds."),
            _figure("cv/cv_loss_curves.png", "Loss per epoch in each fold",
                    "Training loss (lines) and validation loss (lines with markers) per "
                    "epoch, one panel per fold."),
        ]
        json = {**report.to_dict(), "passed": passed, "min_agreement": s.min_agreement,
                "n_val": n, "n_identical": same, "files": files}
        view = {"report": report, "summary": summary_rows, "folds": records(report.table),
                "agreement": records(report.agreement), "agreement_fraction": agreement,
                "n_val": n, "n_identical": same, "passed": passed, "figures": figures,
                "files": files, "config": report.config}
        return StageResult("cv", [verdict], json, view, files)

    # 6 -------------------------------------------------------------- bench
    def bench(self) -> StageResult | None:
        if self.s.bench is None:
            return None
        from harness.bench import BenchConfig, run_bench
        from harness.plots.bench import plot_all

        config = self.s.bench
        if isinstance(config, str):  # the quick grid, and this report's network if not in it
            grid = tuple(BenchConfig.quick().grid)
            point = (tuple(self.s.spec.dims), int(self.s.batch_size))
            if point not in grid:
                grid += (point,)
            config = BenchConfig.quick(grid=grid, backends=tuple(self.s.backends),
                                       device=self.s.device, threads=self.s.threads,
                                       optimizer=self.s.optimizer.name,
                                       lr=self.s.optimizer.lr,
                                       momentum=self.s.optimizer.momentum,
                                       weight_decay=self.s.optimizer.weight_decay)
        with _native_stderr(self.log) as log:
            result = run_bench(config, log=lambda m: log(f"      bench: {m}"))
        files: list[str] = []
        _csv(result.table, self.tmp, "bench/bench.csv", files)
        names = {"time_vs_batch.png": ("Time against batch size",
                                       ("Median train_step time (with interquartile range) "
                                        "against batch size, one panel per network, "
                                        "log-log.")),
                 "ratio.png": ("Time relative to torch",
                               ("train_step time of every other backend over torch's, per "
                                "grid point; below 1 is faster.")),
                 "gflops.png": ("Achieved GFLOP/s",
                                ("Achieved GFLOP/s of train_step against the machine's "
                                 "measured matmul peak.")),
                 "memory.png": ("Memory of one training step",
                                ("Peak memory of a train_step per backend, with what its "
                                 "parameters, gradients, optimizer state and activations "
                                 "need.")),
                 "breakdown.png": ("Matrix products and the rest",
                                   ("Each train_step split into its matrix products alone "
                                    "(timed in the same rounds) and everything else, as a "
                                    "fraction of torch's train_step."))}
        figures = []
        for path in plot_all(result, self.tmp / "bench"):
            rel = f"bench/{path.name}"
            files.append(rel)
            figures.append(_figure(rel, *names.get(path.name, (path.stem, ""))))
        table = result.table
        rows = records(table)
        cand = self.cand if self.cand != "torch" else self.ref
        small = table[(table["op"] == "train_step") & (table["backend"] == cand)
                      & (table["device"] == "cpu")]
        if len(small) and "ratio_to_torch_cpu" in small and \
                math.isfinite(float(small["ratio_to_torch_cpu"].iloc[0])):
            r = small.iloc[0]
            summary = (f"{cand} train_step takes {float(r['ratio_to_torch_cpu']):.3g}x torch's "
                       f"time at {r['dims']} batch {r['batch_size']} {r['dtype']}; "
                       f"{len(table)} measurements, a measurement and not a check")
        else:
            summary = f"{len(table)} measurements; a measurement and not a check"
        verdict = Verdict("bench", "Benchmark (quick)", INFO, summary, counts=False,
                          anchor="bench")
        json = {**result.to_dict(), "files": files}
        json.pop("times_s", None)
        view = {"rows": rows, "targets": result.targets, "peaks": result.peaks,
                "config": result.config, "figures": figures, "files": files,
                "machine": result.machine}
        return StageResult("bench", [verdict], json, view, files)


#: lines torch's profiler (the benchmark's memory measurement) writes to stderr
_PROFILER_NOISE = re.compile(r"^(USDT:|\[W\d+ .*(CPUAllocator|profiler)|.*profiler_st(art|op))")


@contextlib.contextmanager
def _native_stderr(log):
    """Catch what native code writes to stderr (fd 2) within the block.

    torch's profiler, which the benchmark uses to measure memory, prints a few lines
    of its own on every measurement. They are dropped; anything else is passed on to
    ``log`` afterwards. Yields a ``log`` that still reaches the real stderr.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no fd 2 (an embedding without stderr)
        yield log
        return
    import tempfile

    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        real = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")

        try:
            direct = log is _stderr and sys.stderr.fileno() == 2
        except (AttributeError, OSError, ValueError):  # stderr replaced (captured)
            direct = False

        def through(message: str) -> None:
            if direct:
                real.write(message + "\n")
                real.flush()
            else:
                log(message)
        try:
            yield through
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            real.close()
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines():
                if line.strip() and not _PROFILER_NOISE.match(line):
                    log(line)


def _na(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


# ------------------------------------------------------------------- the run
def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_report(data, settings: ReportSettings, out: str | os.PathLike, *,
                 force: bool = False, quiet: bool = False,
                 log: Callable[[str], None] | None = None,
                 command: list[str] | None = None) -> ReportOutcome:
    """Run every stage on ``data`` and write the report folder ``out``.

    Parameters
    ----------
    data : harness.data.Dataset
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
    from harness.io import check_output_dir, staged_dir
    from harness.registry import make_backend
    from harness.threads import limit_threads

    started = time.perf_counter()
    validate_settings(settings, data)
    out = Path(out)
    check_output_dir(out, force=force)
    for name in settings.backends:  # a class that cannot be built is bad input: refuse now
        model = make_backend(name, settings.spec, settings.optimizer, device=settings.device)
        if settings.init_params is not None:
            model.set_params(settings.init_params)
    say = (lambda m: None) if quiet else (log or _stderr)
    created = _dt.datetime.now().astimezone()

    plan = [("equivalence", "equivalence check"), ("gradcheck", "gradient checks"),
            ("training", (f"training trajectories, {settings.spec.dtype}, "
                          f"{settings.epochs} epochs")),
            ("drift", "float32 drift run"),
            ("cv", f"{settings.folds}-fold cross-validation, {settings.epochs} epochs per fold"),
            ("bench", "benchmark (quick)")]
    if settings.spec.dtype != "float64" or not settings.drift:
        plan = [p for p in plan if p[0] != "drift"]
    if settings.bench is None:
        plan = [p for p in plan if p[0] != "bench"]

    # staged: an interrupted or failed run leaves nothing behind, and a folder someone
    # else filled meanwhile is kept (a ConfigError)
    correctness_threads = settings.threads or 1
    with staged_dir(out, force=force, keep_partial=False, what="report") as tmp:
        run = _Run(settings, data, tmp, say, quiet)
        results: dict[str, StageResult] = {}
        for k, (key, label) in enumerate(plan, start=1):
            say(f"[{k}/{len(plan)}] {label} ...")
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
            results[key] = stage
            say(f"[{k}/{len(plan)}] {label}: "
                f"{', '.join(_short(v) for v in stage.verdicts)} "
                f"({stage.seconds:.1f} s)")
        say("writing the report ...")
        machine = _machine(results.get("bench"), correctness_threads)
        outcome = _write(tmp, out, data, settings, results, machine, created,
                         started, command)
    outcome.path = out
    return outcome


def _short(v: Verdict) -> str:
    return v.verdict if v.key.count(":") == 0 else f"{v.key.split(':', 1)[1]} {v.verdict}"


def _machine(bench: StageResult | None, threads: int) -> dict[str, Any]:
    from harness.bench import machine_info

    if bench is not None and bench.view is not None:
        info = dict(bench.view["machine"])
    else:
        info = machine_info(threads)
    info["threads_correctness_stages"] = threads
    return info


def _write(tmp: Path, out: Path, data, settings: ReportSettings,
           results: dict[str, StageResult], machine: dict[str, Any],
           created: _dt.datetime, started: float, command) -> ReportOutcome:
    from harness import __version__
    from harness.report.render import render_html, render_markdown

    verdicts = [v for stage in results.values() for v in stage.verdicts]
    skipped = []
    if "drift" not in results:
        why = (f"the configured dtype is {settings.spec.dtype}: the training stage is the "
               f"float32 run" if settings.spec.dtype != "float64" else "not asked for")
        skipped.append(Verdict("drift", "float32 drift", SKIPPED, why, counts=False,
                               anchor="drift"))
    if "bench" not in results:
        skipped.append(Verdict("bench", "Benchmark", SKIPPED, "not run (--no-bench)",
                               counts=False, anchor="bench"))
    order = {k: i for i, k in enumerate(STAGES)}
    verdicts = sorted(verdicts + skipped, key=lambda v: order[v.key.split(":")[0]])
    counted = [v for v in verdicts if v.counts]
    passed = all(v.verdict == PASS for v in counted)
    files = sorted({f for stage in results.values() for f in stage.files})
    files += ["index.html", "report.md", "results.json"]
    elapsed = round(time.perf_counter() - started, 3)  # the page and the JSON say the same
    data_info = {"name": data.name, "n_samples": len(data), "n_features": data.n_features,
                 "n_classes": data.n_classes, "class_names": list(data.class_names)}
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
    import json as _json

    # plain writes: the whole folder is staged, and mkstemp's private mode would stick
    (tmp / "results.json").write_text(_json.dumps(doc, indent=2, allow_nan=False) + "\n",
                                      encoding="utf-8")
    context = {
        "doc": doc, "verdicts": verdicts, "passed": passed,
        "n_counted": len(counted), "n_passed": sum(v.verdict == PASS for v in counted),
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


__all__ = ["SCHEMA", "SCHEMA_VERSION", "STAGES", "ReportOutcome", "ReportSettings", "Verdict",
           "build_report", "default_name", "default_out", "validate_settings"]

"""The stages of a report: one method of :class:`_Run` per stage.

Each stage runs one comparison of the two backends and returns a
:class:`~harness.report.model.StageResult`: its verdicts, its JSON for
``results.json``, the data its section of the page is drawn from, and the CSV and PNG
files it wrote into its sub-folder of the (staged) report folder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from harness.report.model import INFO, StageResult, Verdict
from harness.report.settings import ReportSettings, safe_name
from harness.runtime.console import native_stderr
from harness.runtime.values import isna


# ------------------------------------------------------------------- helpers
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


#: figures the page keeps folded under "more figures" (a click away, full width)
_FOLDED = {"gflops.png", "memory.png", "breakdown.png"}


def _figure(path: str, title: str, caption: str) -> dict[str, Any]:
    name = path.rsplit("/", 1)[-1]
    return {"path": path, "title": title, "caption": caption, "wide": name in _WIDE,
            "folded": name in _FOLDED}


def _csv(frame, tmp: Path, rel: str, files: list[str]) -> None:
    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(tmp / rel, index=False)
    files.append(rel)


# ------------------------------------------------------------------- stages
class _Run:
    """The stages of one report and the state they share.

    One method per stage, named by its key in :data:`~harness.report.model.STAGES`;
    each returns a :class:`StageResult` (None when the stage does not apply) and writes
    its files under ``tmp/<key>/``.
    """

    def __init__(self, settings: ReportSettings, data, tmp: Path, log, quiet: bool):
        from harness.data.datasets import standardize

        self.s = settings
        self.data = data
        self.tmp = tmp
        self.log = log
        self.quiet = quiet
        self.ref, self.cand = settings.backends
        (self.X,) = standardize(data.X)
        self.y = data.y
        self.trajectory: dict[str, Any] = {}
        self._config = None

    @property
    def config(self):
        """The :class:`harness.checks.CheckConfig` every stage runs with."""
        if self._config is None:
            from harness.checks import CheckConfig

            s = self.s
            self._config = CheckConfig(
                tuple(s.backends), s.spec, s.optimizer, rtol=s.rtol, atol=s.atol,
                init_params=s.init_params, device=s.device, threads=s.threads or 1,
                gradcheck_samples=s.gradcheck_samples,
                gradcheck_max_entries=s.gradcheck_max_entries, epochs=s.epochs,
                batch_size=s.batch_size, shuffle=s.shuffle, val_fraction=s.val_fraction,
                folds=s.folds, stratified=s.stratify, split_seed=s.split_seed,
                min_agreement=s.min_agreement)
        return self._config

    def _verdicts(self, result, anchor: str) -> list[Verdict]:
        """The check's verdicts as lines of the report's verdict table; a failure's first
        likely cause (its name: the hint up to its first colon) follows its summary."""
        cause = ""
        if result.hints and not result.passed:
            cause = f"; likely cause: {result.hints[0].split(':')[0].split(';')[0]}"
        return [Verdict(v.name, v.title, v.status,
                        v.summary + (cause if v.status not in ("PASS", "INFO") else ""),
                        seconds=v.seconds, anchor=anchor)
                for v in result.verdicts]

    @staticmethod
    def _diagnosis(result) -> dict[str, Any]:
        """What every section shows besides its tables: findings, likely causes, notes."""
        return {"findings": [str(f) for f in result.findings], "hints": list(result.hints),
                "notes": list(result.notes), "header": list(result.header)}

    def _failed_to_run(self, key: str, result) -> StageResult:
        """A stage whose code under test raised before it produced a report."""
        json = {**result.to_dict(), "files": []}
        view = {"error": result.summary, **self._diagnosis(result)}
        return StageResult(key, self._verdicts(result, key), json, view, [])

    # 1 -------------------------------------------------------------- equivalence
    def equivalence(self) -> StageResult:
        """Both backends on the whole (standardised) data set as one batch."""
        from harness.checks import run_equivalence

        result = run_equivalence(self.config, self.data)
        report = result.report
        if report is None:
            return self._failed_to_run("equivalence", result)
        files: list[str] = []
        _csv(report.table, self.tmp, "equivalence/equivalence.csv", files)
        n = result.settings["n_samples"]
        json = {**result.to_dict(), "n_samples": n, "files": files}
        view = {"report": report, "rows": [r.row() | {"n_elements": r.n_elements}
                                           for r in report.rows],
                "n_samples": n, "csv": files[0], **self._diagnosis(result)}
        return StageResult("equivalence", self._verdicts(result, "equivalence"), json, view,
                           files)

    # 2 -------------------------------------------------------------- gradcheck
    def gradcheck(self) -> StageResult:
        """Each backend's gradients against central differences, on a seeded subset."""
        from harness.checks import run_gradcheck

        result = run_gradcheck(self.config, self.data)
        reports = result.report if isinstance(result.report, dict) else (
            {self.config.backends[0]: result.report} if result.report is not None else {})
        json, views, files = {}, [], []
        for name, report in reports.items():
            rel = f"gradcheck/{safe_name(name)}.csv"
            _csv(report.table, self.tmp, rel, files)
            json[name] = {**report.to_dict(), "files": [rel]}
            views.append({"name": name, "report": report,
                          "rows": [p.row() for p in report.params], "csv": rel,
                          "checked": sum(p.checked for p in report.params),
                          "kinks": sum(p.kinks for p in report.params),
                          "total": sum(p.size for p in report.params)})
        n = result.settings["n_samples"]
        view = {"backends": views, "n_samples": n, **self._diagnosis(result)}
        json = {**result.to_dict(), "backends": json, "n_samples": n, "files": files}
        return StageResult("gradcheck", self._verdicts(result, "gradcheck"), json, view, files)

    # 3, 4 ---------------------------------------------------------- training
    def _trajectory_files(self, report, folder: str) -> list[str]:
        files: list[str] = []
        _csv(report.history, self.tmp, f"{folder}/history.csv", files)
        _csv(report.drift, self.tmp, f"{folder}/drift.csv", files)
        return files

    def _trajectory_view(self, result, files, figures) -> dict[str, Any]:
        report = result.report
        split = {k: result.settings[k] for k in ("n_train", "n_val", "val_fraction",
                                                 "stratified")}
        final = []
        for backend, m in report.final.items():
            final.append({"backend": backend, **m})
        drift = [{"threshold": float(t), "loss_diff_step": None if isna(a) else int(a),
                  "param_diff_step": None if isna(b) else int(b)}
                 for t, a, b in zip(report.drift["threshold"], report.drift["loss_diff_step"],
                                    report.drift["param_diff_step"])]
        return {"report": report, "final": final, "drift": drift, "split": split,
                "figures": figures, "files": files,
                "first_divergence": None if report.first_divergence is None
                else str(report.first_divergence),
                "error": None if report.error is None else str(report.error),
                **self._diagnosis(result)}

    def _trajectory_json(self, result, files) -> dict[str, Any]:
        split = {k: result.settings[k] for k in ("n_train", "n_val", "val_fraction",
                                                 "stratified")}
        return {**result.to_dict(), **split, "files": files}

    def training(self) -> StageResult:
        """The two training trajectories in the configured dtype, side by side."""
        from harness.checks import run_training
        from harness.plots.training import write_training_plots

        result = run_training(self.config, self.data)
        report = result.report
        if report is None:
            return self._failed_to_run("training", result)
        files = self._trajectory_files(report, "training")
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
                                            "parameter difference per epoch, log scale; each "
                                            "one's allowed difference is drawn dashed in its "
                                            "colour, and a vertical line marks the first "
                                            "divergence, if any. Exact zeros are not "
                                            "drawn.")),
        }
        figures = []
        for kind, path in paths.items():
            rel = f"training/{path.name}"
            files.append(rel)
            figures.append(_figure(rel, *captions.get(kind, (kind, ""))))
        self.trajectory[self.s.spec.dtype] = report
        return StageResult("training", self._verdicts(result, "training"),
                           self._trajectory_json(result, files),
                           self._trajectory_view(result, files, figures), files)

    def drift(self) -> StageResult | None:
        """The same workload in float32, when the configured dtype is float64."""
        if self.s.spec.dtype != "float64" or not self.s.drift:
            return None
        from harness.checks import run_drift
        from harness.report.figures import drift_figure

        result = run_drift(self.config, self.data)
        report = result.report
        if report is None:
            return self._failed_to_run("drift", result)
        files = self._trajectory_files(report, "drift")
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
                           "dotted, in each dtype's colour: what that dtype's tolerance "
                           "allows for the parameter difference. Exact zeros are not "
                           "drawn.")]
        return StageResult("drift", self._verdicts(result, "drift"),
                           self._trajectory_json(result, files),
                           self._trajectory_view(result, files, figures), files)

    # 5 -------------------------------------------------------------- cv
    def cv(self) -> StageResult:
        """k-fold cross-validation, both backends on the same folds."""
        from harness.checks import run_cv
        from harness.plots.cv import plot_fold_accuracy, plot_loss_curves

        s = self.s
        result = run_cv(self.config, self.data, quiet=self.quiet)
        report = result.report
        if report is None:  # a numerical failure, or the code under test raised
            json = {**result.to_dict(), "min_agreement": s.min_agreement, "files": []}
            return StageResult("cv", self._verdicts(result, "cv"), json,
                               {"error": result.error or result.summary,
                                **self._diagnosis(result)})
        files: list[str] = []
        for name, frame in (("folds", report.table), ("summary", report.summary),
                            ("agreement", report.agreement), ("curves", report.curves)):
            _csv(frame, self.tmp, f"cv/{name}.csv", files)
        plot_fold_accuracy(report, self.tmp / "cv" / "cv_accuracy.png")
        plot_loss_curves(report, self.tmp / "cv" / "cv_loss_curves.png")
        files += ["cv/cv_accuracy.png", "cv/cv_loss_curves.png"]
        agreement = report.agreement_fraction
        passed = result.passed
        n, same = result.fields["cv_n_val"], result.fields["cv_n_identical"]
        summary_rows = records(report.summary)
        figures = [
            _figure("cv/cv_accuracy.png", "Validation accuracy per fold",
                    "Validation accuracy of both backends in every fold, and their mean "
                    "with its standard deviation over the folds (the last group, and the "
                    "horizontal lines); the y axis starts where its label says, not at 0."),
            _figure("cv/cv_loss_curves.png", "Loss per epoch in each fold",
                    "Training loss (lines) and validation loss (lines with markers) per "
                    "epoch, one panel per fold, all on the same y axis."),
        ]
        json = {**result.to_dict(), "passed": passed, "min_agreement": s.min_agreement,
                "n_val": n, "n_identical": same, "files": files}
        view = {"report": report, "summary": summary_rows, "folds": records(report.table),
                "agreement": records(report.agreement), "agreement_fraction": agreement,
                "n_val": n, "n_identical": same, "passed": passed, "figures": figures,
                "files": files, "config": report.config, **self._diagnosis(result)}
        return StageResult("cv", self._verdicts(result, "cv"), json, view, files)

    # 6 -------------------------------------------------------------- bench
    def _quick_bench(self):
        """The quick grid, and this report's network if not in it (a layer network: at
        its own batch size only)."""
        from harness.bench import BenchConfig

        spec = self.s.spec
        grid = tuple(BenchConfig.quick().grid)
        point = (tuple(spec.dims), int(self.s.batch_size))
        layered = {}
        if spec.is_layered:
            grid = (point,)
            layered = dict(layers=spec.layers, bn_momentum=spec.bn_momentum,
                           bn_momentum_convention=spec.bn_momentum_convention,
                           bn_running_var=spec.bn_running_var, norm_eps=spec.norm_eps)
            if len(spec.input_shape or ()) == 3:  # a conv network times images (N, C, H, W)
                layered["input_shape"] = tuple(spec.input_shape)
        if point not in grid:
            grid += (point,)
        return BenchConfig.quick(grid=grid, **layered, backends=tuple(self.s.backends),
                                 device=self.s.device, threads=self.s.threads,
                                 optimizer=self.s.optimizer.name, lr=self.s.optimizer.lr,
                                 momentum=self.s.optimizer.momentum,
                                 weight_decay=self.s.optimizer.weight_decay)

    def bench(self) -> StageResult | None:
        """A short benchmark: a measurement (INFO), never a check; None when skipped."""
        if self.s.bench is None:
            return None
        from dataclasses import replace

        from harness.bench import assess
        from harness.bench.quality import row_flags
        from harness.checks import run_bench
        from harness.plots.bench import plot_all

        config = self.s.bench
        if isinstance(config, str):
            config = self._quick_bench()
        with native_stderr(self.log) as log:
            checked = run_bench(replace(self.config, bench=config),
                                log=lambda m: log(f"      bench: {m}"))
        result = checked.report
        files: list[str] = []
        _csv(result.table, self.tmp, "bench/bench.csv", files)
        names = {"times.png": ("Time per call",
                               ("Median train_step time per grid point (bars, log scale) with "
                                "its interquartile range; a bar marked \u201cnoisy\u201d "
                                "scatters more than its median.")),
                 "time_vs_batch.png": ("Time against batch size",
                                       ("Median train_step time (with interquartile range) "
                                        "against batch size, for the networks measured at "
                                        "several batch sizes, log-log.")),
                 "ratio.png": ("Time relative to torch",
                               ("train_step time of every other backend over torch's, per "
                                "grid point; below 1 is faster.")),
                 "gflops.png": ("Achieved GFLOP/s",
                                ("Achieved GFLOP/s of train_step; the horizontal lines are "
                                 "the matmul peaks measured in this run with one large "
                                 "matrix product per library. The peak is a measurement, "
                                 "not a hardware limit: a small network whose data stays in "
                                 "cache can beat it, and a disturbed run measures it too "
                                 "low; bars above it are marked with their percentage.")),
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
        for row in rows:
            row["flags"] = row_flags(row)
        quality = assess(result)
        summary = checked.summary
        verdict = Verdict("bench", "Benchmark (quick)", INFO, summary, counts=False,
                          anchor="bench")
        json = {**result.to_dict(targets=False), "files": files}
        json.pop("times_s", None)
        view = {"rows": rows, "summary_rows": [r for r in rows if r["op"] == "train_step"],
                "quality": quality, "peaks": result.peaks,
                "config": result.config, "figures": figures, "files": files,
                "machine": result.machine}
        return StageResult("bench", [verdict], json, view, files)

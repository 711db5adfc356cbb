"""The stages of a report: one method of :class:`_Run` per stage.

Each stage runs one comparison of the two backends and returns a
:class:`~harness.report.model.StageResult`: its verdicts, its JSON for
``results.json``, the data its section of the page is drawn from, and the CSV and PNG
files it wrote into its sub-folder of the (staged) report folder.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import NumericalError
from harness.report.console import native_stderr
from harness.report.model import FAIL, INFO, PASS, StageResult, Verdict
from harness.report.render import sci
from harness.report.settings import ReportSettings, safe_name
from harness.util import isna


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


def _figure(path: str, title: str, caption: str) -> dict[str, Any]:
    return {"path": path, "title": title, "caption": caption,
            "wide": path.rsplit("/", 1)[-1] in _WIDE}


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
        """Both backends on the whole (standardised) data set as one batch."""
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
                       f"{sci(worst)}")
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
        """Each backend's gradients against central differences, on a seeded subset."""
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
                f"{sci(report.max_loss_diff)}, largest parameter difference "
                f"{sci(report.max_param_diff)}")

    def _trajectory_view(self, report, split, files, figures) -> dict[str, Any]:
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
                "error": None if report.error is None else str(report.error)}

    def training(self) -> StageResult:
        """The two training trajectories in the configured dtype, side by side."""
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
        self.trajectory[dtype] = report
        title = (f"Training trajectories: {self.cand} against {self.ref}, {dtype}, "
                 f"{self.s.epochs} epochs")
        verdict = Verdict("training", title, PASS if report.passed else FAIL,
                          self._trajectory_summary(report), anchor="training")
        json = {**report.to_dict(), **split, "files": files}
        view = self._trajectory_view(report, split, files, figures)
        return StageResult("training", [verdict], json, view, files)

    def drift(self) -> StageResult | None:
        """The same workload in float32, when the configured dtype is float64."""
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
                           "dotted, in each dtype's colour: what that dtype's tolerance "
                           "allows for the parameter difference. Exact zeros are not "
                           "drawn.")]
        crossed = [d for d in report.to_dict()["drift"] if d["param_diff_step"] is not None]
        where = (f"; parameter difference first exceeded {crossed[-1]['threshold']:.0e} at step "
                 f"{crossed[-1]['param_diff_step']}" if crossed else "")
        if report.passed:
            summary = (f"float32 trajectories stay within the float32 tolerance for all "
                       f"{report.steps} steps; largest parameter difference "
                       f"{sci(report.max_param_diff)}{where}")
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
        """k-fold cross-validation, both backends on the same folds."""
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
                    "with its standard deviation over the folds (the last group, and the "
                    "horizontal lines); the y axis starts where its label says, not at 0."),
            _figure("cv/cv_loss_curves.png", "Loss per epoch in each fold",
                    "Training loss (lines) and validation loss (lines with markers) per "
                    "epoch, one panel per fold, all on the same y axis."),
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
        """A short benchmark: a measurement (INFO), never a check; None when skipped."""
        if self.s.bench is None:
            return None
        from harness.bench import BenchConfig, assess, run_bench
        from harness.bench.quality import row_flags
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
        with native_stderr(self.log) as log:
            result = run_bench(config, log=lambda m: log(f"      bench: {m}"))
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
        if quality["disturbed"]:
            summary = (f"DISTURBED: other processes used "
                       f"{100 * quality['other_processes_cpu_share']:.0f}% of the CPU during "
                       f"the benchmark, its times are not reliable; " + summary)
        verdict = Verdict("bench", "Benchmark (quick)", INFO, summary, counts=False,
                          anchor="bench")
        json = {**result.to_dict(targets=False), "files": files}
        json.pop("times_s", None)
        view = {"rows": rows, "summary_rows": [r for r in rows if r["op"] == "train_step"],
                "quality": quality, "peaks": result.peaks,
                "config": result.config, "figures": figures, "files": files,
                "machine": result.machine}
        return StageResult("bench", [verdict], json, view, files)

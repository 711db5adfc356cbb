"""`nn-harness train`: train two backends side by side and compare their trajectories."""

from __future__ import annotations

import math
import sys
import warnings

from harness.cli import common, output

HELP = "train two backends side by side on identical batches and compare the trajectories"
EXAMPLE = ("nn-harness train --backends scratch,torch --optimizer adam --lr 1e-3 "
           "--weight-decay 1e-4 --epochs 50 --batch-size 64 --val-fraction 0.2 --out DIR")
DESCRIPTION = HELP + """.

Both backends start from the same parameters and take one optimizer step on the same
batch at every step (shuffled per epoch from --seed). Per step the two batch losses
and their difference are recorded; per epoch the largest parameter difference and
each backend's training and validation loss and accuracy. Features are standardised
with the training part's statistics.

With --out DIR it writes history.csv (tidy: step, epoch, backend, quantity, value),
summary.json, loss.png, accuracy.png and differences.png, all at once when done.
Interrupted (Ctrl-C, SIGTERM), it keeps what the finished epochs measured in
DIR.partial and says so. Exit code 1 when the trajectories leave the tolerance
(which grows with the step count, see harness.training.side_by_side) or a loss becomes NaN or
inf; what was recorded is written anyway."""


def register(sub) -> None:
    p = sub.add_parser("train", help=HELP, description=DESCRIPTION,
                       epilog=f"example:\n  {EXAMPLE}")
    common.add_backends_arg(p)
    common.add_timeout_arg(p)
    common.add_data_args(p)
    common.add_model_args(p)
    common.add_init_from_arg(p)
    common.add_optimizer_args(p)
    common.add_training_args(p)
    common.add_tolerance_args(p)
    common.add_threads_arg(p)
    common.add_output_args(p)
    common.add_json_arg(p)
    p.set_defaults(func=run, command_parser=p)  # the passing command spells its flags


def _warn(message) -> None:
    print(f"nn-harness train: warning: {message}", file=sys.stderr)


def _check_val_fraction(value) -> float:
    from harness.errors import ConfigError

    if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value < 1:
        raise ConfigError(f"`--val-fraction` must be in [0, 1), got {value}")
    return float(value)


def run(args) -> int:
    from harness.checks.run import training_rows
    from harness.compare.equivalence import resolve_tolerances
    from harness.errors import ConfigError
    from harness.data.atomic import check_output_dir
    from harness.training.side_by_side import validate_training_args

    # every check that needs no data comes first: bad input costs nothing
    backends = common.validate_backends(args.backends, at_least=2)
    backends = common.reference_first(backends)
    if len(backends) != 2:
        raise ConfigError(f"`--backends` for train takes exactly two names (reference, "
                          f"candidate), got {','.join(backends)}")
    validate_training_args(args.epochs, args.batch_size)
    val_fraction = _check_val_fraction(args.val_fraction)
    opt = common.optimizer_spec(args)
    resolve_tolerances("float64", args.rtol, args.atol)
    device = common.validate_device(args)
    common.validate_threads(args)
    if args.out is not None:
        check_output_dir(args.out, force=args.force)
        output.check_writable(args.out)

    data = common.load_data(args)
    spec = common.model_spec(args, data)
    config = common.check_config(args, backends, spec, opt, device=device, epochs=args.epochs,
                                 batch_size=args.batch_size, shuffle=args.shuffle,
                                 val_fraction=val_fraction)
    _, y_tr, _, y_va, split = training_rows(config, data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        validate_training_args(args.epochs, args.batch_size, len(y_tr))  # warns if clamped
    for w in caught:
        _warn(w.message)
    # a class that cannot be built is bad input (exit 2), one that breaks the contract a
    # finding (exit 1): both before anything is written
    code = common.preflight(args, config, data)
    if code is not None:
        return code
    run_config = {
        "dataset": data.name, "n_samples": len(data), **{k: split[k] for k in (
            "n_train", "n_val", "val_fraction", "stratified")},
        "standardisation": "statistics of the training part",
        **spec.to_dict(), "optimizer": opt.to_dict(), "device": device,
        "init_from": args.init_from, "threads": config.resolved_threads,
    }
    summary, result = _train(args, config, run_config, data)
    common.show_passing_command(args, "train", result)
    report = result.report
    if args.json:
        output.print_json(summary)
    else:
        print(f"data: {data.name} ({len(y_tr)} training, "
              f"{0 if y_va is None else len(y_va)} validation samples, standardised), "
              f"{spec.short()}, {spec.dtype}, seed {spec.seed}"
              + (f", from {args.init_from}" if args.init_from else ""))
        print(result.text())
        if args.out is not None:
            print(f"wrote {', '.join(summary['files'])} to {args.out}")
    if report is not None and report.error is not None:
        where = f"; what was recorded is in {args.out}" if args.out is not None else ""
        print(f"nn-harness train: numerical failure: {report.error}{where}", file=sys.stderr)
    return 0 if result.passed else 1


def _train(args, config, run_config, data):
    """Train side by side; with --out, in a staged folder that keeps finished epochs."""
    from harness.checks import run_training
    from harness.runtime.console import progress

    with output.output_folder(args.out, force=args.force, keep_partial=True) as tmp:
        bar = progress(total=args.epochs, desc="train", quiet=args.quiet)
        partial = _PartialHistory(tmp, run_config, args.epochs)

        def on_epoch(epoch, step, metrics):
            bar.update(1)
            diff = metrics["difference"]
            first = next(k for k in metrics if k != "difference")
            bar.set_postfix_str(f"loss {metrics[first]['epoch_loss']:.4g}, "
                                f"param diff {diff['param_diff']:.1e}", refresh=False)
            partial.add(epoch, step, metrics)

        try:
            result = run_training(config, data, on_epoch=on_epoch)
        finally:
            bar.close()
        summary = result.to_dict(timings=False)  # the same run, the same bytes
        summary["verdict"] = result.status
        summary["caution"] = result.fields.get("training_caution")
        summary["config"] = run_config
        summary["complete"] = True
        if tmp is not None and result.report is not None:
            summary["files"] = _write(result.report, summary, tmp)
    return summary, result


class _PartialHistory:
    """Keeps what the finished epochs measured in the staged folder, for an interruption.

    After every epoch, ``history.csv`` (the per-epoch rows so far, same columns as the
    full history) and ``summary.json`` (``complete`` false, ``epochs_done``) are
    rewritten atomically; the finished run overwrites both with the full results.
    """

    def __init__(self, folder, config, epochs):
        self.folder = folder
        self.config = config
        self.epochs = epochs
        self.rows: list[tuple] = []

    def add(self, epoch, step, metrics) -> None:
        if self.folder is None:
            return
        import csv
        import io

        from harness.data.atomic import atomic_write_json, atomic_write_text

        for backend, values in metrics.items():
            for quantity, value in values.items():
                self.rows.append((step, epoch, backend, quantity, repr(float(value))))
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(("step", "epoch", "backend", "quantity", "value"))
        writer.writerows(self.rows)
        atomic_write_text(self.folder / "history.csv", text.getvalue())
        atomic_write_json(self.folder / "summary.json", {
            "complete": False, "epochs_done": epoch, "epochs": self.epochs, "steps_done": step,
            "note": "interrupted: history.csv holds the per-epoch measurements of the "
                    "finished epochs only", "config": self.config})


def _write(report, summary, folder) -> list[str]:
    from harness.data.atomic import atomic_write_json, atomic_write_text
    from harness.plots.training import write_training_plots

    atomic_write_text(folder / "history.csv", report.history.to_csv(index=False))
    try:
        paths = write_training_plots(report.history, folder)
    except (OverflowError, ValueError) as exc:  # values too large to draw (a blow-up)
        for leftover in folder.glob("*.png"):
            leftover.unlink()
        _warn(f"no plots: the recorded values are too large to draw ({exc})")
        summary = {**summary, "plots_skipped": str(exc)}
        paths = {}
    files = ["history.csv", *(p.name for p in paths.values()), "summary.json"]
    atomic_write_json(folder / "summary.json", {**summary, "files": files})
    return files

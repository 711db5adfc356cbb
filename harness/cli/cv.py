"""`nn-harness cv`: k-fold cross-validation of every backend on the same folds."""

from __future__ import annotations

from harness.cli import common, output
from harness.runtime.values import check_int

HELP = "k-fold cross-validation of the backends on the same folds, side by side"
EXAMPLE = ("nn-harness cv --dataset digits --folds 5 --epochs 100 --optimizer adam --lr 1e-3 "
           "--weight-decay 1e-4 --out cv-digits")
DESCRIPTION = f"""{HELP}.

In every fold each backend starts from the same initial parameters (--seed) and
trains on the same batches of the fold's training part only; features are
standardised with the statistics of the fold's training part only. Reports, per
fold and backend, the final training loss, training and validation accuracy,
macro-F1 and training time; mean and standard deviation over folds; and how often
the backends' validation predictions agree.

Data: --dataset (default digits; synthetic takes --n-samples, --n-features,
--n-classes) or your own --data FILE.csv --target COLUMN, or --data FILE.npz with
arrays X and y. Labels may be strings or any integers; the tables use their names.

With --out DIR it writes folds.csv (one row per fold x backend), summary.csv (one
row per backend), agreement.csv (one row per fold), curves.csv (loss and accuracy
per epoch), predictions.csv (validation predictions, original labels),
config.json, cv_accuracy.png and cv_loss_curves.png, all at once when done.
Interrupted (Ctrl-C, SIGTERM) or stopped by a numerical failure, it keeps the
tables of the finished folds in DIR.partial and says so.

Training defaults are train's: 50 epochs per fold, batch size 64 (--epochs,
--batch-size); there is no --val-fraction, the folds are the validation sets."""

OUTPUT_FILES = ("folds.csv", "summary.csv", "agreement.csv", "curves.csv", "predictions.csv",
                "config.json", "cv_accuracy.png", "cv_loss_curves.png")


def register(sub) -> None:
    p = sub.add_parser("cv", help=HELP, description=DESCRIPTION,
                       epilog=f"example:\n  {EXAMPLE}\n\nexit codes: 0 done, 1 agreement "
                              f"below --min-agreement or a numerical failure, 2 bad input")
    common.add_backends_arg(p)
    common.add_timeout_arg(p)
    common.add_data_args(p)
    common.add_model_args(p)
    common.add_init_from_arg(p)
    common.add_optimizer_args(p)
    g = p.add_argument_group("cross-validation")
    g.add_argument("--folds", type=int, default=5, help="number of folds, 2..samples (default: 5)")
    g.add_argument("--no-stratify", dest="stratify", action="store_false",
                   help="plain KFold instead of StratifiedKFold (which needs every class to "
                        "have at least --folds members)")
    g.add_argument("--split-seed", type=int, default=42,
                   help="random_state of the shuffled fold split (default: 42)")
    g.add_argument("--min-agreement", type=float, default=0.99, metavar="FRAC",
                   help="exit 1 when fewer than this fraction of validation predictions "
                        "are identical across backends, unless a witness of the reference "
                        "agrees with it no better (a WARN) (default: 0.99, as report)")
    common.add_training_args(p, val_fraction=None)  # the folds are the validation sets
    common.add_threads_arg(p)
    common.add_output_args(p)
    common.add_json_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from harness.errors import ConfigError
    from harness.data.atomic import check_output_dir
    from harness.training.side_by_side import validate_training_args

    backends = common.validate_backends(args.backends, at_least=1)
    backends = common.reference_first(backends)
    if args.min_agreement is not None and not 0.0 <= args.min_agreement <= 1.0:
        raise ConfigError(f"`--min-agreement` must be between 0 and 1, got {args.min_agreement:g}")
    check_int("--split-seed", args.split_seed, 0, one_rule=True)
    validate_training_args(args.epochs, args.batch_size)
    opt = common.optimizer_spec(args)
    device = common.validate_device(args)
    common.validate_threads(args)
    if args.out is not None:
        check_output_dir(args.out, force=args.force)  # refuse before training, not after
        output.check_writable(args.out)
    data = common.load_data(args)
    spec = common.model_spec(args, data)
    config = common.check_config(
        args, backends, spec, opt, device=device, epochs=args.epochs,
        batch_size=args.batch_size, shuffle=args.shuffle, folds=args.folds,
        stratified=args.stratify, split_seed=args.split_seed, min_agreement=args.min_agreement)
    code = common.preflight(args, config, data)  # the contract first, on a few rows
    if code is not None:
        return code
    result = _cross_validate(args, config, data)
    report = result.report
    if report is None:  # a backend raised: the finding is the result
        if args.json:
            output.print_json({**result.to_dict(), "out": args.out})
        else:
            print(result.text())
        return 1

    passed = result.passed
    if args.json:
        out = report.to_dict()
        out.update({k: v for k, v in result.to_dict().items() if k not in out})
        out["out"] = args.out
        out["passed"] = passed
        output.print_json(out)
    else:
        print(f"data: {data.name} ({len(data)} samples, {data.n_features} features, "
              f"{data.n_classes} classes: {_classes(data.class_names)}), {spec.short()}, "
              f"{spec.dtype}, {opt.name} lr {opt.lr:g} weight decay "
              f"{opt.weight_decay:g}")
        print(result.text())
        if args.out is not None:
            print(f"wrote {', '.join(OUTPUT_FILES)} to {args.out}")
        if result.status == "FAIL" and len(config.backends) > 1:
            print(f"FAIL: agreement {report.agreement_fraction:.4f} is below "
                  f"--min-agreement {args.min_agreement:g}")
    return 0 if passed else 1


def _cross_validate(args, config, data):
    """Cross-validate; with --out, in a staged folder that keeps the finished folds."""
    from harness.checks import run_cv

    with output.output_folder(args.out, force=args.force, keep_partial=True) as tmp:
        def on_fold(k, partial):
            if tmp is not None:  # what the finished folds found, kept if interrupted
                _write_tables(partial, tmp, complete=False, name=data.name)

        result = run_cv(config, data, quiet=args.quiet, on_fold=on_fold,
                        raise_numerical=True)
        if result.report is not None:
            result.report.config["init_from"] = args.init_from
            result.report.config["threads"] = config.resolved_threads
            if tmp is not None:
                write_outputs(result.report, tmp)
    return result


def _classes(names, shown: int = 10) -> str:
    text = ", ".join(names[:shown])
    return text + (f", ... ({len(names)} in all)" if len(names) > shown else "")


def _write_tables(report, folder, *, complete: bool, name: str | None = None) -> None:
    """The CSV tables and config.json of ``report`` into ``folder``, each file atomically."""
    from harness.data.atomic import atomic_write_json, atomic_write_text

    for file, frame in (("folds.csv", report.table), ("summary.csv", report.summary),
                        ("agreement.csv", report.agreement), ("curves.csv", report.curves),
                        ("predictions.csv", report.predictions_table())):
        atomic_write_text(folder / file, frame.to_csv(index=False))
    config = {**report.config, "class_names": report.class_names}
    if name is not None:
        config.setdefault("dataset", name)
    if not complete:
        config["complete"] = False
        config["folds_done"] = report.folds
    atomic_write_json(folder / "config.json", config)


def write_outputs(report, folder) -> None:
    """Every table and figure of ``report`` into ``folder`` (the staged output folder)."""
    from harness.plots.cv import plot_fold_accuracy, plot_loss_curves

    _write_tables(report, folder, complete=True)
    plot_fold_accuracy(report, folder / "cv_accuracy.png")
    plot_loss_curves(report, folder / "cv_loss_curves.png")

"""`nn-harness report`: every comparison of two backends, on one page."""

from __future__ import annotations

import argparse

from harness.cli import common, output

# the report's defaults; harness.report holds the same numbers (imported lazily there)
EPOCHS = 50
BATCH_SIZE = 64
FOLDS = 5
SPLIT_SEED = 42
MIN_AGREEMENT = 0.99
SAMPLES = 128
MAX_ENTRIES = 200

HELP = "run every check, train, cross-validate and benchmark; write one report"
EXAMPLE = "nn-harness report                                # the default: digits, 64-32-10, adam"
MORE = """
  nn-harness report --dataset wine --dims 13,16,3 --optimizer sgd --lr 0.05 --momentum 0.9
  nn-harness report --out reports/nightly --force  # a chosen folder, replaced if present
  nn-harness report --dataset iris --epochs 10 --folds 3 --no-bench --quiet"""
DESCRIPTION = f"""{HELP}.

Runs, on the same configuration: the equivalence check (logits, loss, gradients and
one optimizer step), a finite-difference gradient check of both backends, the
training-trajectory comparison in --dtype, a float32 drift run of the same workload
(when --dtype is float64), k-fold cross-validation and a short benchmark. Writes the
report folder (default reports/<data set>-<timestamp>):

  index.html    one self-contained page (images embedded; opens offline)
  report.md     the same in Markdown
  results.json  everything machine-readable, with a schema version
  equivalence/, gradcheck/, training/, drift/, cv/, bench/: the CSV and PNG files
                behind every table and figure

The folder is written in full or not at all: an interrupted run leaves nothing
behind, and an existing report of the same name is kept (exit 2) unless --force.
Progress goes to stderr (--quiet: none); the last line on stdout names the page.
The default finishes in under two minutes on two cores.

--epochs and --batch-size apply to the trajectory, the drift run and every fold.
Verdicts: every stage but the benchmark is a check. Cross-validation passes when at
least --min-agreement of the validation predictions are identical across the two
backends. --rtol/--atol apply to the equivalence check and the trajectories in
--dtype; the float32 drift run uses float32 defaults."""
EXIT_CODES = """exit codes: 0 every check passed, 1 a check failed (a mismatch or a numerical
failure; the report is written), 2 bad input or usage (nothing written), 130
interrupted by Ctrl-C or SIGTERM (nothing left behind)"""


def register(sub) -> None:
    p = sub.add_parser("report", help=HELP, description=DESCRIPTION,
                       epilog=f"examples:\n  {EXAMPLE}{MORE}\n\n{EXIT_CODES}")
    common.add_backends_arg(p)
    common.add_timeout_arg(p)
    common.add_data_args(p)
    common.add_model_args(p)
    common.add_init_from_arg(p)
    common.add_optimizer_args(p)
    common.add_tolerance_args(p)
    common.add_training_args(p, epochs=EPOCHS, batch_size=BATCH_SIZE, val_fraction=0.2)
    common.add_threads_arg(p, default_help="1 for the checks, all cores for the benchmark")
    g = p.add_argument_group("cross-validation")
    g.add_argument("--folds", type=int, default=FOLDS,
                   help=f"number of folds, 2..samples (default: {FOLDS})")
    g.add_argument("--no-stratify", dest="stratify", action="store_false",
                   help="plain KFold instead of StratifiedKFold (which needs every class to "
                        "have at least --folds members)")
    g.add_argument("--split-seed", type=int, default=SPLIT_SEED,
                   help=f"random_state of the shuffled fold split (default: {SPLIT_SEED})")
    g.add_argument("--min-agreement", type=float, default=MIN_AGREEMENT, metavar="FRAC",
                   help="the cross-validation check fails when fewer than this fraction of "
                        f"validation predictions are identical across backends "
                        f"(default: {MIN_AGREEMENT:g})")
    g = p.add_argument_group("gradient check (finite differences)")
    g.add_argument("--samples", type=int, default=SAMPLES, metavar="N",
                   help="samples of the data set the loss is computed on, a seeded random "
                        f"subset (default: {SAMPLES})")
    g.add_argument("--max-entries", type=int, default=MAX_ENTRIES, metavar="N",
                   help="check at most N entries of each parameter, a seeded random subset "
                        f"(default: {MAX_ENTRIES})")
    g = p.add_argument_group("stages")
    g.add_argument("--no-drift", dest="drift", action="store_false",
                   help="skip the float32 drift run")
    g.add_argument("--no-bench", dest="bench", action="store_false",
                   help="skip the benchmark")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, metavar="DIR",
                   help="the report folder (default: reports/<data set>-<timestamp>)")
    g.add_argument("--force", action="store_true",
                   help="replace --out if it exists and is not empty (default: refuse, exit 2)")
    g.add_argument("--quiet", action="store_true",
                   help="no progress lines (the page's path is still printed)")
    common.add_json_arg(p)
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    from harness.data.atomic import check_output_dir
    from harness.report import ReportSettings, build_report, default_out, validate_settings

    backends = common.validate_backends(args.backends, at_least=2)
    backends = common.reference_first(backends)
    opt = common.optimizer_spec(args)
    device = common.validate_device(args)
    threads = common.validate_threads(args)
    if args.out is not None:
        check_output_dir(args.out, force=args.force)
        output.check_writable(args.out)
    data = common.load_data(args)
    spec = common.model_spec(args, data)
    settings = ReportSettings(
        spec=spec, optimizer=opt, backends=backends, rtol=args.rtol, atol=args.atol,
        epochs=args.epochs, batch_size=args.batch_size, shuffle=args.shuffle,
        val_fraction=args.val_fraction, folds=args.folds, stratify=args.stratify,
        split_seed=args.split_seed, min_agreement=args.min_agreement,
        gradcheck_samples=args.samples, gradcheck_max_entries=args.max_entries,
        drift=args.drift, bench="quick" if args.bench else None, device=device,
        threads=threads, init_params=common.initial_params(args, spec),
        init_from=args.init_from)
    validate_settings(settings, data)
    out = args.out if args.out is not None else default_out(data.name)
    check_output_dir(out, force=args.force)  # refuse before running anything
    output.check_writable(out)
    # a plug-in that breaks the contract: its findings, exit 1, no report of meaningless
    # comparisons (a class that cannot be built: exit 2)
    code = common.preflight(args, common.check_config(args, backends, spec, opt,
                                                      device=device), data)
    if code is not None:
        return code

    command = command_line(args)
    outcome = build_report(data, settings, out, force=args.force, quiet=args.quiet,
                           command=command)
    if args.json:
        output.print_json({"passed": outcome.passed, "exit_code": outcome.exit_code,
                           "path": str(outcome.path), "index": str(outcome.index),
                           "elapsed_s": round(outcome.elapsed_s, 3),
                           "verdicts": [v.to_dict() for v in outcome.verdicts]})
    else:
        word = "PASS" if outcome.passed else "FAIL"
        print(f"{word}: report written to {outcome.index} ({outcome.elapsed_s:.1f} s)")
    return outcome.exit_code


def command_line(args: argparse.Namespace) -> list[str]:
    """The command that reproduces this run: every option whose value is not its default."""
    parser = getattr(args, "_parser", None)
    words = ["nn-harness", "report"]
    if parser is None:
        return words
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "_parser"):
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default:
            continue
        flag = action.option_strings[-1]
        if action.nargs == 0:  # store_true / store_false
            words.append(flag)
        elif isinstance(value, (tuple, list)):
            words += [flag, ",".join(f"{v:g}" if isinstance(v, float) else str(v)
                                     for v in value)]
        else:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return words

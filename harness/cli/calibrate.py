"""`nn-harness calibrate`: how far the verdicts can be trusted, measured both ways."""

from __future__ import annotations

import shlex
import sys

from harness.cli import common, output
from harness.runtime.values import check_int

HELP = "measure the checks' false alarms and which injected bugs they catch"
EXAMPLE = "nn-harness calibrate --configs 10000 --seed 0 --out reports/calibrate"
MORE = """
  nn-harness calibrate --quick          # 50 configurations, the catalogue on one network

Writes false_alarms.csv, detection.csv, resolution.csv and summary.json (with the seed
and the exact command). Exit codes: 0 every target met (no false alarm, every bug
caught where it can show), 1 a target missed, 2 bad input or usage."""

QUICK_CONFIGS = 50


def register(sub) -> None:
    p = sub.add_parser("calibrate", help=HELP, description=HELP + ".",
                       epilog=f"examples:\n  {EXAMPLE}{MORE}")
    p.add_argument("--configs", type=int, default=None, metavar="N",
                   help="random correct configurations for the false-alarm count "
                        f"(default: 10000, or {QUICK_CONFIGS} with --quick)")
    p.add_argument("--seed", type=int, default=0, help="seed of the configurations "
                                                       "(default: 0)")
    p.add_argument("--quick", action="store_true",
                   help=f"a short run: {QUICK_CONFIGS} configurations, the catalogue on one "
                        f"small network, a coarser bisection")
    p.add_argument("--checks", type=common.csv_names, default=None, metavar="NAMES",
                   help="the checks the configurations go through, comma-separated: "
                        "equivalence, gradcheck, training, drift, cv (default: all five; "
                        "the catalogue always runs whole)")
    common.add_threads_arg(p, default_help="1")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes for the false-alarm configurations (default: 1)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default: reports/calibrate-<timestamp>)")
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    common.add_json_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from datetime import datetime

    from harness.calibrate.tables import calibrate
    from harness.runtime.threads import limit_threads

    configs = QUICK_CONFIGS if args.configs is None and args.quick else (
        10000 if args.configs is None else args.configs)
    check_int("configs", configs, 0, one_rule=True)
    check_int("seed", args.seed, 0, one_rule=True)
    args.workers = 1 if args.workers is None else args.workers
    check_int("workers", args.workers, 1, one_rule=True)
    checks = _checks(args.checks)
    threads = common.validate_threads(args) or 1
    out = args.out or f"reports/calibrate-{datetime.now():%Y%m%d-%H%M%S}"
    command = "nn-harness calibrate " + shlex.join(_argv(args, configs, out))
    if args.out is not None:
        from harness.data.atomic import check_output_dir

        check_output_dir(out, force=args.force)
    output.check_writable(out)  # refused now, not after the run

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    with output.output_folder(out, force=args.force, keep_partial=False,
                              what="calibration") as folder:
        with limit_threads(threads):
            result = calibrate(configs, args.seed, quick=args.quick, threads=threads,
                               workers=args.workers, command=command, log=log,
                               checks=checks)
        result.write(folder)
    if args.json:
        output.print_json({**result.summary(), "out": out})
    else:
        print(result.text())
        print(f"written: {out}")
    return 0 if result.passed else 1


def _argv(args, configs: int, out: str) -> list[str]:
    argv = ["--configs", str(configs), "--seed", str(args.seed)]
    if args.quick:
        argv.append("--quick")
    if args.threads:
        argv += ["--threads", str(args.threads)]
    if args.workers != 1:
        argv += ["--workers", str(args.workers)]
    if args.checks:
        argv += ["--checks", ",".join(args.checks)]
    return argv + ["--out", out]


def _checks(names) -> tuple[str, ...]:
    """The ``--checks`` asked for (all five by default), each one of them."""
    from harness.calibrate.configs import CHECKS
    from harness.errors import ConfigError

    for name in names or ():
        if name not in CHECKS:
            raise ConfigError(f"`--checks` names one of {', '.join(CHECKS)}, got {name!r}")
    return tuple(names) if names else CHECKS

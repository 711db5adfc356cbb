"""`nn-harness sweep`: the comparison over a grid of configurations, on a Dask cluster."""

from __future__ import annotations

import argparse
import sys

from harness.cli import common, output

HELP = "run the comparison over a grid of configurations on a Dask cluster (resumable)"
EXAMPLE = "nn-harness sweep examples/sweep_small.toml --out reports/sweep-small"
MORE = """
  nn-harness sweep GRID.toml --executor tcp://HOST:8786   # an existing Dask cluster
  nn-harness sweep --summary reports/sweep-small          # the summary again, from the file

Rerun the same command after an interruption: configurations that already have a row
in the results folder are not recomputed. Exit codes: 0 every configuration passed,
1 a configuration failed or raised, 2 bad input or usage."""


def register(sub) -> None:
    p = sub.add_parser("sweep", help=HELP, description=HELP + ".",
                       epilog=f"examples:\n  {EXAMPLE}{MORE}")
    p.add_argument("grid", nargs="?", metavar="GRID.toml",
                   help="grid file: [sweep] settings and [grid] values (see docs/sweeps.md)")
    p.add_argument("--summary", metavar="RESULTS", default=None,
                   help="print the summary of an existing results folder (and redraw its "
                        "plot) instead of running a sweep")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="results folder; rows are appended, so rerunning resumes "
                        "(default: reports/sweep-<grid file name>)")
    p.add_argument("--executor", default="local", metavar="WHERE",
                   help="local (a LocalCluster, one worker process per core) or the address "
                        "of a running Dask scheduler, tcp://HOST:8786 (default: local)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of --executor local (default: one per core)")
    p.add_argument("--retry-errors", action="store_true",
                   help="recompute configurations whose row is an error (default: keep them)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the grid and say how many configurations would run")
    p.add_argument("--by", type=common.csv_names, default=("activation", "dtype"),
                   metavar="A,B", help="factors of the pass-rate table (default: "
                                       "activation,dtype)")
    p.add_argument("--worst", type=int, default=10, metavar="N",
                   help="worst cases listed in the summary (default: 10)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the error plot")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _default_out(grid: str) -> str:
    from pathlib import Path

    name = Path(grid).stem  # examples/sweep_small.toml: reports/sweep-small
    for prefix in ("sweep_", "sweep-"):
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix):]
    return str(Path("reports") / (f"sweep-{name}" if name != "sweep" else "sweep"))


def run(args: argparse.Namespace) -> int:
    from harness.errors import ConfigError
    from harness.sweep import FACTORS

    for name in args.by:
        if name not in FACTORS:
            raise ConfigError(f"`--by` names an unknown factor {name!r}; choose from "
                              f"{', '.join(FACTORS)}")
    if args.worst < 0:
        raise ConfigError(f"`--worst` must be >= 0, got {args.worst}")
    if args.summary is not None:
        if args.grid is not None:
            raise ConfigError("give either a grid file to run or --summary RESULTS, not both")
        return _summary(args)
    if args.grid is None:
        raise ConfigError("give a grid file to run (e.g. examples/sweep_small.toml), or "
                          "--summary RESULTS to summarise a results folder")
    return _run(args)


def _report(table, store, args, *, pending: int | None) -> int:
    from harness.plots.sweep import plot_grad_error_vs_size
    from harness.sweep import summarize

    summary = summarize(table, by=tuple(args.by), pending=pending)
    print(summary.text(worst=args.worst))
    if not args.no_plot and len(table):
        path = plot_grad_error_vs_size(table, store.path / "grad_error_vs_size.png")
        if path is not None:
            print(f"\nplot: {path}")
    return 0 if summary.passed else 1


def _summary(args) -> int:
    from harness.errors import ConfigError
    from harness.sweep import ResultsStore
    from harness.sweep.store import _ordered

    store = ResultsStore(args.summary)
    if not store.path.is_dir():
        raise ConfigError(f"results folder {args.summary!r} does not exist")
    if not store.is_results_dir():
        raise ConfigError(f"{args.summary!r} holds no sweep results")
    table = store.read()
    plan = store.read_plan()
    pending = None
    if plan is not None:
        hashes = list(plan.get("hashes", []))
        have = set(table["config_hash"])
        pending = sum(h not in have for h in hashes)
        extra = [h for h in table["config_hash"] if h not in set(hashes)]
        table = _ordered(table, hashes + extra)
    print(f"results: {store.path} ({len(table)} rows)")
    return _report(table, store, args, pending=pending)


def _preflight(plan, args) -> int | None:
    """The contract preflight of a plug-in, once per dtype and data set of the grid.

    Before the cluster starts: a class that breaks the contract is a finding (exit 1),
    one that computes in float64 when the grid asks for float32 is bad input (exit 2).
    """
    from harness.sweep.task import _dataset, check_config

    seen = set()
    for config in plan.configs:
        if ":" not in config["reference"] + config["candidate"]:
            return None  # built-in backends: trusted
        key = (config["dtype"], config["dataset"])
        if key in seen:
            continue
        seen.add(key)
        code = common.preflight(args, check_config(config), _dataset(config["dataset"]))
        if code is not None:
            return code
    return None


def _run(args) -> int:
    from harness.errors import ConfigError
    from harness.sweep import ResultsStore, load_plan, run_sweep, validate_executor

    out = args.out or _default_out(args.grid)
    output.check_writable(out)  # before reading the grid (which loads Dask)
    plan = load_plan(args.grid)
    executor = validate_executor(args.executor)
    if args.workers is not None:
        if args.workers < 1:
            raise ConfigError(f"`--workers` must be >= 1, got {args.workers}")
        if executor != "local":
            raise ConfigError("`--workers` applies to --executor local; the cluster at "
                              f"{executor} has the workers it has")
    store = ResultsStore(out)
    store.check()
    done = set()
    if store.is_results_dir():
        rows = store.read()
        if args.retry_errors:
            rows = rows[rows["status"] != "error"]
        done = set(rows["config_hash"])
    todo = sum(h not in done for h in plan.hashes)
    print(plan.describe())
    print(f"{todo} to run, {len(plan) - todo} already in {out}")
    code = _preflight(plan, args)
    if code is not None:
        return code
    if args.dry_run:
        return 0
    quiet = args.quiet or not sys.stderr.isatty()
    try:
        outcome = run_sweep(plan, out, executor=executor, n_workers=args.workers,
                            retry_errors=args.retry_errors, progress=not quiet)
    except KeyboardInterrupt:
        have = set(store.read()["config_hash"])
        n = sum(h in have for h in plan.hashes)
        print(f"interrupted: {n} of {len(plan)} configurations have rows in {out}; run the "
              f"same command again to go on from there", file=sys.stderr)
        raise
    print(f"ran {len(outcome.recorded)} configurations on {outcome.workers} worker"
          f"{'s' if outcome.workers != 1 else ''} in {outcome.elapsed_s:.1f} s; "
          f"{outcome.skipped} were already done")
    if outcome.lost:
        print(f"{len(outcome.lost)} configurations were cancelled by the cluster and have no "
              f"row; run the same command again to compute them", file=sys.stderr)
    print(f"results: {outcome.results}\n")
    pending = len(plan) - len(outcome.table)
    code = _report(outcome.table, store, args, pending=pending or None)
    return code if not outcome.lost else max(code, 1)

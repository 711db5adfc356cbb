"""`nn-harness bench`: time the backends side by side over a grid of sizes."""

from __future__ import annotations

import argparse

from harness.cli import common, output

HELP = "time forward, loss_and_grads, train_step and an epoch of each backend, side by side"
EXAMPLE = """nn-harness bench                                  # the default (small) grid, all cores
  nn-harness bench --quick --threads 1              # a short run
  nn-harness bench --grid full                      # up to 2048-wide layers: minutes
  nn-harness bench --targets                        # also the scratch backend's own goals
  nn-harness bench --dims 64,32,10 --batch-sizes 64,1797 --dtypes float32
  nn-harness bench --grid 64,32,10:64,1797 --grid 784,256,10:128
  nn-harness bench --layers "conv2d(8,3,padding=1),relu,maxpool2d(2),flatten,linear(10)" \\
      --input-shape 1,8,8 --batch-sizes 64 --dtypes float32 --threads 2
  nn-harness bench --config bench.toml --out reports/bench
  nn-harness bench --compare reports/bench/bench-A/bench.json reports/bench/bench-B/bench.json"""

DEFAULT_OUT = "reports/bench"
#: the optimizer every subcommand defaults to (harness.cli.common.add_optimizer_args)
DEFAULT_OPTIMIZER = "adam"
DEFAULT_LR = 1e-3
DEFAULT_MOMENTUM = 0.0
DEFAULT_WEIGHT_DECAY = 1e-4


def grid_entry(text: str) -> list[tuple[tuple[int, ...], int]]:
    """``64,32,10:64,1797`` -> [((64, 32, 10), 64), ((64, 32, 10), 1797)]; a grid's
    name (default, full, quick) -> its points."""
    from harness.bench.config import NAMED_GRIDS

    if text.strip().lower() in NAMED_GRIDS:
        return list(NAMED_GRIDS[text.strip().lower()])
    dims_text, sep, sizes_text = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(
            f"expected DIMS:BATCH_SIZES like 64,32,10:64,1797, got {text!r}")
    dims = common.csv_ints(dims_text)
    sizes = common.csv_ints(sizes_text)
    return [(dims, b) for b in sizes]


def register(sub) -> None:
    p = sub.add_parser("bench", help=HELP, description=HELP + ".",
                       epilog=f"examples:\n  {EXAMPLE}")
    g = p.add_argument_group("what to measure")
    g.add_argument("--grid", type=grid_entry, action="append", default=None,
                   metavar="DIMS:BATCHES",
                   help="a network and its batch sizes, e.g. 784,256,10:128, or a named "
                        "grid: default (64,32,10:64,1797 784,256,10:128), full (adds "
                        "784,1024,1024,10:512 2048,2048,2048,10:1024; minutes), quick; "
                        "repeat the flag for more")
    g.add_argument("--dims", type=common.csv_ints, action="append", default=None,
                   metavar="D0,...,DL", help="layer widths of a network, as everywhere; bench "
                                             "measures a grid, so repeat the flag for more "
                                             "networks; each is measured at every "
                                             "--batch-sizes")
    g.add_argument("--batch-sizes", type=common.csv_ints, default=None, metavar="B,...",
                   help="batch sizes of every --dims (default: 64) or of --layers (default: "
                        "64,1797)")
    g.add_argument("--layers", default=None, metavar="LIST",
                   help="measure a layer network instead of MLPs, as in every subcommand, "
                        "e.g. \"linear(32),batchnorm,relu,dropout(0.5),linear(10)\", on "
                        "--features inputs at every --batch-sizes")
    g.add_argument("--features", type=int, default=None, metavar="N",
                   help="input features of the --layers network (default: 64, the digits)")
    g.add_argument("--input-shape", type=common.csv_ints, default=None, metavar="C,H,W",
                   help="the --layers network takes images (N, C, H, W) of this shape "
                        "(seeded normal data), e.g. 1,8,8 or 3,32,32; instead of --features")
    g.add_argument("--config", default=None, metavar="FILE.toml",
                   help="grid and settings from a TOML file; flags given here win")
    g.add_argument("--dtypes", type=common.csv_names, default=None, metavar="DTYPES",
                   help="float32, float64 or both (default: float32,float64); plural where "
                        "the other subcommands take one --dtype, since bench measures a grid")
    g.add_argument("--ops", type=common.csv_names, default=None, metavar="OPS",
                   help="forward, loss_and_grads, train_step, epoch, matmuls (the matrix "
                        "products of a train_step alone) (default: all)")
    common.add_backends_arg(g)
    g.add_argument("--optimizer", default=None, metavar="NAME",
                   help=f"optimizer of train_step and epoch: sgd, adam, adamw (default: "
                        f"{DEFAULT_OPTIMIZER}, as in every subcommand; the settings without "
                        f"a flag here keep torch.optim's defaults)")
    g.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: 1e-3)")
    g.add_argument("--momentum", type=float, default=None,
                   help="sgd momentum (default: 0)")
    g.add_argument("--weight-decay", type=float, default=None,
                   help="weight decay (default: 1e-4; where and on what: the next two flags)")
    g.add_argument("--weight-decay-in", default=None, metavar="WHERE",
                   help="optimizer or loss: decay*p added to the gradients in the optimizer, "
                        "as torch.optim, or 0.5*decay*sum(p^2) added to the loss (default: "
                        "optimizer)")
    g.add_argument("--weight-decay-on", default=None, metavar="WHICH",
                   help="all or weights: every parameter, as torch.optim, or the weights only "
                        "(default: all)")
    g.add_argument("--loss-reduction", default=None, metavar="HOW",
                   help="mean or sum: the loss over a batch (default: mean)")
    g.add_argument("--epoch-samples", type=int, default=None, metavar="N",
                   help="samples in the timed epoch (default: 1797, the digits set)")
    g.add_argument("--no-memory", dest="memory", action="store_false", default=None,
                   help="skip the peak-memory measurement of train_step")
    g.add_argument("--peak-size", type=int, default=None, metavar="N",
                   help="side of the square matmuls that measure the machine's peak "
                        "(default: 4096)")
    _add_how_args(p)
    _add_output_args(p)
    p.set_defaults(func=run)


def _add_how_args(p) -> None:
    """The flags of how ``bench`` measures: threads, device, rounds."""
    t = p.add_argument_group("how")
    common.add_threads_arg(t, default_help="all cores")
    common.add_device_arg(t)
    t.add_argument("--repeats", type=int, default=None, metavar="N",
                   help="rounds; each measures every backend once, in turn (default: 5)")
    t.add_argument("--min-time", type=float, default=None, metavar="SECONDS",
                   help="timed seconds per measurement and round (default: 0.1)")
    t.add_argument("--quick", action="store_true",
                   help="a short run: two small grid points, brief measurements")


def _add_output_args(p) -> None:
    """The flags of what ``bench`` writes and prints."""
    o = p.add_argument_group("output")
    o.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help=f"every run is kept in its own time-stamped folder here "
                        f"(default: {DEFAULT_OUT})")
    o.add_argument("--no-save", dest="save", action="store_false",
                   help="print only; write nothing")
    o.add_argument("--no-plots", dest="plots", action="store_false", help="save no figures")
    o.add_argument("--targets", action="store_true",
                   help="also print and plot the scratch backend's speed and memory targets "
                        "(the project's engineering goals)")
    o.add_argument("--strict", action="store_true",
                   help="exit with 1 when a target of the fast scratch backend is missed "
                        "(implies --targets)")
    o.add_argument("--quiet", action="store_true", help="no progress lines")
    common.add_json_arg(o)
    o.add_argument("--compare", nargs=2, default=None, metavar=("OLD.json", "NEW.json"),
                   help="print the change per row between two saved runs and exit")


def build_config(args):
    """BenchConfig from defaults < --quick < --config file < flags."""
    from harness.bench import BenchConfig, load_config_file
    from harness.errors import ConfigError

    common.validate_threads(args)
    if getattr(args, "save", False):
        output.check_writable(getattr(args, "out", None))
    kw: dict = {}
    if args.config:
        kw.update(load_config_file(args.config))
    if args.grid and args.dims:
        raise ConfigError("give the grid either as --grid DIMS:BATCHES or as --dims with "
                          "--batch-sizes, not both")
    if args.batch_sizes and not args.dims and args.layers is None:
        raise ConfigError("`--batch-sizes` goes with --dims or --layers (or use --grid "
                          "DIMS:BATCHES)")
    if args.layers is not None:
        _layer_settings(args, kw)
    elif args.features is not None:
        raise ConfigError("`--features` goes with --layers")
    elif args.input_shape is not None:
        raise ConfigError("`--input-shape` goes with --layers (a network on images)")
    elif args.grid:
        kw["grid"] = tuple(point for entry in args.grid for point in entry)
    elif args.dims:
        sizes = args.batch_sizes or (64,)
        kw["grid"] = tuple((dims, b) for dims in args.dims for b in sizes)
    flags = {"dtypes": args.dtypes, "ops": args.ops, "optimizer": args.optimizer,
             "lr": args.lr, "momentum": args.momentum, "weight_decay": args.weight_decay,
             "weight_decay_in": args.weight_decay_in, "weight_decay_on": args.weight_decay_on,
             "loss_reduction": args.loss_reduction,
             "epoch_samples": args.epoch_samples, "memory": args.memory,
             "peak_size": args.peak_size, "threads": args.threads, "repeats": args.repeats,
             "min_time": args.min_time}
    kw.update({k: v for k, v in flags.items() if v is not None})
    kw.setdefault("optimizer", DEFAULT_OPTIMIZER)  # flag > --config file > the shared default
    kw.setdefault("lr", DEFAULT_LR)
    kw.setdefault("momentum", DEFAULT_MOMENTUM)
    kw.setdefault("weight_decay", DEFAULT_WEIGHT_DECAY)
    if args.device != "cpu" or "device" not in kw:
        kw["device"] = args.device
    backends = common.validate_backends(args.backends)
    kw["backends"] = backends
    from harness.model.specs import OPTIMIZER_NAMES

    if kw.get("optimizer", "sgd") not in OPTIMIZER_NAMES:
        raise ConfigError(f"`--optimizer` must be one of {', '.join(OPTIMIZER_NAMES)}, "
                          f"got {kw['optimizer']!r}")
    try:
        return BenchConfig.quick(**kw) if args.quick else BenchConfig(**kw)
    except TypeError as exc:  # a wrongly typed value from the TOML file
        raise ConfigError(f"bad bench setting: {exc}") from None


def _layer_settings(args, kw: dict) -> None:
    """The grid and the layer settings of --layers (with --features, --batch-sizes)."""
    from harness.bench.config import layer_grid
    from harness.errors import ConfigError

    if args.grid or args.dims:
        raise ConfigError("give the networks as --grid/--dims or as --layers, not both")
    features = 64 if args.features is None else args.features
    if features < 1:
        raise ConfigError(f"`--features` must be >= 1, got {features}")
    shape = args.input_shape
    if shape is not None:
        if args.features is not None:
            raise ConfigError("give --features (rows) or --input-shape C,H,W (images), "
                              "not both")
        if len(shape) != 3 or min(shape) < 1:
            raise ConfigError(f"`--input-shape` must be three positive integers C,H,W, "
                              f"got {','.join(map(str, shape))}")
        kw["input_shape"] = tuple(shape)
    kw["grid"] = layer_grid(args.layers, features, args.batch_sizes or (64, 1797), shape)
    kw["layers"] = args.layers
    kw.update(common.layer_spec_settings(args))


def run(args) -> int:
    from harness import bench
    from harness.runtime.console import to_stderr

    if args.compare:
        old, new = (bench.load_run(p) for p in args.compare)
        table = bench.compare_runs(old, new)
        differences = bench.run_differences(old, new)
        if args.json:
            output.print_json({"old": args.compare[0], "new": args.compare[1],
                               "differences": differences,
                               "rows": table.to_dict(orient="records")})
            if differences:
                to_stderr("warning: the runs differ beside the code: " + "; ".join(differences))
        else:
            print(f"old: {args.compare[0]} ({old.machine.get('date')})")
            print(f"new: {args.compare[1]} ({new.machine.get('date')})")
            print(bench.format_comparison(table, differences))
        return 0
    targets = args.targets or args.strict
    config = build_config(args)
    common.validate_device(args)
    log = None if args.quiet else to_stderr
    if log is not None:
        log(_plan(config))
    result = bench.run_bench(config, log=log)
    saved = bench.save_run(result, args.out) if args.save else None
    if saved is not None and args.plots:
        from harness.plots.bench import plot_all

        plot_all(result, saved, targets=targets)
    if args.json:
        out = result.to_dict(targets=targets)
        out.pop("times_s", None)
        out["saved_to"] = None if saved is None else str(saved)
        output.print_json(out)
    else:
        print(bench.format_result(result, targets=targets))
        if saved is not None:
            print(f"\nsaved: {saved}/bench.csv, bench.json"
                  + (" and plots" if args.plots else ""))
    missed = [t for t in result.targets if not t["passed"]]
    return 1 if (args.strict and missed) else 0


def _plan(config) -> str:
    """The line printed before a run: what it measures, and the way to the big grid."""
    from harness.bench.arithmetic import dims_label
    from harness.bench.config import FULL_GRID

    n = len(config.grid) * len(config.dtypes)
    widest = max(config.grid, key=lambda p: max(p[0]) * p[1])
    line = (f"measuring {n} grid point{'s' if n != 1 else ''} ({len(config.grid)} "
            f"network/batch sizes x {len(config.dtypes)} dtypes), {config.repeats} rounds "
            f"each; the largest: {dims_label(widest[0])} batch {widest[1]}")
    if not set(FULL_GRID) <= set(config.grid):
        line += "; `--grid full` measures networks up to 2048 wide (minutes)"
    return line

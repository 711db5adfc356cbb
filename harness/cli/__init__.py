"""The `nn-harness` command line.

Exit codes: 0 pass, 1 a mismatch (or a numerical failure) was found, 2 bad input
or usage. Library errors are turned into one-line messages here and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from harness.cli.common import OneLineErrorParser

#: subcommand modules, in the order `--help` lists them; each has register(subparsers)
SUBCOMMANDS = [
    "harness.cli.report",
    "harness.cli.check",
    "harness.cli.gradcheck",
    "harness.cli.train",
    "harness.cli.cv",
    "harness.cli.sweep",
    "harness.cli.bench",
]

EXAMPLES = """examples:
  nn-harness report                     # every check, training, CV, benchmark: one page
  nn-harness report --dataset wine --dims 13,16,3 --optimizer sgd --out reports/wine
  nn-harness check                      # scratch vs torch on digits, float64
  nn-harness check --dtype float32 --activation gelu --dims 64,32,16,10
  nn-harness gradcheck --backend scratch --dims 64,32,10 --activation tanh  # finite differences
  nn-harness train --optimizer adam --lr 1e-3 --epochs 50 --out train-digits  # side by side
  nn-harness cv --dataset digits --folds 5 --epochs 100 --out cv-digits   # 5-fold CV, both
  nn-harness cv --data mine.csv --target label --folds 10               # your own CSV
  nn-harness sweep examples/sweep_small.toml   # grid of comparisons on Dask, resumable
  nn-harness bench --threads 2                  # timings side by side, saved under reports/bench/

exit codes: 0 pass, 1 a mismatch was found, 2 bad input or usage"""


def build_parser() -> argparse.ArgumentParser:
    from harness import __version__

    parser = OneLineErrorParser(
        prog="nn-harness",
        description="Compare a from-scratch NumPy MLP with a PyTorch MLP, side by side.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineErrorParser)
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(_Sub(sub))
    return parser


class _Sub:
    """Wraps add_parser so every subcommand keeps its example's line breaks."""

    def __init__(self, sub):
        self._sub = sub

    def add_parser(self, name, **kw):
        kw.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        return self._sub.add_parser(name, **kw)


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def main(argv: list[str] | None = None) -> int:
    from harness.errors import ConfigError, NumericalError

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"nn-harness {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except NumericalError as exc:
        print(f"nn-harness {args.command}: numerical failure: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nn-harness {args.command}: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())

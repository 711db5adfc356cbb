"""The `nn-harness` command line.

Exit codes: 0 pass, 1 a mismatch (or a numerical failure) was found, 2 bad input
or usage, 130 interrupted (Ctrl-C or SIGTERM). Library errors are turned into
one-line messages here and nowhere else; where a command kept partial results
(``harness.data.atomic.staged_dir(keep_partial=True)``), the message says where they are.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import re
import signal
import sys
import threading
import warnings

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
    "harness.cli.export",
    "harness.cli.calibrate",
    "harness.cli.conformance",
]

EXAMPLES = """examples:
  nn-harness report                     # every check, training, CV, benchmark: one page
  nn-harness report --dataset wine --dims 13,16,3 --optimizer sgd --out reports/wine
  nn-harness check                      # scratch vs torch on digits, float64
  nn-harness check --dtype float32 --activation gelu --dims 64,32,16,10
  nn-harness gradcheck --backend scratch --dims 64,32,10 --activation tanh  # finite differences
  nn-harness train --optimizer adam --lr 1e-3 --epochs 50 --out reports/train  # side by side
  nn-harness cv --dataset digits --folds 5 --epochs 100 --out reports/cv  # 5-fold CV, both
  nn-harness cv --data mine.csv --target label --folds 10               # your own CSV
  nn-harness sweep examples/sweep_small.toml   # grid of comparisons on Dask, resumable
  nn-harness bench --threads 2                  # timings side by side, saved under reports/bench/

exit codes: 0 pass, 1 a mismatch was found, 2 bad input or usage, 130 interrupted"""


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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every command cleans up the same way."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only)."""
    old = None
    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame):
            raise Terminated

        with contextlib.suppress(ValueError, OSError):
            old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def _quiet_floating_point():
    """Within the block, NumPy's floating-point warnings (overflow, invalid value, divide
    by zero), also those raised inside plotting, are not printed: the commands report
    non-finite losses and parameters themselves, in their own words."""
    import numpy as np

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning,
                                message=r"(overflow|underflow|invalid value|divide by zero)")
        yield


def _as_flags(message: str, argv: list[str], options: set[str], from_file: bool) -> str:
    """Library names in ``message`` (`` `weight_decay` ``) as the command's flags
    (`` `--weight-decay` ``). When settings may also come from a file (``from_file``),
    only the flags the user typed are named so: the others may be the file's keys."""
    typed = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    flags = typed if from_file else typed | options

    def flag(match):
        option = "--" + match.group(1).replace("_", "-")
        return f"`{option}`" if option in flags else match.group(0)

    return re.sub(r"`([a-z][a-z0-9_]*)`", flag, message)


def _options_of(parser: argparse.ArgumentParser, command: str) -> set[str]:
    """The option strings of ``command``'s own parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return set(action.choices[command]._option_string_actions)
    return set()


def _partial_note(exc: BaseException) -> str:
    from harness.data.atomic import partial_path_of

    path = partial_path_of(exc)
    return "" if path is None else f"; partial results are in {path}"


def main(argv: list[str] | None = None) -> int:
    from harness.errors import BackendRaised, ConfigError, NumericalError

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    name = f"nn-harness {args.command}"
    typed = list(sys.argv[1:] if argv is None else argv)
    from_file = args.command == "sweep" or getattr(args, "config", None) is not None
    from harness.cli.output import json_stdout
    from harness.runtime.deadline import call_limit

    try:
        # with --json, what plug-in code prints goes to stderr: stdout is the JSON alone
        with _sigterm_as_interrupt(), _quiet_floating_point(), \
                json_stdout(bool(getattr(args, "json", False))), \
                call_limit(getattr(args, "timeout", None)):
            return int(args.func(args))
    except ConfigError as exc:
        message = _as_flags(_one_line(exc), typed, _options_of(parser, args.command), from_file)
        print(f"{name}: error: {message}{_partial_note(exc)}", file=sys.stderr)
        return 2
    except NumericalError as exc:
        print(f"{name}: numerical failure: {_one_line(exc)}{_partial_note(exc)}",
              file=sys.stderr)
        return 1
    except BackendRaised as exc:  # the code under test failed where no check caught it
        return _backend_raised(name, exc, bool(getattr(args, "json", False)))
    except KeyboardInterrupt as exc:
        how = " (SIGTERM)" if isinstance(exc, Terminated) else ""
        print(f"{name}: interrupted{how}{_partial_note(exc)}", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{name}: error: out of memory: the network or the data is too large for this "
              f"machine", file=sys.stderr)
        return 2
    except OSError as exc:  # cannot read or write a file: disk full, permissions, ...
        where = f": {exc.filename!r}" if getattr(exc, "filename", None) else ""
        print(f"{name}: error: {_one_line(exc.strerror or exc)}{where}{_partial_note(exc)}",
              file=sys.stderr)
        return 2


def _backend_raised(name: str, exc, as_json: bool) -> int:
    """A finding about the code under test, as a FAIL (exit code 1), not a traceback."""
    from harness.checks.outcome import finding_of

    finding = finding_of(exc)
    if as_json:
        from harness.cli.output import print_json

        print_json({"status": "FAIL", "passed": False, "summary": f"the code under test "
                    f"raised: {finding}", "findings": [finding.to_dict()]})
    print(f"{name}: FAIL: the code under test raised: {finding}{_partial_note(exc)}",
          file=sys.stderr)
    return 1


def entry() -> None:
    sys.exit(main())

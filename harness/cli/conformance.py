"""`nn-harness conformance`: the conformance suite of one class, as a checklist."""

from __future__ import annotations

import sys

from harness.cli import common

HELP = "run the conformance suite on your own class (or a built-in backend)"
EXAMPLE = "nn-harness conformance mynet:MyMLP"


def register(sub) -> None:
    p = sub.add_parser(
        "conformance", help=HELP,
        description=HELP + ".\nOne line per check: PASS, FAIL with its first likely cause or "
                    "the failing quantity,\nSKIP with its reason (checks outside the class's "
                    "nnh_capabilities). The same checks\nas harness.testing.parametrize_with_checks "
                    "in pytest.",
        epilog=f"example:\n  {EXAMPLE}\n  nn-harness conformance mynet:MyMLP --verbose  "
               f"# full report of every failure")
    p.add_argument("backend", metavar="BACKEND",
                   help="the class to check, as package.module:Class (or scratch, torch)")
    p.add_argument("--reference", default=None, metavar="NAME",
                   help="the backend it is compared with (default: torch)")
    p.add_argument("--verbose", action="store_true",
                   help="print the full report of every failed check after the checklist")
    common.add_json_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from harness.model.registry import BUILTIN_BACKENDS, validate_backend_name
    from harness.testing.conformance import capabilities_of, check_network

    validate_backend_name(args.backend)
    if args.reference is not None and args.reference not in BUILTIN_BACKENDS:
        from harness.errors import ConfigError

        raise ConfigError(f"`--reference` must be one of {', '.join(BUILTIN_BACKENDS)}, "
                          f"got {args.reference!r}")
    capabilities_of(args.backend)  # imports the class: an unknown module is bad input

    def progress(outcome):
        if not args.json:
            print(outcome.line, flush=True)

    if not args.json:
        print(f"conformance: {args.backend}")
    result = check_network(args.backend, reference=args.reference, on_outcome=progress)
    if args.json:
        common.print_json(result.to_dict())
        return result.exit_code
    c = result.counts()
    if args.verbose:
        for outcome in result.failed:
            print(f"\n--- {outcome.id}\n{outcome.result.text()}")
    print(f"{'PASS' if result.passed else 'FAIL'}: {c['PASS']} passed, {c['FAIL']} failed, "
          f"{c['SKIP']} skipped ({result.seconds:.1f}s)")
    sys.stdout.flush()
    return result.exit_code

"""`nn-harness conformance`: the conformance suite of one class, as a checklist.

It takes the model and optimizer flags of `check` (the same argument groups); a flag
given narrows the class's declared terms to that value (``--optimizer adamw``: the
checks are built with adamw; ``--loss-reduction sum``: with the summed loss), a flag
not given leaves them as ``nnh_capabilities`` declares.
"""

from __future__ import annotations

import re
import sys

from harness.cli import common, output

HELP = "run the conformance suite on your own class (or a built-in backend)"
EXAMPLE = "nn-harness conformance mynet:MyMLP"
#: what a model or optimizer flag defaults to here: the class's own terms
TERMS_DEFAULT = "(default here: as the class's nnh_capabilities declares, else the suite's)"
#: the flags that narrow a capability list, by dest
CAPABILITY_FLAGS = {"activation": "activations", "dtype": "dtypes", "optimizer": "optimizers",
                    "loss_reduction": "loss_reduction", "weight_decay_in": "weight_decay_in",
                    "weight_decay_on": "weight_decay_on", "dims": "dims"}
#: the ModelSpec fields a flag sets in every check
MODEL_FLAGS = ("seed", "loss", "loss_outputs", "mse_half", "bn_momentum",
               "bn_momentum_convention", "bn_running_var", "norm_eps")


def register(sub) -> None:
    p = sub.add_parser(
        "conformance", help=HELP,
        description=HELP + ".\nOne line per check: PASS, WARN with a recommendation and its "
                    "fix, FAIL with its first likely\ncause or the failing quantity, SKIP with "
                    "its reason (checks outside the class's\nnnh_capabilities, or that its "
                    "constructor refuses). The same checks as\nharness.testing."
                    "parametrize_with_checks in pytest. The model and optimizer flags\nare "
                    "check's; one given builds every check with that value instead of the "
                    "declared ones.",
        epilog=f"example:\n  {EXAMPLE}\n  nn-harness conformance mynet:MyMLP --verbose  "
               f"# full report of every failure\n  nn-harness conformance mynet:MyMLP "
               f"--optimizer sgd --loss-reduction sum  # in the class's terms")
    p.add_argument("backend", metavar="BACKEND",
                   help="the class to check, as package.module:Class (or scratch, torch)")
    p.add_argument("--reference", default=None, metavar="NAME",
                   help="the backend it is compared with (default: torch)")
    p.add_argument("--verbose", action="store_true",
                   help="print the full report of every failed check after the checklist, "
                        "likely causes included")
    first = len(p._actions)
    common.add_model_args(p)
    common.add_optimizer_args(p)
    _terms_defaults(p, p._actions[first:])
    common.add_json_arg(p)
    p.set_defaults(func=run)


def _terms_defaults(p, actions) -> None:
    """Every model and optimizer flag defaults to "not given" (None), its help saying so."""
    for action in actions:
        if action.dest == "help":
            continue
        p.set_defaults(**{action.dest: None})
        if action.help:
            action.help = re.sub(r"\s*\(default: .*\)\s*$", "", action.help, flags=re.S)
            action.help = f"{action.help} {TERMS_DEFAULT}"


def flags_of(args) -> dict:
    """The given flags as :func:`harness.testing.checks_for`'s ``flags``; bad values are
    refused here, before any check (ConfigError, exit 2)."""
    from harness.errors import ConfigError
    from harness.model.specs import ModelSpec, OptimizerSpec

    if getattr(args, "layers", None) is not None and args.dims is not None:
        raise ConfigError("`--layers` and `--dims` both fix the network; give one")
    if getattr(args, "device", None) not in (None, "cpu"):
        raise ConfigError(f"`--device` {args.device!r}: the conformance suite compares on "
                          f"the cpu only")
    if args.dims is not None and len(args.dims) < 2:
        raise ConfigError(f"`--dims` needs the features and the classes at least, got "
                          f"{','.join(map(str, args.dims))}")
    flags: dict = {}
    for dest, key in CAPABILITY_FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None:
            flags[key] = value if key in ("dims", "loss_reduction", "weight_decay_in",
                                          "weight_decay_on") else [value]
    from harness.cli.images import input_shape_arg

    if getattr(args, "layers", None) is not None:  # a fixed network, as if declared
        flags["network"], flags["input_shape"] = args.layers, input_shape_arg(args)
    elif getattr(args, "input_shape", None) is not None:
        input_shape_arg(args)  # refused without --layers
    flags["model_fields"] = {k: getattr(args, k) for k in MODEL_FLAGS
                             if getattr(args, k, None) not in (None, False)}
    fields = {"lr": args.lr, "momentum": args.momentum, "nesterov": args.nesterov,
              "betas": None if args.betas is None else tuple(args.betas), "eps": args.eps,
              "weight_decay": args.weight_decay, **common._recipe_settings(args)}
    given = {k: v for k, v in fields.items() if v not in (None, False)}
    flags["optimizer_fields"] = given
    # the values checked once, as check refuses them
    if flags.get("network"):
        ModelSpec(layers=flags["network"], input_shape=flags["input_shape"] or (5,))
    ModelSpec(tuple(args.dims or (5, 7, 3)), activation=args.activation or "relu",
              dtype=args.dtype or "float64", loss_reduction=args.loss_reduction or "mean",
              **flags["model_fields"])
    OptimizerSpec(name=args.optimizer or "sgd",
                  weight_decay_in=args.weight_decay_in or "optimizer",
                  weight_decay_on=args.weight_decay_on or "all", **given)
    return flags


def run(args) -> int:
    from harness.model.registry import BUILTIN_BACKENDS, validate_backend_name
    from harness.testing.conformance import capabilities_of, check_network

    validate_backend_name(args.backend)
    if args.reference is not None and args.reference not in BUILTIN_BACKENDS:
        from harness.errors import ConfigError

        raise ConfigError(f"`--reference` must be one of {', '.join(BUILTIN_BACKENDS)}, "
                          f"got {args.reference!r}")
    capabilities_of(args.backend)  # imports the class: an unknown module is bad input
    flags = flags_of(args)

    def progress(outcome):
        if not args.json:
            print(outcome.line, flush=True)

    if not args.json:
        print(f"conformance: {args.backend}")
    result = check_network(args.backend, reference=args.reference, on_outcome=progress,
                           flags=flags)
    if args.json:
        output.print_json(result.to_dict())
        return result.exit_code
    if args.verbose:
        for outcome in result.failed:
            print(f"\n--- {outcome.id}\n{outcome.result.text()}")
    print(f"{result.verdict_line()} ({result.seconds:.1f}s)")
    sys.stdout.flush()
    return result.exit_code

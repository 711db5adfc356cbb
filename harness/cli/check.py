"""`nn-harness check`: copy weights across, compare logits, loss, gradients and a few steps."""

from __future__ import annotations

from harness.cli import common, output

HELP = "check that two backends compute the same logits, loss, gradients and updates"
EXAMPLE = "nn-harness check --backends scratch,torch --dataset digits --dims 64,32,10 --dtype float64"


def register(sub) -> None:
    p = sub.add_parser("check", help=HELP, description=HELP + ".",
                       epilog=f"example:\n  {EXAMPLE}")
    common.add_backends_arg(p)
    common.add_timeout_arg(p)
    common.add_data_args(p)
    common.add_model_args(p)
    common.add_init_from_arg(p)
    common.add_optimizer_args(p)
    common.add_tolerance_args(p)
    common.add_threads_arg(p)
    p.add_argument("--steps", type=int, default=3, metavar="N",
                   help="optimizer steps taken on the check's batch and compared after "
                        "each (default 3; the last of three or more on half the rows, as "
                        "an epoch's last batch); at least 1")
    common.add_json_arg(p)
    p.set_defaults(func=run, command_parser=p)  # the passing command spells its flags


def run(args) -> int:
    from harness.checks import run_equivalence
    from harness.errors import ConfigError

    backends = common.validate_backends(args.backends, at_least=2)
    backends = common.reference_first(backends)
    if len(backends) != 2:
        raise ConfigError(f"`--backends` for check takes exactly two names (reference, "
                          f"candidate), got {','.join(backends)}")
    opt = common.optimizer_spec(args)
    common.validate_threads(args)
    device = common.validate_device(args)
    data = common.load_data(args)
    spec = common.model_spec(args, data)
    config = common.check_config(args, backends, spec, opt, device=device,
                                 steps=args.steps)
    code = common.preflight(args, config, data)  # the contract first, on a few rows
    if code is not None:
        return code
    result = run_equivalence(config, data)
    common.show_passing_command(args, "check", result)
    if args.json:
        out = result.to_dict()
        out["config"] = {"dataset": data.name, "n_samples": len(data), **spec.to_dict(),
                         "optimizer": opt.to_dict(), "init_from": args.init_from}
        output.print_json(out)
    else:
        print(f"data: {data.name} ({len(data)} samples, standardised), {spec.short()}, "
              f"{spec.dtype}, seed {spec.seed}")
        print(result.text())
    return 0 if result.passed else 1

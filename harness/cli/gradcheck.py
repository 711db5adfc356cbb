"""`nn-harness gradcheck`: one backend's gradients against central differences of its loss."""

from __future__ import annotations

import math

from harness.cli import common, output

HELP = "check one backend's gradients against finite differences of its loss"
EXAMPLE = ("nn-harness gradcheck --backend scratch --dataset iris --dims 4,16,3 "
           "--activation tanh")
DEFAULT_SAMPLES = 128
DEFAULT_MAX_ENTRIES = 200


def register(sub) -> None:
    p = sub.add_parser(
        "gradcheck", help=HELP,
        description=HELP + ".\nCentral differences in float64 (a float32 model is checked "
                    "through a float64 copy\nwhere possible); entries at a relu kink are "
                    "skipped and counted.",
        epilog=f"example:\n  {EXAMPLE}")
    p.add_argument("--backend", default="scratch", metavar="NAME",
                   help="the one backend to check (one model, hence --backend; the commands "
                        "that compare take --backends A,B): scratch, torch or "
                        "package.module:Class (default: scratch)")
    common.add_data_args(p)
    common.add_timeout_arg(p)
    common.add_model_args(p)
    common.add_init_from_arg(p)
    common.add_optimizer_args(p)  # the model is built with it (a class may accept only some)
    g = p.add_argument_group("finite differences")
    g.add_argument("--fd-eps", type=float, default=None, metavar="EPS",
                   help="half-width of the central difference (default: 1e-6; 1e-3 when "
                        "the check has to run in float32)")
    g.add_argument("--max-entries", type=int, default=DEFAULT_MAX_ENTRIES, metavar="N",
                   help="check at most N entries of each parameter, a seeded random subset "
                        f"(default: {DEFAULT_MAX_ENTRIES})")
    g.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, metavar="N",
                   help="samples the loss is computed on, a seeded random subset of the "
                        f"data (default: {DEFAULT_SAMPLES})")
    common.add_tolerance_args(p)
    common.add_threads_arg(p)
    common.add_json_arg(p)
    p.set_defaults(func=run)


def _optimizer_to_build_with(args):
    """The optimizer the model is built with, and a line saying why where it is not the
    default: a gradient check never steps, so without ``--optimizer`` a plug-in is built
    with the first optimizer it declares in ``nnh_capabilities`` (sgd when it declares
    none), not the command line's default, which a class implementing one optimizer
    refuses; likewise its first declared weight-decay conventions where
    ``--weight-decay-in``/``--weight-decay-on`` are not given (an L2 term in the loss is
    the class's own loss, which the finite differences differentiate too); and without
    ``--weight-decay`` no decay where it would sit in the optimizer (it never reaches a
    gradient, and code without a decay setting refuses one)."""
    import dataclasses

    opt = common.optimizer_spec(args)
    if ":" not in args.backend:
        return opt, None
    from harness.testing.terms import capabilities_of

    caps = capabilities_of(args.backend)
    declared = {"name": caps["optimizers"][0],
                **{k: v[0] for k, v in caps["conventions"].items() if k.startswith("weight")}}
    taken = {k: v for k, v in declared.items() if getattr(opt, k) != v
             and not getattr(args, f"_{'optimizer' if k == 'name' else k}_given", False)}
    where = taken.get("weight_decay_in", opt.weight_decay_in)
    if where == "optimizer" and opt.weight_decay and not getattr(args, "_weight_decay_given",
                                                                 False):
        taken["weight_decay"] = 0.0  # the optimizer's decay never reaches a gradient
    if not taken:
        return opt, None
    shown = ", ".join(f"{'optimizer' if k == 'name' else k} {v}" for k, v in taken.items()
                      if k != "weight_decay")
    parts = [f"the class's declared {shown} (nnh_capabilities)"] if shown else []
    if "weight_decay" in taken:
        parts.append("no weight decay in the optimizer (it never reaches a gradient)")
    return dataclasses.replace(opt, **taken), (
        f"built with {' and '.join(parts)}; a gradient check never steps, give the flags "
        f"for other settings")


def run(args) -> int:
    from harness.checks import run_gradcheck
    from harness.compare.equivalence import resolve_tolerances
    from harness.errors import ConfigError
    from harness.model.registry import validate_backend_name

    validate_backend_name(args.backend)
    if args.samples < 1:
        raise ConfigError(f"`--samples` must be >= 1, got {args.samples}")
    if args.max_entries < 1:
        raise ConfigError(f"`--max-entries` must be >= 1, got {args.max_entries}")
    if args.fd_eps is not None and not (args.fd_eps > 0 and math.isfinite(args.fd_eps)):
        raise ConfigError(f"`--fd-eps` must be a finite number > 0, got {args.fd_eps:g}")
    resolve_tolerances("float64", args.rtol, args.atol)
    opt, built_with = _optimizer_to_build_with(args)
    common.validate_threads(args)
    device = common.validate_device(args)
    data = common.load_data(args)
    spec = common.model_spec(args, data)
    config = common.check_config(
        args, [args.backend], spec, opt, device=device, gradcheck_samples=args.samples,
        gradcheck_max_entries=args.max_entries, gradcheck_eps=args.fd_eps,
        gradcheck_rtol=args.rtol, gradcheck_atol=args.atol, rtol=None, atol=None)
    code = common.preflight(args, config, data)  # the contract first, on a few rows
    if code is not None:
        return code
    result = run_gradcheck(config, data)
    n_used = result.settings.get("n_samples", 0)
    if args.json:
        out = result.to_dict()
        out["config"] = {"backend": args.backend, "dataset": data.name,
                         "n_samples": len(data), **spec.to_dict(),
                         "optimizer": opt.to_dict(), "init_from": args.init_from,
                         "built_with": built_with}
        output.print_json(out)
    else:
        print(f"data: {data.name} ({len(data)} samples, standardised; {n_used} used), "
              f"{spec.short()}, {spec.dtype}, seed {spec.seed}")
        if built_with:
            print(built_with)
        print(result.text())
    return 0 if result.passed else 1

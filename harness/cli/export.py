"""`nn-harness export`: write a model's initial parameters to a weight file."""

from __future__ import annotations

from harness.cli import common, output

HELP = "write a backend's initial parameters to a weight file (.safetensors or .npz)"
EXAMPLE = "nn-harness export --backend scratch --dims 64,32,10 --seed 0 --out weights.safetensors"
DESCRIPTION = f"""{HELP}.

The file holds the canonical layout, W{{i}} of shape (d_i, d_{{i+1}}) and b{{i}} of
shape (d_{{i+1}},) for every layer, in --dtype, and is readable by every backend:
pass it as --init-from FILE to check, gradcheck, train, cv and report. The format
follows the name: .safetensors (written with the safetensors library: no pickle,
no code run on load; the header records dims, dtype, activation, seed and backend)
or .npz (NumPy arrays W0, b0, ...; read back with allow_pickle=False). The same
flags give the same bytes. An existing file is refused unless --force.

One model, hence --backend (singular), as for gradcheck; the commands that compare
backends take --backends A,B."""


def register(sub) -> None:
    p = sub.add_parser("export", help=HELP, description=DESCRIPTION,
                       epilog=f"example:\n  {EXAMPLE}\n  nn-harness export --init-from "
                              f"w.npz --out w.safetensors   # convert (and check) a file\n\n"
                              f"exit codes: 0 written, 1 the class breaks the Classifier contract "
                              f"(nothing written), 2 bad input (nothing written)")
    p.add_argument("--backend", default="scratch", metavar="NAME",
                   help="the one backend whose initialisation is written: scratch, torch or "
                        "package.module:Class (default: scratch)")
    g = p.add_argument_group("model")
    g.add_argument("--dims", type=common.csv_ints, default=None, metavar="D0,...,DL",
                   help="layer widths: features, hidden widths, classes (required unless "
                        "--init-from gives them)")
    from harness.model.specs import ACTIVATION_NAMES, DTYPE_NAMES, LOSS_REDUCTIONS

    g.add_argument("--activation", default="relu", metavar="NAME",
                   help=f"hidden activation, recorded in the file: {', '.join(ACTIVATION_NAMES)} "
                        f"(default: relu)")
    g.add_argument("--dtype", default="float64", metavar="DTYPE",
                   help=f"{' or '.join(DTYPE_NAMES)} (default: float64)")
    g.add_argument("--seed", type=int, default=0, help="seed of the parameters (default: 0)")
    g.add_argument("--loss-reduction", default="mean", metavar="HOW",
                   help=f"the loss over a batch, {' or '.join(LOSS_REDUCTIONS)}, as the other "
                        f"commands take it (a class may accept only one) (default: mean)")
    common.add_init_from_arg(g)
    common.add_optimizer_args(p)  # the model is built with it (a class may accept only some)
    o = p.add_argument_group("output")
    o.add_argument("--out", required=True, metavar="FILE",
                   help="the weight file to write: NAME.safetensors or NAME.npz")
    o.add_argument("--force", action="store_true", help="replace --out if it exists")
    common.add_json_arg(o)
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from harness.checks import build_models
    from harness.errors import ConfigError
    from harness.model.registry import validate_backend_name
    from harness.model.specs import ModelSpec
    from harness.data.weights import SUFFIXES, format_of, save_weights

    validate_backend_name(args.backend)
    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"`--out` {args.out!r} is a folder; give a file name ending in "
                          f".safetensors or .npz")
    if out.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"`--out` {args.out!r}: the name must end in .safetensors or .npz "
                          f"(the format follows it)")
    fmt = format_of(out)
    output.check_writable(args.out)
    if out.exists() and not args.force:
        raise ConfigError(f"`--out` {args.out!r} already exists; choose another name or pass "
                          f"--force to replace it")
    weights = common.read_init(args)
    dims = args.dims
    if dims is None:
        if weights is None:
            raise ConfigError("give the layer widths with --dims D0,...,DL (e.g. 64,32,10), "
                              "or a weight file with --init-from")
        dims = weights.dims
    opt = common.optimizer_spec(args)
    spec = ModelSpec(dims, activation=args.activation, dtype=args.dtype, seed=args.seed,
                     loss_reduction=args.loss_reduction)
    config = common.check_config(args, [args.backend], spec, opt)
    # a class that computes in another dtype than --dtype is refused (exit 2), one that
    # breaks the contract is a finding (exit 1): nothing is written for either
    code = common.preflight(args, config)
    if code is not None:
        return code
    (model,) = build_models(config)  # from --init-from when given
    metadata = {"activation": spec.activation, "seed": str(spec.seed),
                "backend": args.backend}
    if weights is not None:
        metadata["init_from"] = str(weights.path)
    path = save_weights(out, model.get_params(), metadata=metadata, replace=args.force)
    from harness.data.weights import read_weights

    check = read_weights(path)  # what was written reads back
    if args.json:
        output.print_json({"path": str(path), "format": fmt, "dims": list(check.dims),
                           "dtype": check.dtype, "tensors": list(check.params),
                           "metadata": check.metadata})
    else:
        print(f"wrote {path} ({fmt}): dims {','.join(map(str, check.dims))}, {check.dtype}, "
              f"tensors {', '.join(check.params)}")
    return 0

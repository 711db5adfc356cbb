"""Flags shared by the subcommands, with one meaning everywhere, and their parsing."""

from __future__ import annotations

import argparse
import sys

from harness.errors import ConfigError, DataError



class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse's signature
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def csv_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 64,32,10, got {text!r}") from None


def csv_names(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def csv_floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers like 0.9,0.999, got {text!r}") from None


def add_backends_arg(p: argparse.ArgumentParser, default: str = "scratch,torch") -> None:
    p.add_argument("--backends", type=csv_names, default=csv_names(default), metavar="A,B",
                   help="backends to compare: scratch, torch or package.module:Class "
                        f"(default: {default})")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def add_timeout_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS",
                   help="longest one call into a plug-in's method may take; a call past it "
                        "is interrupted and is a FAIL naming the method and the line it was "
                        "at (default: no limit)")


def add_model_args(p: argparse.ArgumentParser) -> None:
    from harness.model.specs import ACTIVATION_NAMES, DEFAULT_HIDDEN, DTYPE_NAMES, LOSS_REDUCTIONS

    g = p.add_argument_group("model")
    g.add_argument("--dims", type=csv_ints, default=None, metavar="D0,...,DL",
                   help=f"layer widths; first = features, last = classes "
                        f"(default: features,{DEFAULT_HIDDEN},classes of the data)")
    g.add_argument("--activation", default="relu", metavar="NAME",
                   help=f"hidden activation: {', '.join(ACTIVATION_NAMES)} (default: relu)")
    add_layer_args(g)
    g.add_argument("--dtype", default="float64", metavar="DTYPE",
                   help=f"{' or '.join(DTYPE_NAMES)} (default: float64)")
    g.add_argument("--seed", type=int, default=0, help="seed of parameters and batches "
                                                        "(default: 0)")
    g.add_argument("--loss-reduction", default="mean", metavar="HOW",
                   help=f"the loss over a batch, {' or '.join(LOSS_REDUCTIONS)}: sum for code "
                        f"that sums the per-sample losses (and so its gradients) "
                        f"(default: mean, as torch's cross_entropy)")
    g.add_argument("--device", default="cpu", metavar="DEV",
                   help="device of the torch backend: cpu or cuda (default: cpu)")
    add_loss_args(g)


def add_loss_args(g) -> None:
    """--loss and the conventions of bce and mse (torch's by default)."""
    from harness.model.specs import LOSS_NAMES, LOSS_OUTPUTS

    g.add_argument("--loss", default="cross_entropy", metavar="NAME",
                   help=f"the loss: {', '.join(LOSS_NAMES)} (cross_entropy: softmax "
                        f"cross-entropy; bce: sigmoid + binary cross-entropy of each output "
                        f"against the one-hot targets; mse: squared error of the outputs "
                        f"against them) (default: cross_entropy)")
    g.add_argument("--loss-outputs", default="mean", metavar="HOW",
                   help=f"how bce and mse reduce over the outputs of a sample, "
                        f"{' or '.join(LOSS_OUTPUTS)}: sum for a cost written as a sum over "
                        f"the output neurons (default: mean, as torch)")
    g.add_argument("--mse-half", action="store_true",
                   help="the quadratic cost's factor 1/2 (mse only)")


def loss_settings(args) -> dict:
    """The ModelSpec fields of the loss flags."""
    return dict(loss=getattr(args, "loss", "cross_entropy"),
                loss_outputs=getattr(args, "loss_outputs", "mean"),
                mse_half=bool(getattr(args, "mse_half", False)))


def add_layer_args(g) -> None:
    """--layers and the conventions of batch and layer norm (torch's by default)."""
    from harness.model.layer_spec import LAYER_FORMS
    from harness.model.specs import BN_MOMENTUM_CONVENTIONS, BN_RUNNING_VARS

    g.add_argument("--layers", default=None, metavar="LIST",
                   help=f"the network as a list of layers, instead of --dims/--activation, "
                        f"e.g. \"linear(64),batchnorm,relu,dropout(0.5),linear(10)\"; widths "
                        f"come from the data; layers: {', '.join(LAYER_FORMS)}")
    g.add_argument("--input-shape", type=csv_ints, default=None, metavar="C,H,W",
                   help="the data as images (N, C, H, W) for --layers: each sample's "
                        "features reshaped in C order (C*H*W must be their number), e.g. "
                        "1,8,8 for the digits; with --dataset synthetic_images, the shape of "
                        "its images (default: rows, or 1,8,8 for synthetic_images)")
    g.add_argument("--bn-momentum", type=float, default=0.1, metavar="M",
                   help="batch norm's momentum (default: 0.1, torch's)")
    g.add_argument("--bn-momentum-convention", default="torch", metavar="WHICH",
                   help=f"what --bn-momentum weighs: {' or '.join(BN_MOMENTUM_CONVENTIONS)} "
                        f"(torch: the batch statistic, r = (1-m) r + m batch; cs231n: the "
                        f"running one, r = m r + (1-m) batch, so cs231n's 0.9 is torch's 0.1) "
                        f"(default: torch)")
    g.add_argument("--bn-running-var", default="unbiased", metavar="WHICH",
                   help=f"the batch variance batch norm keeps in running_var: "
                        f"{' or '.join(BN_RUNNING_VARS)} (cs231n, numpy-ml) (default: unbiased, "
                        f"as torch)")
    g.add_argument("--norm-eps", type=float, default=1e-5, metavar="EPS",
                   help="eps under the square root of batch and layer norm (default: 1e-05)")


def layer_spec_settings(args) -> dict:
    """The ModelSpec fields of the layer flags."""
    return dict(bn_momentum=getattr(args, "bn_momentum", 0.1),
                bn_momentum_convention=getattr(args, "bn_momentum_convention", "torch"),
                bn_running_var=getattr(args, "bn_running_var", "unbiased"),
                norm_eps=getattr(args, "norm_eps", 1e-5))


def add_data_args(p: argparse.ArgumentParser) -> None:
    from harness.data.datasets import BUILTIN_DATASETS

    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="digits", metavar="NAME", action=_StoreExplicit,
                   help=f"built-in data set: {', '.join(BUILTIN_DATASETS)} (default: digits)")
    g.add_argument("--data", default=None, metavar="FILE",
                   help="your own data instead of --dataset: a CSV file with a header row "
                        "(labels in --target) or an .npz file with arrays X and y")
    g.add_argument("--target", default=None, metavar="COLUMN",
                   help="label column of the --data CSV file (default: its last column); "
                        "labels may be strings or any integers")
    for flag, default, which in (("samples", 1000, "synthetic or synthetic_images"),
                                 ("features", 20, "synthetic"),
                                 ("classes", 3, "synthetic or synthetic_images")):
        g.add_argument(f"--n-{flag}", type=int, default=None, metavar="N",
                       help=f"size of --dataset {which}: number of {flag} (default: {default})")


class _StoreExplicit(argparse.Action):
    """Store the value and remember that it was given (so --data can refuse it)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        setattr(namespace, f"_{self.dest}_given", True)


def add_optimizer_args(p: argparse.ArgumentParser) -> None:
    from harness.model.specs import (OPTIMIZER_DEFAULTS, OPTIMIZER_NAMES, WEIGHT_DECAY_IN,
                                     WEIGHT_DECAY_ON)

    d = OPTIMIZER_DEFAULTS  # one table for the command line and OptimizerSpec
    g = p.add_argument_group("optimizer (torch.optim's meanings)")
    g.add_argument("--optimizer", default=d["name"], metavar="NAME", action=_StoreExplicit,
                   help=f"{', '.join(OPTIMIZER_NAMES)} (default: {d['name']})")
    g.add_argument("--lr", type=float, default=d["lr"],
                   help=f"learning rate (default: {d['lr']:g})")
    g.add_argument("--weight-decay", type=float, default=d["weight_decay"], action=_StoreExplicit,
                   help=f"weight decay (default: {d['weight_decay']:g}; where and on what: "
                        f"the next two flags)")
    g.add_argument("--weight-decay-in", default="optimizer", metavar="WHERE",
                   action=_StoreExplicit,
                   help=f"{' or '.join(WEIGHT_DECAY_IN)}: decay*p added to the gradients "
                        f"inside the optimizer, as torch.optim; or 0.5*decay*sum(p^2) added "
                        f"to the loss (and decay*p to the gradients the model reports) "
                        f"(default: optimizer; adamw: optimizer only)")
    g.add_argument("--weight-decay-on", default="all", metavar="WHICH",
                   action=_StoreExplicit,
                   help=f"{' or '.join(WEIGHT_DECAY_ON)}: every parameter, biases included, "
                        f"as torch.optim; or the weights only (default: all)")
    g.add_argument("--momentum", type=float, default=0.0, help="sgd momentum (default: 0)")
    g.add_argument("--nesterov", action="store_true", help="sgd Nesterov momentum")
    g.add_argument("--betas", type=csv_floats, default=(0.9, 0.999), metavar="B1,B2",
                   help="adam/adamw betas (default: 0.9,0.999)")
    g.add_argument("--eps", type=float, default=1e-8,
                   help="adam/adamw/rmsprop/adagrad eps (default: 1e-8)")
    _add_recipe_args(p)


def _add_recipe_args(p: argparse.ArgumentParser) -> None:
    """rmsprop and adagrad settings, the learning-rate schedule and gradient clipping."""
    from harness.model.specs import LR_SCHEDULES

    g = p.add_argument_group("rmsprop, adagrad, schedules and clipping (torch's meanings)")
    g.add_argument("--alpha", type=float, default=0.99,
                   help="rmsprop smoothing constant, in [0, 1) (default: 0.99)")
    g.add_argument("--centered", action="store_true",
                   help="rmsprop: divide by the centered second moment")
    g.add_argument("--lr-decay", type=float, default=0.0,
                   help="adagrad: lr / (1 + (t - 1) * lr_decay) (default: 0)")
    g.add_argument("--initial-accumulator", "--initial-accumulator-value", type=float,
                   default=0.0, metavar="VALUE", dest="initial_accumulator",
                   help="adagrad: initial_accumulator_value (default: 0)")
    g.add_argument("--lr-schedule", default="none", metavar="NAME",
                   help=f"{', '.join(LR_SCHEDULES)}; stepped after every optimizer step, so "
                        f"step t (from 1) uses lr(t - 1) (default: none)")
    g.add_argument("--step-size", type=int, default=1, metavar="N",
                   help="step schedule: multiply lr by --gamma every N steps (default: 1)")
    g.add_argument("--gamma", type=float, default=0.1,
                   help="step and exponential schedules: factor (default: 0.1)")
    g.add_argument("--decay", type=float, default=0.0,
                   help="inverse_time schedule: lr / (1 + decay * t) (default: 0)")
    g.add_argument("--t-max", type=int, default=None, metavar="N",
                   help="cosine schedule: steps of the half cosine (needed by cosine)")
    g.add_argument("--eta-min", type=float, default=0.0,
                   help="cosine schedule: the lowest rate (default: 0)")
    g.add_argument("--clip-grad-norm", type=float, default=None, metavar="MAX",
                   help="clip the gradients to this global L2 norm, as clip_grad_norm_")
    g.add_argument("--clip-grad-value", type=float, default=None, metavar="MAX",
                   help="clip every gradient entry to [-MAX, MAX], as clip_grad_value_")


def add_tolerance_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tolerances")
    g.add_argument("--rtol", type=float, default=None,
                   help="relative tolerance (default: by dtype; give with --atol)")
    g.add_argument("--atol", type=float, default=None,
                   help="absolute tolerance (default: by dtype; give with --rtol)")
    from harness.checks.accept import ACCEPTABLE

    g.add_argument("--accept", action="append", default=[], metavar="NAME",
                   help=f"accept a named, explained difference, reproduced on the reference "
                        f"side and shown in every output: {', '.join(ACCEPTABLE)} "
                        f"(repeatable; default: none)")


def add_json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def add_threads_arg(p: argparse.ArgumentParser,
                    default_help: str = "1 for small networks, all cores for large ones; "
                                        "see docs/cli.md") -> None:
    """--threads N: one thread count for NumPy's BLAS (threadpoolctl) and torch."""
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help=f"threads for NumPy's BLAS and for torch alike (default: "
                        f"{default_help})")


def add_init_from_arg(p: argparse.ArgumentParser) -> None:
    """--init-from FILE: start from a weight file instead of the seeded initialisation."""
    p.add_argument("--init-from", default=None, metavar="FILE",
                   help="initial parameters from a weight file (.safetensors as `nn-harness "
                        "export` writes, or .npz; W0,b0,W1,b1,... in the canonical layout) "
                        "instead of the seeded initialisation; --dims default to the file's, "
                        "and its dtype must be --dtype")


def add_device_arg(p: argparse.ArgumentParser) -> None:
    """--device cpu|cuda, for commands without the model flag group."""
    p.add_argument("--device", default="cpu", metavar="DEV",
                   help="device of the torch backend: cpu or cuda (default: cpu)")


def add_training_args(p: argparse.ArgumentParser, *, epochs: int = 50, batch_size: int = 64,
                      val_fraction: float | None = 0.2) -> None:
    """--epochs, --batch-size, --no-shuffle and (unless ``val_fraction`` is None) --val-fraction.

    Values are checked by the library (harness.training.side_by_side.validate_training_args), not here.
    """
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=epochs, help=f"epochs (default: {epochs})")
    g.add_argument("--batch-size", type=int, default=batch_size,
                   help=f"samples per batch; the last batch of an epoch may be smaller "
                        f"(default: {batch_size})")
    g.add_argument("--no-shuffle", dest="shuffle", action="store_false",
                   help="keep the data's order in every epoch (default: reshuffle each "
                        "epoch from --seed)")
    if val_fraction is not None:
        g.add_argument("--val-fraction", type=float, default=val_fraction, metavar="FRAC",
                       help=f"share of the samples held out (stratified) for validation, "
                            f"in [0, 1); 0: none (default: {val_fraction:g})")


def add_output_args(p: argparse.ArgumentParser) -> None:
    """--out DIR, --force, --quiet."""
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, metavar="DIR",
                   help="write tables, plots and a summary to this folder (default: print only)")
    g.add_argument("--force", action="store_true", help="replace --out if it is not empty")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


# ----------------------------------------------------------------------- parsing
def load_data(args):
    """The data set the flags name (unstandardised): --data FILE, else --dataset; as
    images (N, C, H, W) with --input-shape (:func:`shaped_data`)."""
    from harness.cli.images import input_shape_arg, shaped_data, synthetic_images
    from harness.data.datasets import load_data_file, load_dataset

    data_file = getattr(args, "data", None)
    target = getattr(args, "target", None)
    size = {k: getattr(args, k, None) for k in ("n_samples", "n_features", "n_classes")}
    given = [f"--{k.replace('_', '-')}" for k, v in size.items() if v is not None]
    shape = input_shape_arg(args)
    if data_file is None:
        if target is not None:
            raise ConfigError("`--target` names the label column of a --data CSV file; "
                              "give --data FILE too")
        if args.dataset == "synthetic_images":
            return synthetic_images(args, size, shape)
        if given and args.dataset != "synthetic":
            raise ConfigError(f"`{given[0]}` sizes --dataset synthetic; it does not apply "
                              f"to --dataset {args.dataset}")
        return shaped_data(load_dataset(args.dataset, seed=getattr(args, "seed", 0), **size),
                           shape)
    if getattr(args, "_dataset_given", False):
        raise ConfigError("give either --data FILE or --dataset NAME, not both")
    if given:
        raise ConfigError(f"`{given[0]}` sizes --dataset synthetic; it does not apply "
                          f"to --data")
    data = load_data_file(data_file, target=target)
    from harness.data.datasets import fit_standardizer

    try:  # every command standardises: refuse data that cannot be, before any work
        fit_standardizer(data.X)
    except DataError as exc:
        raise DataError(f"{data_file}: {exc}") from None
    return shaped_data(data, shape)


def read_init(args):
    """The weight file of --init-from, read and checked on its own (once), or None."""
    path = getattr(args, "init_from", None)
    if path is None:
        return None
    cached = getattr(args, "_init_weights", None)
    if cached is None:
        from harness.errors import WeightsError
        from harness.data.weights import read_weights

        try:
            cached = read_weights(path)
        except WeightsError as exc:
            raise WeightsError(f"`--init-from`: {exc}") from None
        args._init_weights = cached
    return cached


def initial_params(args, spec):
    """The --init-from parameters for ``spec`` (dims and dtype checked), or None."""
    weights = read_init(args)
    if weights is None:
        return None
    from harness.errors import WeightsError
    from harness.data.weights import fit_weights

    try:
        return fit_weights(weights, spec.dims, spec.dtype)
    except WeightsError as exc:
        raise WeightsError(f"`--init-from`: {exc}") from None


def model_spec(args, dataset):
    """A ModelSpec from the model flags, with dims checked against the data.

    Without --dims the widths are those of the --init-from file, if any, else
    features, 32, classes. A given --init-from file must fit the spec (dims, dtype).
    """
    from harness.model.specs import DEFAULT_HIDDEN, ModelSpec

    if getattr(args, "layers", None) is not None:
        return _layers_spec(args, dataset)
    weights = read_init(args)
    if args.dims is None and weights is not None:
        dims = weights.dims
        if dims[0] != dataset.n_features or dims[-1] != dataset.n_classes:
            raise ConfigError(f"`--init-from`: {weights.label} holds a network with dims "
                              f"{','.join(map(str, dims))}, which does not fit "
                              f"{dataset.name} ({dataset.n_features} features, "
                              f"{dataset.n_classes} classes)")
    else:
        dims = args.dims or (dataset.n_features, DEFAULT_HIDDEN, dataset.n_classes)
    if len(dims) >= 2:
        if dims[0] != dataset.n_features:
            raise ConfigError(f"`--dims` must start with the number of features of "
                              f"{dataset.name} ({dataset.n_features}), got {','.join(map(str, dims))}")
        if dims[-1] != dataset.n_classes:
            raise ConfigError(f"`--dims` must end with the number of classes of "
                              f"{dataset.name} ({dataset.n_classes}), got {','.join(map(str, dims))}")
    spec = ModelSpec(dims, activation=args.activation, dtype=args.dtype, seed=args.seed,
                     loss_reduction=getattr(args, "loss_reduction", "mean"),
                     **layer_spec_settings(args), **loss_settings(args))
    initial_params(args, spec)  # refuse a file that does not fit, before any work
    return spec


def _layers_spec(args, dataset):
    """The ModelSpec of --layers on ``dataset`` (widths from the data)."""
    from harness.model.specs import ModelSpec

    if args.dims is not None:
        raise ConfigError("give the network as --dims or as --layers, not both")
    if args.activation != "relu":
        raise ConfigError(f"--activation goes with --dims; with --layers write each "
                          f"activation in the list, got --activation {args.activation}")
    settings = dict(dtype=args.dtype, seed=args.seed,
                    loss_reduction=getattr(args, "loss_reduction", "mean"),
                    **layer_spec_settings(args), **loss_settings(args))
    if dataset.image_shape is not None:  # images: the network takes (C, H, W)
        spec = ModelSpec(layers=args.layers, input_shape=dataset.image_shape, **settings
                         ).fit(dataset.n_features, dataset.n_classes)
    else:
        spec = ModelSpec(layers=args.layers, **settings).fit(dataset.n_features,
                                                             dataset.n_classes)
    if read_init(args) is not None and spec.is_layered:
        raise ConfigError("`--init-from` holds an MLP's weights (W0, b0, ...); it does not "
                          "go with --layers that have a normalisation or dropout layer")
    initial_params(args, spec)
    return spec


def check_config(args, backends, spec, optimizer, *, device: str = "cpu", **settings):
    """The :class:`harness.checks.CheckConfig` of a command: its flags, and ``settings``.

    Tolerances, --init-from, --threads and the device come from the flags shared by
    every command; the caller passes what is its own (epochs, folds, ...).
    """
    from harness.checks import CheckConfig

    settings.setdefault("rtol", getattr(args, "rtol", None))
    settings.setdefault("atol", getattr(args, "atol", None))
    settings.setdefault("threads", getattr(args, "threads", None))
    settings.setdefault("accept", tuple(getattr(args, "accept", None) or ()))
    return CheckConfig(tuple(backends), spec, optimizer if optimizer is not None else
                       _default_optimizer(), init_params=initial_params(args, spec),
                       device=device, **settings)


def show_passing_command(args, command: str, result) -> None:
    """The convention search's hint as one complete command (:mod:`harness.cli.passing`)."""
    from harness.cli.passing import show_passing_command as show

    show(args, command, result)


def _default_optimizer():
    from harness.model.specs import OptimizerSpec

    return OptimizerSpec()


def validate_threads(args) -> int | None:
    """--threads checked; more than the usable cores is cut to them, with a warning."""
    from harness.runtime.threads import usable_cores, validate_threads as check

    n = check(getattr(args, "threads", None))
    cores = usable_cores()
    if n is not None and n > cores:
        print(f"nn-harness {getattr(args, 'command', '')}: warning: `--threads {n}` is more "
              f"than the {cores} core{'s' if cores != 1 else ''} this machine gives this "
              f"process; using {cores}", file=sys.stderr)
        n = args.threads = cores
    return n


def optimizer_spec(args):
    from harness.model.specs import OptimizerSpec

    return OptimizerSpec(name=args.optimizer, lr=args.lr, momentum=args.momentum,
                         nesterov=args.nesterov, betas=tuple(args.betas), eps=args.eps,
                         weight_decay=args.weight_decay,
                         weight_decay_in=getattr(args, "weight_decay_in", "optimizer"),
                         weight_decay_on=getattr(args, "weight_decay_on", "all"),
                         **_recipe_settings(args))


def _recipe_settings(args) -> dict:
    """The rmsprop, adagrad, schedule and clipping fields of OptimizerSpec from ``args``."""
    names = {"alpha": "alpha", "centered": "centered", "lr_decay": "lr_decay",
             "initial_accumulator": "initial_accumulator_value", "lr_schedule": "lr_schedule",
             "step_size": "step_size", "gamma": "gamma", "decay": "decay", "t_max": "t_max",
             "eta_min": "eta_min", "clip_grad_norm": "clip_grad_norm",
             "clip_grad_value": "clip_grad_value"}
    return {field: getattr(args, flag) for flag, field in names.items() if hasattr(args, flag)}


def validate_device(args) -> str:
    device = getattr(args, "device", "cpu")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"`--device` must be one of cpu, cuda, got {device!r}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("`--device cuda` was asked for but no CUDA device is available")
    return device


def validate_backends(names, *, at_least: int = 1) -> tuple[str, ...]:
    from harness.model.registry import validate_backend_name

    for name in names:
        validate_backend_name(name)
    if len(names) < at_least:
        raise ConfigError(f"`--backends` needs at least {at_least} names, got {','.join(names)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"`--backends` names a backend twice: {','.join(names)}")
    return tuple(names)


def reference_first(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` with a built-in backend first wherever one is given: a plug-in never
    judges itself when a trusted reference is at hand (a one-line note says so); with
    plug-ins only, a one-line warning that the first judges the others."""
    from harness.model.registry import BUILTIN_BACKENDS
    from harness.runtime.console import to_stderr

    if len(names) < 2 or names[0] in BUILTIN_BACKENDS:
        return names
    builtin = next((n for n in names if n in BUILTIN_BACKENDS), None)
    if builtin is None:
        to_stderr(f"warning: {names[0]} is the reference: no built-in backend (scratch, torch) "
                  f"was given, so a plug-in judges, and it is also the float64 arbiter and "
                  f"the witnesses")
        return names
    to_stderr(f"note: {builtin} is the reference, not {names[0]}: a built-in backend judges "
              f"wherever one is given")
    return (builtin, *(n for n in names if n != builtin))


def preflight(args, config, data=None) -> int | None:
    """The contract preflight of ``config``'s plug-ins (harness.checks.preflight).

    None when it passes; else its findings are printed (as JSON with --json) and the
    exit code 1 is returned, before anything is compared or written. A class that
    cannot be built, or computes in float64 when float32 was asked, raises (exit 2).
    """
    from harness.checks import preflight as check_contract

    result = check_contract(config, data)
    if result.passed:
        return None
    if getattr(args, "json", False):
        from harness.cli.output import print_json

        print_json(result.to_dict())
    else:
        print(result.text())
    return 1

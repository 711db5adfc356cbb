"""Specifications of a model and of its optimizer, validated at construction."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from harness.errors import ConfigError
from harness.model.names import ACTIVATION_NAMES, LEAKY_RELU_SLOPE

#: the hidden width where none is given: dims default to (features, DEFAULT_HIDDEN, classes)
DEFAULT_HIDDEN: int = 32
DTYPE_NAMES: tuple[str, ...] = ("float32", "float64")
OPTIMIZER_NAMES: tuple[str, ...] = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
#: learning-rate schedules, stepped after every optimizer step (torch's order)
LR_SCHEDULES: tuple[str, ...] = ("none", "step", "inverse_time", "cosine", "exponential")
#: how the loss (and so its gradients) reduces over the batch
LOSS_REDUCTIONS: tuple[str, ...] = ("mean", "sum")
#: the losses: softmax cross-entropy, sigmoid + binary cross-entropy per output, squared error
LOSS_NAMES: tuple[str, ...] = ("cross_entropy", "bce", "mse")
#: how bce and mse reduce over the outputs of a sample (torch: the mean)
LOSS_OUTPUTS: tuple[str, ...] = ("mean", "sum")
#: where weight decay is applied: inside the optimizer (torch.optim) or as an L2 term in the loss
WEIGHT_DECAY_IN: tuple[str, ...] = ("optimizer", "loss")
#: which parameters weight decay reaches: every one (torch.optim) or the weights ``W{i}`` only
WEIGHT_DECAY_ON: tuple[str, ...] = ("all", "weights")

#: The defaults of an optimizer, one table for the Python API (:class:`OptimizerSpec`) and
#: the command line (``--optimizer``, ``--lr``, ``--weight-decay``): Adam at torch's
#: usual rate with a small L2 weight decay, the setting most trained networks use. Code
#: that implements another rule (plain SGD, no decay) says so, e.g.
#: ``OptimizerSpec("sgd", lr=0.1, weight_decay=0)`` or ``--optimizer sgd --lr 0.1
#: --weight-decay 0``; a failed check whose candidate passes under nearby settings
#: prints the complete command that passes.
OPTIMIZER_DEFAULTS: dict[str, Any] = {"name": "adam", "lr": 1e-3, "weight_decay": 1e-4}


def _choices(values) -> str:
    return ", ".join(values)


def _check_choice(key: str, value, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"`{key}` must be one of {_choices(choices)}, got {value!r}")


@dataclass(frozen=True)
class ModelSpec:
    """What to build: layer widths, hidden activation, dtype and initialisation seed.

    Parameters
    ----------
    dims : sequence of int
        ``(d_0, ..., d_L)``: number of features, hidden widths, number of classes.
    activation : str
        Hidden-layer activation, one of ``relu, tanh, sigmoid, leaky_relu, gelu``.
    dtype : str
        ``float32`` or ``float64``; kept end to end.
    seed : int
        Seed of the initial parameters (uniform in +-1/sqrt(fan_in), as nn.Linear).
    loss_reduction : str
        ``mean`` (default, as ``F.cross_entropy``): the loss and its gradients are
        averaged over the batch; ``sum``: summed over it (the optimizer then steps with
        the summed gradients).
    loss : str
        ``cross_entropy`` (softmax cross-entropy, ``F.cross_entropy``; the default),
        ``bce`` (sigmoid + binary cross-entropy of each output against the one-hot
        targets, ``BCEWithLogitsLoss``; ``forward`` returns the pre-sigmoid logits) or
        ``mse`` (squared error of the outputs against the one-hot targets, ``MSELoss``).
    loss_outputs : str
        How bce and mse reduce over the outputs of a sample: ``mean`` (torch's) or
        ``sum`` (a cost written as a sum over the output neurons).
    mse_half : bool
        The factor 1/2 of the quadratic cost (mse only).
    layers : str or list, optional
        The network as a list of layers (:mod:`harness.model.layer_spec`), e.g.
        ``"linear(64),batchnorm,relu,dropout(0.5),linear(10)"``; instead of ``dims``.
        Its widths are inferred from ``input_shape``, or from the data when none is
        given (:meth:`fit`). A list that is a plain MLP (linears with one activation
        between each two) is the MLP that ``dims`` and ``activation`` describe.
    input_shape : int or tuple of one int, or (C, H, W), optional
        The number of input features of a ``layers`` network, or the shape of one image
        (C, H, W) for a network with conv2d / pool layers (its batches are (N, C, H, W);
        ``dims[0]`` is then C*H*W, the number of input features).
    bn_momentum, bn_momentum_convention, bn_running_var, norm_eps
        Batch norm's conventions, torch's by default: momentum 0.1 meaning
        ``r = (1 - m) r + m * batch`` (``"torch"``; ``"cs231n"``: ``r = m r + (1 - m)
        batch``, so cs231n's 0.9 is torch's 0.1), the unbiased batch variance in
        ``running_var`` (``"biased"``: as cs231n and numpy-ml), and the eps inside the
        square root of batch and layer norm (1e-5).
    """

    dims: tuple[int, ...] | None = None
    activation: str = "relu"
    dtype: str = "float64"
    seed: int = 0
    loss_reduction: str = "mean"
    loss: str = "cross_entropy"
    loss_outputs: str = "mean"
    mse_half: bool = False
    layers: Any = None
    input_shape: Any = None
    bn_momentum: float = 0.1
    bn_momentum_convention: str = "torch"
    bn_running_var: str = "unbiased"
    norm_eps: float = 1e-5
    _network: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.layers is not None:
            _resolve_layers(self)
        elif self.input_shape is not None:
            raise ConfigError("`input_shape` goes with `layers`; with `dims` the input "
                              "width is dims[0]")
        elif self.dims is None:
            raise ConfigError("give the network as `dims` (e.g. (64, 32, 10)) or as "
                              "`layers` (e.g. \"linear(32),relu,linear(10)\"), got neither")
        self._check_common()
        _check_norm_conventions(self)
        _check_loss(self)

    def _check_common(self) -> None:
        if self.dims is None:  # a layer list waiting for its data (see fit)
            self._check_dtype_seed()
            return
        try:
            dims = tuple(self.dims)
        except TypeError:
            raise ConfigError(f"`dims` must be a sequence of integers, got {self.dims!r}") from None
        if len(dims) < 2:
            raise ConfigError(f"`dims` must have at least two entries, got {dims}")
        for d in dims:
            if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
                raise ConfigError(f"`dims` entries must be positive integers, got {dims}")
        object.__setattr__(self, "dims", tuple(int(d) for d in dims))
        if self.activation not in ACTIVATION_NAMES:
            raise ConfigError(
                f"`activation` must be one of {_choices(ACTIVATION_NAMES)}, got {self.activation!r}"
            )
        self._check_dtype_seed()

    def _check_dtype_seed(self) -> None:
        dtype = np.dtype(self.dtype).name if _is_dtype_like(self.dtype) else self.dtype
        if dtype not in DTYPE_NAMES:
            raise ConfigError(f"`dtype` must be one of {_choices(DTYPE_NAMES)}, got {self.dtype!r}")
        object.__setattr__(self, "dtype", dtype)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ConfigError(f"`seed` must be an integer, got {self.seed!r}")
        if self.seed < 0:
            raise ConfigError(f"`seed` must be >= 0, got {self.seed}")
        object.__setattr__(self, "seed", int(self.seed))
        _check_choice("loss_reduction", self.loss_reduction, LOSS_REDUCTIONS)

    def describe(self) -> str:
        """One line: "dims 64-32-10, relu, float64, seed 0; loss: mean over the batch"
        (a layer network: "layers linear(64),batchnorm,relu,linear(10) on 64 inputs,
        ...", with its batch-norm conventions when it has a batch norm)."""
        tail = f"{self.dtype}, seed {self.seed}; loss: {_describe_loss(self)}"
        if self.layers is None:
            return f"dims {'-'.join(map(str, self.dims))}, {self.activation}, {tail}"
        inputs = "inputs from the data" if self.dims is None else f"{self.dims[0]} inputs"
        if self.input_shape is not None and len(self.input_shape) == 3:
            inputs = f"(N, C, H, W) = (N, {', '.join(map(str, self.input_shape))}) inputs"
        return f"layers {self.layers} on {inputs}, {tail}{_describe_norm(self)}"

    def short(self) -> str:
        """The network in a few words: ``dims (64, 32, 10), relu`` or ``layers
        linear(64),batchnorm,relu,linear(10)``."""
        if self.layers is None:
            return f"dims {self.dims}, {self.activation}"
        return f"layers {self.layers}"

    @property
    def network(self):
        """The resolved layer list (:class:`harness.model.layer_spec.ResolvedNetwork`):
        ``layers`` when given, else the MLP of ``dims`` and ``activation``; None for a
        layer list not yet fitted to its data."""
        if self._network is None and self.dims is not None:
            from harness.model.layer_spec import from_dims, resolve

            object.__setattr__(self, "_network", resolve(
                from_dims(self.dims, self.activation), self.dims[0], self.dims[-1]))
        return self._network

    @property
    def is_layered(self) -> bool:
        """Whether the network needs the layer backends: ``layers`` that are not a plain
        MLP (a normalisation, a dropout, mixed activations, two linears in a row)."""
        return self.layers is not None and _plain_activation(self.network) is None

    @property
    def has_dropout(self) -> bool:
        return self.layers is not None and "dropout(" in self.layers

    @property
    def has_batchnorm(self) -> bool:
        return self.layers is not None and "batchnorm" in self.layers

    def fit(self, n_features: int, n_classes: int | None = None) -> ModelSpec:
        """This spec with its widths inferred from the data (a ``layers`` spec without
        ``input_shape``); checked against ``n_features`` and ``n_classes`` otherwise.

        Raises
        ------
        ConfigError
            The input width or the last layer's does not fit the data.
        """
        if self.dims is None:
            return _fitted(self, n_features, n_classes)
        if self.dims[0] != n_features:
            image = (f" (input_shape {tuple(self.input_shape)}: C*H*W)"
                     if self.input_shape is not None and len(self.input_shape) == 3 else "")
            raise ConfigError(f"the network takes {self.dims[0]} input features{image}, the "
                              f"data has {n_features}")
        if n_classes is not None and self.dims[-1] != n_classes:
            raise ConfigError(f"the network's last layer has {self.dims[-1]} outputs, the "
                              f"data has {n_classes} classes")
        return self

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @property
    def n_layers(self) -> int:
        return len(self.dims) - 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("_network", None)
        d["dims"] = None if self.dims is None else list(self.dims)
        if self.input_shape is not None:
            d["input_shape"] = list(self.input_shape)
        return d


#: batch norm's momentum conventions: torch's (m weighs the batch) or cs231n's (m weighs
#: the running value)
BN_MOMENTUM_CONVENTIONS: tuple[str, ...] = ("torch", "cs231n")
#: the variance batch norm keeps in running_var: unbiased (torch) or biased (cs231n)
BN_RUNNING_VARS: tuple[str, ...] = ("unbiased", "biased")


def _resolve_layers(spec: ModelSpec) -> None:
    """Parse ``spec.layers`` into its canonical string; resolve it when the input width is
    known, and set ``dims`` (and, for a plain MLP, ``activation``) from it."""
    from harness.model.layer_spec import parse, resolve

    given_dims = spec.dims
    if given_dims is not None and spec.input_shape is None:
        raise ConfigError("give the network as `dims` or as `layers`, not both")
    object.__setattr__(spec, "dims", None)
    layers = ",".join(str(item) for item in parse(spec.layers))
    object.__setattr__(spec, "layers", layers)
    if spec.input_shape is None:
        return
    network = resolve(layers, spec.input_shape)
    object.__setattr__(spec, "input_shape", network.input_shape)
    object.__setattr__(spec, "_network", network)
    object.__setattr__(spec, "dims", network.dims)
    if given_dims is not None and tuple(given_dims) != network.dims:  # dataclasses.replace
        raise ConfigError(f"`dims` {tuple(given_dims)} are not those of `layers` "
                          f"{layers} on {network.input_width} inputs ({network.dims})")
    act = _plain_activation(network)
    if act:
        object.__setattr__(spec, "activation", act)


def _plain_activation(network) -> str | None:
    """The activation of a plain MLP (``"relu"``; the given default for one linear), or
    None when ``network`` is not one."""
    names = [layer.name for layer in network.layers]
    acts = names[1::2]
    if names[0::2] != ["linear"] * len(names[0::2]) or len(set(acts)) > 1:
        return None
    if not acts:
        return "relu"
    if acts[0] not in ACTIVATION_NAMES:
        return None
    slopes = {layer.args for layer in network.layers if layer.name == "leaky_relu"}
    if slopes and slopes != {(LEAKY_RELU_SLOPE,)}:
        return None
    return acts[0]


def _fitted(spec: ModelSpec, n_features: int, n_classes: int | None) -> ModelSpec:
    from harness.model.layer_spec import resolve

    resolve(spec.layers, int(n_features), n_classes)  # the data's refusals, first
    return replace(spec, input_shape=(int(n_features),))


def _check_norm_conventions(spec: ModelSpec) -> None:
    _check_choice("bn_momentum_convention", spec.bn_momentum_convention,
                  BN_MOMENTUM_CONVENTIONS)
    _check_choice("bn_running_var", spec.bn_running_var, BN_RUNNING_VARS)
    _number(spec, "bn_momentum", lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
    _number(spec, "norm_eps", lambda v: v > 0, "> 0")


def _check_loss(spec: ModelSpec) -> None:
    _check_choice("loss", spec.loss, LOSS_NAMES)
    _check_choice("loss_outputs", spec.loss_outputs, LOSS_OUTPUTS)
    if not isinstance(spec.mse_half, bool):
        raise ConfigError(f"`mse_half` must be True or False, got {spec.mse_half!r}")
    if spec.loss == "cross_entropy" and spec.loss_outputs != "mean":
        raise ConfigError("`loss_outputs` sum applies to the bce and mse losses (softmax "
                          "cross-entropy has one term per sample), got loss cross_entropy")
    if spec.mse_half and spec.loss != "mse":
        raise ConfigError(f"`mse_half` applies to the mse loss, got loss {spec.loss}")


def _describe_loss(spec: ModelSpec) -> str:
    """``mean over the batch`` (cross-entropy, as before), or the loss and its reductions."""
    if spec.loss == "cross_entropy":
        return f"{spec.loss_reduction} over the batch"
    name = {"bce": "binary cross-entropy of sigmoid outputs",
            "mse": "half squared error" if spec.mse_half else "squared error"}[spec.loss]
    return f"{name}, {spec.loss_outputs} over the outputs, {spec.loss_reduction} over the batch"


def _describe_norm(spec: ModelSpec) -> str:
    if not spec.has_batchnorm:
        return ""
    return (f"; batch norm: momentum {spec.bn_momentum:g} ({spec.bn_momentum_convention}), "
            f"{spec.bn_running_var} running variance, eps {spec.norm_eps:g}")


def _is_dtype_like(value) -> bool:
    try:
        np.dtype(value)
    except TypeError:
        return False
    return True


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer with torch.optim's meanings.

    ``sgd`` is torch.optim.SGD (momentum with dampening 0, optional Nesterov,
    weight decay added to the gradient); ``adam`` is torch.optim.Adam (weight decay
    as an L2 term added to the gradient); ``adamw`` is torch.optim.AdamW (decoupled
    weight decay); ``rmsprop`` is torch.optim.RMSprop (``alpha``, eps outside the square
    root, ``momentum``, ``centered``); ``adagrad`` is torch.optim.Adagrad (``lr_decay``,
    ``initial_accumulator_value``; it uses ``eps`` as given, 1e-8 by default, where torch's
    default is 1e-10). Weight decay applies to every parameter, biases included.

    ``lr_schedule`` moves the rate after every optimizer step (torch's order:
    ``optimizer.step(); scheduler.step()``), so step t (1-based) uses lr(t - 1): ``step``
    is StepLR (``step_size``, ``gamma``), ``exponential`` ExponentialLR (``gamma``),
    ``cosine`` CosineAnnealingLR (``t_max``, ``eta_min``), ``inverse_time`` lr / (1 +
    ``decay`` * t). ``clip_grad_norm`` (global L2 norm, as clip_grad_norm_) and
    ``clip_grad_value`` (as clip_grad_value_) clip the gradients the optimizer steps with.
    """

    name: str = OPTIMIZER_DEFAULTS["name"]
    lr: float = OPTIMIZER_DEFAULTS["lr"]
    momentum: float = 0.0
    nesterov: bool = False
    betas: tuple[float, float] = field(default=(0.9, 0.999))
    eps: float = 1e-8
    weight_decay: float = OPTIMIZER_DEFAULTS["weight_decay"]
    weight_decay_in: str = "optimizer"
    weight_decay_on: str = "all"
    alpha: float = 0.99
    centered: bool = False
    lr_decay: float = 0.0
    initial_accumulator_value: float = 0.0
    lr_schedule: str = "none"
    step_size: int = 1
    gamma: float = 0.1
    decay: float = 0.0
    t_max: int | None = None
    eta_min: float = 0.0
    clip_grad_norm: float | None = None
    clip_grad_value: float | None = None

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZER_NAMES:
            raise ConfigError(
                f"`optimizer` must be one of {_choices(OPTIMIZER_NAMES)}, got {self.name!r}"
            )
        for key in ("lr", "momentum", "eps", "weight_decay"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
                raise ConfigError(f"`{key}` must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"`{key}` must be finite, got {value}")
            object.__setattr__(self, key, float(value))
        if self.lr <= 0:
            raise ConfigError(f"`lr` must be > 0, got {self.lr:g}")
        if self.weight_decay < 0:
            raise ConfigError(f"`weight_decay` must be >= 0, got {self.weight_decay:g}")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"`momentum` must be in [0, 1), got {self.momentum:g}")
        if self.eps <= 0:
            raise ConfigError(f"`eps` must be > 0, got {self.eps:g}")
        if not isinstance(self.nesterov, bool):
            raise ConfigError(f"`nesterov` must be True or False, got {self.nesterov!r}")
        if self.nesterov and (self.name != "sgd" or self.momentum == 0.0):
            raise ConfigError(
                f"`nesterov` needs the sgd optimizer with momentum > 0, got optimizer "
                f"{self.name!r} with momentum {self.momentum:g}"
            )
        try:
            betas = tuple(float(b) for b in self.betas)
        except (TypeError, ValueError):
            raise ConfigError(f"`betas` must be two numbers, got {self.betas!r}") from None
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ConfigError(f"`betas` must be two numbers in [0, 1), got {self.betas!r}")
        object.__setattr__(self, "betas", betas)
        _check_choice("weight_decay_in", self.weight_decay_in, WEIGHT_DECAY_IN)
        _check_choice("weight_decay_on", self.weight_decay_on, WEIGHT_DECAY_ON)
        if self.name == "adamw" and self.weight_decay_in == "loss":
            raise ConfigError(
                "`weight_decay_in` loss does not apply to adamw: AdamW's decay is decoupled "
                "(it shrinks the parameters apart from the gradient), so it cannot sit in the "
                "loss; use adam for an L2 term in the loss, or leave adamw's decay in the "
                "optimizer")
        _check_recipe(self)

    @property
    def optimizer_weight_decay(self) -> float:
        """The decay the optimizer itself applies: 0 when it sits in the loss."""
        return self.weight_decay if self.weight_decay_in == "optimizer" else 0.0

    @property
    def loss_weight_decay(self) -> float:
        """The L2 coefficient added to the loss: 0 unless ``weight_decay_in`` is loss."""
        return self.weight_decay if self.weight_decay_in == "loss" else 0.0

    def describe(self) -> str:
        """One line, e.g. "adam (lr 0.001, betas (0.9, 0.999), eps 1e-08, weight decay
        0.0001 in the optimizer, on all parameters)"."""
        parts = [f"lr {self.lr:g}"]
        if self.name == "sgd":
            if self.momentum:
                parts.append(f"momentum {self.momentum:g}" + (", Nesterov" if self.nesterov
                                                               else ""))
        elif self.name == "rmsprop":
            parts.append(f"alpha {self.alpha:g}, eps {self.eps:g}"
                         + (f", momentum {self.momentum:g}" if self.momentum else "")
                         + (", centered" if self.centered else ""))
        elif self.name == "adagrad":
            parts.append(f"lr decay {self.lr_decay:g}, initial accumulator "
                         f"{self.initial_accumulator_value:g}, eps {self.eps:g}")
        else:
            parts.append(f"betas ({self.betas[0]:g}, {self.betas[1]:g}), eps {self.eps:g}")
        if self.weight_decay:
            where = "in the loss" if self.weight_decay_in == "loss" else "in the optimizer"
            if self.name == "adamw":
                where = "decoupled"
            on = "on all parameters" if self.weight_decay_on == "all" else "on weights only"
            parts.append(f"weight decay {self.weight_decay:g} {where}, {on}")
        else:
            parts.append("no weight decay")
        parts.extend(_describe_recipe(self))
        return f"{self.name} ({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


def _number(spec, key: str, rule, text: str, *, optional: bool = False) -> None:
    """Check the float field ``key`` of ``spec`` against ``rule``; one-line error with ``text``."""
    value = getattr(spec, key)
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise ConfigError(f"`{key}` must be a number, got {value!r}")
    if not math.isfinite(value) or not rule(float(value)):
        raise ConfigError(f"`{key}` must be {text}, got {float(value):g}")
    object.__setattr__(spec, key, float(value))


def _whole(spec, key: str, *, optional: bool = False) -> None:
    value = getattr(spec, key)
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"`{key}` must be an integer >= 1, got {value!r}")
    object.__setattr__(spec, key, int(value))


def _check_recipe(spec: OptimizerSpec) -> None:
    """The fields of rmsprop, adagrad, the schedules and clipping (torch's rules)."""
    _number(spec, "alpha", lambda v: 0.0 <= v < 1.0, "in [0, 1)")
    if not isinstance(spec.centered, bool):
        raise ConfigError(f"`centered` must be True or False, got {spec.centered!r}")
    if spec.centered and spec.name != "rmsprop":
        raise ConfigError(f"`centered` needs the rmsprop optimizer, got optimizer {spec.name!r}")
    _number(spec, "lr_decay", lambda v: v >= 0, ">= 0")
    _number(spec, "initial_accumulator_value", lambda v: v >= 0, ">= 0")
    _check_choice("lr_schedule", spec.lr_schedule, LR_SCHEDULES)
    _whole(spec, "step_size")
    _number(spec, "gamma", lambda v: v > 0, "> 0")
    _number(spec, "decay", lambda v: v >= 0, ">= 0")
    _whole(spec, "t_max", optional=True)
    _number(spec, "eta_min", lambda v: v >= 0, ">= 0")
    if spec.lr_schedule == "cosine" and spec.t_max is None:
        raise ConfigError("`t_max` is needed by lr_schedule cosine (the steps of a half "
                          "cosine, as CosineAnnealingLR's T_max), got none")
    _number(spec, "clip_grad_norm", lambda v: v > 0, "> 0 (or none)", optional=True)
    _number(spec, "clip_grad_value", lambda v: v > 0, "> 0 (or none)", optional=True)


def _describe_recipe(spec: OptimizerSpec) -> list[str]:
    """The schedule and clipping parts of :meth:`OptimizerSpec.describe`."""
    parts = []
    s = spec.lr_schedule
    if s == "step":
        parts.append(f"lr x {spec.gamma:g} every {spec.step_size} steps")
    elif s == "exponential":
        parts.append(f"lr x {spec.gamma:g} every step")
    elif s == "cosine":
        parts.append(f"cosine lr over {spec.t_max} steps to {spec.eta_min:g}")
    elif s == "inverse_time":
        parts.append(f"lr / (1 + {spec.decay:g} t)")
    if spec.clip_grad_norm is not None:
        parts.append(f"gradients clipped to norm {spec.clip_grad_norm:g}")
    if spec.clip_grad_value is not None:
        parts.append(f"gradients clipped to +-{spec.clip_grad_value:g}")
    return parts

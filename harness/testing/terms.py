"""The terms a class is checked in: what it declares in ``nnh_capabilities``, and the flags.

A class is certified in its own terms: the optimizers it implements build every check
(a class that only does AdamW is never asked for sgd), the depths or the fixed widths
it declares size every network, and the conventions it declares are the base of every
check, in the combination declared (a class declaring only ``loss_reduction: ["sum"]``
is checked with the summed loss throughout, not with sum on top of the mean).

:func:`capabilities_of` reads and validates the declaration; :func:`terms_of` turns it
(and the command line's flags, :func:`overrides`) into :class:`Terms`, which builds the
specs of the checks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import ConfigError
from harness.model.specs import ACTIVATION_NAMES, DTYPE_NAMES, OPTIMIZER_NAMES, ModelSpec

#: the network of the checks (one hidden layer of 7): tiny, so a whole suite takes seconds
DIMS = (5, 7, 3)
#: the width of every hidden layer of the suite's networks
HIDDEN = 7
#: the learning rate of the checks (unless --lr is given)
LR = 0.1
#: the weight decay of the convention checks on weight decay (unless --weight-decay is given)
CONVENTION_DECAY = 0.1
#: the layers a class may declare beyond the MLP's, and the network each is checked in
LAYER_NETWORKS: dict[str, str] = {
    "batchnorm": "linear(7),batchnorm,relu,linear(3)",
    "layernorm": "linear(7),layernorm,tanh,linear(3)",
    "dropout": "linear(7),relu,dropout(0.5),linear(3)",
    "conv2d": "conv2d(3,3,padding=1),relu,flatten,linear(3)",
    "maxpool2d": "conv2d(3,3,padding=1),relu,maxpool2d(2),flatten,linear(3)",
    "avgpool2d": "conv2d(3,3,stride=2,padding=1),tanh,avgpool2d(2),flatten,linear(3)",
}
#: the layers of :data:`LAYER_NETWORKS` checked on images, and the images' (C, H, W)
IMAGE_LAYERS: tuple[str, ...] = ("conv2d", "maxpool2d", "avgpool2d")
IMAGE_SHAPE: tuple[int, int, int] = (2, 4, 4)
#: the values of every convention option, default first
CONVENTION_VALUES: dict[str, tuple[str, ...]] = {
    "loss_reduction": ("mean", "sum"), "weight_decay_in": ("optimizer", "loss"),
    "weight_decay_on": ("all", "weights")}
#: the ModelSpec fields a class may declare as its loss (``nnh_capabilities["loss"]``)
LOSS_FIELDS: tuple[str, ...] = ("loss", "loss_outputs", "mse_half")
#: what a class supports when it declares nothing (depths, dims, network: None, any;
#: loss: None, softmax cross-entropy)
DEFAULT_CAPABILITIES: dict[str, Any] = {
    "activations": ["relu"], "dtypes": ["float64"], "optimizers": ["sgd"], "conventions": {},
    "layers": [], "depths": None, "dims": None, "loss": None, "network": None,
    "input_shape": None}


#: rows of the batch of the checks
N_SAMPLES = 8


def make_batch(dims, n: int = N_SAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dims[0]))
    y = rng.permutation(np.arange(n) % dims[-1]).astype(np.int64)
    return x, y


# ------------------------------------------------------------------ capabilities
def _builtin_capabilities() -> dict[str, Any]:
    from harness.testing import build as _b

    return {"activations": list(ACTIVATION_NAMES), "dtypes": list(DTYPE_NAMES),
            "optimizers": list(OPTIMIZER_NAMES), "layers": list(LAYER_NETWORKS),
            "conventions": {k: list(CONVENTION_VALUES[k]) for k in _b.supported_conventions()},
            "depths": None, "dims": None, "loss": None, "network": None, "input_shape": None}


def _names(where: str, key: str, values, allowed) -> list[str]:
    values = [values] if isinstance(values, str) else list(values)
    bad = [v for v in values if v not in allowed]
    if bad or (not values and key != "layers"):
        raise ConfigError(f"`{where}['{key}']` must list some of {', '.join(allowed)}, "
                          f"got {values!r}")
    return values


def _conventions(where: str, declared) -> dict[str, list[str]]:
    if not isinstance(declared, dict):
        raise ConfigError(f"`{where}['conventions']` must be a dict of option: values, got "
                          f"{type(declared).__name__}")
    out = {}
    for key, values in declared.items():
        if key not in CONVENTION_VALUES:
            raise ConfigError(f"`{where}['conventions']` has unknown option {key!r}; allowed: "
                              f"{', '.join(CONVENTION_VALUES)}")
        values = [values] if isinstance(values, str) else list(values)
        if not values or any(v not in CONVENTION_VALUES[key] for v in values):
            raise ConfigError(f"`{where}['conventions']['{key}']` must list some of "
                              f"{', '.join(CONVENTION_VALUES[key])}, got {values!r}")
        out[key] = values
    return out


def _ints(where: str, key: str, values, *, least: int) -> tuple[int, ...] | None:
    if values is None:
        return None
    values = [values] if isinstance(values, int) else values
    try:
        out = tuple(int(v) for v in values)
        ok = bool(out) and all(v == w and not isinstance(w, bool) for v, w in zip(out, values))
    except (TypeError, ValueError):
        ok = False
    if not ok or any(v < least for v in out):
        what = {"depths": "hidden-layer counts, e.g. [1, 2]",
                "input_shape": "the input's shape, (features,) or (C, H, W), e.g. [1, 8, 8]"
                }.get(key, "the layer widths, features first and classes last, e.g. [5, 16, 3]")
        raise ConfigError(f"`{where}['{key}']` must list {what} (each at least {least}), got "
                          f"{values!r}")
    if key == "dims" and len(out) < 2:
        raise ConfigError(f"`{where}['dims']` needs the features and the classes at least, "
                          f"got {values!r}")
    return out


def _loss(where: str, declared) -> dict[str, Any] | None:
    """``"bce"`` or ``{"loss": "bce", "loss_outputs": "sum"}`` as ModelSpec fields."""
    if declared is None:
        return None
    fields = {"loss": declared} if isinstance(declared, str) else declared
    if not isinstance(fields, dict) or set(fields) - set(LOSS_FIELDS):
        raise ConfigError(f"`{where}['loss']` must be a loss name or a dict of "
                          f"{', '.join(LOSS_FIELDS)}, got {declared!r}")
    try:
        ModelSpec(DIMS, **fields)
    except ConfigError as exc:
        raise ConfigError(f"`{where}['loss']`: {exc}") from None
    return dict(fields)


def _network(where: str, layers, input_shape) -> tuple[str | None, tuple[int, ...] | None]:
    """A fixed layer network (the ``--layers`` grammar) and its input's shape."""
    if input_shape is not None:
        input_shape = _ints(where, "input_shape", input_shape, least=1)
        if len(input_shape) not in (1, 3):
            raise ConfigError(f"`{where}['input_shape']` is (features,) or (C, H, W), got "
                              f"{list(input_shape)!r}")
    if layers is None:
        if input_shape is not None:
            raise ConfigError(f"`{where}['input_shape']` goes with a fixed `network`")
        return None, None
    if not isinstance(layers, str):
        raise ConfigError(f"`{where}['network']` must be a layer list such as "
                          f"'linear(7),batchnorm,relu,linear(3)', got {layers!r}")
    try:
        spec = ModelSpec(layers=layers, input_shape=input_shape or (DIMS[0],))
    except ConfigError as exc:
        raise ConfigError(f"`{where}['network']`: {exc}") from None
    return str(spec.layers), spec.input_shape


def capabilities_of(target) -> dict[str, Any]:
    """What ``target`` declares it supports, completed with the defaults.

    A class declares ``nnh_capabilities = {"activations": [...], "dtypes": [...],
    "optimizers": [...], "conventions": {"loss_reduction": ["sum"], ...},
    "layers": ["batchnorm", ...], "depths": [1, 2], "loss": {"loss": "bce"}}`` (or a
    fixed ``"dims": [4, 10, 3]`` instead of ``depths``, or a fixed layer ``"network"``
    with its ``"input_shape"``); a missing key takes its default (relu; float64; sgd; the
    default conventions; no layer beyond the MLP's; any depth; softmax cross-entropy;
    the MLP of the activation and depth each check asks for). The first value of each
    list is the one the other checks are built with. The built-in backends support
    everything.

    Raises
    ------
    ConfigError
        An unknown key or name in the declaration.
    """
    from harness.model.registry import BUILTIN_BACKENDS, load_user_class

    if isinstance(target, str) and target in BUILTIN_BACKENDS:
        return _builtin_capabilities()
    cls = load_user_class(target) if isinstance(target, str) else (
        target if isinstance(target, type) else type(target))
    declared = getattr(cls, "nnh_capabilities", None) or {}
    where = f"{cls.__name__}.nnh_capabilities"
    if not isinstance(declared, dict):
        raise ConfigError(f"`{where}` must be a dict, got {type(declared).__name__}")
    unknown = set(declared) - set(DEFAULT_CAPABILITIES)
    if unknown:
        raise ConfigError(f"`{where}` has unknown key {sorted(unknown)[0]!r}; allowed: "
                          f"{', '.join(DEFAULT_CAPABILITIES)}")
    caps = {k: declared.get(k, v) for k, v in DEFAULT_CAPABILITIES.items()}
    for key, allowed in (("activations", ACTIVATION_NAMES), ("dtypes", DTYPE_NAMES),
                         ("optimizers", OPTIMIZER_NAMES), ("layers", tuple(LAYER_NETWORKS))):
        caps[key] = _names(where, key, caps[key], allowed)
    caps["conventions"] = _conventions(where, caps["conventions"])
    caps["depths"] = _ints(where, "depths", caps["depths"], least=0)
    caps["dims"] = _ints(where, "dims", caps["dims"], least=1)
    if caps["depths"] is not None and caps["dims"] is not None:
        raise ConfigError(f"`{where}` declares both `depths` and `dims`; a fixed `dims` "
                          f"already fixes the depth")
    caps["loss"] = _loss(where, caps["loss"])
    caps["network"], caps["input_shape"] = _network(where, caps["network"],
                                                    caps["input_shape"])
    if caps["network"] is not None and (caps["depths"] is not None or caps["dims"] is not None):
        raise ConfigError(f"`{where}` declares a fixed `network` with `depths` or `dims`; "
                          f"the network already fixes both")
    return caps


def with_overrides(caps: dict[str, Any], flags: dict[str, Any] | None) -> dict[str, Any]:
    """``caps`` narrowed to the values given on the command line (:func:`overrides`)."""
    flags = dict(flags or {})
    out = {**caps, "conventions": dict(caps["conventions"])}
    for key in ("activations", "dtypes", "optimizers"):
        if flags.get(key):
            out[key] = list(flags[key])
    for key in CONVENTION_VALUES:
        if flags.get(key):
            out["conventions"][key] = [flags[key]]
    if flags.get("dims"):
        out["dims"], out["depths"], out["network"] = tuple(flags["dims"]), None, None
    if flags.get("network"):
        out["network"], out["dims"], out["depths"] = flags["network"], None, None
        out["input_shape"] = flags.get("input_shape") or None
    return out


# ------------------------------------------------------------------ terms
@dataclass
class Terms:
    """The settings every check of one class is built with.

    ``dims`` is the base network (fixed when the class declares ``dims``);
    ``depths`` the hidden-layer counts it builds (None: any); ``conventions`` the
    base convention of each option (the first declared value); ``optimizer`` the
    OptimizerSpec fields given on the command line (lr, weight decay, betas, ...);
    ``model`` the ModelSpec fields declared or given (the loss and its conventions);
    ``layers`` a fixed layer network (and ``input_shape`` its input), or None for the
    MLP of each check's activation and depth.
    """

    dims: tuple[int, ...] = DIMS
    fixed_dims: bool = False
    layers: str | None = None
    input_shape: tuple[int, ...] | None = None
    depths: tuple[int, ...] | None = None
    conventions: dict[str, str] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)

    def dims_of_depth(self, hidden: int) -> tuple[int, ...]:
        """The suite's network with ``hidden`` hidden layers, in this class's widths."""
        return (self.dims[0], *([HIDDEN] * hidden), self.dims[-1])

    def depth_skip(self, hidden: int, name: str) -> str | None:
        """Why a check of ``hidden`` hidden layers does not apply (None: it does)."""
        if self.layers is not None:
            return f"{name} is checked on one fixed network, {self.layers}"
        if self.fixed_dims:
            return f"{name} declares fixed dims {self.dims} in nnh_capabilities"
        if self.depths is not None and hidden not in self.depths:
            return (f"{name} does not declare depth {hidden} (hidden layers) in "
                    f"nnh_capabilities (declared: {', '.join(map(str, self.depths))})")
        return None

    def convention(self, key: str, extra: dict | None = None) -> str:
        """The value of convention ``key`` in these terms (``extra`` first)."""
        return {**self.conventions, **(extra or {})}.get(key, CONVENTION_VALUES[key][0])

    @property
    def decay(self) -> float:
        """The weight decay of the checks that test a weight-decay convention."""
        given = self.optimizer.get("weight_decay")
        return float(given) if given else CONVENTION_DECAY

    def spec(self, *, activation: str = "relu", dtype: str = "float64", dims=None,
             seed: int = 0, conventions: dict | None = None) -> ModelSpec:
        """The ModelSpec of one check, in these terms."""
        from harness.testing import build as _b

        reduction = self.convention("loss_reduction", conventions)
        if self.layers is not None:  # the class's own network: its activations are fixed
            return ModelSpec(layers=self.layers, input_shape=self.input_shape or (DIMS[0],),
                             dtype=dtype, seed=seed, loss_reduction=reduction, **self.model)
        spec = _b.make_spec(self.dims if dims is None else dims, activation=activation,
                            dtype=dtype, seed=seed,
                            loss_reduction=None if reduction == "mean" else reduction)
        return dataclasses.replace(spec, **self.model) if self.model else spec

    @staticmethod
    def batch(spec: ModelSpec, n: int | None = None, seed: int = 0):
        """``(x, y)``: ``n`` random rows for ``spec`` (images (N, C, H, W) for an image
        network), labels covering the classes."""
        x, y = make_batch(spec.dims, n=N_SAMPLES if n is None else n, seed=seed)
        shape = getattr(spec, "input_shape", None)
        if shape is not None and len(shape) == 3:
            x = x.reshape(len(x), *shape)
        return x, y

    def opt(self, name: str, *, conventions: dict | None = None,
            weight_decay: float | None = None):
        """The OptimizerSpec of one check, in these terms (plain, with no decay unless
        given or asked)."""
        from harness.testing import build as _b

        fields = {"lr": LR, **self.optimizer, "name": name}
        if weight_decay is not None:
            fields["weight_decay"] = weight_decay
        where = self.convention("weight_decay_in", conventions)
        on = self.convention("weight_decay_on", conventions)
        return _b.make_optimizer(fields, weight_decay_in=None if where == "optimizer" else where,
                                 weight_decay_on=None if on == "all" else on)


def terms_of(caps: dict[str, Any], flags: dict[str, Any] | None = None) -> Terms:
    """The :class:`Terms` of a class's (validated) capabilities and the flags given."""
    flags = flags or {}
    dims = caps.get("dims")
    depths = caps.get("depths")
    base = DIMS if dims is None else tuple(dims)
    if dims is None and depths is not None and 1 not in depths:
        base = (DIMS[0], *([HIDDEN] * depths[0]), DIMS[-1])
    conventions = {k: v[0] for k, v in caps.get("conventions", {}).items()
                   if v and v[0] != CONVENTION_VALUES[k][0]}
    network = caps.get("network")
    if network is not None:
        base = ModelSpec(layers=network, input_shape=caps.get("input_shape") or (DIMS[0],)).dims
    return Terms(dims=base, fixed_dims=dims is not None or network is not None,
                 depths=None if depths is None else tuple(depths), conventions=conventions,
                 optimizer=dict(flags.get("optimizer_fields") or {}),
                 model={**(caps.get("loss") or {}), **(flags.get("model_fields") or {})},
                 layers=network, input_shape=caps.get("input_shape"))

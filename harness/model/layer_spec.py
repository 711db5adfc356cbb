"""Networks as a list of layers: the grammar, its refusals and its resolution.

A network is written as torch-like layer names, ``"linear(64),batchnorm,relu,
dropout(0.5),linear(10)"``, or as a list of the same items (strings, ``(name, args)``
tuples or :class:`LayerSpec`). The layers:

==================  =====================================================
``linear(OUT)``     z = x @ W + b, OUT output features
``relu``, ``tanh``, ``sigmoid``, ``gelu``   element-wise activations
``leaky_relu(S)``   negative slope S (default ``LEAKY_RELU_SLOPE``, 0.01)
``batchnorm``       per feature over the batch (nn.BatchNorm1d)
``layernorm``       over the features of each row (nn.LayerNorm)
``dropout(P)``      inverted dropout, P in [0, 1) (default 0.5, as nn.Dropout)
``conv2d(OUT, KERNEL, stride=1, padding=0)``   2-D cross-correlation (nn.Conv2d)
``maxpool2d(K, stride=K)``, ``avgpool2d(K, stride=K)``   pooling, no padding
``flatten``         (C, H, W) -> C*H*W in C order (nn.Flatten)
==================  =====================================================

Arguments are positional or keyword (``conv2d(8, 3, padding=1)``; the keywords are
``out``, ``kernel``, ``stride``, ``padding``). With an image input ``(C, H, W)`` the
resolution tracks the activation's shape: conv and pool layers need a (C, H, W)
activation, ``linear`` a flat one (a ``flatten`` between them), and ``batchnorm`` after a
convolution is spatial batch norm (per channel over N, H, W; nn.BatchNorm2d).

:func:`resolve` infers every width from the input and names every parameter and
buffer. Weight layers (linear and conv2d) are numbered 0, 1, 2, ... in order: ``W{k}``
of shape (in, out) for a linear, (out, in, kh, kw) for a conv2d (torch's layout, not
transposed), and ``b{k}`` of shape (out,). A normalisation layer takes the number of the weight
layer before it: ``gamma{k}``, ``beta{k}`` and, for batch norm only, the buffers
``running_mean{k}`` and ``running_var{k}``. A normalisation layer before the first
linear (it would have no number) is refused, as are two normalisation layers after
the same linear (their names would collide).

:meth:`ResolvedNetwork.plain` hands the backends the resolved list as plain
``(name, kwargs)`` tuples, which scratch and torch_impl read without importing the
harness.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from harness.errors import ConfigError
from harness.model.names import ACTIVATION_NAMES, LEAKY_RELU_SLOPE

#: every layer name the grammar knows, as the user writes it
LAYER_NAMES: tuple[str, ...] = ("linear", "relu", "tanh", "sigmoid", "leaky_relu", "gelu",
                                "batchnorm", "layernorm", "dropout", "conv2d", "maxpool2d",
                                "avgpool2d", "flatten")
#: how each name is written, for the messages
LAYER_FORMS: tuple[str, ...] = ("linear(OUT)", "relu", "tanh", "sigmoid", "leaky_relu(SLOPE)",
                                "gelu", "batchnorm", "layernorm", "dropout(P)",
                                "conv2d(OUT, KERNEL, stride=1, padding=0)",
                                "maxpool2d(K, stride=K)", "avgpool2d(K, stride=K)", "flatten")
NORM_NAMES: tuple[str, ...] = ("batchnorm", "layernorm")
#: the layers with a weight W{k} and a bias b{k}, numbered together in order
WEIGHT_NAMES: tuple[str, ...] = ("linear", "conv2d")
POOL_NAMES: tuple[str, ...] = ("maxpool2d", "avgpool2d")
#: the layers that need a (C, H, W) activation
SPATIAL_NAMES: tuple[str, ...] = ("conv2d",) + POOL_NAMES
#: the arguments of the layers that take keywords, in positional order
KEYWORDS: dict[str, tuple[str, ...]] = {"conv2d": ("out", "kernel", "stride", "padding"),
                                        "maxpool2d": ("kernel", "stride"),
                                        "avgpool2d": ("kernel", "stride")}
DROPOUT_DEFAULT_P = 0.5

_ITEM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$", re.S)


@dataclass(frozen=True)
class LayerSpec:
    """One layer: its name and its arguments, normalised (defaults filled in)."""

    name: str
    args: tuple = ()

    def __str__(self) -> str:
        if not self.args:
            return self.name
        # the required arguments, then the keywords not at their defaults
        if self.name in KEYWORDS and len(self.args) <= len(KEYWORDS[self.name]):
            required = 2 if self.name == "conv2d" else 1
            names, defaults = KEYWORDS[self.name], _defaults(self.name, self.args)
            shown = [str(a) for a in self.args[:required]]
            shown += [f"{names[i]}={a}" for i, a in enumerate(self.args)
                      if i >= required and a != defaults[i]]
            return f"{self.name}({', '.join(shown)})"
        return f"{self.name}({', '.join(repr(a) if isinstance(a, str) else str(a) for a in self.args)})"


def _defaults(name: str, args: tuple) -> tuple:
    """The default of each argument of a keyword layer (a pool's stride is its window)."""
    if name == "conv2d":
        return (None, None, 1, 0)
    return (None, args[0] if args else None)


def _choices() -> str:
    return ", ".join(LAYER_FORMS)


def _split_items(text: str) -> list[str]:
    """Split ``text`` at the commas outside parentheses; refuse unbalanced ones."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
            if depth > 1:
                raise ConfigError(f"layers: nested parentheses are not allowed, got {text!r}")
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"layers: unbalanced parentheses (a ')' without '('), "
                                  f"got {text!r}")
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth:
        raise ConfigError(f"layers: unbalanced parentheses (a '(' never closed), got {text!r}")
    items.append(text[start:])
    return items


def _number(text: str, item: str):
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"layer {item!r}: arguments must be numbers, got {text!r}") from None


def _parse_item(text: str) -> tuple[str, tuple]:
    match = _ITEM.match(text)
    if not match or not text.strip():
        raise ConfigError(f"layers: malformed layer {text.strip()!r} "
                          f"(write NAME or NAME(ARG); choices: {_choices()})")
    name, inner = match.group(1), match.group(2)
    if inner is None:
        return name, ()
    if not inner.strip():
        return name, ()
    args, kwargs = [], {}
    for part in inner.split(","):
        key, eq, value = part.partition("=")
        if not eq:
            if kwargs:
                raise ConfigError(f"layer {text.strip()!r}: a positional argument after a "
                                  f"keyword one, got {part.strip()!r}")
            args.append(_number(part, text.strip()))
        else:
            kwargs[key.strip()] = _number(value, text.strip())
    return name, _with_keywords(name, tuple(args), kwargs, text.strip())


def _with_keywords(name: str, args: tuple, kwargs: dict, shown: str) -> tuple:
    """``args`` with the keyword arguments put in their places (defaults filled in)."""
    if not kwargs:
        return args
    names = KEYWORDS.get(name)
    if names is None:
        raise ConfigError(f"layer {shown!r}: {name} takes no keyword arguments, got "
                          f"{', '.join(kwargs)}")
    unknown = [k for k in kwargs if k not in names]
    if unknown:
        raise ConfigError(f"layer {shown!r}: unknown argument {unknown[0]!r} "
                          f"(choices: {', '.join(names)})")
    twice = [k for k in kwargs if names.index(k) < len(args)]
    if twice:
        raise ConfigError(f"layer {shown!r}: the argument {twice[0]!r} is given twice")
    values = dict(zip(names, args), **kwargs)
    if name == "conv2d" and ("out" not in values or "kernel" not in values):
        raise ConfigError(f"layer {shown!r}: conv2d needs OUT and KERNEL: write "
                          f"conv2d(OUT, KERNEL, stride=1, padding=0), e.g. conv2d(8, 3)")
    if name in POOL_NAMES and "kernel" not in values:
        raise ConfigError(f"layer {shown!r}: {name} needs its window K: write {name}(K), "
                          f"e.g. {name}(2)")
    defaults = _defaults(name, (values.get(names[0]),) if name != "conv2d" else ())
    return tuple(values.get(n, d) for n, d in zip(names, defaults))


def _check_args(name: str, args: tuple) -> tuple:
    """Normalised ``args`` for layer ``name``, or a ConfigError naming the rule."""
    shown = str(LayerSpec(name, args))
    if name not in LAYER_NAMES:
        raise ConfigError(f"unknown layer {name!r} (choices: {_choices()})")
    if name == "linear":
        if not args:
            raise ConfigError("layer 'linear' needs its output width: write linear(OUT), "
                              "e.g. linear(64)")
        if len(args) > 1:
            raise ConfigError(f"layer {shown!r}: linear takes one argument (OUT), "
                              f"got {len(args)}")
        out = args[0]
        if isinstance(out, bool) or not isinstance(out, int) or out < 1:
            raise ConfigError(f"layer {shown!r}: the width OUT must be a positive integer, "
                              f"got {out!r}")
        return (int(out),)
    if name in ("leaky_relu", "dropout"):
        if len(args) > 1:
            raise ConfigError(f"layer {shown!r}: {name} takes at most one argument, "
                              f"got {len(args)}")
        value = float(args[0]) if args else (LEAKY_RELU_SLOPE if name == "leaky_relu"
                                             else DROPOUT_DEFAULT_P)
        if isinstance(args[0] if args else 0, bool) or not math.isfinite(value):
            raise ConfigError(f"layer {shown!r}: the argument must be a finite number, "
                              f"got {args[0]!r}")
        if name == "dropout" and not 0.0 <= value < 1.0:
            raise ConfigError(f"layer {shown!r}: the drop probability p must be in [0, 1), "
                              f"got {value}")
        return (value,)
    if name in KEYWORDS:
        return _check_spatial_args(name, args, shown)
    if args:
        raise ConfigError(f"layer {shown!r}: {name} takes no arguments, got {len(args)}")
    return ()


def _check_spatial_args(name: str, args: tuple, shown: str) -> tuple:
    """conv2d's (out, kernel, stride, padding) or a pool's (kernel, stride), checked."""
    names = KEYWORDS[name]
    needed = 2 if name == "conv2d" else 1
    form = next(f for f in LAYER_FORMS if f.startswith(name + "("))
    if len(args) < needed:
        raise ConfigError(f"layer {shown!r}: {name} needs {' and '.join(n.upper() for n in names[:needed])}: "
                          f"write {form}")
    if len(args) > len(names):
        raise ConfigError(f"layer {shown!r}: {name} takes at most {len(names)} arguments "
                          f"({', '.join(names)}), got {len(args)}")
    values = tuple(args) + _defaults(name, args)[len(args):]
    for arg_name, value in zip(names, values):
        lowest = 0 if arg_name == "padding" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            rule = "a non-negative integer" if lowest == 0 else "a positive integer"
            raise ConfigError(f"layer {shown!r}: {arg_name} must be {rule}, got {value!r}")
    return tuple(int(v) for v in values)


def _to_item(item) -> tuple[str, tuple]:
    if isinstance(item, LayerSpec):
        return item.name, tuple(item.args)
    if isinstance(item, str):
        parts = _split_items(item)
        if len(parts) != 1:
            raise ConfigError(f"layers: one layer per list item, got {item!r}")
        return _parse_item(item)
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str):
        args = item[1]
        if isinstance(args, dict):
            return item[0], _with_keywords(item[0], (), dict(args), f"{item[0]}{args}")
        if args is None:
            args = ()
        elif not isinstance(args, (tuple, list)):
            args = (args,)
        return item[0], tuple(args)
    raise ConfigError(f"layers: each item must be a string, a (name, args) tuple or a "
                      f"LayerSpec, got {item!r}")


def parse(layers) -> tuple[LayerSpec, ...]:
    """The layers of ``layers`` (a string or a list of items), checked one by one.

    Raises
    ------
    ConfigError
        An empty spec, a malformed string, an unknown name or bad arguments.
    """
    if isinstance(layers, str):
        if not layers.strip():
            raise ConfigError(f"layers: the spec is empty, got {layers!r} "
                              f"(choices: {_choices()})")
        raw = [_parse_item(t) for t in _split_items(layers)]
    else:
        try:
            items = list(layers)
        except TypeError:
            raise ConfigError(f"layers must be a string or a list of layers, "
                              f"got {type(layers).__name__}") from None
        if not items:
            raise ConfigError(f"layers: the spec is empty, got {layers!r} "
                              f"(choices: {_choices()})")
        raw = [_to_item(i) for i in items]
    return tuple(LayerSpec(name, _check_args(name, args)) for name, args in raw)


def from_dims(dims, activation: str = "relu") -> tuple[LayerSpec, ...]:
    """The shorthand ``--dims 64,32,10 --activation relu``: ``linear(32),relu,linear(10)``.

    ``dims[0]`` is the input width (give it to :func:`resolve`); every later entry is a
    linear layer, with ``activation`` between two of them.
    """
    dims = tuple(dims)
    if len(dims) < 2:
        raise ConfigError(f"`dims` must have at least two entries, got {dims}")
    if activation not in ACTIVATION_NAMES:
        raise ConfigError(f"`activation` must be one of {', '.join(ACTIVATION_NAMES)}, "
                          f"got {activation!r}")
    items: list = []
    for i, width in enumerate(dims[1:]):
        if i:
            items.append((activation, ()))
        items.append(("linear", (width,)))
    return parse(items)


@dataclass(frozen=True)
class ResolvedNetwork:
    """A layer list with every width known and every parameter and buffer named.

    Attributes
    ----------
    layers : tuple of LayerSpec, in order
    input_width : int
        The number of input features: C*H*W for an image input.
    widths_in, widths_out : tuple of int, one per layer
        The flat width (the product of the shape) of each layer's input and output.
    indices : tuple of (int or None), one per layer
        The canonical number of a weight (linear, conv2d) or normalisation layer; None
        for the others.
    param_shapes : dict of str to tuple
        ``W{k}``, ``b{k}``, ``gamma{k}``, ``beta{k}`` in layer order.
    buffer_shapes : dict of str to tuple
        ``running_mean{k}``, ``running_var{k}`` of every batch norm, in layer order.
    input_shape : tuple of int
        ``(F,)`` or ``(C, H, W)``.
    shapes_in, shapes_out : tuple of tuples, one per layer
        The shape of each layer's input and output, one sample: ``(F,)`` or ``(C, H, W)``.
    """

    layers: tuple
    input_width: int
    widths_in: tuple
    widths_out: tuple
    indices: tuple
    param_shapes: dict
    buffer_shapes: dict
    input_shape: tuple = ()
    shapes_in: tuple = ()
    shapes_out: tuple = ()

    @property
    def is_image(self) -> bool:
        """Whether the input is an image (C, H, W)."""
        return len(self.input_shape) == 3

    @property
    def dims(self) -> tuple[int, ...]:
        """The input width, then the flat output width of every weight layer (a conv2d's
        C*H*W; the last is the number of classes)."""
        return (self.input_width,) + tuple(
            w for spec, w in zip(self.layers, self.widths_out) if spec.name in WEIGHT_NAMES)

    def describe(self, position: int) -> str:
        """``layer 3 (batchnorm)``: how messages name the layer at ``position``."""
        return f"layer {position} ({self.layers[position]})"

    def plain(self) -> list[tuple[str, dict]]:
        """The network as ``(name, kwargs)`` tuples the backends read.

        ``("linear", {"index": k, "in": d_in, "out": d_out})``,
        ``("batchnorm" | "layernorm", {"index": k, "width": d})``,
        ``("leaky_relu", {"slope": s})``, ``("dropout", {"p": p})``, ``(name, {})``;
        ``("conv2d", {"index": k, "in": C_in, "out": C_out, "kernel": K, "stride": S,
        "padding": P})``, ``("maxpool2d" | "avgpool2d", {"kernel": K, "stride": S})``,
        ``("flatten", {})``; a batch norm on a (C, H, W) activation has ``"spatial": True``
        and ``width`` C. On an image input every entry also has ``"in_shape"`` and
        ``"out_shape"`` (one sample's, tuples).
        """
        out: list[tuple[str, dict]] = []
        for pos, (spec, k) in enumerate(zip(self.layers, self.indices)):
            kw = _plain_kwargs(spec, k, self.shapes_in[pos], self.shapes_out[pos])
            if self.is_image:
                kw.update(in_shape=self.shapes_in[pos], out_shape=self.shapes_out[pos])
            out.append((spec.name, kw))
        return out


def _plain_kwargs(spec: LayerSpec, k, shape_in: tuple, shape_out: tuple) -> dict:
    if spec.name == "linear":
        return {"index": k, "in": shape_in[0], "out": shape_out[0]}
    if spec.name == "conv2d":
        out, kernel, stride, padding = spec.args
        return {"index": k, "in": shape_in[0], "out": out, "kernel": kernel,
                "stride": stride, "padding": padding}
    if spec.name in POOL_NAMES:
        return {"kernel": spec.args[0], "stride": spec.args[1]}
    if spec.name in NORM_NAMES:
        if len(shape_in) == 3:
            return {"index": k, "width": shape_in[0], "spatial": True}
        return {"index": k, "width": shape_in[0]}
    if spec.name == "leaky_relu":
        return {"slope": spec.args[0]}
    if spec.name == "dropout":
        return {"p": spec.args[0]}
    return {}


def _input_shape(input_shape) -> tuple[int, ...]:
    shape = (input_shape,) if isinstance(input_shape, int) else input_shape
    try:
        shape = tuple(shape)
    except TypeError:
        shape = ()
    if (len(shape) not in (1, 3)
            or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
                   for d in shape)):
        raise ConfigError(f"input_shape must be one positive integer (features) or three "
                          f"(C, H, W) of an image, got {input_shape!r}")
    return tuple(int(d) for d in shape)


def _check_ending(layers: tuple, widths_out: list, n_classes) -> None:
    if layers[-1].name != "linear":
        raise ConfigError(f"layers: the last layer must be a linear (its outputs are the "
                          f"logits), got {layers[-1]} (append linear(N_CLASSES))")
    if n_classes is not None and widths_out[-1] != n_classes:
        raise ConfigError(f"layers: the last linear's width must be the number of classes "
                          f"({n_classes}), got {layers[-1]}")


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def _spatial_out(pos: int, spec: LayerSpec, shape: tuple) -> tuple[int, ...]:
    """The (C, H, W) after a conv2d or pool on ``shape``; refused when it is empty."""
    where = f"layer {pos} ({spec})"
    if len(shape) != 3:
        raise ConfigError(f"layers: {where} needs a (C, H, W) activation, got the flat "
                          f"{_shape_text(shape)} (give input_shape (C, H, W), and put "
                          f"{spec.name} before the flatten)")
    c, h, w = shape
    if spec.name == "conv2d":
        out, kernel, stride, padding = spec.args
    else:
        (kernel, stride), out, padding = spec.args, c, 0
        if kernel > h or kernel > w:
            raise ConfigError(f"layers: {where} has a window of {kernel} larger than its "
                              f"input {_shape_text(shape)} (H, W must be >= {kernel})")
    # output size floor((H + 2p - k) / s) + 1
    h_out = (h + 2 * padding - kernel) // stride + 1
    w_out = (w + 2 * padding - kernel) // stride + 1
    if h_out <= 0 or w_out <= 0:
        raise ConfigError(f"layers: {where} on {_shape_text(shape)} gives an empty output "
                          f"({h_out} x {w_out}: floor((H + 2*padding - kernel) / stride) + 1 "
                          f"must be >= 1)")
    return (out, h_out, w_out)


def _next_shape(pos: int, spec: LayerSpec, shape: tuple) -> tuple[int, ...]:
    """The activation's shape after the layer ``spec`` at ``pos`` on ``shape``."""
    if spec.name in SPATIAL_NAMES:
        return _spatial_out(pos, spec, shape)
    if spec.name == "flatten":
        return (math.prod(shape),)
    image = len(shape) == 3
    if spec.name == "linear":
        if image:
            raise ConfigError(f"layers: layer {pos} ({spec}) needs a flat activation, got "
                              f"{_shape_text(shape)} (insert flatten before it)")
        return (spec.args[0],)
    if image and spec.name in ("layernorm", "dropout"):
        raise ConfigError(f"layers: layer {pos} ({spec}) on a (C, H, W) activation "
                          f"{_shape_text(shape)} is not supported ({spec.name} goes after "
                          f"a linear or a flatten)")
    return shape


def resolve(layers, input_shape, n_classes: int | None = None) -> ResolvedNetwork:
    """Parse ``layers`` and infer every shape from ``input_shape``; name everything.

    Parameters
    ----------
    layers : str or sequence of items (see :func:`parse`)
    input_shape : int or tuple of one int, or (C, H, W)
        The number of input features, or the shape of one image.
    n_classes : int, optional
        When given, the last linear's width must equal it.

    Raises
    ------
    ConfigError
        Everything :func:`parse` refuses, a last layer that is not a linear, a last width
        other than ``n_classes``, a normalisation layer before the first weight layer or
        two after the same one, a conv or pool on a flat activation, a linear on a
        (C, H, W) one (no flatten), a window larger than its input or an empty output.
    """
    specs = parse(layers)
    shape = _input_shape(input_shape)
    shapes_in, shapes_out, indices = [], [], []
    params: dict[str, tuple] = {}
    buffers: dict[str, tuple] = {}
    k = -1
    for pos, spec in enumerate(specs):
        shapes_in.append(shape)
        index = None
        new_shape = _next_shape(pos, spec, shape)
        if spec.name in WEIGHT_NAMES:
            k += 1
            index = k
            params[f"W{k}"] = ((shape[0], spec.args[0]) if spec.name == "linear"
                               else (spec.args[0], shape[0], spec.args[1], spec.args[1]))
            params[f"b{k}"] = (spec.args[0],)
        elif spec.name in NORM_NAMES:
            index = _norm_index(pos, spec, k, params)
            params[f"gamma{k}"] = (shape[0],)
            params[f"beta{k}"] = (shape[0],)
            if spec.name == "batchnorm":
                buffers[f"running_mean{k}"] = (shape[0],)
                buffers[f"running_var{k}"] = (shape[0],)
        shape = new_shape
        shapes_out.append(shape)
        indices.append(index)
    widths_in = tuple(math.prod(s) for s in shapes_in)
    widths_out = tuple(math.prod(s) for s in shapes_out)
    _check_ending(specs, widths_out, n_classes)
    return ResolvedNetwork(specs, widths_in[0], widths_in, widths_out, tuple(indices),
                           params, buffers, shapes_in[0], tuple(shapes_in), tuple(shapes_out))


def _norm_index(pos: int, spec: LayerSpec, k: int, params: dict) -> int:
    """The number a normalisation layer takes: the weight layer's before it."""
    if k < 0:
        raise ConfigError(f"layers: a normalisation layer takes the number of the "
                          f"linear before it, and layer {pos} ({spec}) has none "
                          f"(put a linear first)")
    if f"gamma{k}" in params:
        raise ConfigError(f"layers: one normalisation layer per linear, and layer "
                          f"{pos} ({spec}) is the second after linear {k}")
    return k


# ------------------------------------------------ naming the layers of a built model
def layer_list(model) -> list[tuple[str, dict]] | None:
    """The ``(name, kwargs)`` layer list of a layer network: its ``spec`` (a built-in
    layer network's list, or a ModelSpec with ``layers`` that a class keeps), else None."""
    spec = getattr(model, "spec", None)
    if isinstance(spec, list) and all(isinstance(t, tuple) and len(t) == 2 for t in spec):
        return spec
    network = getattr(spec, "network", None)  # a class that keeps its ModelSpec
    if getattr(spec, "layers", None) is not None and hasattr(network, "plain"):
        return network.plain()
    return None


def layer_label(layers: list, position: int) -> str:
    """``layer 3 (batchnorm)``: how messages name the layer at ``position``."""
    name, kw = layers[position]
    if name == "conv2d":
        spec = LayerSpec(name, (kw["out"], kw["kernel"], kw["stride"], kw["padding"]))
        return f"layer {position} ({spec})"
    if name in POOL_NAMES:
        return f"layer {position} ({LayerSpec(name, (kw['kernel'], kw['stride']))})"
    arg = kw.get("out", kw.get("p", kw.get("slope")))
    return f"layer {position} ({name}{'' if arg is None else f'({arg:g})'})"


def position_of(layers: list, name: str) -> int | None:
    """The position of the layer that owns the parameter or buffer ``name`` (``W2``,
    ``gamma1``, ``running_var1``), or None."""
    m = re.match(r"^(W|b|gamma|beta|running_mean|running_var)(\d+)$", name)
    if not m:
        return None
    kind, k = m.group(1), int(m.group(2))
    wanted = WEIGHT_NAMES if kind in ("W", "b") else NORM_NAMES
    for pos, (layer, kw) in enumerate(layers):
        if layer in wanted and kw.get("index") == k:
            return pos
    return None

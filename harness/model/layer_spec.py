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
==================  =====================================================

:func:`resolve` infers every width from the input and names every parameter and
buffer. Weight layers are numbered 0, 1, 2, ... in order: ``W{k}`` of shape (in, out)
and ``b{k}`` of shape (out,). A normalisation layer takes the number of the weight
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

from harness.errors import ConfigError
from harness.model.names import ACTIVATION_NAMES, LEAKY_RELU_SLOPE

#: every layer name the grammar knows, as the user writes it
LAYER_NAMES: tuple[str, ...] = ("linear", "relu", "tanh", "sigmoid", "leaky_relu", "gelu",
                                "batchnorm", "layernorm", "dropout")
#: how each name is written, for the messages
LAYER_FORMS: tuple[str, ...] = ("linear(OUT)", "relu", "tanh", "sigmoid", "leaky_relu(SLOPE)",
                                "gelu", "batchnorm", "layernorm", "dropout(P)")
NORM_NAMES: tuple[str, ...] = ("batchnorm", "layernorm")
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
        return f"{self.name}({', '.join(repr(a) if isinstance(a, str) else str(a) for a in self.args)})"


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
    return name, tuple(_number(a, text.strip()) for a in inner.split(","))


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
    if args:
        raise ConfigError(f"layer {shown!r}: {name} takes no arguments, got {len(args)}")
    return ()


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
    widths_in, widths_out : tuple of int, one per layer
    indices : tuple of (int or None), one per layer
        The canonical number of a linear or normalisation layer; None for the others.
    param_shapes : dict of str to tuple
        ``W{k}``, ``b{k}``, ``gamma{k}``, ``beta{k}`` in layer order.
    buffer_shapes : dict of str to tuple
        ``running_mean{k}``, ``running_var{k}`` of every batch norm, in layer order.
    """

    layers: tuple
    input_width: int
    widths_in: tuple
    widths_out: tuple
    indices: tuple
    param_shapes: dict
    buffer_shapes: dict

    @property
    def dims(self) -> tuple[int, ...]:
        """The input width, then the output width of every linear layer."""
        return (self.input_width,) + tuple(
            w for spec, w in zip(self.layers, self.widths_out) if spec.name == "linear")

    def describe(self, position: int) -> str:
        """``layer 3 (batchnorm)``: how messages name the layer at ``position``."""
        return f"layer {position} ({self.layers[position]})"

    def plain(self) -> list[tuple[str, dict]]:
        """The network as ``(name, kwargs)`` tuples the backends read.

        ``("linear", {"index": k, "in": d_in, "out": d_out})``,
        ``("batchnorm" | "layernorm", {"index": k, "width": d})``,
        ``("leaky_relu", {"slope": s})``, ``("dropout", {"p": p})``, ``(name, {})``.
        """
        out: list[tuple[str, dict]] = []
        for spec, d_in, d_out, k in zip(self.layers, self.widths_in, self.widths_out,
                                        self.indices):
            if spec.name == "linear":
                out.append(("linear", {"index": k, "in": d_in, "out": d_out}))
            elif spec.name in NORM_NAMES:
                out.append((spec.name, {"index": k, "width": d_in}))
            elif spec.name == "leaky_relu":
                out.append(("leaky_relu", {"slope": spec.args[0]}))
            elif spec.name == "dropout":
                out.append(("dropout", {"p": spec.args[0]}))
            else:
                out.append((spec.name, {}))
        return out


def _input_width(input_shape) -> int:
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    if (len(shape) != 1 or isinstance(shape[0], bool) or not isinstance(shape[0], int)
            or shape[0] < 1):
        raise ConfigError(f"input_shape must be one positive integer (features), "
                          f"got {input_shape!r}")
    return shape[0]


def _check_ending(layers: tuple, widths_out: list, n_classes) -> None:
    if layers[-1].name != "linear":
        raise ConfigError(f"layers: the last layer must be a linear (its outputs are the "
                          f"logits), got {layers[-1]} (append linear(N_CLASSES))")
    if n_classes is not None and widths_out[-1] != n_classes:
        raise ConfigError(f"layers: the last linear's width must be the number of classes "
                          f"({n_classes}), got {layers[-1]}")


def resolve(layers, input_shape, n_classes: int | None = None) -> ResolvedNetwork:
    """Parse ``layers`` and infer every width from ``input_shape``; name everything.

    Parameters
    ----------
    layers : str or sequence of items (see :func:`parse`)
    input_shape : int or tuple of one int
        The number of input features.
    n_classes : int, optional
        When given, the last linear's width must equal it.

    Raises
    ------
    ConfigError
        Everything :func:`parse` refuses, a last layer that is not a linear, a last width
        other than ``n_classes``, a normalisation layer before the first linear or two
        after the same linear.
    """
    specs = parse(layers)
    width = _input_width(input_shape)
    widths_in, widths_out, indices = [], [], []
    params: dict[str, tuple] = {}
    buffers: dict[str, tuple] = {}
    k = -1
    for pos, spec in enumerate(specs):
        widths_in.append(width)
        index = None
        if spec.name == "linear":
            k += 1
            index = k
            params[f"W{k}"] = (width, spec.args[0])
            params[f"b{k}"] = (spec.args[0],)
            width = spec.args[0]
        elif spec.name in NORM_NAMES:
            if k < 0:
                raise ConfigError(f"layers: a normalisation layer takes the number of the "
                                  f"linear before it, and layer {pos} ({spec}) has none "
                                  f"(put a linear first)")
            if f"gamma{k}" in params:
                raise ConfigError(f"layers: one normalisation layer per linear, and layer "
                                  f"{pos} ({spec}) is the second after linear {k}")
            index = k
            params[f"gamma{k}"] = (width,)
            params[f"beta{k}"] = (width,)
            if spec.name == "batchnorm":
                buffers[f"running_mean{k}"] = (width,)
                buffers[f"running_var{k}"] = (width,)
        widths_out.append(width)
        indices.append(index)
    _check_ending(specs, widths_out, n_classes)
    return ResolvedNetwork(specs, widths_in[0], tuple(widths_in),
                           tuple(widths_out), tuple(indices), params, buffers)


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
    arg = kw.get("out", kw.get("p", kw.get("slope")))
    return f"layer {position} ({name}{'' if arg is None else f'({arg:g})'})"


def position_of(layers: list, name: str) -> int | None:
    """The position of the layer that owns the parameter or buffer ``name`` (``W2``,
    ``gamma1``, ``running_var1``), or None."""
    m = re.match(r"^(W|b|gamma|beta|running_mean|running_var)(\d+)$", name)
    if not m:
        return None
    kind, k = m.group(1), int(m.group(2))
    wanted = ("linear",) if kind in ("W", "b") else ("batchnorm", "layernorm")
    for pos, (layer, kw) in enumerate(layers):
        if layer in wanted and kw.get("index") == k:
            return pos
    return None

"""Canonical parameter names bound to where the code keeps its arrays.

The harness names parameters ``W{k}`` (in, out), ``b{k}`` (out,), ``gamma{k}``,
``beta{k}``, and buffers ``running_mean{k}``, ``running_var{k}``, counted from 0
(:mod:`harness.model.layout`, docs/layers.md). Published code keeps them its own way:
lists (``self.weights[k]``), 1-based dict names (``self.params["W1"]``), attributes of
layer objects (``self.layers[2].W``), weights as (out, in), biases as (1, d) or (d, 1).
A :class:`Binding` says, for every canonical name, the path to the code's array
(:mod:`harness.adapt.paths`); :meth:`Binding.get` hands out canonical copies and
:meth:`Binding.put` checks canonical arrays with the protocol's rules and writes them
back in the code's own shapes.

:func:`bind` builds a binding from one rule per kind of name: a template with the
fields ``{k}`` (the canonical number), ``{k1}`` (k + 1, for 1-based code) and ``{pos}``
(the layer's position in the network's layer list), or a function of ``k``::

    bind(spec, W="weights[{k}].T", b="biases[{k}]")          # Nielsen's lists
    bind(spec, W="params['W{k1}']", b="params['b{k1}']")      # cs231n's 1-based dict
    bind(spec, W="layers[{pos}].weights", b="layers[{pos}].biases")
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from harness.adapt import paths as _paths
from harness.errors import ConfigError, ParamError
from harness.model.layout import validate_arrays

#: the kinds of canonical name, longest first (``running_mean`` before a bare prefix)
PARAM_KINDS = ("gamma", "beta", "W", "b")
BUFFER_KINDS = ("running_mean", "running_var")
_NAME = re.compile(r"^(running_mean|running_var|gamma|beta|W|b)(\d+)$")

def split_name(name: str) -> tuple[str, int]:
    """``"running_var2"`` -> ``("running_var", 2)``."""
    match = _NAME.match(name)
    if match is None:
        raise ConfigError(f"{name!r} is not a canonical name (W{{k}}, b{{k}}, gamma{{k}}, "
                          f"beta{{k}}, running_mean{{k}}, running_var{{k}})")
    return match.group(1), int(match.group(2))


def positions(spec) -> dict[tuple[str, int], int]:
    """``(layer name, canonical number) -> position`` in ``spec``'s layer list: where the
    ``linear`` or normalisation layer that owns ``W{k}`` or ``gamma{k}`` sits."""
    out = {}
    for pos, (name, kw) in enumerate(spec.network.plain()):
        if "index" in kw:
            out[("linear" if name == "linear" else "norm", kw["index"])] = pos
    return out


def _expand(rule, kind: str, k: int, pos: int | None) -> str:
    if callable(rule):
        return rule(k)
    fields = {"k": k, "k1": k + 1, "pos": pos}
    try:
        return rule.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"the rule {rule!r} for {kind}{{k}} uses a field other than "
                          f"{{k}}, {{k1}} and {{pos}} ({exc})") from None


class Binding:
    """Canonical names -> paths into the code, with the shapes the protocol expects.

    Parameters
    ----------
    paths : mapping of str to str
        Canonical name -> path (``"weights[0].T"``, ``"params['b1']"``), relative to
        the object :meth:`get` and :meth:`put` are given (the adapter: ``self``).
    shapes : mapping of str to tuple
        Canonical name -> canonical shape, in the protocol's order.
    dtype : numpy dtype
        The model's dtype: what :meth:`get` returns and :meth:`put` casts to.
    kind : str
        "parameter" or "buffer", for the messages.
    """

    def __init__(self, paths: Mapping[str, str], shapes: Mapping[str, tuple], dtype,
                 kind: str = "parameter"):
        missing = [k for k in shapes if k not in paths]
        if missing:
            raise ConfigError(f"no path for the {kind} {missing[0]} (the network has "
                              f"{', '.join(shapes)})")
        self.shapes = {k: tuple(v) for k, v in shapes.items()}
        self.paths = {k: _paths.parse(paths[k]) for k in self.shapes}
        self.dtype = np.dtype(dtype)
        self.kind = kind

    def __repr__(self) -> str:
        pairs = ", ".join(f"{k}={p.text}" for k, p in self.paths.items())
        return f"Binding({pairs})"

    def _canonical(self, name: str, stored, dtype=None) -> np.ndarray:
        path, shape = self.paths[name], self.shapes[name]
        value = np.asarray(stored)
        value = value.T if path.transposed else value
        if value.shape != shape and value.size == int(np.prod(shape)) and len(shape) == 1:
            value = value.reshape(shape)  # a (1, d) row or a (d, 1) column
        if value.shape != shape:
            where = f"{path.text} (transposed)" if path.transposed else path.text
            raise ParamError(f"the code's {where} has shape {np.shape(stored)}; {name} must "
                             f"have shape {shape}")
        return np.array(value, dtype=self.dtype if dtype is None else dtype, copy=True,
                        order="C")  # C order, as a fresh parameter array is

    def get(self, root) -> dict[str, np.ndarray]:
        """Canonical copies of the code's arrays (never the code's own arrays)."""
        return {name: self._canonical(name, _paths.read(root, self.paths[name]))
                for name in self.shapes}

    def put(self, root, values: Mapping[str, np.ndarray]) -> None:
        """Check ``values`` (names, shapes, numbers, finite: the protocol's messages), then
        write fresh copies into the code, each in the shape the code keeps it in."""
        checked = validate_arrays(values, self.shapes, self.dtype, self.kind)
        for name, value in checked.items():
            path = self.paths[name]
            try:
                old_shape = np.shape(_paths.read(root, path))
            except (AttributeError, KeyError, IndexError, TypeError):
                old_shape = None
            value = value.T if path.transposed else value
            if old_shape is not None and old_shape != value.shape \
                    and int(np.prod(old_shape)) == value.size:
                value = value.reshape(old_shape)
            _paths.write(root, path, np.ascontiguousarray(value))

    def read(self, root) -> dict[str, np.ndarray]:
        """Canonical copies of whatever lies at the paths (gradients the code stored),
        without the dtype cast a parameter gets: the code's own precision is kept."""
        out = {}
        for name in self.shapes:
            stored = np.asarray(_paths.read(root, self.paths[name]))
            out[name] = self._canonical(name, stored, stored.dtype)
        return out


def bind(spec, kind: str = "parameter", dtype=None, **rules) -> Binding:
    """A :class:`Binding` for ``spec``'s parameters (or buffers, ``kind="buffer"``) from one
    rule per kind of name.

    Parameters
    ----------
    spec : ModelSpec
        The network: its canonical names, shapes and layer positions.
    kind : str
        "parameter" (W, b, gamma, beta) or "buffer" (running_mean, running_var).
    dtype : numpy dtype, optional
        Defaults to ``spec.dtype``.
    **rules : str or callable
        ``W=``, ``b=``, ``gamma=``, ``beta=``, ``running_mean=``, ``running_var=``: a
        template (fields ``{k}``, ``{k1}``, ``{pos}``) or a function of k returning the
        path.
    """
    shapes = spec.network.param_shapes if kind == "parameter" else spec.network.buffer_shapes
    allowed = PARAM_KINDS if kind == "parameter" else BUFFER_KINDS
    unknown = [r for r in rules if r not in allowed]
    if unknown:
        raise ConfigError(f"no {kind} kind {unknown[0]!r}: the rules are "
                          f"{', '.join(allowed)}")
    where = positions(spec)
    paths = {}
    for name in shapes:
        letter, k = split_name(name)
        if letter not in rules:
            raise ConfigError(f"no rule binds {name}: give {letter}=... (a path template "
                              f"such as 'layers[{{pos}}].{letter}')")
        owner = "linear" if letter in ("W", "b") else "norm"
        paths[name] = _expand(rules[letter], letter, k, where.get((owner, k)))
    return Binding(paths, shapes, spec.dtype if dtype is None else dtype, kind)


def initial_params(spec) -> dict[str, np.ndarray]:
    """Canonical starting values from ``spec.seed``: each linear's W and b uniform in
    +-1/sqrt(fan_in) (as ``torch.nn.Linear``), gamma ones, beta zeros. The harness copies
    the reference's parameters in before it compares; these only make a build seeded."""
    rng = np.random.default_rng(spec.seed)
    out = {}
    for name, shape in spec.network.param_shapes.items():
        letter, _ = split_name(name)
        if letter in ("W", "b"):
            fan_in = shape[0] if letter == "W" else out[name.replace("b", "W", 1)].shape[0]
            bound = 1.0 / np.sqrt(fan_in)
            out[name] = rng.uniform(-bound, bound, shape)
        else:
            out[name] = np.ones(shape) if letter == "gamma" else np.zeros(shape)
    return {k: v.astype(spec.dtype) for k, v in out.items()}


def initial_buffers(spec) -> dict[str, np.ndarray]:
    """Running means zero, running variances one (torch's start)."""
    return {name: (np.zeros if name.startswith("running_mean") else np.ones)(shape,
                                                                              spec.dtype)
            for name, shape in spec.network.buffer_shapes.items()}

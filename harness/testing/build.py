"""Specs and models for the testing helpers: names, classes or built objects alike.

A *target* is what a user hands to :mod:`harness.testing`: a backend name
(``"torch"``, ``"scratch"``, ``"mymod:MyMLP"``), a class constructed as
``Class(spec, optimizer)``, or a model already built. Names and classes are built
here, through :mod:`harness.model.registry` and the checks layer's guard, so that an
exception raised by the code under test becomes a finding naming the method and
the user's line. Imports stay light: nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

import numpy as np

from harness.errors import ConfigError
from harness.model.specs import DEFAULT_HIDDEN, ModelSpec, OptimizerSpec

#: hidden width used when ``dims`` is inferred from the data (the command line's default)
#: the convention options, where they live and their default (torch's) value
CONVENTIONS: dict[str, tuple[str, str]] = {
    "loss_reduction": ("model", "mean"),
    "weight_decay_in": ("optimizer", "optimizer"),
    "weight_decay_on": ("optimizer", "all"),
}


def supported_conventions() -> tuple[str, ...]:
    """The convention options this version's ModelSpec and OptimizerSpec accept."""
    fields = {"model": {f.name for f in dataclasses.fields(ModelSpec)},
              "optimizer": {f.name for f in dataclasses.fields(OptimizerSpec)}}
    return tuple(k for k, (where, _) in CONVENTIONS.items() if k in fields[where])


def _conventions(where: str, values: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``where``'s spec for the conventions given (None: not given).

    A convention this version cannot express is refused unless it asks for the
    default, so that specs are built with ``**conventions`` only when given.
    """
    supported = supported_conventions()
    out = {}
    for key, value in values.items():
        if value is None or CONVENTIONS[key][0] != where:
            continue
        if key in supported:
            out[key] = value
        elif value != CONVENTIONS[key][1]:
            raise ConfigError(f"`{key}` {value!r} is not supported by this version of "
                              f"nn-harness; only the default {CONVENTIONS[key][1]!r} is")
    return out


def has_torch() -> bool:
    """Whether torch can be imported (without importing it)."""
    return importlib.util.find_spec("torch") is not None


def make_spec(dims, *, activation: str = "relu", dtype: str = "float64", seed: int = 0,
              loss_reduction: str | None = None) -> ModelSpec:
    """A ModelSpec; ``loss_reduction`` passed only when given."""
    return ModelSpec(tuple(dims), activation=activation, dtype=dtype, seed=seed,
                     **_conventions("model", {"loss_reduction": loss_reduction}))


def make_optimizer(optimizer=None, *, weight_decay_in: str | None = None,
                   weight_decay_on: str | None = None) -> OptimizerSpec:
    """An OptimizerSpec from None (plain sgd), a name, a dict of its fields or a spec."""
    conv = _conventions("optimizer", {"weight_decay_in": weight_decay_in,
                                      "weight_decay_on": weight_decay_on})
    if optimizer is None:
        return OptimizerSpec(**conv)
    if isinstance(optimizer, str):
        return OptimizerSpec(name=optimizer, **conv)
    if isinstance(optimizer, dict):
        return OptimizerSpec(**{**optimizer, **conv})
    if isinstance(optimizer, OptimizerSpec):
        return dataclasses.replace(optimizer, **conv) if conv else optimizer
    raise ConfigError(f"`optimizer` must be a name, a dict of OptimizerSpec fields or an "
                      f"OptimizerSpec, got {type(optimizer).__name__}")


def as_target(target):
    """A plug-in fixture's factory as its backend name; anything else as it is."""
    if type(target).__name__ == "ModelFactory" and isinstance(getattr(target, "name", None), str):
        return target.name
    return target


def is_built(target) -> bool:
    """True for a model object (not a name, not a class)."""
    return not isinstance(as_target(target), (str, type))


def target_name(target) -> str:
    """The backend name of a target: itself for a name, ``module:Qualname`` otherwise."""
    target = as_target(target)
    if isinstance(target, str):
        return target
    cls = target if isinstance(target, type) else type(target)
    from harness.checks.guard import Guarded

    if isinstance(target, Guarded):
        return target._name
    return f"{cls.__module__}:{cls.__qualname__}"


def short_name(target) -> str:
    """A short label: the class name (``MyMLP``) or the backend name (``torch``)."""
    name = target_name(target)
    return name.rpartition(":")[2].rpartition(".")[2] if ":" in name else name


def infer_dims(x, y, dims=None, hidden: int = DEFAULT_HIDDEN) -> tuple[int, ...]:
    """``dims`` if given, else (features of ``x``, ``hidden``, classes seen in ``y``).

    The features of images ``x`` (N, C, H, W) are their C * H * W values.
    """
    if dims is not None:
        return tuple(dims)
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim not in (2, 4) or y.ndim != 1 or y.size == 0 or y.dtype.kind not in "iu":
        raise ConfigError(f"cannot infer `dims` from x of shape {x.shape} and y of shape "
                          f"{y.shape}; pass dims=(features, ..., classes) (x: rows (N, F) or "
                          f"images (N, C, H, W))")
    return (int(np.prod(x.shape[1:])), hidden, max(int(y.max()) + 1, 2))


def spec_for(targets, x, y, *, dims=None, activation=None, dtype=None, seed: int = 0,
             loss_reduction=None, layers=None) -> ModelSpec:
    """The ModelSpec the named targets are built with.

    What is not given is read off a built target (its dims, dtype and activation),
    else inferred from ``x`` and ``y`` (dims), else the defaults (relu, float64). A
    ``layers`` list takes its widths from ``x`` and ``y``, and its input shape (C, H, W)
    from images ``x`` (N, C, H, W).
    """
    from harness.compare.equivalence import model_dtype
    from harness.model.conventions import activation_of

    if layers is not None:
        if dims is not None or activation is not None:
            raise ConfigError("give the network as `layers` or as `dims`/`activation`, not "
                              "both")
        features, _, classes = infer_dims(x, y)
        built = [t for t in targets if is_built(t)]
        dtype = dtype or (model_dtype(built[0]).name if built else "float64")
        shape = np.shape(x)[1:]
        images = {"input_shape": tuple(int(d) for d in shape)} if len(shape) == 3 else {}
        return ModelSpec(layers=layers, dtype=dtype, seed=seed, **images, **_conventions(
            "model", {"loss_reduction": loss_reduction})).fit(features, classes)

    built = [t for t in targets if is_built(t)]
    if built:
        model = built[0]
        dims = dims if dims is not None else tuple(model.dims)
        dtype = dtype or model_dtype(model).name
        activation = activation or activation_of(model)
    return make_spec(infer_dims(x, y, dims), activation=activation or "relu",
                     dtype=dtype or "float64", seed=seed, loss_reduction=loss_reduction)


def build(target, spec: ModelSpec, optimizer: OptimizerSpec, *, device: str = "cpu"):
    """A model of ``target`` for ``spec``; a user's code behind the checks layer's guard.

    Names go through :func:`harness.model.registry.make_backend` (bad input: ProtocolError);
    a class is constructed as ``Class(spec, optimizer)`` and checked against the
    protocol the same way; a built model is checked and guarded as it is.
    """
    from harness.checks.guard import Guarded
    from harness.errors import ProtocolError
    from harness.model.registry import BUILTIN_BACKENDS, check_protocol, make_backend, with_masks

    target = as_target(target)
    if isinstance(target, str):
        model = make_backend(target, spec, optimizer, device=device)
        return Guarded(model, target) if target not in BUILTIN_BACKENDS else model
    name = short_name(target)
    if isinstance(target, type):
        try:
            model = target(spec, optimizer)
        except (ConfigError, ValueError) as exc:
            raise ProtocolError(f"backend {name!r} refused the configuration: {exc}") from exc
        check_protocol(model, name)
        if tuple(model.dims) != spec.dims:
            raise ProtocolError(f"backend {name!r} has dims {tuple(model.dims)}, expected "
                                f"{spec.dims}")
        return Guarded(with_masks(model, spec), name)
    if isinstance(target, Guarded):
        return target
    check_protocol(target, name)
    if type(target).__module__.split(".")[0] in ("scratch", "torch_impl"):
        return target  # a built-in backend: trusted, its exceptions are bugs to see whole
    return Guarded(target, name)


def reference_judges(reference, spec, opt, *, witnesses: int | None = None):
    """``(arbiter, witnesses)`` of a check, as the checks layer builds them.

    Only for a reference given as a name or a class (a built model cannot be rebuilt;
    ``(None, ())`` then): in float32 the reference rebuilt in float64 as the arbiter
    (None when it cannot be: the float32 tolerances judge, and the report's ``rule``
    says so), and in either dtype ``witnesses`` (default
    :data:`harness.training.trajectory.WITNESSES`) more copies of it for a trajectory.
    """
    from dataclasses import replace

    from harness.errors import HarnessError
    from harness.training.trajectory import WITNESSES

    if is_built(reference):
        return None, ()
    arbiter = None
    if spec.dtype == "float32":
        try:
            arbiter = build(reference, replace(spec, dtype="float64"), opt)
        except (HarnessError, ValueError, TypeError):
            arbiter = None
    n = WITNESSES if witnesses is None else witnesses
    return arbiter, [build(reference, spec, opt) for _ in range(n)]

"""Build a backend by name: the built-in ones, or a user's class as "module:Class".

The one harness module that imports the built-in backends (``scratch``, ``torch_impl``);
everything else in the harness reaches them through the functions here.
"""

from __future__ import annotations

import importlib
import os
import sys

from harness.errors import ConfigError, ParamError, ProtocolError
from harness.protocol import PROTOCOL_METHODS, Classifier
from harness.specs import ACTIVATION_NAMES, ModelSpec, OptimizerSpec

BUILTIN_BACKENDS: tuple[str, ...] = ("scratch", "torch")


def _scratch(spec: ModelSpec, optimizer: OptimizerSpec, device: str):
    from scratch import MLP
    from scratch.optimizers import make_optimizer

    return MLP(spec.dims, spec.activation, spec.dtype, spec.seed,
               optimizer=make_optimizer(**optimizer.to_dict()), param_error=ParamError)


def _torch(spec: ModelSpec, optimizer: OptimizerSpec, device: str):
    from torch_impl import TorchClassifier

    return TorchClassifier(spec, optimizer, device=device, param_error=ParamError)


_BUILDERS = {"scratch": _scratch, "torch": _torch}


def torch_activation(name: str):
    """The torch backend's function for the hidden activation ``name`` (imports torch).

    Raises
    ------
    ConfigError
        ``name`` is not one of ``relu, tanh, sigmoid, leaky_relu, gelu``.
    """
    if name not in ACTIVATION_NAMES:
        raise ConfigError(f"`activation` must be one of {', '.join(ACTIVATION_NAMES)}, "
                          f"got {name!r}")
    from torch_impl.model import ACTIVATIONS

    return ACTIVATIONS[name]


def validate_backend_name(name: str) -> str:
    """Refuse a name that is neither built in nor of the form "module:Class"."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"backend must be a non-empty string, got {name!r}")
    if name in _BUILDERS:
        return name
    module, sep, cls = name.partition(":")
    if not sep or not module or not cls or ":" in cls:
        raise ConfigError(
            f"unknown backend {name!r}; choose one of {', '.join(BUILTIN_BACKENDS)} "
            f"or give your own class as 'package.module:ClassName'"
        )
    return name


def load_user_class(name: str) -> type:
    """Import the class named by "package.module:ClassName"."""
    module_name, _, cls_name = validate_backend_name(name).partition(":")
    # like `python -m`, find the user's modules in the current folder
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is the user's input problem
        raise ProtocolError(
            f"cannot import module {module_name!r} for backend {name!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    obj = module
    for part in cls_name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ProtocolError(f"module {module_name!r} has no attribute {cls_name!r}")
    if not isinstance(obj, type):
        raise ProtocolError(f"backend {name!r} is not a class (got {type(obj).__name__})")
    return obj


def check_protocol(model, name: str) -> None:
    """Raise ProtocolError naming what is missing when ``model`` is not a Classifier."""
    missing = [m for m in PROTOCOL_METHODS if not callable(getattr(model, m, None))]
    if not hasattr(model, "dims"):
        missing.insert(0, "dims")
    if missing or not isinstance(model, Classifier):
        raise ProtocolError(
            f"backend {name!r} does not implement the Classifier protocol: "
            f"missing {', '.join(missing) or 'attributes'}"
        )


def make_backend(name: str, spec: ModelSpec, optimizer: OptimizerSpec | None = None, *,
                 device: str = "cpu") -> Classifier:
    """Build the backend ``name`` for ``spec`` with ``optimizer`` (default ``OptimizerSpec()``).

    ``name`` is "scratch", "torch", or "package.module:ClassName"; a user class is
    constructed as ``ClassName(spec, optimizer)`` and checked against the protocol.
    ``device`` applies to the torch backend only.
    """
    if not isinstance(spec, ModelSpec):
        raise ConfigError(f"`spec` must be a ModelSpec, got {type(spec).__name__}")
    optimizer = OptimizerSpec() if optimizer is None else optimizer
    if not isinstance(optimizer, OptimizerSpec):
        raise ConfigError(f"`optimizer` must be an OptimizerSpec, got {type(optimizer).__name__}")
    validate_backend_name(name)
    if name in _BUILDERS:
        return _BUILDERS[name](spec, optimizer, device)
    cls = load_user_class(name)
    try:
        model = cls(spec, optimizer)
    except (ConfigError, ValueError) as exc:
        raise ProtocolError(f"backend {name!r} refused the configuration: {exc}") from exc
    check_protocol(model, name)
    if tuple(model.dims) != spec.dims:
        raise ProtocolError(f"backend {name!r} has dims {tuple(model.dims)}, expected {spec.dims}")
    return model

"""Build a backend by name: the built-in ones, or a user's class as "module:Class".

The one harness module that imports the built-in backends (``scratch``, ``torch_impl``);
everything else in the harness reaches them through the functions here.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import replace
from pathlib import Path

from harness.errors import BuildRefused, ConfigError, ParamError, ProtocolError
from harness.model.contract import missing_members
from harness.model.protocol import Classifier
from harness.model.specs import ACTIVATION_NAMES, ModelSpec, OptimizerSpec
from harness.model.userframe import PROJECT_PACKAGES, describe_exception

_PROJECT_ROOT = Path(__file__).resolve().parents[2]

BUILTIN_BACKENDS: tuple[str, ...] = ("scratch", "torch")


def _norm_conventions(spec: ModelSpec) -> dict:
    """Batch and layer norm's conventions, as both layer backends take them."""
    return dict(momentum=spec.bn_momentum, momentum_convention=spec.bn_momentum_convention,
                running_var=spec.bn_running_var, eps=spec.norm_eps)


def _loss_settings(spec: ModelSpec) -> dict:
    """The loss function and its conventions, as every backend takes them."""
    return dict(loss=spec.loss, loss_outputs=spec.loss_outputs, mse_half=spec.mse_half)


def _scratch(spec: ModelSpec, optimizer: OptimizerSpec, device: str):
    from scratch import MLP
    from scratch.optimizers import make_optimizer

    if spec.is_layered:
        from scratch.sequential import Sequential

        return Sequential(spec.network.plain(), spec.dtype, spec.seed,
                          optimizer=make_optimizer(**optimizer.to_dict()),
                          param_error=ParamError, loss_reduction=spec.loss_reduction,
                          l2=optimizer.loss_weight_decay, l2_on=optimizer.weight_decay_on,
                          **_norm_conventions(spec), **_loss_settings(spec))
    return MLP(spec.dims, spec.activation, spec.dtype, spec.seed,
               optimizer=make_optimizer(**optimizer.to_dict()), param_error=ParamError,
               loss_reduction=spec.loss_reduction, l2=optimizer.loss_weight_decay,
               l2_on=optimizer.weight_decay_on, **_loss_settings(spec))


def _torch(spec: ModelSpec, optimizer: OptimizerSpec, device: str):
    from torch_impl import TorchClassifier

    if spec.is_layered:
        from torch_impl.sequential import TorchSequential

        return TorchSequential(spec.network.plain(), spec.dtype, spec.seed, optimizer,
                               device, param_error=ParamError,
                               loss_reduction=spec.loss_reduction, **_norm_conventions(spec),
                               **_loss_settings(spec))
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


def _project_package_hint(module_name: str, cls_name: str) -> str:
    top = module_name.split(".")[0]
    return (f"{top!r} is one of nn-harness's own packages ({', '.join(PROJECT_PACKAGES)}); "
            f"if your class is in a file of your own named {top}.py (or a folder {top}/), "
            f"rename it, e.g. to my_{top}.py, and give 'my_{module_name}:{cls_name}'")


def _refuse_shadowing(name: str, module_name: str, cls_name: str) -> None:
    """Refuse a user module that has the name of one of the project's packages: it would
    hide the project's own package (or be hidden by it)."""
    top = module_name.split(".")[0]
    if top not in PROJECT_PACKAGES:
        return
    own = (_PROJECT_ROOT / top).resolve()
    cwd = Path.cwd()
    for candidate in (cwd / f"{top}.py", cwd / top):
        if candidate.exists() and candidate.resolve() != own:
            raise ProtocolError(
                f"backend {name!r}: your {candidate.name} in the current folder has the name "
                f"of nn-harness's own package {top!r}, which it would hide (or be hidden by); "
                f"rename it, e.g. to my_{top}.py, and give 'my_{module_name}:{cls_name}'")


def _not_found_message(name: str, module_name: str) -> str:
    cwd = os.getcwd()
    top = module_name.split(".")[0]
    return (f"cannot import module {module_name!r} for backend {name!r}: no {top}.py or "
            f"package {top}/ was found; looked in the current folder ({cwd}), the folders on "
            f"PYTHONPATH and the installed packages; run nn-harness from the folder that "
            f"holds it, or add that folder to PYTHONPATH")


def _is_missing(exc: ImportError, module_name: str) -> bool:
    """Whether ``exc`` says that ``module_name`` itself (or a package above it) is missing,
    rather than that something the user's module imports is."""
    missing = getattr(exc, "name", None)
    return isinstance(exc, ModuleNotFoundError) and missing is not None and (
        module_name == missing or module_name.startswith(missing + "."))


def load_user_class(name: str) -> type:
    """Import the class named by "package.module:ClassName".

    Raises ProtocolError when the module cannot be found (naming where it was looked
    for), fails on import (naming the user's line), has the name of one of the
    project's own packages without the class, or holds no such class.
    """
    module_name, _, cls_name = validate_backend_name(name).partition(":")
    _refuse_shadowing(name, module_name, cls_name)
    # like `python -m`, find the user's modules in the current folder
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    top = module_name.split(".")[0]
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is the user's input problem
        if isinstance(exc, ImportError) and _is_missing(exc, module_name):
            if top in PROJECT_PACKAGES:
                raise ProtocolError(
                    f"cannot import module {module_name!r} for backend {name!r}: "
                    f"{_project_package_hint(module_name, cls_name)}") from exc
            raise ProtocolError(_not_found_message(name, module_name)) from exc
        raise ProtocolError(
            f"cannot import module {module_name!r} for backend {name!r}: "
            f"{describe_exception(exc)}") from exc
    obj = module
    for part in cls_name.split("."):
        holder, obj = obj, getattr(obj, part, None)
        if obj is None:
            hint = (f"; {_project_package_hint(module_name, cls_name)}"
                    if top in PROJECT_PACKAGES else _did_you_mean(holder, part))
            raise ProtocolError(f"module {module_name!r} has no attribute {cls_name!r}{hint}")
    if not isinstance(obj, type):
        raise ProtocolError(f"backend {name!r} is not a class (got {type(obj).__name__})")
    return obj


def _did_you_mean(holder, name: str) -> str:
    """``"; did you mean `MyMLP`?"`` for the classes of ``holder`` closest to ``name``
    (difflib), or ``""``."""
    import difflib

    classes = [k for k in dir(holder) if not k.startswith("_")
               and isinstance(getattr(holder, k, None), type)]
    close = difflib.get_close_matches(name, classes, n=3, cutoff=0.6) or [
        k for k in classes if k.lower() == name.lower()]
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"`{k}`" for k in close) + "?"


def check_protocol(model, name: str) -> None:
    """Raise ProtocolError naming what is missing when ``model`` is not a Classifier."""
    missing = missing_members(model)
    if missing or not isinstance(model, Classifier):
        raise ProtocolError(
            f"backend {name!r} does not implement the Classifier protocol: "
            f"missing {', '.join(missing) or 'attributes'}"
        )


def make_backend(name: str, spec: ModelSpec, optimizer: OptimizerSpec | None = None, *,
                 device: str = "cpu") -> Classifier:
    """Build the backend ``name`` for ``spec`` with ``optimizer`` (default
    ``OptimizerSpec()``, the defaults of
    :data:`harness.model.specs.OPTIMIZER_DEFAULTS`).

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
    if spec.dims is None:
        raise ConfigError(f"the network {spec.layers} needs its input width: give "
                          f"ModelSpec(..., input_shape=(FEATURES,)) or spec.fit(n_features, "
                          f"n_classes) before building it")
    if name in _BUILDERS:
        return with_masks(_BUILDERS[name](spec, optimizer, device), spec)
    cls = load_user_class(name)
    try:
        model = cls(spec, optimizer)
    except Exception as exc:  # the user's code: any exception is a bad plug-in or setting
        raise BuildRefused(f"could not build `{name}`: {describe_exception(exc)}",
                           backend=name) from exc
    check_protocol(model, name)
    if tuple(model.dims) != spec.dims:
        raise ProtocolError(f"backend {name!r} has dims {tuple(model.dims)}, expected {spec.dims}")
    return with_masks(model, spec)


def with_masks(model, spec: ModelSpec):
    """``model`` in a :class:`~harness.model.masks.HandedMasks` when its network has a
    dropout and it takes masks (the harness then draws every mask), in an
    :class:`~harness.model.masks.OwnMasks` when it has a dropout but draws its own masks;
    else as it is."""
    from harness.model.masks import HandedMasks, OwnMasks, dropout_layout, takes_masks

    if not spec.has_dropout or all(p == 0.0 for _, p in dropout_layout(spec.network)):
        return model
    if takes_masks(model):
        return HandedMasks(model, dropout_layout(spec.network), spec.seed)
    return OwnMasks(model, spec.seed)


def builtin_float64_copy(model, conventions):
    """An independent float64 copy of a built-in model (exact types), or None for others.

    ``conventions`` are the model's loss conventions (:func:`harness.model.conventions.
    loss_conventions`): the copy computes the same loss. A backend that is not loaded
    yet is not imported (a scratch model never loads torch).
    """
    from harness.model.masks import HandedMasks

    if isinstance(model, HandedMasks):  # the copy draws the same masks from here on
        made = builtin_float64_copy(model.inner, conventions)
        if made is None:
            return None
        copy = HandedMasks(made[0], model.layout, 0)
        copy._rng.bit_generator.state = model._rng.bit_generator.state
        return copy, made[1]
    layered = _layer_float64_copy(model)
    if layered is not None:
        return layered
    params = model.get_params()
    scratch_classes = [getattr(sys.modules.get(module), cls, None)
                       for module, cls in (("scratch.model", "MLP"),
                                           ("scratch.reference", "ReferenceMLP"))]
    if type(model) in [c for c in scratch_classes if c is not None]:
        copy = type(model)(model.dims, model.activation, "float64",
                           loss_reduction=conventions.loss_reduction, l2=conventions.l2,
                           l2_on=conventions.l2_on, **_own_loss(conventions))
        copy.set_params(params)
        return copy, "float64 copy of the built-in scratch MLP"
    torch_model = sys.modules.get("torch_impl.model")
    if torch_model is not None and type(model) is torch_model.TorchClassifier:
        # the spec carries the loss reduction, the optimizer spec the L2 term in the loss
        spec = replace(model.spec, dtype="float64")
        copy = torch_model.TorchClassifier(spec, model.optimizer_spec, device=str(model.device))
        copy.set_params(params)
        return copy, "float64 copy of the built-in torch classifier"
    return None


def _layer_float64_copy(model):
    """A float64 copy of a built-in layer network (same layers, conventions, optimizer,
    parameters and buffers), or None for anything else."""
    scratch_seq = getattr(sys.modules.get("scratch.sequential"), "Sequential", None)
    torch_seq = getattr(sys.modules.get("torch_impl.sequential"), "TorchSequential", None)
    if scratch_seq is not None and type(model) is scratch_seq:
        copy = scratch_seq(model.spec, "float64", param_error=model.param_error,
                           loss_reduction=model.loss_reduction, l2=model.l2, l2_on=model.l2_on,
                           **model.norm_conventions, **_own_loss(model))
        label = "float64 copy of the built-in scratch layer network"
    elif torch_seq is not None and type(model) is torch_seq:
        copy = torch_seq(model.spec, "float64", optimizer=model.optimizer_spec,
                         device=str(model.device), param_error=model.param_error,
                         loss_reduction=model.loss_reduction, **model.norm_conventions,
                         **_own_loss(model))
        label = "float64 copy of the built-in torch layer network"
    else:
        return None
    copy.set_params(model.get_params())
    copy.set_buffers(model.get_buffers())
    return copy, label



def _own_loss(source) -> dict:
    """The loss settings a model (or its LossConventions) carries."""
    return dict(loss=source.loss, loss_outputs=source.loss_outputs, mse_half=source.mse_half)


def scratch_loss_function():
    """The scratch backend's loss and its gradient with respect to the logits
    (:func:`scratch.losses.loss_grad`): ``loss_grad(logits, y, loss, reduction, outputs,
    half) -> (loss, dlogits)``."""
    from scratch.losses import loss_grad

    return loss_grad


def torch_loss_function():
    """The torch backend's loss table (:func:`torch_impl.losses.torch_loss`; imports torch)."""
    from torch_impl.losses import torch_loss

    return torch_loss


def torch_layer_twin(layers, dtype: str, *, loss_reduction: str = "mean", l2: float = 0.0,
                     l2_on: str = "all", norm_conventions: dict | None = None,
                     loss: dict | None = None):
    """The torch backend's network on the layer list ``layers`` (plain ``(name, kwargs)``
    tuples), for an autograd reference: torch's own modules, differentiated by autograd,
    with the given loss and batch-norm conventions (imports torch)."""
    from torch_impl.sequential import TorchSequential

    optimizer = OptimizerSpec("sgd", weight_decay=l2, weight_decay_in="loss", weight_decay_on=l2_on)
    return TorchSequential(layers, dtype, 0, optimizer, param_error=ParamError,
                           loss_reduction=loss_reduction, **(norm_conventions or {}),
                           **(loss or {}))

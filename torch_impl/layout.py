"""The one place where the canonical layout meets nn.Linear's.

Canonical: ``W{i}`` of shape (d_i, d_{i+1}), z = a @ W + b, for i = 0 .. L-1, ordered
``W0, b0, W1, b1, ...``; ``b{i}`` of shape (d_{i+1},).
nn.Linear: ``weight`` of shape (d_{i+1}, d_i), z = a @ weight.T + bias.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn


def linear_to_canonical(layers: list[nn.Linear] | nn.ModuleList, *, grad: bool = False
                        ) -> dict[str, np.ndarray]:
    """Parameters (or, with ``grad=True``, their ``.grad``) as canonical NumPy copies."""
    out: dict[str, np.ndarray] = {}
    for i, layer in enumerate(layers):
        w, b = (layer.weight.grad, layer.bias.grad) if grad else (layer.weight, layer.bias)
        if w is None or b is None:
            w = torch.zeros_like(layer.weight) if w is None else w
            b = torch.zeros_like(layer.bias) if b is None else b
        out[f"W{i}"] = w.detach().T.cpu().numpy().copy()
        out[f"b{i}"] = b.detach().cpu().numpy().copy()
    return out


def canonical_to_linear(params: dict[str, np.ndarray], layers: list[nn.Linear] | nn.ModuleList
                        ) -> None:
    """Copy canonical ``params`` into the layers' weights and biases, in place."""
    with torch.no_grad():
        for i, layer in enumerate(layers):
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(params[f"W{i}"].T)))
            layer.bias.copy_(torch.from_numpy(np.ascontiguousarray(params[f"b{i}"])))



def param_shapes(dims: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the canonical parameters of a network with widths ``dims``."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(len(dims) - 1):
        shapes[f"W{i}"] = (dims[i], dims[i + 1])
        shapes[f"b{i}"] = (dims[i + 1],)
    return shapes


def layer_param_shapes(layers) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the parameters of a resolved layer list (``(name, kwargs)``
    tuples), in layer order: a linear's ``W{k}`` (in, out), a conv2d's ``W{k}``
    (out, in, kh, kw), not transposed, ``b{k}`` (out,); a normalisation's ``gamma{k}``,
    ``beta{k}`` (width,)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, kw in layers:
        k = kw.get("index")
        if name == "linear":
            shapes[f"W{k}"], shapes[f"b{k}"] = (kw["in"], kw["out"]), (kw["out"],)
        elif name == "conv2d":
            shapes[f"W{k}"] = (kw["out"], kw["in"], kw["kernel"], kw["kernel"])
            shapes[f"b{k}"] = (kw["out"],)
        elif name in ("batchnorm", "layernorm"):
            shapes[f"gamma{k}"], shapes[f"beta{k}"] = (kw["width"],), (kw["width"],)
    return shapes


def validate_params(params: Mapping[str, np.ndarray], dims: tuple[int, ...],
                    dtype: np.dtype | str, error: type[ValueError] = ValueError
                    ) -> dict[str, np.ndarray]:
    """Check canonical ``params`` for a network of widths ``dims``; fresh copies in ``dtype``.

    Raises ``error`` (a ValueError) naming the parameter for a missing or extra name, a
    wrong shape, a non-numeric dtype or a non-finite value.
    """
    if not isinstance(params, Mapping):
        raise error(f"parameters must be a dict of arrays, got {type(params).__name__}")
    expected = param_shapes(dims)
    missing = [k for k in expected if k not in params]
    extra = sorted(k for k in params if k not in expected)
    if missing:
        raise error(f"parameter '{missing[0]}' is missing (expected {list(expected)})")
    if extra:
        raise error(f"unexpected parameter '{extra[0]}' for dims {dims} "
                    f"(expected {list(expected)})")
    out: dict[str, np.ndarray] = {}
    for name, shape in expected.items():
        value = np.asarray(params[name])
        if value.dtype.kind not in "fiu":
            raise error(f"parameter '{name}' must be numeric, got dtype {value.dtype}")
        if value.shape != shape:
            raise error(f"parameter '{name}' must have shape {shape}, got {value.shape}")
        copy = np.array(value, dtype=dtype, copy=True, order="C")
        if not np.all(np.isfinite(copy)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(copy))[0])
            raise error(f"parameter '{name}' has a non-finite value {copy[bad]} at index {bad}")
        out[name] = copy
    return out


# ------------------------------------------------------------ layer-list networks
# ``indexed`` below is a list of (k, module) pairs, one per layer with parameters, in
# order: nn.Linear k gives ``W{k}`` = weight.T (in, out) and ``b{k}`` = bias; nn.Conv2d k
# gives ``W{k}`` = weight (out, in, kh, kw), NOT transposed (the layouts agree), and
# ``b{k}`` = bias; nn.BatchNorm1d / nn.BatchNorm2d / nn.LayerNorm k give ``gamma{k}`` =
# weight and ``beta{k}`` = bias, and
# a batch norm's buffers ``running_mean{k}`` and ``running_var{k}``.

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _pairs(k: int, module: nn.Module) -> list[tuple[str, torch.Tensor, bool]]:
    """(canonical name, tensor, transposed) for each parameter of ``module``."""
    if isinstance(module, nn.Linear):
        return [(f"W{k}", module.weight, True), (f"b{k}", module.bias, False)]
    if isinstance(module, nn.Conv2d):
        return [(f"W{k}", module.weight, False), (f"b{k}", module.bias, False)]
    return [(f"gamma{k}", module.weight, False), (f"beta{k}", module.bias, False)]


def modules_to_canonical(indexed, *, grad: bool = False) -> dict[str, np.ndarray]:
    """Parameters (or, with ``grad=True``, their ``.grad``, zeros when None) as canonical
    NumPy copies, in layer order."""
    out: dict[str, np.ndarray] = {}
    for k, module in indexed:
        for name, p, transposed in _pairs(k, module):
            t = p.grad if grad else p
            t = torch.zeros_like(p) if t is None else t
            t = t.detach().T if transposed else t.detach()
            out[name] = t.cpu().numpy().copy()
    return out


def canonical_to_modules(params: Mapping[str, np.ndarray], indexed) -> None:
    """Copy canonical ``params`` into the modules' weights and biases, in place."""
    with torch.no_grad():
        for k, module in indexed:
            for name, p, transposed in _pairs(k, module):
                value = params[name].T if transposed else params[name]
                p.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def batchnorm_buffers_to_canonical(indexed) -> dict[str, np.ndarray]:
    """The running statistics of every batch norm in ``indexed``, canonical names."""
    out: dict[str, np.ndarray] = {}
    for k, module in indexed:
        if isinstance(module, _BATCHNORMS):
            out[f"running_mean{k}"] = module.running_mean.detach().cpu().numpy().copy()
            out[f"running_var{k}"] = module.running_var.detach().cpu().numpy().copy()
    return out


def canonical_to_batchnorm_buffers(buffers: Mapping[str, np.ndarray], indexed) -> None:
    """Copy canonical running statistics into every batch norm in ``indexed``."""
    with torch.no_grad():
        for k, module in indexed:
            if isinstance(module, _BATCHNORMS):
                module.running_mean.copy_(torch.from_numpy(buffers[f"running_mean{k}"]))
                module.running_var.copy_(torch.from_numpy(buffers[f"running_var{k}"]))

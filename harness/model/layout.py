"""The canonical parameter layout shared by every backend.

A network with layer widths ``dims = (d_0, ..., d_L)`` has parameters

* ``W{i}`` of shape ``(d_i, d_{i+1})`` so that ``z_i = a_i @ W{i} + b{i}``;
* ``b{i}`` of shape ``(d_{i+1},)``;

for ``i = 0 .. L-1``, ordered ``W0, b0, W1, b1, ...``; a layer network's conv2d has
``W{k}`` of shape (out, in, kh, kw), not transposed. The harness's copy: the
backends, which import nothing from the harness, each check the same layout with the
same messages (``scratch.params``, ``torch_impl.layout``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from harness.errors import ParamError


def param_shapes(dims: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the parameters of a network with widths ``dims``, in order."""
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


def dims_from_params(params: Mapping[str, np.ndarray]) -> tuple[int, ...]:
    """Infer layer widths from a canonical parameter dictionary.

    Raises
    ------
    ParamError
        When the names are not ``W0, b0, ...`` or the shapes do not chain.
    """
    n_layers = sum(1 for k in params if k.startswith("W"))
    if n_layers == 0:
        raise ParamError(f"parameters must contain W0, b0, ...; got names {sorted(params)}")
    dims = []
    for i in range(n_layers):
        w = params.get(f"W{i}")
        if w is None:
            raise ParamError(f"parameter 'W{i}' is missing; got names {sorted(params)}")
        if np.ndim(w) != 2:
            raise ParamError(f"parameter 'W{i}' must be 2-D, got shape {np.shape(w)}")
        if i == 0:
            dims.append(int(np.shape(w)[0]))
        elif np.shape(w)[0] != dims[-1]:
            raise ParamError(
                f"parameter 'W{i}' has {np.shape(w)[0]} input rows but layer {i - 1} "
                f"has {dims[-1]} outputs"
            )
        dims.append(int(np.shape(w)[1]))
    return tuple(dims)


def validate_params(
    params: Mapping[str, np.ndarray], dims: tuple[int, ...], dtype: np.dtype | str
) -> dict[str, np.ndarray]:
    """Check ``params`` against the canonical layout and return fresh copies in ``dtype``.

    Parameters
    ----------
    params : mapping of str to array_like
        ``W{i}`` of shape (d_i, d_{i+1}) and ``b{i}`` of shape (d_{i+1},).
    dims : tuple of int
        Layer widths ``(d_0, ..., d_L)``.
    dtype : numpy dtype
        The model's dtype; values are cast to it (never aliased).

    Raises
    ------
    ParamError
        Missing or extra names, wrong shapes, non-numeric or non-finite values; the
        message names the parameter.
    """
    if not isinstance(params, Mapping):
        raise ParamError(f"parameters must be a dict of arrays, got {type(params).__name__}")
    expected = param_shapes(dims)
    missing = [k for k in expected if k not in params]
    extra = sorted(k for k in params if k not in expected)
    if missing:
        raise ParamError(f"parameter '{missing[0]}' is missing (expected {list(expected)})")
    if extra:
        raise ParamError(
            f"unexpected parameter '{extra[0]}' for dims {dims} (expected {list(expected)})"
        )
    out: dict[str, np.ndarray] = {}
    for name, shape in expected.items():
        value = np.asarray(params[name])
        if value.dtype.kind not in "fiu":
            raise ParamError(f"parameter '{name}' must be numeric, got dtype {value.dtype}")
        if value.shape != shape:
            raise ParamError(f"parameter '{name}' must have shape {shape}, got {value.shape}")
        copy = np.array(value, dtype=dtype, copy=True, order="C")
        if not np.all(np.isfinite(copy)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(copy))[0])
            raise ParamError(
                f"parameter '{name}' has a non-finite value {copy[bad]} at index {bad}"
            )
        out[name] = copy
    return out

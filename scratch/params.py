"""The canonical parameter layout, and the check ``set_params`` runs on a new dictionary.

A network with layer widths ``dims = (d_0, ..., d_L)`` has parameters

* ``W{i}`` of shape ``(d_i, d_{i+1})`` so that ``z_i = a_i @ W{i} + b{i}``;
* ``b{i}`` of shape ``(d_{i+1},)``;

for ``i = 0 .. L-1``, ordered ``W0, b0, W1, b1, ...``. NumPy only, like the rest of
this package.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


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


def validate_params(params: Mapping[str, np.ndarray], dims: tuple[int, ...],
                    dtype: np.dtype | str, error: type[ValueError] = ValueError
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
    error : subclass of ValueError
        What to raise; ``ValueError`` unless the caller wants its own kind.

    Raises
    ------
    ValueError (``error``)
        Missing or extra names, wrong shapes, non-numeric or non-finite values; the
        message names the parameter.
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

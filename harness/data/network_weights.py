"""Weight files of a layer network (conv layers included): its parameters and buffers.

:mod:`harness.data.weights` reads and writes an MLP's canonical tensors, which chain
into ``dims``. A layer network has more: a conv layer's ``W{k}`` of shape
**(out, in, kh, kw)** (torch's layout, not transposed), a batch norm's ``gamma{k}``,
``beta{k}`` and its running statistics. Here the network itself
(:class:`harness.model.layer_spec.ResolvedNetwork`, e.g. ``spec.network``) says which
tensors a file must hold and their shapes:

* :func:`save_network_weights` writes the parameters (and buffers, when given) of a
  network, checked against it, in either format of :mod:`harness.data.weights` (the
  suffix decides), with the layer list and the input shape in the metadata of a
  ``.safetensors`` file;
* :func:`load_network_weights` reads them back, refusing (WeightsError, one line naming
  the file and the tensor) a missing or extra tensor, a wrong shape, a dtype other than
  the model's, or a non-finite value.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from harness.data.weights import DTYPES, format_of, weights_bytes
from harness.errors import WeightsError


def _expected(network, with_buffers: bool) -> dict[str, tuple[int, ...]]:
    shapes = dict(network.param_shapes)
    if with_buffers:
        shapes.update(network.buffer_shapes)
    return shapes


def _fail(path, message: str) -> WeightsError:
    return WeightsError(f"weights file {str(path)!r}: {message}")


def _check(path, tensors: Mapping[str, np.ndarray], network, dtype: str | None,
           with_buffers: bool) -> dict[str, np.ndarray]:
    """``tensors`` as the network's, in its order, one float dtype, finite; else raises."""
    expected = _expected(network, with_buffers)
    for name, shape in expected.items():
        if name not in tensors:
            raise _fail(path, f"tensor {name!r} of shape {shape} is missing")
        have = tuple(np.shape(tensors[name]))
        if have != tuple(shape):
            raise _fail(path, f"tensor {name!r} has shape {have}, but the network needs "
                              f"{tuple(shape)}")
    extra = [n for n in tensors if n not in expected]
    if extra:
        raise _fail(path, f"unexpected tensor {extra[0]!r}; the network's are "
                          f"{', '.join(expected)}")
    dtypes = {np.asarray(v).dtype.name for v in tensors.values()}
    if len(dtypes) != 1 or next(iter(dtypes)) not in DTYPES:
        raise _fail(path, f"tensors must all be float32 or all float64, got "
                          f"{', '.join(sorted(dtypes))}")
    found = dtypes.pop()
    if dtype is not None and found != np.dtype(dtype).name:
        raise _fail(path, f"holds {found} tensors but the model is {np.dtype(dtype).name}")
    out = {}
    for name in expected:
        value = np.array(tensors[name], copy=True, order="C")
        bad = ~np.isfinite(value)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise _fail(path, f"tensor {name!r} has a non-finite value at index {where}; "
                              f"weights must be finite")
        out[name] = value
    return out


def save_network_weights(path: str | os.PathLike, params: Mapping[str, np.ndarray], network,
                         *, buffers: Mapping[str, np.ndarray] | None = None,
                         metadata: Mapping[str, str] | None = None,
                         replace: bool = False) -> Path:
    """Write ``params`` (and ``buffers``) of ``network`` to ``path``, atomically.

    Parameters
    ----------
    params : dict of str to ndarray
        Canonical names and shapes of ``network.param_shapes`` (a conv ``W{k}``
        (out, in, kh, kw)); all float32 or all float64.
    network : ResolvedNetwork
        E.g. ``spec.network``; its layer list and input shape go into the metadata.
    buffers : dict, optional
        ``network.buffer_shapes`` (batch norm's running statistics), stored beside.
    """
    from harness.data.atomic import atomic_write_bytes

    tensors = {**dict(params), **dict(buffers or {})}
    clean = _check(path, tensors, network, None, buffers is not None)
    meta = {"layers": ",".join(str(s) for s in network.layers),
            "input_shape": ",".join(map(str, network.input_shape)),
            "dtype": next(iter(clean.values())).dtype.name, **dict(metadata or {})}
    data = weights_bytes(clean, format_of(path), metadata=meta)
    try:
        return atomic_write_bytes(path, data, replace=replace)
    except FileExistsError:
        raise WeightsError(f"weights file {str(path)!r} already exists; choose another "
                           f"name or pass --force to replace it") from None


def _read(p: Path) -> dict[str, np.ndarray]:
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.numpy import load_file

            return dict(load_file(str(p)))
        if not zipfile.is_zipfile(p):
            raise _fail(p, "not a readable .npz file (not a zip archive as np.savez writes)")
        with np.load(p, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except WeightsError:
        raise
    except Exception as exc:  # a corrupt file raises from safetensors, zipfile or numpy
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise _fail(p, f"not a readable {p.suffix} file ({detail})") from None


def load_network_weights(path: str | os.PathLike, network, *, dtype=None,
                         with_buffers: bool = False) -> dict[str, np.ndarray]:
    """The tensors of a file :func:`save_network_weights` wrote, checked against
    ``network`` (names and shapes, ``dtype`` when given, finite).

    Returns the parameters (and, with ``with_buffers``, the buffers) in the network's
    order, fresh arrays.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file {str(p)!r} does not exist")
    format_of(p)
    return _check(p, _read(p), network, dtype, with_buffers)


__all__ = ["load_network_weights", "save_network_weights"]

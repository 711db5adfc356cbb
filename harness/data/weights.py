"""Weight files: the canonical parameters of a network, readable by every backend.

A weight file holds exactly the canonical tensors (:mod:`harness.model.layout`): ``W{i}``
of shape ``(d_i, d_{i+1})`` and ``b{i}`` of shape ``(d_{i+1},)`` for every layer, all
float32 or all float64, finite. Two formats:

``.safetensors`` (what :func:`save_weights` and ``nn-harness export`` write)
    Written and read with the safetensors library: a JSON header and raw little-endian
    data, no pickle, no code run on load. The header's metadata records
    ``format`` (:data:`FORMAT`), ``format_version``, ``dims``, ``dtype`` and whatever
    the writer adds (activation, seed, backend); it is informative only: the tensors
    decide.
``.npz``
    NumPy's zip of ``.npy`` arrays named ``W0``, ``b0``, ...; read with
    ``allow_pickle=False`` (an array of Python objects is refused). Written with a
    fixed timestamp, so the same parameters give the same bytes.

:func:`load_weights` checks a file before any array is allocated from it (shapes
and dtypes are read from the headers first) and raises
:class:`~harness.errors.WeightsError` with a one-line message naming the file and
the tensor: missing or extra tensors, wrong shapes, a dtype other than float32 or
float64 (or not the model's), non-finite values, a network whose widths differ from
the model's, a truncated or corrupt file.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import WeightsError
from harness.model.layout import param_shapes, validate_params

FORMAT = "nn-harness-weights"
FORMAT_VERSION = "1"
SUFFIXES: tuple[str, ...] = (".safetensors", ".npz")
DTYPES: tuple[str, ...] = ("float32", "float64")

_NAME = re.compile(r"^([Wb])(0|[1-9][0-9]*)$")
#: safetensors' dtype codes, named as NumPy names them
_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
              "F8_E4M3": "float8_e4m3", "F8_E5M2": "float8_e5m2", "I64": "int64",
              "I32": "int32", "I16": "int16", "I8": "int8", "U64": "uint64", "U32": "uint32",
              "U16": "uint16", "U8": "uint8", "BOOL": "bool"}
#: the timestamp of every member of a written .npz (the zip format's earliest)
_NPZ_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass
class WeightFile:
    """What :func:`read_weights` found in a file: checked on its own, not yet against a model.

    Attributes
    ----------
    path : Path
    params : dict of str to ndarray, in canonical order (``W0, b0, W1, ...``)
    dims : tuple of int, the layer widths the tensors chain into
    dtype : "float32" or "float64"
    metadata : dict of str to str (safetensors header metadata; empty for .npz)
    """

    path: Path
    params: dict[str, np.ndarray]
    dims: tuple[int, ...]
    dtype: str
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"weights file {str(self.path)!r}"


def _dims_text(dims) -> str:
    return ",".join(str(int(d)) for d in dims)


def _fail(path: Path, message: str) -> WeightsError:
    return WeightsError(f"weights file {str(path)!r}: {message}")


def _order(names) -> list[str]:
    def key(name):
        m = _NAME.match(name)
        return (int(m.group(2)), m.group(1) == "b")

    return sorted(names, key=key)


def _expected_names(n_layers: int) -> list[str]:
    return [f"{k}{i}" for i in range(n_layers) for k in "Wb"]


def _check_names(path: Path, names: list[str], dtypes: dict[str, str],
                 shapes: dict[str, tuple[int, ...]]) -> tuple[tuple[int, ...], str]:
    """Names, dtypes and shapes of the file on their own -> (dims, dtype); nothing read yet."""
    if not names:
        raise _fail(path, "holds no tensors; expected W0, b0, W1, b1, ... (the canonical "
                          "layout, as `nn-harness export` writes)")
    for name in sorted(names):
        if not _NAME.match(name):
            raise _fail(path, f"unexpected tensor {name!r}; a weight file holds only W0, b0, "
                              f"W1, b1, ... (the canonical layout)")
    n_layers = 1 + max(int(_NAME.match(n).group(2)) for n in names)
    expected = _expected_names(n_layers)
    for name in expected:
        if name not in names:
            raise _fail(path, f"tensor {name!r} is missing; a network of {n_layers} layer"
                              f"{'s' if n_layers != 1 else ''} needs {', '.join(expected)}")
    for name in expected:
        dt = dtypes[name]
        if dt not in DTYPES:
            raise _fail(path, f"tensor {name!r} has dtype {dt}; weights must be float32 or "
                              f"float64")
    first = dtypes[expected[0]]
    for name in expected:
        if dtypes[name] != first:
            raise _fail(path, f"tensor {name!r} is {dtypes[name]} but {expected[0]!r} is "
                              f"{first}; every tensor must have the same dtype")
    dims: list[int] = []
    for i in range(n_layers):
        w, b = shapes[f"W{i}"], shapes[f"b{i}"]
        if len(w) != 2:
            raise _fail(path, f"tensor 'W{i}' must be 2-D (inputs x outputs), got shape "
                              f"{tuple(w)}")
        if min(w) < 1:
            raise _fail(path, f"tensor 'W{i}' has an empty shape {tuple(w)}")
        if i == 0:
            dims.append(int(w[0]))
        elif w[0] != dims[-1]:
            raise _fail(path, f"tensor 'W{i}' has shape {tuple(w)}: {w[0]} inputs, but "
                              f"'W{i - 1}' has {dims[-1]} outputs; the layers do not chain")
        dims.append(int(w[1]))
        if tuple(b) != (w[1],):
            raise _fail(path, f"tensor 'b{i}' must have shape ({w[1]},) to match 'W{i}' "
                              f"{tuple(w)}, got {tuple(b)}")
    return tuple(dims), first


def _finite(path: Path, params: dict[str, np.ndarray]) -> None:
    for name, value in params.items():
        bad = ~np.isfinite(value)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise _fail(path, f"tensor {name!r} has a non-finite value {value[where]} at "
                              f"index {where}; weights must be finite")


# ------------------------------------------------------------------ reading
def _read_safetensors(path: Path) -> tuple[dict, tuple, str, dict]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            names = list(f.keys())
            metadata = dict(f.metadata() or {})
            dtypes, shapes = {}, {}
            for name in names:
                s = f.get_slice(name)
                raw = s.get_dtype()
                dtypes[name] = _ST_DTYPES.get(raw, raw)
                shapes[name] = tuple(int(d) for d in s.get_shape())
            dims, dtype = _check_names(path, names, dtypes, shapes)
            params = {name: np.array(f.get_tensor(name), dtype=dtype, copy=True)
                      for name in _expected_names(len(dims) - 1)}
    except WeightsError:
        raise
    except (SafetensorError, OSError, ValueError, TypeError, MemoryError) as exc:
        raise _fail(path, f"not a readable safetensors file ({_one_line(exc)})") from None
    return params, dims, dtype, metadata


def _npy_header(fh) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(fh)
    reader = getattr(np.lib.format, "_read_array_header", None)
    if reader is None:  # pragma: no cover - every numpy this runs on has it
        raise ValueError(f"unsupported .npy format version {version}")
    return reader(fh, version)


def _read_npz(path: Path) -> tuple[dict, tuple, str, dict]:
    if not zipfile.is_zipfile(path):
        raise _fail(path, "not a readable .npz file (truncated, or not a zip archive as "
                          "np.savez writes)")
    try:
        with zipfile.ZipFile(path) as zf:
            members = {}
            for member in zf.namelist():
                name = member.removesuffix(".npy")
                if name in members:
                    raise _fail(path, f"tensor {name!r} appears twice")
                members[name] = member
            dtypes, shapes = {}, {}
            for name, member in members.items():
                if not _NAME.match(name):
                    continue  # refused by _check_names, which names it
                with zf.open(member) as fh:
                    shape, _, dt = _npy_header(fh)
                if dt.hasobject:
                    raise _fail(path, f"tensor {name!r} holds Python objects, which are not "
                                      f"loaded (allow_pickle=False); save numbers only")
                dtypes[name] = dt.name  # byte order is converted on reading
                shapes[name] = tuple(int(d) for d in shape)
            dims, dtype = _check_names(path, list(members), dtypes, shapes)
            params = {}
            for name in _expected_names(len(dims) - 1):
                with zf.open(members[name]) as fh:
                    value = np.lib.format.read_array(fh, allow_pickle=False)
                params[name] = np.array(value, dtype=dtype, copy=True, order="C")
    except WeightsError:
        raise
    except Exception as exc:  # a corrupt archive raises from zipfile, zlib or numpy alike
        raise _fail(path, f"not a readable .npz file ({type(exc).__name__}: "
                          f"{_one_line(exc)})") from None
    return params, dims, dtype, {}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def read_weights(path: str | os.PathLike) -> WeightFile:
    """Read and check a weight file on its own (names, shapes, one float dtype, finite).

    Raises
    ------
    WeightsError
        A missing, empty, unreadable, truncated or corrupt file, or tensors that are
        not a canonical network; the message names the file and the tensor.
    """
    p = Path(path)
    if not p.exists():
        raise WeightsError(f"weights file {str(p)!r} does not exist")
    if p.is_dir():
        raise WeightsError(f"weights file {str(p)!r} is a folder, not a file")
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise WeightsError(f"weights file {str(p)!r}: unsupported type; give a .safetensors "
                           f"file (as `nn-harness export` writes) or an .npz file")
    try:
        size = p.stat().st_size
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise WeightsError(f"weights file {str(p)!r} cannot be read: {exc.strerror}") from None
    if size == 0:
        raise WeightsError(f"weights file {str(p)!r} is empty")
    reader = _read_safetensors if suffix == ".safetensors" else _read_npz
    params, dims, dtype, metadata = reader(p)
    _finite(p, params)
    return WeightFile(p, params, dims, dtype, metadata)


def fit_weights(weights: WeightFile, dims, dtype) -> dict[str, np.ndarray]:
    """The file's parameters for a model of ``dims`` and ``dtype``, or a WeightsError.

    The file must hold exactly the model's network (same widths) in the model's dtype.
    Returns fresh copies (:func:`harness.model.layout.validate_params`).
    """
    dims = tuple(int(d) for d in dims)
    dtype = np.dtype(dtype).name
    if weights.dims != dims:
        expected = param_shapes(dims)
        detail = ""
        for name, shape in expected.items():
            have = weights.params.get(name)
            if have is None:
                detail = f"tensor {name!r} is missing"
                break
            if have.shape != shape:
                detail = f"tensor {name!r} has shape {have.shape}, expected {shape}"
                break
        else:
            extra = [n for n in weights.params if n not in expected]
            detail = f"unexpected tensor {extra[0]!r}" if extra else ""
        raise WeightsError(f"{weights.label} holds a network with dims "
                           f"{_dims_text(weights.dims)}, but the model has dims "
                           f"{_dims_text(dims)}: {detail}")
    if weights.dtype != dtype:
        raise WeightsError(f"{weights.label} holds {weights.dtype} tensors but the model is "
                           f"{dtype}; pass --dtype {weights.dtype}, or export the weights in "
                           f"{dtype}")
    return validate_params(weights.params, dims, dtype)


def load_weights(path: str | os.PathLike, *, dims=None, dtype=None) -> dict[str, np.ndarray]:
    """Read a weight file; with ``dims`` and ``dtype``, check it fits that model.

    Returns the canonical parameters (``W0, b0, ...``), fresh arrays, in the file's
    dtype (or ``dtype``).
    """
    weights = read_weights(path)
    if dims is None and dtype is None:
        return {k: v.copy() for k, v in weights.params.items()}
    return fit_weights(weights, weights.dims if dims is None else dims,
                       weights.dtype if dtype is None else dtype)


# ------------------------------------------------------------------ writing
def weights_bytes(params: Mapping[str, np.ndarray], fmt: str, *,
                  metadata: Mapping[str, str] | None = None) -> bytes:
    """The bytes of a weight file in ``fmt`` ("safetensors" or "npz"); deterministic."""
    if fmt == "safetensors":
        from safetensors.numpy import save

        meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
                **{str(k): str(v) for k, v in (metadata or {}).items()}}
        raw = save({k: np.ascontiguousarray(v) for k, v in params.items()}, metadata=meta)
        return _canonical_header(raw)
    if fmt == "npz":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, value in params.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_NPZ_TIME)
                info.external_attr = 0o644 << 16
                with zf.open(info, "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.ascontiguousarray(value),
                                              allow_pickle=False)
        return buf.getvalue()
    raise WeightsError(f"unknown weight file format {fmt!r}; use safetensors or npz")


def _canonical_header(raw: bytes) -> bytes:
    """``raw`` with its JSON header's keys sorted, so the same tensors give the same bytes.

    (The safetensors library writes the metadata in hash-map order, which varies from
    run to run.) The data and its offsets are untouched; the header is padded with
    spaces to a multiple of 8 bytes, as the format does.
    """
    import json
    import struct

    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + raw[8 + n:]


def format_of(path: str | os.PathLike) -> str:
    """"safetensors" or "npz" from the file name, or a WeightsError."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise WeightsError(f"weights file {str(path)!r}: unsupported type; the name must end "
                           f"in .safetensors or .npz")
    return suffix[1:]


def save_weights(path: str | os.PathLike, params: Mapping[str, np.ndarray], *,
                 metadata: Mapping[str, str] | None = None, replace: bool = False) -> Path:
    """Write ``params`` (checked: canonical, one float dtype, finite) to ``path``, atomically.

    The format follows the suffix (``.safetensors`` or ``.npz``). ``replace=False``
    refuses an existing file (WeightsError), also one created while writing.
    """
    from harness.data.atomic import atomic_write_bytes
    from harness.model.layout import dims_from_params

    fmt = format_of(path)
    params = dict(params)
    dims = dims_from_params(params)
    dtypes = {np.asarray(v).dtype.name for v in params.values()}
    if len(dtypes) != 1 or next(iter(dtypes)) not in DTYPES:
        raise WeightsError(f"weights must all be float32 or all float64, got "
                           f"{', '.join(sorted(dtypes))}")
    dtype = dtypes.pop()
    clean = validate_params(params, dims, dtype)
    meta = {"dims": _dims_text(dims), "dtype": dtype, **(metadata or {})}
    data = weights_bytes(clean, fmt, metadata=meta)
    try:
        return atomic_write_bytes(path, data, replace=replace)
    except FileExistsError:
        raise WeightsError(f"weights file {str(path)!r} already exists; choose another "
                           f"name or pass --force to replace it") from None


__all__ = ["FORMAT", "FORMAT_VERSION", "SUFFIXES", "WeightFile", "fit_weights", "format_of",
           "load_weights", "read_weights", "save_weights", "weights_bytes"]

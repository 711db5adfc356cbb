"""The values of a sweep's ``[grid]`` table, each key checked before any work: the
one-line refusals (:func:`fail`), the value rules, and the network and loss factors
(``hidden``/``dims``/``layers``, the losses in the combinations that apply)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache
from typing import Any

from harness.errors import ConfigError

_GRID_DEFAULTS: dict[str, list] = {
    "dataset": ["digits"],
    "hidden": [[32]],
    "activation": ["relu"],
    "dtype": ["float64"],
    "optimizer": ["adam"],
    "lr": [1e-3],
    "weight_decay": [1e-4],
    "momentum": [0.0],
    "nesterov": [False],
    "betas": [[0.9, 0.999]],
    "eps": [1e-8],
    "batch_size": [32],
    "seed": [0],
    "loss_reduction": ["mean"],
    "weight_decay_in": ["optimizer"],
    "weight_decay_on": ["all"],
    "loss": ["cross_entropy"],
    "loss_outputs": ["mean"],
    "mse_half": [False],
}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"`{where}` {message}")


def _values(grid: dict, key: str) -> list:
    """The list of values of a grid factor (a bare scalar is a list of one)."""
    value = grid.get(key, _GRID_DEFAULTS.get(key))
    if key in ("hidden", "dims", "betas"):  # values that are lists themselves
        if not isinstance(value, list) or not value or not all(isinstance(v, list) for v in value):
            example = {"hidden": "[[32], [16, 16]]", "dims": "[[64, 32, 10]]",
                       "betas": "[[0.9, 0.999]]"}[key]
            raise _fail(f"grid.{key}", f"must be a non-empty list of lists, e.g. {example}; "
                                       f"got {value!r}")
        return value
    if not isinstance(value, list):
        value = [value]
    if not value:
        raise _fail(f"grid.{key}", "must list at least one value")
    return value


def _checked(key: str, values: list, check: Callable[[Any], Any]) -> list:
    """Each value through ``check`` (which normalises it or raises ConfigError); no repeats."""
    out = []
    for i, v in enumerate(values):
        where = f"grid.{key}" if len(values) == 1 else f"grid.{key}[{i}]"
        try:
            norm = check(v)
        except ConfigError as exc:
            raise _fail(where, str(exc).replace(f"`{key}` ", "")) from None
        if norm in out:
            raise _fail(f"grid.{key}", f"lists {v!r} twice")
        out.append(norm)
    return out


def _one_of(names) -> Callable:
    def check(v):
        if not isinstance(v, str) or v not in names:
            raise ConfigError(f"must be one of {', '.join(names)}, got {v!r}")
        return v
    return check


def _number(*, minimum: float, strict: bool, below: float | None = None) -> Callable:
    def check(v):
        bad = not _is_number(v) or not math.isfinite(v) or v < minimum or (strict and v == minimum)
        if below is not None and not bad:
            bad = v >= below
        if bad:
            rng = f"{'>' if strict else '>='} {minimum:g}"
            if below is not None:
                rng = f"in [{minimum:g}, {below:g})"
            raise ConfigError(f"must be a finite number {rng}, got {v!r}")
        return float(v)
    return check


def _integer(minimum: int) -> Callable:
    def check(v):
        if not _is_int(v) or v < minimum:
            raise ConfigError(f"must be an integer >= {minimum}, got {v!r}")
        return int(v)
    return check


def _bool(v):
    if not isinstance(v, bool):
        raise ConfigError(f"must be true or false, got {v!r}")
    return v


def _widths(allow_empty: bool) -> Callable:
    def check(v):
        if not all(_is_int(d) and d >= 1 for d in v) or (not v and not allow_empty):
            raise ConfigError(f"must hold positive integer widths, got {v!r}")
        return tuple(v)
    return check


def _betas(v):
    if len(v) != 2 or not all(_is_number(b) and 0 <= b < 1 for b in v):
        raise ConfigError(f"must be pairs of numbers in [0, 1), got {v!r}")
    return (float(v[0]), float(v[1]))


@cache
def _data_shape(name: str) -> tuple[int, int, int]:
    """(samples, features, classes) of a built-in data set."""
    from harness.data.datasets import load_dataset

    data = load_dataset(name)
    return len(data), data.n_features, data.n_classes


def _grid_net(grid: dict, datasets: list, shapes: list | None = None) -> tuple[str, list]:
    """The network factor of a grid: ``("dims", ...)``, each fitting every data set, or
    ``("hidden", ...)`` widths, or ``("layers", ...)`` layer lists fitting every data set
    (as images of every one of ``shapes`` when they are given)."""
    if "layers" in grid:
        return ("layers", _grid_layers(grid, datasets, shapes or [None]))
    if "dims" in grid:
        dims = _checked("dims", _values(grid, "dims"), _widths(False))
        for i, d in enumerate(dims):
            if len(d) < 2:
                raise _fail(f"grid.dims[{i}]", f"needs at least two widths (features, "
                                               f"classes), got {list(d)}")
            for name in datasets:
                _, n_feat, n_cls = _data_shape(name)
                if d[0] != n_feat or d[-1] != n_cls:
                    raise _fail(f"grid.dims[{i}]", f"{list(d)} does not fit dataset {name!r} "
                                                   f"({n_feat} features, {n_cls} classes); give "
                                                   f"`hidden` widths instead so that the ends "
                                                   f"come from each data set")
        return ("dims", dims)
    return ("hidden", _checked("hidden", _values(grid, "hidden"), _widths(True)))


def _grid_losses(grid: dict) -> list[tuple[str, str, bool]]:
    """``(loss, loss_outputs, mse_half)`` of every loss the grid lists, the combinations
    that apply only (an output reduction to bce and mse, the 1/2 to mse)."""
    from harness.model.specs import LOSS_NAMES, LOSS_OUTPUTS

    losses = _checked("loss", _values(grid, "loss"), _one_of(LOSS_NAMES))
    outputs = _checked("loss_outputs", _values(grid, "loss_outputs"),
                       _one_of(LOSS_OUTPUTS))
    halves = _checked("mse_half", _values(grid, "mse_half"), _bool)
    out = []
    for loss in losses:
        for o in (outputs if loss != "cross_entropy" else ["mean"]):
            for h in (halves if loss == "mse" else [False]):
                if (loss, o, h) not in out:
                    out.append((loss, o, h))
    if "loss_outputs" in grid and not any(loss != "cross_entropy" for loss in losses):
        raise _fail("grid.loss_outputs", "applies to the bce and mse losses, and `grid.loss` "
                                         "lists neither")
    if "mse_half" in grid and "mse" not in losses:
        raise _fail("grid.mse_half", "applies to the mse loss, and `grid.loss` does not list it")
    return out


def _grid_input_shapes(grid: dict, datasets: list) -> list[tuple[int, int, int]]:
    """``grid.input_shape``: image shapes [C, H, W] the data sets are reshaped to (C order),
    each holding every data set's features; [] when not given. Only with ``grid.layers``."""
    if "input_shape" not in grid:
        return []
    if "layers" not in grid:
        raise _fail("grid.input_shape", "goes with `grid.layers` (a network of conv2d, pool "
                                        "and flatten layers on images (N, C, H, W))")
    value = grid["input_shape"]
    values = value if value and isinstance(value[0], list) else [value]
    out = []
    for i, shape in enumerate(values):
        if (not isinstance(shape, list) or len(shape) != 3
                or not all(_is_int(d) and d >= 1 for d in shape)):
            raise _fail(f"grid.input_shape[{i}]", f"must be [C, H, W], three positive "
                                                  f"integers of images (N, C, H, W), got "
                                                  f"{shape!r}")
        for name in datasets:
            _, n_feat, _ = _data_shape(name)
            if shape[0] * shape[1] * shape[2] != n_feat:
                raise _fail(f"grid.input_shape[{i}]", f"{shape} holds C*H*W = "
                                                      f"{shape[0] * shape[1] * shape[2]} values, "
                                                      f"but dataset {name!r} has {n_feat} "
                                                      f"features; they must be equal")
        out.append(tuple(int(d) for d in shape))
    return out


def _grid_layers(grid: dict, datasets: list, shapes: list) -> list[str]:
    """The layer lists of ``grid.layers`` (canonical strings), each fitting every data set
    (reshaped to each of ``shapes``; ``[None]``: as rows)."""
    from harness.model.layer_spec import LayerSpec, parse, resolve

    values = _values(grid, "layers")
    out = []
    for i, text in enumerate(values):
        if not isinstance(text, str):
            raise _fail(f"grid.layers[{i}]", f"must be a string like \"linear(32),batchnorm,"
                                             f"relu,linear(10)\", got {text!r}")
        try:
            canonical = ",".join(str(LayerSpec(s.name, s.args)) for s in parse(text))
        except ConfigError as exc:
            raise _fail(f"grid.layers[{i}]", f"{text!r}: {exc}") from None
        for name in datasets:
            _, n_feat, n_cls = _data_shape(name)
            for shape in shapes:
                try:
                    resolve(canonical, shape or n_feat, n_cls)
                except ConfigError as exc:
                    what = f"{n_feat} features" if shape is None else f"images {shape}"
                    raise _fail(f"grid.layers[{i}]", f"{text!r} does not fit dataset {name!r} "
                                                     f"({what}, {n_cls} classes): "
                                                     f"{exc}") from None
        out.append(canonical)
    return out

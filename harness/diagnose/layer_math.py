"""A layer network written out in float64, and its classic wrong versions.

The likely causes for layer networks (:mod:`harness.diagnose.layers`) compare the
candidate with this emulation at the same weights, buffers and dropout masks: when the
plain emulation reproduces the reference and one wrong version reproduces the
candidate, that version is the evidence. The wrong versions (:data:`VARIANTS`):

==========================  ==========================================================
``bn_eps_outside``          batch norm divides by sqrt(var) + eps
``bn_axis1``                batch norm's training statistics per row (axis=1); the
                            running statistics still per feature
``bn_missing_term``         batch norm's backward without - xhat * sum(dxhat * xhat)
``ln_axis0``                layer norm's statistics over the batch (axis=0)
``dropout_not_inverted``    kept units unscaled in training, x * (1 - p) in evaluation
``dropout_keep_as_p``       kept units scaled by 1/p, p taken as the keep probability
==========================  ==========================================================

The network is the resolved one, as ``(name, kwargs)`` tuples (``ResolvedNetwork.plain``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

VARIANTS = ("bn_eps_outside", "bn_axis1", "bn_missing_term", "ln_axis0",
            "dropout_not_inverted", "dropout_keep_as_p")

_erf = np.vectorize(math.erf)


@dataclass(frozen=True)
class Conventions:
    """Batch norm's: the weight of the new batch statistic in the running average, the
    running variance unbiased or not, eps; the loss reduction."""

    new_weight: float
    unbiased: bool
    eps: float
    reduction: str = "mean"

    @classmethod
    def of(cls, spec) -> Conventions:
        m = spec.bn_momentum
        return cls(m if spec.bn_momentum_convention == "torch" else 1.0 - m,
                   spec.bn_running_var == "unbiased", spec.norm_eps,
                   getattr(spec, "loss_reduction", "mean"))


# ------------------------------------------------------------------ activations
def _act(name: str, z: np.ndarray, slope: float) -> tuple[np.ndarray, np.ndarray]:
    """The activation and its derivative at z."""
    if name == "relu":
        return np.maximum(z, 0), (z > 0).astype(float)
    if name == "leaky_relu":
        return np.where(z > 0, z, slope * z), np.where(z > 0, 1.0, slope)
    if name == "tanh":
        a = np.tanh(z)
        return a, 1 - a ** 2
    if name == "sigmoid":
        a = 1 / (1 + np.exp(-z))
        return a, a * (1 - a)
    cdf = 0.5 * (1 + _erf(z / math.sqrt(2)))  # gelu, exact
    return z * cdf, cdf + z * np.exp(-z ** 2 / 2) / math.sqrt(2 * math.pi)


# ------------------------------------------------------------------ normalisation
def _normalise(x, axis: int, eps: float, eps_outside: bool):
    """(xhat, std) with the statistics over ``axis`` (biased variance)."""
    mu = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, keepdims=True)
    std = np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps)
    return (x - mu) / std, std


def _norm_backward(dxhat, xhat, std, axis: int, missing_term: bool = False):
    # dx = (1 / (n std)) (n dxhat - sum dxhat - xhat sum(dxhat xhat)), sums over ``axis``
    n = dxhat.shape[axis]
    inner = n * dxhat - dxhat.sum(axis=axis, keepdims=True)
    if not missing_term:
        inner = inner - xhat * (dxhat * xhat).sum(axis=axis, keepdims=True)
    return inner / (n * std)


def _running(buffers: dict, k: int, x: np.ndarray, conv: Conventions) -> None:
    # r = (1 - w) r + w * batch; the variance N/(N-1) times the biased one when unbiased
    n, w = x.shape[0], conv.new_weight
    var = x.var(axis=0) * (n / (n - 1) if conv.unbiased else 1.0)
    for name, stat in ((f"running_mean{k}", x.mean(axis=0)), (f"running_var{k}", var)):
        buffers[name] = (1 - w) * buffers[name] + w * stat


# ------------------------------------------------------------------ the passes
def _forward(layers, params, buffers, x, masks, conv: Conventions, variant, train: bool):
    """Logits and the caches; ``buffers`` updated in place by a training pass."""
    h, caches = x, []
    masks = iter(masks or [])
    for name, kw in layers:
        cache = None
        k = kw.get("index")
        if name == "linear":
            cache, h = h, h @ params[f"W{k}"] + params[f"b{k}"]
        elif name == "batchnorm":
            if train:
                axis = 1 if variant == "bn_axis1" else 0
                xhat, std = _normalise(h, axis, conv.eps, variant == "bn_eps_outside")
                _running(buffers, k, h, conv)
            else:
                axis, std = None, (np.sqrt(buffers[f"running_var{k}"]) + conv.eps
                                   if variant == "bn_eps_outside"
                                   else np.sqrt(buffers[f"running_var{k}"] + conv.eps))
                xhat = (h - buffers[f"running_mean{k}"]) / std
            cache, h = (xhat, std, axis), params[f"gamma{k}"] * xhat + params[f"beta{k}"]
        elif name == "layernorm":
            axis = 0 if variant == "ln_axis0" else 1
            xhat, std = _normalise(h, axis, conv.eps, False)
            cache, h = (xhat, std, axis), params[f"gamma{k}"] * xhat + params[f"beta{k}"]
        elif name == "dropout":
            p = kw["p"]
            if train:
                keep = 1.0 - p if variant != "dropout_keep_as_p" else p
                scale = 1.0 if variant == "dropout_not_inverted" else 1.0 / keep
                cache = np.asarray(next(masks), dtype=np.float64) * scale
                h = h * cache
            elif variant == "dropout_not_inverted":
                cache, h = 1.0 - p, h * (1.0 - p)
        else:
            h, cache = _act(name, h, kw.get("slope", 0.01))
        caches.append(cache)
    return h, caches


def _loss(z: np.ndarray, y: np.ndarray, reduction: str) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy and dL/dz."""
    m = z.max(axis=1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    d = np.exp(logp)
    d[rows, y] -= 1
    div = len(y) if reduction == "mean" else 1
    return float(-logp[rows, y].sum() / div), d / div


def _backward(layers, params, caches, d, variant) -> dict:
    grads = {}
    for (name, kw), cache in zip(reversed(layers), reversed(caches)):
        k = kw.get("index")
        if name == "linear":
            grads[f"W{k}"], grads[f"b{k}"] = cache.T @ d, d.sum(axis=0)
            d = d @ params[f"W{k}"].T
        elif name in ("batchnorm", "layernorm"):
            xhat, std, axis = cache
            grads[f"gamma{k}"], grads[f"beta{k}"] = (d * xhat).sum(axis=0), d.sum(axis=0)
            dxhat = d * params[f"gamma{k}"]
            d = dxhat / std if axis is None else _norm_backward(
                dxhat, xhat, std, axis, variant == "bn_missing_term")
        elif name == "dropout":
            d = d if cache is None else d * cache
        else:
            d = d * cache
    return grads


def forward_output(layers, params: dict, buffers: dict, x, conv: Conventions,
                   variant: str | None = None) -> np.ndarray:
    """The evaluation output of ``layers`` (any prefix of a network), float64."""
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    buffers = {k: np.asarray(v, dtype=np.float64) for k, v in buffers.items()}
    x = np.asarray(x, dtype=np.float64)
    return _forward(layers, params, buffers, x, None, conv, variant, False)[0]


def emulate(layers, params: dict, buffers: dict, x, y, masks, conv: Conventions,
            variant: str | None = None) -> dict:
    """What the protocol's calls return, in order, for the emulated network.

    Parameters
    ----------
    layers : list of (name, kwargs)
    params, buffers : dict of ndarray
        The starting weights and running statistics (not changed).
    x : ndarray (N, D), y : ndarray of int (N,)
    masks : list of 0/1 ndarray (N, width), one per dropout layer
        Those of the first training pass.
    variant : one of :data:`VARIANTS`, optional

    Returns
    -------
    dict
        ``eval0`` (forward at the start), ``loss`` and ``grads`` (the first training
        pass), ``buffers1`` (after it) and ``eval1`` (forward after it).
    """
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    buffers = {k: np.array(v, dtype=np.float64, copy=True) for k, v in buffers.items()}
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    out = {"eval0": _forward(layers, params, buffers, x, None, conv, variant, False)[0]}
    z, caches = _forward(layers, params, buffers, x, masks, conv, variant, True)
    out["loss"], dz = _loss(z, y, conv.reduction)
    out["grads"] = _backward(layers, params, caches, dz, variant)
    out["buffers1"] = {k: v.copy() for k, v in buffers.items()}
    out["eval1"] = _forward(layers, params, buffers, x, None, conv, variant, False)[0]
    return out

"""Telling a kink of relu or leaky_relu from a wrong gradient in a finite-difference check.

An entry whose perturbation moves a hidden pre-activation across 0 has a central
difference that mixes two slopes; :func:`harness.gradients.finite_diff.gradcheck` skips it. How a
kink is recognised (the module docstring of :mod:`harness.gradients.finite_diff`, "Kinks"):

* :data:`PRE_ACTIVATIONS`: a sign change of a hidden ``z`` between ``p + eps`` and
  ``p - eps`` (:func:`hidden_signs`, :func:`crosses_zero`), for models exposing
  intermediates;
* :data:`ONE_SIDED`: for a failing entry, the one-sided differences
  (:func:`one_sided_kink`) and, when they do not tell, the model's gradient across the
  interval (:func:`bends_around`);
* max pool (a layer network with ``maxpool2d``): its gradient goes to one entry of each
  window, so the loss has a kink wherever two entries of a window tie. A failing entry
  whose perturbation changes the winner of some window between ``p + eps`` and
  ``p - eps`` (:func:`pool_winners`; a tie, or a near-tie within the step) is a kink;
  the one-sided tests above apply as well.

:func:`kink_mode` picks the way for a model.
"""

from __future__ import annotations

import math

import numpy as np

from harness.model.protocol import ExposesIntermediates

KINKED_ACTIVATIONS = ("relu", "leaky_relu")
#: layers other than the activations whose output has kinks (ties within a window)
KINKED_LAYERS = ("maxpool2d",)
PRE_ACTIVATIONS = "pre-activations"
ONE_SIDED = "one-sided differences"


def kink_mode(activation: str | None, n_hidden: int, model) -> str:
    """How kinks are detected for ``model``: one of the module's modes, or ``"none ..."``.

    Parameters
    ----------
    activation : str or None
        The hidden activation, None when the model does not name it.
    n_hidden : int
        Hidden layers.
    model : Classifier
        The model the differences are computed on.
    """
    if activation is not None and activation not in KINKED_ACTIVATIONS:
        return f"none needed ({activation} is smooth)"
    if n_hidden == 0:
        return "none needed (no hidden layer)"
    if isinstance(model, ExposesIntermediates):
        return PRE_ACTIVATIONS
    return ONE_SIDED


def hidden_signs(model, x, y, first: int, n_hidden: int) -> list[np.ndarray]:
    """Signs of the hidden pre-activations z_first .. z_{n_hidden - 1}."""
    inter = model.intermediates(x, y)
    return [np.asarray(inter[f"z{i}"]) > 0 for i in range(first, n_hidden) if f"z{i}" in inter]


def crosses_zero(signs_plus: list[np.ndarray], signs_minus: list[np.ndarray]) -> bool:
    """Whether any hidden pre-activation has another sign at ``p + eps`` than at ``p - eps``."""
    return any(bool(np.any(zp != zm)) for zp, zm in zip(signs_plus, signs_minus))


def one_sided_kink(loss0: float, loss_p: float, loss_m: float, orig: float, plus: float,
                   minus: float, diff: float, allowed: float) -> bool:
    """Whether a single kink within ``eps`` explains an entry's error ``diff``.

    The forward and backward differences ``f`` and ``b`` differ by more than twice the
    tolerance ``allowed`` and ``diff`` lies between ``|f - b| / 4`` and ``|f - b|``.
    """
    fwd = (loss_p - loss0) / (float(plus) - float(orig))
    bwd = (loss0 - loss_m) / (float(orig) - float(minus))
    spread = abs(fwd - bwd)
    return spread > 2 * allowed and spread / 4 <= diff <= spread


def bends_around(g: list[float], numerical: float, allowed: float, atol: float,
                 rtol: float) -> bool:
    """Whether the gradients ``g`` at p - eps, p - eps/2, p, p + eps/2, p + eps show a
    loss that bends within the interval in a way that explains ``numerical``.

    ``numerical`` is the mean slope over the interval, that is the mean of the true
    gradient there. Either it agrees with Simpson's estimate of the mean of ``g``
    (the model's gradient is consistent with its loss across the interval, only not
    linear: many kinks, or strong curvature), or ``g`` is far from linear (some second
    difference beyond a quarter of its end-to-end change) and ``numerical`` lies within
    its range (a few kinks between the sample points).
    """
    if not all(math.isfinite(v) for v in g):
        return False
    lo, hi = min(g), max(g)
    if hi - lo <= allowed:  # the gradient hardly changes: nothing bends
        return False
    simpson = (g[0] + 4 * g[1] + 2 * g[2] + 4 * g[3] + g[4]) / 12
    if abs(numerical - simpson) <= atol + rtol * max(abs(numerical), abs(simpson)):
        return True
    bend = max(abs(g[i - 1] - 2 * g[i] + g[i + 1]) for i in range(1, len(g) - 1))
    return (bend > max(allowed, abs(g[-1] - g[0]) / 4)
            and lo - allowed <= numerical <= hi + allowed)


def pool_layers(layers) -> tuple[tuple[int, dict], ...]:
    """``(position, settings)`` of every max-pool layer of a resolved layer list."""
    return tuple((i, dict(kw)) for i, (name, kw) in enumerate(layers or ())
                 if name == "maxpool2d")


def pool_winners(model, x, y, pools) -> list[np.ndarray]:
    """For every max-pool layer of ``pools``, the winning entry of each window
    (row-major index within the window), of shape (N, C, H_out, W_out).

    A pool's input is the output ``out{i-1}`` of the layer before it in
    ``intermediates(x, y)`` (``x`` itself for the first layer); a pool whose input is
    not there is left out.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    inter = model.intermediates(x, y)
    winners = []
    for i, kw in pools:
        a = x if i == 0 else inter.get(f"out{i - 1}")
        shape = kw.get("in_shape")
        if a is None or shape is None:
            continue
        a = np.asarray(a).reshape((len(x), *shape))
        k, s = int(kw["kernel"]), int(kw["stride"])
        windows = sliding_window_view(a, (k, k), axis=(2, 3))[:, :, ::s, ::s]
        windows = windows[:, :, :kw["out_shape"][1], :kw["out_shape"][2]]
        winners.append(windows.reshape(*windows.shape[:4], k * k).argmax(axis=-1))
    return winners


def winner_changes(plus: list[np.ndarray], minus: list[np.ndarray]) -> bool:
    """Whether any max-pool window has another winner at ``p + eps`` than at ``p - eps``."""
    return any(bool(np.any(wp != wm)) for wp, wm in zip(plus, minus))

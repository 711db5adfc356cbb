"""Finite-difference gradient check of any ``Classifier``.

For every parameter entry ``p`` that is checked, the loss the model's own
``loss_and_grads`` returns is evaluated at ``p + eps`` and ``p - eps`` (every other
entry fixed) and the central difference

    n = (L(p + eps) - L(p - eps)) / (2 eps)

is compared with the analytic gradient ``a`` the model returns at ``p``. An entry
passes when

    |a - n| <= atol * scale + rtol * max(|a|, |n|)

with ``scale = max(1, |L|, max|logits|)`` at the unperturbed parameters: the
rounding noise of a central difference is about ``u * scale / eps`` (``u`` the
unit roundoff), so the absolute floor grows with the magnitudes the loss is
computed from. The relative error reported is ``|a - n| / max(|a|, |n|, tiny)``,
taken over the entries whose magnitude exceeds that floor (below it, a relative
error measures noise, not the gradient).

Precision
---------
Central differences need float64. A float64 model is checked as it is. A float32
model is checked through a float64 copy of its parameters where the class allows:

* the built-in classes (``scratch.MLP``, ``scratch.reference.ReferenceMLP`` and
  ``torch_impl.TorchClassifier``, exact types) are rebuilt in float64 by the harness;
* any class may define the optional hook ``as_float64(self) -> Classifier``,
  returning an independent float64 instance with the same (up-cast) parameters;
  the harness uses it when present.

Otherwise (a user class without the hook, or a subclass of a built-in) the check
runs in float32 with float32 defaults: ``eps = 1e-3``, ``rtol = 1e-2`` and
``atol = 1e-3``. In float32 the loss carries a rounding error of about
``6e-8 * scale`` per evaluation, so a central difference with ``eps = 1e-3`` has
noise near ``1e-4 * scale``, and its truncation error ``eps**2 * L''' / 6`` is of
order ``1e-7``; these bounds catch errors of the gradient's own size (a factor,
a missing mask, most wrong derivatives) but not subtle ones: a leaky_relu
derivative that drops the 0.01 slope, a 1% effect, passes. The report states
which way the check ran.

Defaults in float64: ``eps = 1e-6``, ``rtol = 1e-5``, ``atol = 1e-8``. The
truncation error ``eps**2 * L''' / 6`` is near 1e-13 and the rounding noise near
``1e-10 * scale``, both far below.

Kinks
-----
relu and leaky_relu have a kink at 0. An entry whose perturbation moves some
hidden pre-activation across 0 has a central difference that mixes two slopes;
such an entry is reported as skipped and never counted as a failure. It is
detected

* from the pre-activations ``z{i}`` of ``intermediates(x, y)`` (the optional
  :class:`harness.model.protocol.ExposesIntermediates` extension) at ``p + eps`` and
  ``p - eps``: a sign change of any hidden ``z`` is a kink. Used when the model
  exposes intermediates and its activation is relu, leaky_relu or not known
  (read from ``model.activation`` or ``model.spec.activation``);
* otherwise, for an entry that fails the tolerance, from the one-sided differences
  ``f = (L(p + eps) - L(p)) / eps`` and ``b = (L(p) - L(p - eps)) / eps``. At a
  single kink within ``eps`` the central difference is off by exactly
  ``|f - b| / 2``; on a smooth function ``|f - b|`` is about ``eps * |L''|`` while
  the central difference is off by only about ``eps**2 * |L'''| / 6``. The entry
  is taken as a kink when ``|f - b|`` exceeds twice its tolerance and its error
  ``|a - n|`` lies between ``|f - b| / 4`` and ``|f - b|``. Several kinks within
  ``eps`` can make ``f`` and ``b`` agree. Since ``n`` is the mean of the true
  gradient over the interval, the model's own gradient is then evaluated at
  ``p - eps``, ``p - eps/2``, ``p``, ``p + eps/2``, ``p + eps`` (two more
  evaluations, for failing entries only); where it varies by more than the
  tolerance, the entry is taken as a kink when ``n`` agrees within tolerance with
  Simpson's estimate of its mean (the gradient is consistent with the loss across
  the interval, which merely bends), or when it is far from linear (a second
  difference beyond a quarter of its end-to-end change) and ``n`` lies within its
  range (kinks between the sample points). A wrong gradient (a factor, a wrong
  derivative, a missing mask) matches none of these signatures. In this mode the
  kinks count covers only the kinks that changed a verdict.

Max pool has a kink wherever two entries of a window tie (its gradient goes to one
of them, the first in row-major order). In a layer network with ``maxpool2d`` the
one-sided test runs, and a failing entry whose perturbation changes the winner of a
window between ``p + eps`` and ``p - eps`` (a tie, or a near-tie within the step;
read from the pool's input in ``intermediates``) is a kink too.

The one-sided test runs only for activations with kinks (relu, leaky_relu), for max
pool, and for models that do not name their activation; for a smooth one (tanh, sigmoid, gelu) no
entry is ever skipped, whether or not the model exposes intermediates.

Verdicts
--------
Each parameter is PASS (every verified entry agrees), FAIL (some entry differs) or
NOT CHECKED (every checked entry was skipped at a kink: nothing verified, never a
pass). The report's ``status`` is FAIL when any parameter fails, else NOT CHECKED
when any parameter (or the whole model) could not be checked, else PASS; ``passed``
is ``status == "PASS"`` and the CLI exits 1 for FAIL and NOT CHECKED alike. A model
whose arithmetic is not in the dtype it claims (logits, loss or gradients of another
dtype, or a loss whose finite differences are rounding noise: a five-point probe on
the output bias) is NOT CHECKED with that reason (``arithmetic_problem``): its
differences are noise, and no entry is called a kink. The report counts parameters,
entries checked, verified, failed and skipped (and why).

For a large parameter, ``max_entries`` picks a seeded random subset of its
entries; the report states how many entries of each parameter were checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.compare.equivalence import model_dtype, validate_batch
from harness.errors import ConfigError
from harness.model.conventions import activation_of
from harness.model.layer_spec import layer_list
from harness.model.masks import find_own_masks, held_masks, unwrap
from harness.model.transfer import has_buffers
from harness.gradients.kinks import (
    KINKED_ACTIVATIONS, KINKED_LAYERS, ONE_SIDED, PRE_ACTIVATIONS, bends_around, crosses_zero,
    hidden_signs, kink_mode, one_sided_kink, pool_layers, pool_winners, winner_changes,
)
from harness.model.precision import (
    arithmetic_problem, float64_copy,
)
from harness.gradients.gradcheck_report import GradcheckReport, ParamCheck

#: (eps, rtol, atol) by the dtype the check computes in; see the module docstring
GRADCHECK_DEFAULTS: dict[str, tuple[float, float, float]] = {
    "float64": (1e-6, 1e-5, 1e-8),
    "float32": (1e-3, 1e-2, 1e-3),
}

_TINY = np.finfo(np.float64).tiny


def _validate(eps, rtol, atol, max_entries, seed) -> None:
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, (int, float))
                            or not math.isfinite(eps) or eps <= 0):
        raise ConfigError(f"`eps` must be > 0, got {eps}")
    if (rtol is None) != (atol is None):
        raise ConfigError(f"give both `rtol` and `atol` or neither, got rtol={rtol}, atol={atol}")
    for key, value in (("rtol", rtol), ("atol", atol)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            raise ConfigError(f"`{key}` must be a finite number >= 0, got {value!r}")
    if max_entries is not None and (isinstance(max_entries, bool)
                                    or not isinstance(max_entries, (int, np.integer))
                                    or max_entries < 1):
        raise ConfigError(f"`max_entries` must be a positive integer or None, got {max_entries!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"`seed` must be an integer >= 0, got {seed!r}")


def _entry(grads, name: str, flat: int) -> float:
    """One entry of a gradient dict, NaN when it is missing or malformed."""
    try:
        return float(np.asarray(grads[name]).reshape(-1)[flat])
    except (KeyError, IndexError, TypeError, ValueError):
        return math.nan


def gradcheck(model, x, y, *, eps: float | None = None, atol: float | None = None,
              rtol: float | None = None, max_entries: int | None = None, seed: int = 0,
              name: str | None = None, layers: list | None = None,
              activation: str | None = None) -> GradcheckReport:
    """Check ``model``'s analytic gradients against central differences of its loss.

    Parameters
    ----------
    model : Classifier
        Any class implementing the protocol (built-in or the user's own).
    x : ndarray of shape (N, d_0)
    y : ndarray of int, shape (N,)
    eps : float, optional
        Half-width of the central difference; default 1e-6 (float64), 1e-3 when the
        check runs in float32 (see the module docstring).
    rtol, atol : float, optional
        Both or neither; defaults from :data:`GRADCHECK_DEFAULTS`.
    max_entries : int, optional
        Check at most this many entries of each parameter, a random subset drawn
        from ``seed``; default: every entry.
    seed : int
        Seed of that subset.
    name : str, optional
        The model's name in the report.
    layers : list of (name, kwargs), optional
        The layer list of a layer network (``ModelSpec.network.plain()``), when the model
        does not say (:func:`harness.model.layer_spec.layer_list`): its activations tell
        where kinks can be.
    activation : str, optional
        The hidden activation the model was built with, when the model does not name it
        (the spec's; e.g. ``--activation``).

    Returns
    -------
    GradcheckReport
        ``.passed``, ``.table`` (pandas), ``.to_dict()``, printable.

    The model's parameters are perturbed in place and restored before returning.
    """
    from harness.model.registry import check_protocol

    name = name or type(unwrap(model)).__name__
    check_protocol(model, name)
    _validate(eps, rtol, atol, max_entries, seed)
    dims = tuple(model.dims)
    x, y = validate_batch(x, y, dims, model)
    original_dtype = model_dtype(model)
    target, precision = _float64_target(model, original_dtype)
    dtype = model_dtype(target)
    key = "float64" if dtype == np.float64 else "float32"
    d_eps, d_rtol, d_atol = GRADCHECK_DEFAULTS[key]
    eps = float(d_eps if eps is None else eps)
    rtol, atol = (d_rtol, d_atol) if rtol is None else (float(rtol), float(atol))
    x = x.astype(dtype)

    n_hidden = len(dims) - 2
    mode, notes = _kink_detection(model, target, n_hidden, layers, activation)
    original = target.get_params()
    buffers = target.get_buffers() if has_buffers(target) else None
    try:
        # every evaluation of the loss: the same dropout masks
        with np.errstate(all="ignore"), held_masks(target):
            problem = arithmetic_problem(target, x, y, original, dtype,
                                         eps=GRADCHECK_DEFAULTS["float64"][0])
            if problem:
                mode = "none (the arithmetic is not in the claimed dtype)"
            checks, loss0, scale = _run(target, x, y, original, eps=eps, rtol=rtol,
                                        atol=atol, max_entries=max_entries, seed=seed,
                                        kink_mode=mode, n_hidden=n_hidden,
                                        pools=_pools(target, layers or layer_list(model)))
    finally:
        target.set_params(original)
        if buffers:  # every training pass moved the running statistics: put them back
            target.set_buffers(buffers)
    notes.extend(_unverified_notes(checks))
    return GradcheckReport(checks, eps, rtol, atol, scale, loss0, int(x.shape[0]),
                           original_dtype.name, dtype.name, precision, mode, name, notes,
                           arithmetic_problem=problem)


def _kink_detection(model, target, n_hidden: int, layers, given: str | None
                    ) -> tuple[str, list[str]]:
    """How kinks are told from wrong gradients (:func:`harness.gradients.kinks.kink_mode`;
    a layer network: wherever a relu or leaky_relu sits), and the note it needs."""
    activation = activation_of(model) or given
    mode = kink_mode(activation, n_hidden, target)
    layers = layers or layer_list(model)
    if layers is not None:
        activation = "layers"
        mode = (ONE_SIDED if any(n in KINKED_ACTIVATIONS + KINKED_LAYERS for n, _ in layers)
                else "none needed (every activation of the layers is smooth)")
    notes = []
    if find_own_masks(model) is not None:
        notes.append("note: the class draws its own dropout masks (no set_dropout_masks): "
                     "NumPy's global generator was reseeded alike before every evaluation "
                     "of the loss, which holds one mask for a class that draws from it")
    if activation is None and mode == ONE_SIDED:
        notes.append("note: the model does not name its activation; entries were tested "
                     "for kinks as if it had some")
    return mode, notes


def _pools(target, layers) -> tuple:
    """The max-pool layers whose windows can be watched for ties (the model exposes
    its intermediates), else ()."""
    from harness.model.protocol import ExposesIntermediates

    return pool_layers(layers) if isinstance(target, ExposesIntermediates) else ()


def _float64_target(model, original_dtype) -> tuple[Any, str]:
    """The model to differentiate (a float64 copy where one can be made) and the
    report's account of the precision."""
    if original_dtype == np.float64:
        return model, "float64"
    made = float64_copy(model)
    if made is None:
        return model, (f"{original_dtype.name}, no float64 copy available: "
                       f"{original_dtype.name} tolerances")
    return made


def _unverified_notes(checks: list[ParamCheck]) -> list[str]:
    """A note for each parameter whose every checked entry sat on a kink."""
    return [f"note: every checked entry of {p.name} sat on a kink; nothing "
            f"verified there, {p.name} is NOT CHECKED (try another seed or a "
            f"smaller eps)" for p in checks if p.checked and p.kinks == p.checked]


@dataclass
class _Probe:
    """What the central differences of one gradient check share: the model, the batch,
    the perturbed copy of the parameters and the bounds."""

    model: Any
    x: np.ndarray
    y: np.ndarray
    work: dict[str, np.ndarray]
    loss0: float
    eps: float
    rtol: float
    atol_eff: float
    use_z: bool
    one_sided: bool
    n_hidden: int
    pools: tuple = ()

    def loss_at(self) -> tuple[float, Any]:
        """Loss and gradients at the parameters in ``work``."""
        self.model.set_params(self.work)
        loss, g = self.model.loss_and_grads(self.x, self.y)
        return float(loss), g


def _run(model, x, y, params, *, eps, rtol, atol, max_entries, seed, kink_mode, n_hidden,
         pools=()):
    loss0, grads = model.loss_and_grads(x, y)
    loss0 = float(loss0)
    logits = np.asarray(model.forward(x), dtype=np.float64)
    finite_logits = logits[np.isfinite(logits)]
    scale = max(1.0, abs(loss0) if math.isfinite(loss0) else 1.0,
                float(np.abs(finite_logits).max()) if finite_logits.size else 1.0)
    probe = _Probe(model, x, y, {k: np.array(v, copy=True) for k, v in params.items()},
                   loss0, eps, rtol, atol * scale, kink_mode == PRE_ACTIVATIONS,
                   kink_mode == ONE_SIDED, n_hidden, pools)
    rng = np.random.default_rng(seed)
    checks: list[ParamCheck] = []
    for pname, value in params.items():
        check = ParamCheck(pname, tuple(value.shape), int(value.size))
        checks.append(check)
        _check_param(probe, check, value, grads, rng, max_entries)
    return checks, loss0, scale


def _check_param(probe: _Probe, check: ParamCheck, value: np.ndarray, grads, rng,
                 max_entries) -> None:
    """Check the entries of one parameter (all, or ``max_entries`` drawn from ``rng``)."""
    pname = check.name
    analytic = grads.get(pname) if isinstance(grads, dict) else None
    if analytic is None:
        check.failed = check.checked = check.size
        check.max_abs_err = check.max_rel_err = math.inf
        check.message = f"{pname}: loss_and_grads returned no gradient for it"
        return
    analytic = np.asarray(analytic)
    if analytic.shape != value.shape:
        check.failed = check.checked = check.size
        check.max_abs_err = check.max_rel_err = math.inf
        check.message = (f"{pname}: gradient has shape {analytic.shape}, expected "
                         f"{value.shape}")
        return
    if max_entries is not None and value.size > max_entries:
        flat_indices = np.sort(rng.choice(value.size, size=int(max_entries), replace=False))
    else:
        flat_indices = np.arange(value.size)
    # parameters of layer k move z_k and above only; the output layer moves no hidden z
    layer = int(pname[1:]) if pname[:1] in "Wb" and pname[1:].isdigit() else 0
    worst_excess = -1.0
    for flat in flat_indices:
        worst_excess = _check_entry(probe, check, value, analytic, int(flat), layer,
                                    worst_excess)
    if check.failed:
        check.message = (
            f"{pname}: {check.failed} of {check.checked} checked entries differ "
            f"({check.kinks} skipped at kinks); worst at index {check.worst_index}: "
            f"analytic {check.worst_analytic:.6e}, numerical {check.worst_numerical:.6e} "
            f"(|difference| {abs(check.worst_analytic - check.worst_numerical):.3e}, "
            f"allowed {check.worst_allowed:.3e})")


@dataclass
class _Difference:
    """One central difference: the entry's value, its two perturbed values, the loss,
    gradients and hidden signs at each, and the difference quotient."""

    orig: Any
    plus: Any
    minus: Any
    loss_p: float
    loss_m: float
    grads_p: Any
    grads_m: Any
    z_p: Any
    z_m: Any
    numerical: float


def _central_difference(probe: _Probe, pname: str, value: np.ndarray, flat: int, layer: int,
                        watch_z: bool) -> _Difference:
    """Perturb entry ``flat`` of ``pname`` by +-eps (restored afterwards)."""
    entry = probe.work[pname].reshape(-1)  # a view: writes go into work[pname]
    orig = entry[flat]
    plus = (orig + value.dtype.type(probe.eps)).astype(value.dtype)
    minus = (orig - value.dtype.type(probe.eps)).astype(value.dtype)
    entry[flat] = plus
    loss_p, grads_p = probe.loss_at()
    z_p = hidden_signs(probe.model, probe.x, probe.y, layer, probe.n_hidden) if watch_z else None
    entry[flat] = minus
    loss_m, grads_m = probe.loss_at()
    z_m = hidden_signs(probe.model, probe.x, probe.y, layer, probe.n_hidden) if watch_z else None
    entry[flat] = orig
    step = float(plus) - float(minus)
    return _Difference(orig, plus, minus, loss_p, loss_m, grads_p, grads_m, z_p, z_m,
                       (loss_p - loss_m) / step)


def _reproducible(probe: _Probe, pname: str, flat: int, a: float, allowed: float) -> bool:
    """Whether the model gives the entry's gradient ``a`` again at the same parameters (to
    a hundredth of the allowed difference): only then can a kink excuse the entry."""
    again = _entry(probe.loss_at()[1], pname, flat)
    return math.isfinite(again) and abs(again - a) <= 0.01 * allowed


def _at_kink(probe: _Probe, pname: str, value: np.ndarray, flat: int, d: _Difference,
             a: float, diff: float, allowed: float, watch_z: bool) -> bool:
    """Whether the central difference of a finite entry straddles a kink."""
    if watch_z:
        return crosses_zero(d.z_p, d.z_m)
    if not (probe.one_sided and diff > allowed):
        return False
    if not _reproducible(probe, pname, flat, a, allowed):
        return False  # a gradient that changes from call to call is noise, not a kink
    if probe.pools and _pool_tie(probe, pname, flat, d):
        return True
    if one_sided_kink(probe.loss0, d.loss_p, d.loss_m, d.orig, d.plus, d.minus, diff,
                      allowed):
        return True
    # several kinks: the model's gradient across the interval
    entry = probe.work[pname].reshape(-1)
    g = [_entry(d.grads_m, pname, flat)]
    for half in (d.minus, d.plus):
        entry[flat] = ((d.orig + half) / 2).astype(value.dtype)
        g.append(_entry(probe.loss_at()[1], pname, flat))
        g.append(a if half is d.minus else _entry(d.grads_p, pname, flat))
    entry[flat] = d.orig
    return bends_around(g, d.numerical, allowed, probe.atol_eff, probe.rtol)


def _pool_tie(probe: _Probe, pname: str, flat: int, d: _Difference) -> bool:
    """Whether a max-pool window has another winner at ``p + eps`` than at ``p - eps``."""
    entry = probe.work[pname].reshape(-1)
    winners = []
    for value in (d.plus, d.minus):
        entry[flat] = value
        probe.model.set_params(probe.work)
        winners.append(pool_winners(probe.model, probe.x, probe.y, probe.pools))
    entry[flat] = d.orig
    probe.model.set_params(probe.work)
    return winner_changes(*winners)


def _check_entry(probe: _Probe, check: ParamCheck, value: np.ndarray, analytic: np.ndarray,
                 flat: int, layer: int, worst_excess: float) -> float:
    """Check one entry against its central difference; record it in ``check``. Returns
    the largest excess over the allowed difference so far."""
    pname = check.name
    watch_z = probe.use_z and layer < probe.n_hidden
    index = tuple(int(i) for i in np.unravel_index(flat, value.shape))
    d = _central_difference(probe, pname, value, flat, layer, watch_z)
    numerical = d.numerical
    a = float(analytic.reshape(-1)[flat])
    check.checked += 1
    check.indices.append(index)
    diff = abs(a - numerical)
    atol_eff = probe.atol_eff
    allowed = atol_eff + probe.rtol * max(abs(a), abs(numerical))
    finite = math.isfinite(a) and math.isfinite(numerical)
    if finite and _at_kink(probe, pname, value, flat, d, a, diff, allowed, watch_z):
        check.kinks += 1
        check.kink_indices.append(index)
        return worst_excess
    if not finite:
        diff, excess = math.inf, math.inf
    else:
        excess = diff / max(allowed, _TINY)
        check.max_abs_err = max(check.max_abs_err, diff)
        if max(abs(a), abs(numerical)) > atol_eff:
            check.max_rel_err = max(check.max_rel_err,
                                    diff / max(abs(a), abs(numerical), _TINY))
    if not finite or diff > allowed:
        check.failed += 1
        check.failed_indices.append(index)
        if not finite:
            check.max_abs_err = check.max_rel_err = math.inf
    if excess > worst_excess:
        worst_excess = excess
        check.worst_index = index
        check.worst_analytic, check.worst_numerical = a, float(numerical)
        check.worst_allowed = allowed
    return worst_excess

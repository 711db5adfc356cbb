"""Which entries of a post-step comparison rounding noise explains, and the notes on them.

One optimizer step of two correct implementations can differ beyond the tolerances where
the gradient is at rounding-noise level: an optimizer that normalises the gradient (Adam)
turns such noise into a full step. :func:`excusable_after_step` states exactly when an
entry is excused; :func:`inert_after_step` names the parameters whose gradient is 0 by
construction (a bias right before a batch norm), where excusals are expected.
"""

from __future__ import annotations

import numpy as np

from harness.compare.closeness import Comparison

#: more than this share of a quantity's entries excused: the report warns
EXCUSED_SHARE_LIMIT = 0.01


def l2_weight_decay(model) -> float:
    """The weight decay ``model``'s optimizer adds to the gradient (an L2 term), else 0.

    Read from ``optimizer_spec`` (torch.optim names: sgd and adam add it, adamw decays
    the parameter instead) or from a scratch optimizer's ``weight_decay`` and
    ``decoupled``; 0 when the model does not say.
    """
    spec = getattr(model, "optimizer_spec", None)
    if spec is not None and hasattr(spec, "weight_decay"):
        return 0.0 if getattr(spec, "name", "") == "adamw" else float(spec.weight_decay)
    opt = getattr(model, "optimizer", None)
    wd = getattr(opt, "weight_decay", 0.0)
    if isinstance(wd, (int, float)) and not getattr(opt, "decoupled", False):
        return float(wd)
    return 0.0


def excusable_after_step(grads_ref: dict, grads_cand: dict, before: dict, after_ref: dict,
                         after_cand: dict, *, rtol: float, atol: float,
                         weight_decay: float = 0.0) -> dict:
    """Masks of post-step entries whose difference rounding noise in the gradient explains.

    An entry is excusable only when every one of these holds:

    * the two backends' own gradients there differ (bitwise): identical gradients,
      exactly 0 in both included, must give identical steps;
    * they differ by no more than the gradient tolerance, ``atol * max(1, max|g_ref|) +
      rtol * |g_ref|`` (the gradient rows passed them);
    * the effective gradient each optimizer sees, ``g + weight_decay * p`` for an L2
      decay (sgd, adam; 0 for adamw), is itself at noise level, ``|.| <= atol *
      max(1, max|g_ref|)``, in both: only then can noise change its sign or its
      normalised size (Adam divides by ``sqrt(v) + eps``: 4e-8 against 0 is a full
      ``lr`` step). A parameter whose decay term dominates the noise gets a
      well-defined step, and a wrong one is not excused;
    * the steps differ the way the gradients do: the backend with the larger
      effective gradient took the smaller step (or both are equal), as every
      optimizer here does on its first step (decoupled decay cancels out).

    Parameters
    ----------
    grads_ref, grads_cand : dict of ndarray
        Each backend's gradient at the parameters ``before``.
    before, after_ref, after_cand : dict of ndarray
        Parameters before the step (shared) and each backend's after it.
    rtol, atol : float
        The tolerances of the gradient rows.
    weight_decay : float
        The reference optimizer's L2 weight decay (:func:`l2_weight_decay`).

    Returns
    -------
    dict of key -> ndarray of bool, the parameter's shape
    """
    masks = {}
    for key, g in grads_ref.items():
        if key not in grads_cand or key not in before or key not in after_ref \
                or key not in after_cand:
            continue
        g_r = np.asarray(g, dtype=np.float64)
        g_c = np.asarray(grads_cand[key], dtype=np.float64)
        p0 = np.asarray(before[key], dtype=np.float64)
        if not g_r.size or g_c.shape != g_r.shape or p0.shape != g_r.shape:
            continue
        with np.errstate(all="ignore"):
            atol_eff = atol * max(1.0, float(np.nanmax(np.abs(g_r))))
            differ = g_r != g_c
            near = np.abs(g_r - g_c) <= atol_eff + rtol * np.abs(g_r)
            e_r, e_c = g_r + weight_decay * p0, g_c + weight_decay * p0
            noise = (np.abs(e_r) <= atol_eff) & (np.abs(e_c) <= atol_eff)
            s_r = np.asarray(after_ref[key], dtype=np.float64) - p0
            s_c = np.asarray(after_cand[key], dtype=np.float64) - p0
            if s_r.shape != g_r.shape or s_c.shape != g_r.shape:
                continue
            # every optimizer here is monotone on its first step: of two equal
            # parameters, the larger effective gradient takes the smaller step; any
            # decoupled decay is the same in both and cancels in the difference
            along = (s_c - s_r) * (e_c - e_r) <= 0
        masks[key] = differ & near & noise & along
    return masks


def inert_after_step(model) -> tuple[str, ...]:
    """``params after step['b{k}']`` of every linear right before a batch norm of a layer
    network (their gradient is 0 up to rounding); () for anything else."""
    from harness.model.layer_spec import layer_list

    layers = layer_list(model) or []
    return tuple(f"params after step['b{kw['index']}']"
                 for (name, kw), (after, _) in zip(layers, layers[1:])
                 if name == "linear" and after == "batchnorm")


def _excusal_notes(after: list[Comparison], inert: tuple = ()) -> list[str]:
    """The notes on the post-step entries excused, and a warning when too many were."""
    notes = []
    n_excused = sum(r.n_excused for r in after)
    if n_excused:
        where = ", ".join(f"{r.quantity} {r.n_excused} of {r.n_elements}"
                          for r in after if r.n_excused)
        notes.append(
            f"note: {n_excused} parameter entries were excused after the step ({where}): "
            f"there the two gradients differ at rounding-noise level, and an optimizer that "
            f"normalises the gradient (Adam) turns such noise into a full step")
    expected = [r.quantity for r in after if r.n_excused and r.quantity in inert]
    if expected:
        notes.append(
            f"note: {', '.join(expected)} feed a batch norm, which subtracts the batch mean "
            f"and the bias with it: their gradient is 0 up to rounding, so excused entries "
            f"there are expected")
    heavy = [r for r in after if r.excused_share > EXCUSED_SHARE_LIMIT
             and r.quantity not in inert]
    if heavy:
        notes.append(
            f"warning: more than {100 * EXCUSED_SHARE_LIMIT:g}% of the entries of "
            f"{', '.join(r.quantity for r in heavy)} were excused; the post-step comparison "
            f"says little about them (try float64 or an arbiter)")
    return notes


def clip_settings(model) -> tuple[float | None, float | None]:
    """``(clip_grad_norm, clip_grad_value)`` of ``model``'s optimizer, where it names them
    (its ``optimizer_spec``, else its optimizer's own attributes); ``(None, None)``."""
    for source in (getattr(model, "optimizer_spec", None), getattr(model, "optimizer", None)):
        norm = getattr(source, "clip_grad_norm", None)
        value = getattr(source, "clip_grad_value", None)
        if norm is not None or value is not None:
            return norm, value
    return None, None


def clipped(grads: dict, norm: float | None, value: float | None) -> dict:
    """The gradients an optimizer steps with after torch's clipping (by value, then by the
    global L2 norm), in float64; the excusal rule reads them, since near-cancellation of a
    clipped gradient and the weight decay is where rounding noise decides a step."""
    out = {k: np.asarray(g, dtype=np.float64) for k, g in grads.items()}
    if value is not None:
        out = {k: np.clip(g, -value, value) for k, g in out.items()}
    if norm is not None:
        total = float(np.sqrt(sum(float(np.vdot(g, g)) for g in out.values())))
        factor = min(1.0, norm / (total + 1e-6))
        out = {k: g * factor for k, g in out.items()}
    return out

"""Stress rows of the equivalence check: the batch and weights pushed where latent bugs act.

On the data sets and initial weights used the largest logit is about 1, the smallest
gradient entry about 1e-5 and the gradient norm about 1: a softmax without the max
shift, a guard that zeroes small gradients or a clip of the gradient norm never acts
there. Each probe here starts from the check's parameters and batch and changes them so
that one of these acts, then compares the loss, the gradients and one optimizer step
(every quantity judged relative to its own size):

* ``stress: logits near 1000``: the last layer's weights and bias scaled so that the
  largest logit is :data:`LARGE_LOGIT` (far past where exp overflows in float32, 88, and
  float64, 709);
* ``stress: gradients near 1e-9``: the inputs scaled by ``s`` and the first layer's
  weights by ``1 / s`` (the forward pass is unchanged) so that the first layer's
  gradient is about :data:`TINY_GRADIENT`;
* ``stress: gradient norm in the hundreds``: the same with ``s > 1``, chosen so that
  the whole gradient norm (the first layer's multiplied by ``s``, the rest unchanged) is
  :data:`LARGE_NORM`, ``s`` at most :data:`MAX_NORM_SCALE`.

Each gradient is judged relative to its own size, with four floors for what is rounding
and not a latent bug:

* the logits' rounding: a logit near 1000 is stored with an absolute error of
  ``eps x 1000`` (6e-5 in float32), and a row's softmax probabilities move by that much
  relative to themselves (the logits near the row's largest are the ones that count),
  so at large logits each gradient may differ by :data:`LOGIT_ROUNDING` times ``eps``
  times the largest row maximum's magnitude, of its own size (1e-3 in float32 where
  that is 1000, 2e-12 in float64);
* cancellation at large logits: where a probability saturates near 1, ``p - y`` is
  all rounding, so each gradient may also differ by that rounding times the size it has
  at the check's own point (times the scale for layers below the last);
* underflow: a difference below the dtype's smallest normal number (``finfo.tiny``,
  2.2e-308 in float64, 1.2e-38 in float32) is allowed: at logits near 1000 a saturated
  sigmoid's gradient is exactly 0 in one model and a subnormal ``exp(-|z|)`` in the
  other, a gradient whose own size is 0;
* the unstressed spread: in the two scaled probes every gradient but the first layer's
  is unchanged in exact arithmetic and the first layer's is multiplied by ``s``, so the
  two models may differ on a gradient by up to :data:`BASE_SPREAD_MULTIPLIER` times
  their largest difference on it at the check's own point (the rows before judged that
  one, in float32 against the float64 arbiter), scaled by the gradient's size here
  against there. A float32 network that cancels (a width-1 layer fed features in the
  hundreds) differs by some 1e-3 of an entry in both places.

The bugs the rows exist for act only under the stress, so no floor covers them: a
softmax without the max shift gives inf or NaN, a guard that zeroes entries below 1e-8
moves the first layer's gradient by all of its 1e-9 (its unstressed spread, scaled by
``s``, is some 1e-6 of that), a clip at norm 5 scales the step by 60.

:func:`stress_rows` returns one row per probe, named as above; a failing row's message
names the cause the probe is built to show. A conformance suite can call it directly.
"""

from __future__ import annotations

import numpy as np

from harness.compare.closeness import Comparison, compare
from harness.compare.excusal import excusable_after_step, l2_weight_decay

LARGE_LOGIT = 1000.0
TINY_GRADIENT = 1e-9
LARGE_NORM = 300.0
#: at large logits a gradient may differ by this many times ``eps x`` the largest row
#: maximum's magnitude, of its own size: the logits' rounding the probabilities carry
LOGIT_ROUNDING = 8.0
#: in the scaled probes a gradient may differ by this many times the two models' largest
#: difference on it at the check's own point (scaled by its size here against there)
BASE_SPREAD_MULTIPLIER = 8.0

CAUSES = {
    "stress: logits near 1000": (
        "with logits near 1000, past exp's range, the candidate differs or is not "
        "finite: a softmax or log-sum-exp without the max shift overflows"),
    "stress: gradients near 1e-9": (
        "with gradients near 1e-9 the candidate differs: a guard or threshold zeroes "
        "small gradients (or an absolute epsilon swamps them)"),
    "stress: gradient norm in the hundreds": (
        "with a gradient norm in the hundreds the candidate differs: it clips the "
        "gradient (by norm or value) or caps its step where the reference does not"),
}


def _size(value) -> float:
    """The largest finite magnitude of ``value`` (0 for an empty or non-finite one)."""
    v = np.abs(np.asarray(value, dtype=np.float64))
    v = v[np.isfinite(v)]
    return float(v.max(initial=0.0))


def _relative(name: str, actual, expected, tol: dict, *, scalar: bool = False,
              floor: float = 0.0) -> Comparison:
    """``compare`` with ``atol`` taken relative to the quantity's own largest magnitude,
    allowing at least ``floor`` and any difference below the smallest normal number."""
    size = float(np.max(np.abs(np.asarray(expected, dtype=np.float64)))) if np.size(
        expected) else 0.0
    size = size if np.isfinite(size) else 1.0
    return compare(name, actual, expected, rtol=tol["rtol"],
                   atol=_atol(tol["atol"] * size, floor, expected, size),
                   scalar=scalar)


def _atol(allowed: float, floor: float, expected, size: float) -> float:
    """The ``atol`` to pass ``compare`` (which multiplies it by ``max(1, size)``) for an
    absolute allowance of ``allowed``, at least ``floor`` and the dtype's ``tiny``."""
    kind = np.asarray(expected).dtype
    tiny = float(np.finfo(kind if np.issubdtype(kind, np.floating) else np.float64).tiny)
    return max(allowed, floor, tiny) / max(1.0, size)


def _spread(g_c: dict, g_r: dict) -> dict:
    """Per gradient: the two models' largest difference and the reference's size."""
    out = {}
    for k, v in g_r.items():
        got = np.asarray(g_c.get(k, np.nan), dtype=np.float64)
        ref = np.asarray(v, dtype=np.float64)
        d = np.abs(got - ref) if got.shape == ref.shape else np.full(1, np.nan)
        out[k] = (float(d.max(initial=0.0)) if np.all(np.isfinite(d)) else 0.0, _size(ref))
    return out


def _spread_floor(spread: dict | None, key: str, expected) -> float:
    """The unstressed-spread floor (module docstring) for gradient ``key``."""
    if not spread or key not in spread or spread[key][1] <= 0:
        return 0.0
    diff, size = spread[key]
    return BASE_SPREAD_MULTIPLIER * diff * _size(expected) / size


def _probe(reference, candidate, x, y, params: dict, tol: dict, name: str,
           step: bool, judge_loss: bool = True, notes: list | None = None,
           spread: dict | None = None, relative_floor: float = 0.0,
           floors: dict | None = None) -> Comparison:
    """Both models at ``params`` on ``(x, y)``: loss, gradients, (one step); one row.
    Each gradient may differ by ``relative_floor`` times its own size, and by
    ``floors[key]``."""
    from harness.model.masks import held_masks

    reference.set_params(params)
    candidate.set_params(params)
    rows = []
    with held_masks(reference), held_masks(candidate):
        loss_r, g_r = reference.loss_and_grads(x, y)
        loss_c, g_c = candidate.loss_and_grads(x, y)
        loss_row = _relative(f"{name} loss", loss_c, loss_r, tol, scalar=True)
        if judge_loss or loss_row.passed:
            rows.append(loss_row)
        elif notes is not None:
            notes.append(f"warning: {loss_row.message.splitlines()[0]}: the loss value "
                         f"overflows at large logits (the gradients are judged in the row)")
        inert = _inert_keys(reference)
        family = max(float(np.max(np.abs(np.asarray(v, dtype=np.float64)), initial=0.0))
                     for v in g_r.values())
        for k, v in g_r.items():
            got = g_c.get(k, np.full(1, np.nan))
            floor = max(_spread_floor(spread, k, v), relative_floor * _size(v),
                        (floors or {}).get(k, 0.0))
            rows.append(compare(f"{name} grads['{k}']", got, v, rtol=tol["rtol"],
                                atol=_atol(tol["atol"] * family * max(1.0, _size(v)),
                                           floor, v, _size(v)))
                        if k in inert
                        else _relative(f"{name} grads['{k}']", got, v, tol, floor=floor))
        if step:
            reference.train_step(x, y)
            candidate.train_step(x, y)
    if step:
        a_r, a_c = reference.get_params(), candidate.get_params()
        excuse = excusable_after_step(g_r, g_c, params, a_r, a_c, **tol,
                                      weight_decay=l2_weight_decay(reference))
        # the size of each parameter's step: a clip or a cap scales the whole step, while
        # the rounding that Adam or RMSprop amplify in a few entries barely moves it
        for k, v in a_r.items():
            skip = excuse.get(k)
            keep = None if skip is None else ~np.asarray(skip, dtype=bool)
            mine, ref = (np.asarray(a, dtype=np.float64) - np.asarray(params[k], np.float64)
                         for a in (a_c.get(k, np.nan), v))
            if keep is not None and keep.shape == ref.shape:
                mine, ref = mine[keep], ref[keep]
            row = compare(f"{name} step size['{k}']", np.linalg.norm(mine.reshape(-1)),
                          np.linalg.norm(ref.reshape(-1)), **_step_tol(v, params[k], tol),
                          scalar=True, check_dtype=False)
            rows.append(row)
    return _one_row(name, rows)


def _inert_keys(model) -> set[str]:
    """Parameters whose gradient is 0 up to rounding (a bias right before a batch norm):
    judged against the largest gradient, not their own size."""
    from harness.compare.excusal import inert_after_step

    return {q.split("[", 1)[1].strip("[]'") for q in inert_after_step(model)}


def _step_tol(after, before, tol: dict) -> dict:
    """Tolerances for a step ``after - before``: relative to the step, with the
    parameters' rounding (a few units of ``before``) as the absolute part."""
    p = np.abs(np.asarray(before, dtype=np.float64))
    s = np.abs(np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64))
    eps = float(np.finfo(np.asarray(before).dtype).eps)
    floor = 4 * eps * float(p.max(initial=0.0)) + tol["atol"] * float(s.max(initial=0.0))
    scale = max(1.0, float(s.max(initial=0.0)))
    return {"rtol": max(tol["rtol"], 1e-3), "atol": floor / scale}


def _one_row(name: str, rows: list[Comparison]) -> Comparison:
    """The probe's row: its first failing quantity (with the cause), else a summary."""
    bad = next((r for r in rows if not r.passed), None)
    n = sum(r.n_elements for r in rows)
    if bad is None:
        worst = max(rows, key=lambda r: r.max_abs_err)
        return Comparison(name, (), True, worst.max_abs_err, worst.max_rel_err, None,
                          worst.atol, worst.rtol, 0, n, rule=worst.rule)
    return Comparison(name, bad.shape, False, bad.max_abs_err, bad.max_rel_err,
                      bad.worst_index, bad.atol, bad.rtol, bad.n_mismatched, n,
                      message=f"{name}: {CAUSES[name]}; first: {bad.message}",
                      rule=bad.rule)


def _configured_clipping(model) -> bool:
    """Whether ``model``'s optimizer settings clip gradients (by norm or by value)."""
    for attr in ("optimizer_spec", "optimizer", "spec"):
        spec = getattr(model, attr, None)
        if spec is not None and (getattr(spec, "clip_grad_norm", None) is not None
                                 or getattr(spec, "clip_grad_value", None) is not None):
            return True
    return False


#: the largest factor the large-norm probe scales the inputs by (a first layer whose
#: gradient is nearly 0 cannot carry the norm; the probe then stops there)
MAX_NORM_SCALE = 1e6


def _norm_scale(grads, norm: float) -> float:
    """The ``s`` that makes the whole gradient norm :data:`LARGE_NORM` when only the first
    layer's gradient is multiplied by it: ``s^2 |g_W0|^2 + |rest|^2 = LARGE_NORM^2``, at
    most :data:`MAX_NORM_SCALE` (and ``LARGE_NORM / norm`` where the rest alone is larger)."""
    w0 = float(np.vdot(np.asarray(grads["W0"], np.float64), np.asarray(grads["W0"], np.float64)))
    rest = max(norm * norm - w0, 0.0)
    if rest >= LARGE_NORM ** 2 or w0 <= 0.0:
        return min(LARGE_NORM / max(norm, 1e-30), MAX_NORM_SCALE)
    return min(float(np.sqrt((LARGE_NORM ** 2 - rest) / w0)), MAX_NORM_SCALE)


def _cancelling(grads: dict, rounding: float, c: float, last: int) -> dict:
    """Absolute floors at large logits: ``p - y`` cancels where a probability saturates
    near 1 (its rounding, ``eps``, is then all of it), so each gradient may differ by
    ``rounding`` times the size it has at unsaturated logits: its size at the check's
    point, times ``c`` below the last layer (whose scaled weights carry ``c`` down)."""
    return {k: rounding * _size(v) * (1.0 if k in (f"W{last}", f"b{last}") else c)
            for k, v in grads.items()}


def stress_rows(reference, candidate, x, y, params: dict, tol: dict,
                notes: list | None = None) -> list[Comparison]:
    """The three stress rows (module docstring); [] for a network whose parameters are
    not named ``W0 .. W{L}``, ``b0 .. b{L}``. Both models' parameters and optimizer
    state are changed. At large logits only the gradients are judged: a loss value that
    alone is not finite there (log of a saturated sigmoid) gets a warning in ``notes``."""
    n_layers = len(reference.dims) - 1
    last = n_layers - 1
    if any(f"{p}{i}" not in params for p in "Wb" for i in (0, last)):
        return []
    dtype = np.asarray(params["W0"]).dtype
    rows = []
    reference.set_params(params)  # the check's point, not where its last step left it
    logits = np.asarray(reference.forward(x), dtype=np.float64)  # evaluation: no masks
    # the largest logit (a positive one where there is one: exp overflows upwards)
    top = float(logits.max())
    c = LARGE_LOGIT / (top if top > 1e-3 * float(np.abs(logits).max()) and top > 0
                       else max(float(np.abs(logits).max()), 1e-12))
    big = dict(params)
    big[f"W{last}"] = (params[f"W{last}"] * c).astype(dtype)
    big[f"b{last}"] = (params[f"b{last}"] * c).astype(dtype)
    from harness.model.masks import held_masks

    candidate.set_params(params)
    with held_masks(reference), held_masks(candidate):  # a look: the masks stay in step
        _, grads = reference.loss_and_grads(x, y)
        _, grads_c = candidate.loss_and_grads(x, y)
    # what each row's probabilities carry: the rounding of the logits near its largest
    rounding = LOGIT_ROUNDING * float(np.finfo(dtype).eps) * c * float(
        np.abs(logits.max(axis=1)).max())
    rows.append(_probe(reference, candidate, x, y, big, tol, "stress: logits near 1000",
                       step=False, judge_loss=False, notes=notes, relative_floor=rounding,
                       floors=_cancelling(grads, rounding, c, last)))
    spread = _spread(grads_c, grads)
    g0 = float(np.abs(np.asarray(grads["W0"], dtype=np.float64)).max())
    norm = float(np.sqrt(sum(float(np.vdot(v, v)) for v in grads.values())))
    # where the configuration clips, the step at a large norm is clipped on both sides by
    # design and cannot show a latent clip: the gradients alone are compared there
    clips = _configured_clipping(reference)
    for name, s, step in (("stress: gradients near 1e-9", TINY_GRADIENT / max(g0, 1e-30),
                           False),
                          ("stress: gradient norm in the hundreds", _norm_scale(grads, norm),
                           not clips)):
        scaled = dict(params)
        scaled["W0"] = (params["W0"] / s).astype(dtype)
        rows.append(_probe(reference, candidate, (x * s).astype(x.dtype), y, scaled, tol,
                           name, step=step, spread=spread))
    return rows

"""Hypotheses about why two networks differ, each tested against the numbers.

Every hypothesis is a small function of an :class:`~harness.diagnose.evidence.Evidence`
(a fresh reference and candidate at the same initial weights, the batch, the
configuration) returning one line (what, the evidence, the flags that would align
the reference) when it holds, else None. A hypothesis that does not hold prints
nothing; :func:`hypotheses_for` runs them all, skipping any that raise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from harness.diagnose.evidence import Evidence, close, fmt, log_softmax, pair, rel_err
from harness.diagnose.conv import conv_causes
from harness.diagnose.layers import layer_causes
from harness.diagnose.losses import loss_function
from harness.diagnose.schedules import schedule_timing
from harness.diagnose.steps import clipping_rule, update_rule


def _flags(*flags: str) -> str:
    return " ".join(f"`{f}`" for f in flags)


def _weights(keys) -> list[str]:
    return [k for k in keys if k.startswith("W")]


def _biases(keys) -> list[str]:
    return [k for k in keys if k.startswith("b")]


# ------------------------------------------------------------------ output shape
def probabilities_as_logits(ev: Evidence) -> str | None:
    """forward returns softmax probabilities or log-probabilities instead of logits."""
    z_c, z_r = ev.cand.logits, ev.ref.logits
    if z_c is None or z_r is None or z_c.shape != z_r.shape or not np.all(np.isfinite(z_c)):
        return None
    zc = z_c.astype(np.float64)
    tol = max(ev.rtol, 1e-6)
    ref_lsm = log_softmax(z_r)
    if np.allclose(np.exp(ref_lsm).sum(1), 1) and np.allclose(z_r.sum(1), 1, atol=tol):
        return None  # the reference's own logits look like probabilities: no evidence
    if np.all(zc >= 0) and np.allclose(zc.sum(1), 1.0, rtol=0, atol=tol):
        match = rel_err(zc, np.exp(ref_lsm))
        also = (f" and equals the softmax of the reference's logits (largest relative "
                f"difference {match:.1e})" if match < 1e-3 else "")
        return (f"forward returns probabilities, not logits: every row of your output is "
                f"non-negative and sums to 1{also}; return the scores z = a @ W + b before "
                f"the softmax (the loss applies the softmax itself)")
    lse = np.log(np.exp(zc).sum(1)) if np.all(zc <= 0) else None
    if lse is not None and np.allclose(lse, 0.0, atol=tol):
        match = rel_err(zc, ref_lsm)
        also = (f" and equals the log-softmax of the reference's logits (largest relative "
                f"difference {match:.1e})" if match < 1e-3 else "")
        return (f"forward returns log-probabilities, not logits: every entry of your output "
                f"is <= 0 and each row's log-sum-exp is 0{also}; return the scores "
                f"z = a @ W + b before the (log-)softmax")
    return None


def output_shape(ev: Evidence) -> str | None:
    """forward returns an array of the wrong shape (a reduction over the batch axis)."""
    z_c, z_r = ev.cand.logits, ev.ref.logits
    if z_c is None or z_r is None or np.shape(z_c) == np.shape(z_r):
        return None
    text = (f"forward returns shape {np.shape(z_c)} for a batch of {ev.n} rows, expected "
            f"{np.shape(z_r)} (rows, classes)")
    if np.ndim(z_c) < 2 or np.shape(z_c)[0] != ev.n:
        text += ("; the batch axis is lost somewhere: a reduction such as np.max(z, 0) or "
                 "z.max(axis=0) where an element-wise np.maximum(z, 0) was meant")
        if ev.spec.activation in ("relu", "leaky_relu"):
            text += f" (the {ev.spec.activation} activation is the usual place)"
    return text


def transposed_weights(ev: Evidence) -> str | None:
    """Weights (or their gradients) in (out, in) layout, or a square gradient transposed."""
    dims = ev.spec.dims
    found = []
    params = ev.cand.params
    grads_c, grads_r = ev.cand.grads, ev.ref.grads
    for i in range(len(dims) - 1):
        key, canon, flipped = f"W{i}", (dims[i], dims[i + 1]), (dims[i + 1], dims[i])
        if canon == flipped:
            if (grads_c and grads_r and key in grads_c
                    and close(grads_c[key], grads_r[key].T, ev.rtol, ev.atol)
                    and not close(grads_c[key], grads_r[key], ev.rtol, ev.atol)):
                found.append(f"your gradient of {key} (square, {canon}) equals the transpose "
                             f"of the reference's")
            continue
        if params and key in params and np.shape(params[key]) == flipped:
            found.append(f"your get_params returns {key} with shape {flipped} (out, in)")
        elif grads_c and key in grads_c and np.shape(grads_c[key]) == flipped:
            extra = (" and equals the transpose of the reference's"
                     if grads_r and close(grads_c[key].T, grads_r[key], ev.rtol, ev.atol)
                     else "")
            found.append(f"your gradient of {key} has shape {flipped} (out, in){extra}")
    if not found:
        return None
    return ("transposed weights: " + "; ".join(found) + "; the protocol's layout is "
            "W{i} of shape (d_i, d_{i+1}) = (in, out), so that z = a @ W + b: return W.T "
            "(and take W.T in set_params), or compute the gradient as a.T @ dz")


# ------------------------------------------------------------------ scale factors
def _ratio(c: float, r: float) -> float | None:
    if r == 0 or not (math.isfinite(c) and math.isfinite(r)):
        return None
    return c / r


def _describe_factor(k: float, n: int) -> tuple[str, str | None]:
    """Words for a factor and the kind ("sum", "mean", None)."""
    if math.isclose(k, n, rel_tol=1e-6):
        return f"{fmt(k)} times (the batch size N = {n})", "sum"
    if math.isclose(k, 1 / n, rel_tol=1e-6):
        return f"1/{n} times (one over the batch size N = {n})", "mean"
    return f"{fmt(k)} times (a constant factor, not the batch size N = {n})", None


def loss_scale(ev: Evidence) -> str | None:
    """Loss and every gradient a constant multiple of the reference's (sum vs mean)."""
    r, c = ev.ref, ev.cand
    if r.loss is None or c.loss is None or not r.grads or not c.grads:
        return None
    k = _ratio(float(c.loss), float(r.loss))
    if k is None or math.isclose(k, 1.0, rel_tol=10 * ev.rtol):
        return None
    if not all(key in c.grads and close(c.grads[key], k * r.grads[key], ev.rtol, ev.atol)
               for key in r.grads):
        return None
    words, kind = _describe_factor(k, ev.n)
    reduction = getattr(ev.spec, "loss_reduction", "mean")
    text = f"your loss and every gradient are {words} the reference's"
    batch = getattr(ev, "train_batch", None)
    if kind == "sum" and batch and batch < ev.n:
        text = (f"your loss and every gradient are {fmt(k)} times the reference's on "
                f"{ev.n} rows, so {batch} times on each batch of this run (the batch size "
                f"N = {batch})")
    if kind == "sum" and reduction == "mean":
        return (f"summed loss instead of the mean: {text}; divide by N to average, or, if "
                f"summing is intended, run the reference with {_flags('--loss-reduction sum')}")
    if kind == "mean" and reduction == "sum":
        return (f"mean loss where the reference sums: {text}; drop "
                f"{_flags('--loss-reduction sum')} to compare with a mean loss")
    return f"a scaled loss: {text}; look for a stray factor in the loss and its gradient"


def bias_grad_scale(ev: Evidence) -> str | None:
    """Weight gradients agree, bias gradients off by the batch size (summed, not averaged)."""
    r, c = ev.ref.grads, ev.cand.grads
    if not r or not c or not ev.grads_agree(_weights(r)):
        return None
    off = []
    for key in _biases(r):
        if key not in c or close(c[key], r[key], ev.rtol, ev.atol):
            continue
        scale = float(np.max(np.abs(r[key])))
        if scale == 0:
            return None
        total = np.full(np.shape(r[key]), float(np.sum(r[key])))
        if np.size(r[key]) > 1 and close(c[key], total, ev.rtol, ev.atol) \
                and not close(c[key], r[key], ev.rtol, ev.atol):
            return (f"bias gradient summed over every axis: each entry of your gradient of "
                    f"{key} equals the sum of all the reference's entries ({fmt(total.flat[0])}) "
                    f"while every weight gradient agrees; sum over the batch axis only, "
                    f"db = dz.sum(axis=0), not np.sum(dz)")
        k = float(np.vdot(c[key], r[key]) / np.vdot(r[key], r[key]))
        if not close(c[key], k * r[key], ev.rtol, ev.atol):
            return None
        off.append((key, k))
    if not off:
        return None
    ks = {round(k, 6) for _, k in off}
    names = ", ".join(key for key, _ in off)
    k = off[0][1]
    words, kind = _describe_factor(k, ev.n)
    if len(ks) == 1 and kind == "sum":
        return (f"bias gradients summed over the batch instead of averaged: your gradients of "
                f"{names} are {words} the reference's while every weight gradient agrees; "
                f"divide db by N (db = dz.sum(axis=0) with dz already averaged, or "
                f"dz.mean(axis=0))")
    return (f"bias gradients scaled: your gradients of {names} are "
            + ", ".join(f"{fmt(kk)}x" for _, kk in off)
            + " the reference's while every weight gradient agrees")


def flipped_sign(ev: Evidence) -> str | None:
    """A gradient equal to minus the reference's."""
    r, c = ev.ref.grads, ev.cand.grads
    if not r or not c:
        return None
    flipped = [k for k in r if k in c and np.any(r[k] != 0)
               and close(c[k], -np.asarray(r[k]), ev.rtol, ev.atol)
               and not close(c[k], r[k], ev.rtol, ev.atol)]
    if not flipped:
        return None
    which = "every gradient" if len(flipped) == len(r) else "the gradient of " + ", ".join(flipped)
    return (f"flipped sign: {which} equals minus the reference's; the gradient of the loss "
            f"is (softmax - onehot), not (onehot - softmax), and train_step subtracts "
            f"lr times it")


# ------------------------------------------------------------------ weight decay
def _penalty_fit(ev: Evidence, keys: list[str]) -> tuple[float, bool] | None:
    """λ such that grads_c - grads_r = λ·p on ``keys`` (0 on the others); and the loss fits."""
    r, c, p = ev.ref, ev.cand, ev.params0
    diffs = {k: np.asarray(c.grads[k], np.float64) - np.asarray(r.grads[k], np.float64)
             for k in r.grads if k in c.grads}
    if len(diffs) != len(r.grads):
        return None
    num = sum(float(np.vdot(diffs[k], p[k])) for k in keys)
    den = sum(float(np.vdot(p[k], p[k])) for k in keys)
    if den == 0:
        return None
    lam = num / den
    if lam == 0:
        return None
    for k in r.grads:
        expected = r.grads[k] + (lam * p[k] if k in keys else 0)
        if not close(c.grads[k], expected, ev.rtol, ev.atol):
            return None
    penalty = 0.5 * lam * den
    loss_ok = close(c.loss, r.loss + penalty, ev.rtol, ev.atol)
    return lam, loss_ok


def l2_in_loss(ev: Evidence) -> str | None:
    """loss_c - loss_r = ½λΣ‖W‖² and grads_c - grads_r = λW (weights only, or all)."""
    r, c = ev.ref, ev.cand
    if r.loss is None or c.loss is None or not r.grads or not c.grads or ev.grads_agree():
        return None
    for keys, on in ((_weights(r.grads), "weights"), (list(r.grads), "all")):
        fit = _penalty_fit(ev, keys)
        if fit is None or not fit[1]:
            continue
        lam, _ = fit
        what = "weights only" if on == "weights" else "weights and biases"
        wd = ev.optimizer.weight_decay
        where = getattr(ev.optimizer, "weight_decay_in", "optimizer")
        wd_on = getattr(ev.optimizer, "weight_decay_on", "all")
        if lam < 0:
            return (f"the reference adds an L2 penalty to its loss that yours lacks: your loss "
                    f"is ½·λ·Σ‖W‖² lower ({what}, λ = {fmt(-lam)}) and each gradient λ·W lower; "
                    f"drop {_flags('--weight-decay-in loss')} to decay inside the optimizer")
        flags = []
        if where != "loss":
            flags.append("--weight-decay-in loss")
        if on == "weights" and wd_on != "weights":
            flags.append("--weight-decay-on weights")
        if on == "all" and wd_on == "weights":
            flags.append("--weight-decay-on all")
        if not math.isclose(lam, wd, rel_tol=1e-3):
            flags.append(f"--weight-decay {fmt(lam)}")
        sq = "Σ‖W‖²" if on == "weights" else "Σ(‖W‖² + ‖b‖²)"
        return (f"an L2 penalty in your loss ({what}): your loss exceeds the reference's by "
                f"{fmt(c.loss - r.loss)} = ½·λ·{sq} and each gradient by λ·W, with λ = "
                f"{fmt(lam)} (the reference's weight decay {fmt(wd)}, applied in the "
                f"{where}); to compare with the penalty in the loss, run the reference with "
                f"{_flags(*flags) if flags else 'the same settings (they already match)'}")
    return None


# ------------------------------------------------------------------ the loss alone
_EPSILONS = (1e-15, 1e-12, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


def _loss_cause(ev: Evidence, tests) -> str | None:
    """What turns each reference's logits into the candidate's loss: ``tests`` holds
    ``(reference logits, labels, candidate loss)`` triples; None when nothing fits all."""

    def fits(fn) -> bool:
        for z, yy, loss in tests:
            lsm = log_softmax(z)
            with np.errstate(all="ignore"):
                value = fn(lsm, yy)
            if not close(loss, value, ev.rtol, ev.atol):
                return False
        return True

    def rows(lsm, yy):
        return lsm[np.arange(len(yy)), yy]

    for eps in _EPSILONS:
        if fits(lambda lsm, yy, eps=eps: -np.mean(np.log(np.exp(rows(lsm, yy)) + eps))):
            return f"an epsilon inside the log, -log(p + {eps:g})"
        if fits(lambda lsm, yy, eps=eps: -np.mean(np.log(np.clip(np.exp(rows(lsm, yy)),
                                                                eps, 1 - eps)))):
            return f"probabilities clipped to [{eps:g}, 1 - {eps:g}] before the log"
    z, yy, loss = tests[0]
    lsm = log_softmax(z)
    ce, uniform = -float(np.mean(rows(lsm, yy))), -float(np.mean(lsm))
    if uniform != ce:
        smooth = (loss - ce) / (uniform - ce)
        if 0 < smooth < 1 and fits(lambda lsm, yy: (1 - smooth) * -np.mean(rows(lsm, yy))
                                   + smooth * -np.mean(lsm)):
            return f"label smoothing with ε = {fmt(smooth)} in the loss value"
    return None


def only_loss(ev: Evidence) -> str | None:
    """Logits and gradients agree, the loss does not: clipping, an epsilon, label smoothing.

    Tested at the check's weights and, where the loss agrees there, with the last
    layer's weights scaled up (confident predictions, where clipping bites).
    """
    last = ev.n_layers - 1
    half = max(1, ev.n // 2)
    for scale in (1.0, 10.0, 100.0):
        params = {k: np.array(v, copy=True) for k, v in ev.params0.items()}
        params[f"W{last}"] = params[f"W{last}"] * scale
        params[f"b{last}"] = params[f"b{last}"] * scale
        r, c = (ev.ref, ev.cand) if scale == 1.0 else ev.run_both(params, ev.x, ev.y)
        if r.loss is None or c.loss is None or r.logits is None or c.logits is None \
                or not r.grads or not c.grads:
            return None
        if not (close(c.logits, r.logits, ev.rtol, ev.atol)
                and all(k in c.grads and close(c.grads[k], r.grads[k], ev.rtol, ev.atol)
                        for k in r.grads)):
            return None
        if close(c.loss, r.loss, ev.rtol, ev.atol):
            continue
        r2, c2 = ev.run_both(params, ev.x[:half], ev.y[:half])
        if r2.logits is None or c2.loss is None:
            return None
        cause = _loss_cause(ev, [(r.logits, ev.y, float(c.loss)),
                                 (r2.logits, ev.y[:half], float(c2.loss))])
        mine, theirs = pair(c.loss, r.loss)
        at = "" if scale == 1.0 else (f" with the last layer's weights and bias x{fmt(scale)} "
                                      f"(confident predictions; at the check's weights the "
                                      f"losses agree)")
        evidence = (f"your loss {mine}, the reference's {theirs}{at}, while the logits and "
                    f"every gradient agree")
        if cause is None:
            return (f"only the loss differs: {evidence}; the reported loss is not the mean "
                    f"cross-entropy of the logits (clipping, an epsilon in the log or "
                    f"smoothing that the gradient does not see)")
        return (f"only the loss differs: {evidence}; it equals the mean cross-entropy with "
                f"{cause}, which the gradient does not see: report -mean(log_softmax(z)[y]) "
                f"instead")
    return None


# ------------------------------------------------------------------ numerics
def overflow_at_scale(ev: Evidence) -> str | None:
    """Non-finite loss with large logits where the reference stays finite (no log-sum-exp)."""
    if (ev.cand.errors or ev.cand.loss is None or not math.isfinite(float(ev.cand.loss))):
        return None  # it fails at ordinary weights already: not an overflow
    if ev.ref.loss is not None and not close(ev.cand.loss, ev.ref.loss, ev.rtol, ev.atol):
        return None  # another loss at ordinary weights: an overflow does not explain it
    last = ev.n_layers - 1
    if ev.ref.logits is None:
        return None
    # scale the last layer so that the largest logit is about 2000: exp overflows
    # beyond 709 in float64 (88 in float32)
    scale = 2000.0 / max(float(np.max(np.abs(ev.ref.logits))), 1e-12)
    params = {k: np.array(v, copy=True) for k, v in ev.params0.items()}
    params[f"W{last}"] = params[f"W{last}"] * scale
    params[f"b{last}"] = params[f"b{last}"] * scale
    r, c = ev.run_both(params, ev.x, ev.y)
    if r.loss is None or not math.isfinite(float(r.loss)):
        return None
    bad = None
    if c.loss is not None and not math.isfinite(float(c.loss)):
        bad = f"your loss is {c.loss}"
    elif c.grads and not all(np.all(np.isfinite(v)) for v in c.grads.values()):
        bad = "your gradients hold NaN or inf"
    elif "loss_and_grads" in c.errors:
        exc = c.errors["loss_and_grads"]
        exc = getattr(exc, "original", exc)
        bad = f"your loss_and_grads raised {type(exc).__name__}"
    if bad is None:
        return None
    zmax = float(np.max(np.abs(r.logits))) if r.logits is not None else math.nan
    return (f"the loss is not finite for large logits: with the last layer's weights and bias "
            f"x{fmt(scale)} (logits up to {fmt(zmax)}) {bad}, the reference's is {fmt(r.loss)}; "
            f"exp(z) overflows, or log(softmax(z)) takes log(0); compute log-softmax with "
            f"log-sum-exp, z - max(z) - log(sum(exp(z - max(z)))), instead of log(softmax(z)) "
            f"(a large learning rate or unscaled inputs get there)")


def precision(ev: Evidence) -> str | None:
    """float32 arithmetic when float64 was asked, or float64 returned when float32 was."""
    want = np.dtype(ev.spec.dtype)
    c = ev.cand
    got = {}
    if c.logits is not None:
        got["forward"] = c.logits.dtype
    if c.grads:
        got.update({f"gradient of {k}": np.asarray(v).dtype for k, v in c.grads.items()})
    if c.params:
        got.update({f"parameter {k}": np.asarray(v).dtype for k, v in c.params.items()})
    wrong = {k: d for k, d in got.items() if d.kind == "f" and d != want}
    if wrong:
        names = list(wrong)
        dt = wrong[names[0]]
        what = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        cause = ("the class ignores spec.dtype: build parameters and arrays with "
                 "dtype=spec.dtype" if want == np.float32
                 else "something computes in float32: a float32 array or constant, an "
                      "np.float32 cast, or a patched np.dot")
        return f"{dt} where {want} was asked: your {what} {'is' if len(names) == 1 else 'are'} {dt}; {cause}"
    if want != np.float64 or not c.grads or c.logits is None or not ev.ref.grads:
        return None
    errs = [rel_err(c.logits, ev.ref.logits)] + [rel_err(c.grads[k], ev.ref.grads[k])
                                                 for k in ev.ref.grads if k in c.grads]
    worst = max(errs)
    if not (1e-9 < worst < 1e-4):
        return None
    # how far float32 carries the reference itself from its float64 result
    model = ev.fresh("reference", dtype="float32")
    model.set_params({k: v.astype(np.float32) for k, v in ev.params0.items()})
    _, g32 = model.loss_and_grads(ev.x.astype(np.float32), ev.y)
    ref32 = max(rel_err(g32[k], ev.ref.grads[k]) for k in ev.ref.grads)
    if not (ref32 / 100 <= worst <= ref32 * 100):
        return None
    return (f"float32 arithmetic in a float64 run: your results differ from the reference's "
            f"by {worst:.1e} (relative), the level of float32 rounding (the reference run in "
            f"float32 is {ref32:.1e} from its float64 result) though your arrays are float64: "
            f"look for a float32 array or constant, an np.float32 cast, or a patched np.dot")


# ------------------------------------------------------------------ the activation
_SQ2PI = math.sqrt(2 / math.pi)


def _sigmoid(t):
    return 1 / (1 + np.exp(-t))


def _gelu_tanh(t):
    return 0.5 * t * (1 + np.tanh(_SQ2PI * (t + 0.044715 * t ** 3)))


def _gelu_tanh_grad(t):
    th = np.tanh(_SQ2PI * (t + 0.044715 * t ** 3))
    return 0.5 * (1 + th) + 0.5 * t * (1 - th ** 2) * _SQ2PI * (1 + 3 * 0.044715 * t ** 2)


def _phi_cdf(t):
    from math import erf

    return np.array([0.5 * (1 + erf(v / math.sqrt(2))) for v in np.ravel(t)])


#: known wrong versions of each activation: (forward or derivative, words, function of t)
_VARIANTS = {
    "gelu": [("forward", "gelu in its tanh approximation, 0.5·z·(1 + tanh(√(2/π)(z + "
              "0.044715 z³))), where the reference uses the exact erf form", _gelu_tanh),
             ("forward", "gelu as z·sigmoid(1.702 z), where the reference uses the exact erf "
              "form", lambda t: t * _sigmoid(1.702 * t)),
             ("derivative", "the derivative of gelu's tanh approximation, where the reference "
              "differentiates the exact erf form", _gelu_tanh_grad),
             ("derivative", "gelu's derivative without its z·φ(z) term (only Φ(z))", _phi_cdf)],
    "sigmoid": [("derivative", "the sigmoid's derivative computed from z, z·(1 - z), where it "
                 "needs a = sigmoid(z): a·(1 - a)", lambda t: t * (1 - t)),
                ("derivative", "the sigmoid's derivative applied to a = sigmoid(z) once more, "
                 "sigmoid(a)·(1 - sigmoid(a)), where it is a·(1 - a)",
                 lambda t: _sigmoid(_sigmoid(t)) * (1 - _sigmoid(_sigmoid(t))))],
    "tanh": [("derivative", "tanh's derivative computed from z, 1 - z², where it needs "
              "a = tanh(z): 1 - a²", lambda t: 1 - t ** 2),
             ("derivative", "tanh's derivative applied to a = tanh(z) once more, "
              "1 - tanh(a)², where it is 1 - a²", lambda t: 1 - np.tanh(np.tanh(t)) ** 2)],
}


def activation_variant(ev: Evidence) -> str | None:
    """The hidden activation or its derivative is a known wrong variant (crafted weights)."""
    from harness.diagnose.probes import POINTS, activation_values

    name = ev.spec.activation
    values = activation_values(ev)
    if values is None:
        return None
    f_r, f_c, d_r, d_c = values
    t = np.asarray(POINTS, dtype=np.float64)
    fwd_ok = close(f_c, f_r, ev.rtol, ev.atol)
    bwd_ok = close(d_c, d_r, ev.rtol, ev.atol)
    if fwd_ok and bwd_ok:
        return None
    j = int(np.argmax(np.abs(np.nan_to_num(f_c - f_r, nan=np.inf)) if not fwd_ok
                      else np.abs(np.nan_to_num(d_c - d_r, nan=np.inf))))
    for kind, words, fn in _VARIANTS.get(name, []):
        mine, theirs = (f_c, f_r) if kind == "forward" else (d_c, d_r)
        if (kind == "forward") == fwd_ok:
            continue
        if close(mine, fn(t), ev.rtol, ev.atol):
            label = name if kind == "forward" else f"{name}'"
            a, b = pair(mine[j], theirs[j])
            return (f"{words}: {label}({fmt(t[j])}) is {a} in yours, {b} in the reference "
                    f"(probed with crafted weights at z = {', '.join(fmt(v) for v in t)})")
    if name == "leaky_relu" and not fwd_ok:
        neg = t < 0
        slopes = f_c[neg] / t[neg]
        if np.allclose(slopes, slopes[0], rtol=1e-6) and np.allclose(f_c[~neg], t[~neg]):
            return (f"leaky_relu with negative slope {fmt(slopes[0])}, where the reference uses "
                    f"0.01 (torch's default)")
    return None


#: the hypotheses, in the order their lines are printed
def _cross_entropy_only(hypothesis):
    """``hypothesis`` run only when the reference's loss is the softmax cross-entropy (it
    reads the logits as that loss reads them)."""

    def gated(ev: Evidence) -> str | None:
        if getattr(ev.spec, "loss", "cross_entropy") != "cross_entropy":
            return None
        return hypothesis(ev)

    gated.__name__ = hypothesis.__name__
    gated.__doc__ = hypothesis.__doc__
    return gated


HYPOTHESES: tuple[Callable[[Evidence], str | None], ...] = (
    precision, output_shape, transposed_weights, _cross_entropy_only(probabilities_as_logits),
    loss_function, conv_causes, layer_causes, loss_scale,
    l2_in_loss, bias_grad_scale, flipped_sign, _cross_entropy_only(only_loss), update_rule,
    clipping_rule, activation_variant, overflow_at_scale, schedule_timing,
)


def hypotheses_for(ev: Evidence, hypotheses=HYPOTHESES) -> list[str]:
    """The lines of every hypothesis that holds (one that raises holds nothing)."""
    lines = []
    for hyp in hypotheses:
        try:
            with np.errstate(all="ignore"):
                line = hyp(ev)
        except Exception:  # noqa: BLE001 - a hypothesis that cannot be tested says nothing
            line = None
        if line:
            lines.append(line)
    return lines

"""The update rule: gradients agree but one step does not; which rule did the candidate run?

From the shared initial parameters and the (agreeing) gradients, the first step of
sgd, adam, adamw, rmsprop and adagrad has a closed form (a fresh optimizer state: momentum buffers
equal the gradient, Adam's bias-corrected moments are g and g²). The candidate's
parameters after its step are matched against the reference's own rule with other
settings (decay on weights only, no decay, another optimizer, no bias correction,
another learning rate).
"""

from __future__ import annotations

import math

import numpy as np

from harness.diagnose.evidence import Evidence, close, fmt

#: the optimizers whose first step has a closed form here
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")


def _flags(*flags: str) -> str:
    return " ".join(f"`{f}`" for f in flags)


def _first_step(p: dict, g: dict, *, name: str, lr: float, wd: float, on: str, betas,
                eps: float, momentum: float = 0.0, nesterov: bool = False,
                bias_correction: bool = True, alpha: float = 0.99, centered: bool = False,
                initial_accumulator_value: float = 0.0, eps_inside: bool = False,
                first_square: bool = False) -> dict:
    """Parameters after one step of ``name`` from a fresh state (float64)."""
    if name in ("rmsprop", "adagrad"):
        return _first_adaptive_step(p, g, name=name, lr=lr, wd=wd, on=on, eps=eps, alpha=alpha,
                                    centered=centered, initial=initial_accumulator_value,
                                    eps_inside=eps_inside, first_square=first_square)
    b1, b2 = betas
    out = {}
    for k in g:
        w = np.asarray(p[k], np.float64)
        grad = np.asarray(g[k], np.float64)
        decay = wd if (on == "all" or k.startswith("W")) else 0.0
        if name == "sgd":
            d = grad + decay * w
            if nesterov:
                d = d + momentum * d
            out[k] = w - lr * d
        elif name == "adamw":
            m, v = grad, grad * grad
            out[k] = w * (1 - lr * decay) - lr * m / (np.sqrt(v) + eps)
        else:  # adam: L2 added to the gradient
            d = grad + decay * w
            if bias_correction:
                out[k] = w - lr * d / (np.abs(d) + eps)
            else:
                m, v = (1 - b1) * d, (1 - b2) * d * d
                out[k] = w - lr * m / (np.sqrt(v) + eps)
    return out


def _first_adaptive_step(p: dict, g: dict, *, name: str, lr: float, wd: float, on: str,
                         eps: float, alpha: float, centered: bool, initial: float,
                         eps_inside: bool = False, first_square: bool = False) -> dict:
    """The first step of rmsprop (v = (1 - alpha) g^2; momentum's buffer is g / denom) or
    adagrad (s = initial + g^2), from a fresh state (float64); ``eps_inside``: the slip
    sqrt(v + eps) for sqrt(v) + eps; ``first_square``: rmsprop's average started at the
    first g^2 (v = g^2), not at 0."""
    out = {}
    for k in g:
        w = np.asarray(p[k], np.float64)
        d = np.asarray(g[k], np.float64)
        if on == "all" or k.startswith("W"):
            d = d + wd * w
        if name == "rmsprop":
            v = d * d if first_square else (1 - alpha) * d * d
            if centered:
                v = v - ((1 - alpha) * d) ** 2
        else:
            v = initial + d * d
        out[k] = w - lr * d / (np.sqrt(v + eps) if eps_inside else np.sqrt(v) + eps)
    return out


def _describe_optimizer(opt) -> str:
    where = getattr(opt, "weight_decay_in", "optimizer")
    on = getattr(opt, "weight_decay_on", "all")
    parts = [f"lr={fmt(opt.lr)}"]
    if opt.name == "sgd":
        parts.append(f"momentum={fmt(opt.momentum)}" + (", nesterov" if opt.nesterov else ""))
    elif opt.name == "rmsprop":
        parts.append(f"alpha={fmt(opt.alpha)}, eps={fmt(opt.eps)}, momentum={fmt(opt.momentum)}"
                     + (", centered" if opt.centered else ""))
    elif opt.name == "adagrad":
        parts.append(f"lr_decay={fmt(opt.lr_decay)}, initial_accumulator_value="
                     f"{fmt(opt.initial_accumulator_value)}, eps={fmt(opt.eps)}")
    else:
        parts.append(f"betas=({fmt(opt.betas[0])}, {fmt(opt.betas[1])}), eps={fmt(opt.eps)}")
    parts.append(f"weight_decay={fmt(opt.weight_decay)}"
                 + (f" in the {where} on {'weights only' if on == 'weights' else 'all parameters'}"
                    if opt.weight_decay else ""))
    return f"{opt.name}({', '.join(parts)})"


def noise_level_gradients(grads: dict, atol: float) -> dict:
    """Masks of gradient entries indistinguishable from zero at ``atol``.

    Matching a step against a formula is a hypothesis test, not a verdict: where the
    gradient is at noise level, Adam's normalised step is arbitrary in either direction,
    so those entries say nothing about which rule ran and are left out of the match.
    """
    masks = {}
    for key, g in grads.items():
        g = np.abs(np.asarray(g, dtype=np.float64))
        if g.size:
            masks[key] = g <= atol * max(1.0, float(g.max()))
    return masks


def update_rule(ev: Evidence) -> str | None:
    """Gradients agree but the parameters after one step differ: which rule did yours run?"""
    r, c = ev.ref, ev.cand
    if r.after is None or c.after is None or not ev.grads_agree():
        return None
    noise = noise_level_gradients(r.grads, ev.atol)
    if all(close(c.after[k], r.after[k], ev.rtol, ev.atol, noise.get(k)) for k in r.after):
        return None
    opt = ev.optimizer
    p, g = ev.params0, r.grads
    where = getattr(opt, "weight_decay_in", "optimizer")
    on = getattr(opt, "weight_decay_on", "all")
    wd = opt.weight_decay if where == "optimizer" else 0.0
    if getattr(opt, "clip_grad_norm", None) is not None or \
            getattr(opt, "clip_grad_value", None) is not None:
        return None  # the step used clipped gradients: the closed forms below do not hold
    base = dict(lr=opt.lr, betas=opt.betas, eps=opt.eps, momentum=opt.momentum,
                nesterov=opt.nesterov, alpha=getattr(opt, "alpha", 0.99),
                initial_accumulator_value=getattr(opt, "initial_accumulator_value", 0.0))

    def matches(after: dict) -> bool:
        return all(k in c.after and close(c.after[k], after[k], ev.rtol, ev.atol, noise.get(k))
                   for k in after)

    # the formulas must reproduce the reference's own step, or they prove nothing
    own = dict(centered=getattr(opt, "centered", False))
    if not matches_ref(_first_step(p, g, name=opt.name, wd=wd, on=on, **base, **own), r.after,
                       ev, noise):
        return None
    ran = _describe_optimizer(opt)

    def found(words: str, flag: str | None) -> str:
        fix = (f"; to compare with that rule, run the reference with {_flags(flag)}"
               if flag else "; fix the update rule")
        return (f"gradients agree but the step differs: the reference ran {ran}; your step "
                f"matches {words}{fix}")

    def test(name: str, decay: float, decay_on: str, **extra) -> bool:
        return matches(_first_step(p, g, **{**base, "name": name, "wd": decay, "on": decay_on,
                                             **extra}))

    if wd:
        other_on = "weights" if on == "all" else "all"
        if test(opt.name, wd, other_on, **own):
            return found(f"{opt.name} with weight decay on "
                         f"{'weights only' if other_on == 'weights' else 'all parameters'}",
                         f"--weight-decay-on {other_on}")
        if test(opt.name, 0.0, on, **own):
            return found(f"{opt.name} without weight decay", "--weight-decay 0")
    adaptive = _adaptive_slip(opt, lambda **kw: test(opt.name, wd, on, **{**own, **kw}))
    if adaptive is not None:
        return found(*adaptive)
    for name in OPTIMIZERS:
        if name == opt.name:
            continue
        with_decay = test(name, wd, on)
        without = bool(wd) and test(name, 0.0, on)
        if with_decay and without:
            return found(f"{name} with the same lr (with or without the weight decay "
                         f"{fmt(wd)}: one step cannot tell them apart)", f"--optimizer {name}")
        if with_decay:
            return found(f"{name} with the same lr and weight decay", f"--optimizer {name}")
        if without:
            return found(f"{name} with the same lr and no weight decay",
                         f"--optimizer {name} --weight-decay 0")
    if opt.name in ("adam", "adamw") and test("adam", wd if opt.name == "adam" else 0.0, on,
                                              bias_correction=False):
        factor = fmt((1 - opt.betas[0]) / math.sqrt(1 - opt.betas[1]))
        return found(f"a hand-written Adam without bias correction (m and v not divided by "
                     f"1 - beta^t, so the first step is {factor} times too large)", None)
    scaled = _lr_multiple(ev, p, noise, ran)
    if scaled is not None:
        return scaled
    return (f"gradients agree but the step differs: the reference ran {ran}; none of "
            f"{', '.join(OPTIMIZERS[:-1])} or {OPTIMIZERS[-1]} with the same settings, without "
            f"weight decay or with decay on weights only reproduces your step: check the update "
            f"rule and its constants")


def _lr_multiple(ev: Evidence, p: dict, noise: dict, ran: str) -> str | None:
    """The finding when the candidate's step is a constant multiple of the reference's (another
    learning rate), or None."""
    r, c, lr = ev.ref, ev.cand, ev.optimizer.lr
    # a different learning rate: the displacement is a constant multiple of the reference's
    dc = {k: np.asarray(c.after[k], np.float64) - p[k] for k in p}
    dr = {k: np.asarray(r.after[k], np.float64) - p[k] for k in p}
    den = sum(float(np.vdot(dr[k], dr[k])) for k in p)
    if den > 0:
        k_lr = sum(float(np.vdot(dc[k], dr[k])) for k in p) / den
        if k_lr > 0 and all(close(dc[k], k_lr * dr[k], ev.rtol, ev.atol * 10, noise.get(k))
                            for k in p):
            early = _schedule_early(ev.optimizer, k_lr)
            if early is not None:
                return (f"gradients agree but the step differs: the reference ran {ran}; your "
                        f"step is {fmt(k_lr)} times the reference's: {early}")
            return (f"gradients agree but the step differs: the reference ran {ran}; your step "
                    f"is {fmt(k_lr)} times the reference's, as with lr = {fmt(k_lr * lr)}; "
                    f"run the reference with {_flags(f'--lr {fmt(k_lr * lr)}')} if that is "
                    f"your learning rate")
    return None


def _schedule_early(opt, k_lr: float) -> str | None:
    """The words when a step k_lr times the reference's is the schedule stepped before the
    first optimizer step (lr(1) where torch's first step uses lr(0)), else None."""
    from harness.diagnose.schedules import scheduled_lr

    schedule = getattr(opt, "lr_schedule", "none")
    early = scheduled_lr(opt, 1)
    if schedule == "none" or math.isclose(early, opt.lr, rel_tol=1e-9) or \
            not math.isclose(k_lr * opt.lr, early, rel_tol=1e-4):
        return None
    return (f"it used lr(1) = {fmt(early)} of the {schedule} schedule, where torch's "
            f"uses lr(0) = {fmt(opt.lr)}: step the scheduler after the optimizer, not before")


def _adaptive_slip(opt, test) -> tuple[str, str | None] | None:
    """The slips of a hand-written rmsprop or adagrad that one step shows: (words, flag)."""
    if opt.name not in ("rmsprop", "adagrad"):
        return None
    if test(eps_inside=True):
        return (f"{opt.name} with eps inside the square root, sqrt(v + eps), where torch adds "
                f"it after the root, sqrt(v) + eps", None)
    if opt.name == "rmsprop" and test(first_square=True):
        return ("rmsprop with its average of g^2 started at the first g^2, where torch starts "
                f"it at 0 (v = (1 - alpha) g^2 at the first step: the step is "
                f"{fmt(1 / math.sqrt(1 - opt.alpha))} times yours)", None)
    if opt.name == "rmsprop" and test(centered=not opt.centered):
        return (f"rmsprop {'not ' if opt.centered else ''}centered",
                None if opt.centered else "--centered")
    if opt.name == "adagrad" and opt.initial_accumulator_value and \
            test(initial_accumulator_value=0.0):
        return ("adagrad with its sum of squares starting at 0, not at "
                f"initial_accumulator_value {fmt(opt.initial_accumulator_value)}",
                "--initial-accumulator 0")
    return None


def matches_ref(expected: dict, after: dict, ev: Evidence, noise: dict) -> bool:
    return all(close(after[k], expected[k], ev.rtol, ev.atol, noise.get(k)) for k in expected)


# ------------------------------------------------------------------ clipping
def clip_grads(grads: dict, *, value: float | None, norm: float | None,
               per_parameter: bool = False) -> dict:
    """The gradients clipped as torch clips them (float64): by value into [-value, value],
    then by norm, all of them times min(1, norm / (||g|| + 1e-6)) with ||g|| the global L2
    norm over every parameter; ``per_parameter``: the slip of one factor per parameter
    from its own norm."""
    out = {k: np.asarray(g, np.float64) for k, g in grads.items()}
    if value is not None:
        out = {k: np.clip(g, -value, value) for k, g in out.items()}
    if norm is None:
        return out

    def factor(total: float) -> float:
        return min(1.0, norm / (total + 1e-6))

    if per_parameter:
        return {k: g * factor(float(np.linalg.norm(g.ravel()))) for k, g in out.items()}
    total = math.sqrt(sum(float(np.vdot(g, g)) for g in out.values()))
    return {k: g * factor(total) for k, g in out.items()}


def clipping_rule(ev: Evidence) -> str | None:
    """Gradients agree but the clipped step does not: clipped per parameter, or not before
    the step? Each slip is named only when the first step rebuilt in float64 from the
    reference's gradients with torch's clipping reproduces the reference's step, the step
    rebuilt with the slip reproduces the candidate's, and torch's clipping does not."""
    opt = ev.optimizer
    norm, value = getattr(opt, "clip_grad_norm", None), getattr(opt, "clip_grad_value", None)
    r, c = ev.ref, ev.cand
    if (norm is None and value is None) or r.after is None or c.after is None \
            or not ev.grads_agree():
        return None
    noise = noise_level_gradients(r.grads, ev.atol)

    def matches(after: dict, expected: dict) -> bool:
        return all(k in after and close(after[k], expected[k], ev.rtol, ev.atol, noise.get(k))
                   for k in expected)

    if matches(c.after, r.after):
        return None
    where = getattr(opt, "weight_decay_in", "optimizer")
    kw = dict(name=opt.name, lr=opt.lr, wd=opt.weight_decay if where == "optimizer" else 0.0,
              on=getattr(opt, "weight_decay_on", "all"), betas=opt.betas, eps=opt.eps,
              momentum=opt.momentum, nesterov=opt.nesterov, alpha=opt.alpha,
              centered=opt.centered, initial_accumulator_value=opt.initial_accumulator_value)

    def step_with(**how) -> dict:
        return _first_step(ev.params0, clip_grads(r.grads, **how), **kw)

    torch_way = step_with(value=value, norm=norm)
    if not matches(r.after, torch_way) or matches(c.after, torch_way):
        return None  # the formulas do not hold here, or cannot tell the candidate apart
    ran = _describe_optimizer(opt) + _describe_clipping(value, norm)
    lead = f"gradients agree but the clipped step differs: the reference ran {ran}; your step"
    if norm is not None and matches(c.after, step_with(value=value, norm=norm,
                                                       per_parameter=True)):
        return (f"{lead} matches clip_grad_norm applied to each parameter on its own (each "
                f"gradient scaled to norm {fmt(norm)} by its own factor), where torch's "
                f"clip_grad_norm_ scales every gradient by one factor from their global L2 "
                f"norm: clip all parameters together, e.g. "
                f"clip_grad_norm_(model.parameters(), {fmt(norm)})")
    if matches(c.after, step_with(value=None, norm=None)):
        return (f"{lead} matches the same step from the unclipped gradients: the gradients "
                f"are clipped after the optimizer step, or not at all; clip between the "
                f"backward pass and the step")
    return None


def _describe_clipping(value: float | None, norm: float | None) -> str:
    parts = ([f"clip_grad_value {fmt(value)}"] if value is not None else []) + \
            ([f"clip_grad_norm {fmt(norm)}"] if norm is not None else [])
    return f" with {' then '.join(parts)}"

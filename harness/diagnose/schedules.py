"""The rate over the steps: the first step agrees, a later one does not; which rate ran?

With a learning-rate schedule (or Adagrad's ``lr_decay``), torch moves the rate after
every optimizer step, so step t (1-based) uses lr(t - 1). Both sides take a few steps
on the same batch from the shared initial parameters; at the first step where they
part, both started from the same parameters with the same gradients, so the
candidate's displacement is the reference's times the ratio of the rates used. That
ratio names the slip: the schedule one step early (lr(t)) or late (lr(t - 2)), not
applied at all, or Adagrad's decay left out.
"""

from __future__ import annotations

import math

import numpy as np

from harness.diagnose.evidence import Evidence, close, fmt

#: steps taken on the batch at most
STEPS = 6


def scheduled_lr(opt, t: int) -> float:
    """The schedule's closed form: the rate after ``t`` scheduler steps (lr(0) = lr)."""
    s, lr = getattr(opt, "lr_schedule", "none"), opt.lr
    if t < 0:
        return lr
    if s == "step":
        return lr * opt.gamma ** (t // opt.step_size)
    if s == "exponential":
        return lr * opt.gamma ** t
    if s == "inverse_time":
        return lr / (1 + opt.decay * t)
    if s == "cosine":
        return opt.eta_min + (lr - opt.eta_min) * (1 + math.cos(math.pi * t / opt.t_max)) / 2
    return lr


def _adagrad_decay(opt, t: int) -> float:
    decay = opt.lr_decay if opt.name == "adagrad" else 0.0
    return 1.0 / (1 + (t - 1) * decay)


def _first_parting(ev: Evidence):
    """(t, reference displacement, candidate displacement) at the first step that differs."""
    ref, cand = ev.fresh("reference"), ev.fresh("candidate")
    ref.set_params(ev.params0)
    cand.set_params(ev.params0)
    for t in range(1, STEPS + 1):
        before = {k: np.asarray(v, np.float64) for k, v in ref.get_params().items()}
        ref.train_step(ev.x.copy(), ev.y.copy())
        cand.train_step(ev.x.copy(), ev.y.copy())
        r, c = ref.get_params(), cand.get_params()
        if not all(close(c[k], r[k], ev.rtol, ev.atol) for k in r):
            return t, ({k: np.asarray(r[k], np.float64) - before[k] for k in r},
                       {k: np.asarray(c[k], np.float64) - before[k] for k in r})
    return None


def schedule_timing(ev: Evidence) -> str | None:
    """A schedule stepped one step early or late, not applied, or Adagrad's decay left out."""
    opt = ev.optimizer
    schedule = getattr(opt, "lr_schedule", "none")
    decay = opt.name == "adagrad" and getattr(opt, "lr_decay", 0.0) > 0
    if schedule == "none" and not decay:
        return None
    if ev.ref.after is None or ev.cand.after is None or not ev.grads_agree():
        return None
    if not all(close(ev.cand.after[k], ev.ref.after[k], ev.rtol, ev.atol) for k in ev.ref.after):
        return None  # the first step already differs: the update rule's hypotheses apply
    parted = _first_parting(ev)
    if parted is None:
        return None
    t, (dr, dc) = parted
    den = sum(float(np.vdot(dr[k], dr[k])) for k in dr)
    if den == 0:
        return None
    k_lr = sum(float(np.vdot(dc[k], dr[k])) for k in dr) / den
    if not all(close(dc[k], k_lr * dr[k], ev.rtol, ev.atol * 10) for k in dr):
        return None
    used = scheduled_lr(opt, t - 1) * _adagrad_decay(opt, t)
    options = []
    if schedule != "none":
        options += [(scheduled_lr(opt, t) * _adagrad_decay(opt, t),
                     f"the {schedule} schedule stepped one step early (step {t} used lr({t}), "
                     f"torch's step {t} uses lr({t - 1}): the scheduler steps after the "
                     f"optimizer)"),
                    (scheduled_lr(opt, t - 2) * _adagrad_decay(opt, t),
                     f"the {schedule} schedule one step late (step {t} used lr({t - 2}), "
                     f"torch's uses lr({t - 1}))"),
                    (opt.lr * _adagrad_decay(opt, t), f"no {schedule} schedule (the base rate "
                                                      f"{fmt(opt.lr)} at every step)")]
    if decay:
        options.append((scheduled_lr(opt, t - 1),
                        "adagrad without its lr_decay (torch's rate at step t is "
                        "lr / (1 + (t - 1) * lr_decay))"))
    for rate, words in options:
        if not math.isclose(rate, used, rel_tol=1e-12) and \
                math.isclose(k_lr * used, rate, rel_tol=max(1e-6, 100 * ev.rtol)):
            return (f"the first step agrees but step {t} differs by a factor {fmt(k_lr)} in "
                    f"its rate: your steps match {words}")
    return None

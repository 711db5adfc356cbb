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
            if rate == opt.lr * _adagrad_decay(opt, t):  # the base rate: or once per epoch?
                per_epoch = stepped_per_epoch(ev)
                if per_epoch is not None:
                    return per_epoch
            return (f"the first step agrees but step {t} differs by a factor {fmt(k_lr)} in "
                    f"its rate: your steps match {words}")
    return None


def _epoch_lengths(ev: Evidence) -> list[int]:
    """The batches per epoch a training run of this configuration takes (rounded down
    and up), the step counts a schedule stepped once per epoch moves after."""
    cfg = ev.config
    batch = int(getattr(cfg, "batch_size", 0) or 0)
    if batch < 1:
        return []
    n = int(getattr(cfg, "train_samples", None) or ev.n)
    n = int(n * (1 - float(getattr(cfg, "val_fraction", 0.0) or 0.0)))
    return sorted({max(1, n // batch), max(1, -(-n // batch))})


def stepped_per_epoch(ev: Evidence) -> str | None:
    """The schedule moved once per epoch instead of after every step: the reference rebuilt
    with torch's StepLR every E steps (E the batches of an epoch) trains like the
    candidate for E + 2 steps on the batch, and the line names those flags."""
    from dataclasses import replace

    opt = ev.optimizer
    schedule = getattr(opt, "lr_schedule", "none")
    if schedule not in ("exponential", "step"):
        return None  # inverse_time and cosine per epoch are no torch schedule to rerun with
    for e in _epoch_lengths(ev):
        if e < 2 or e > 64:
            continue
        every = e if schedule == "exponential" else e * opt.step_size
        aligned = replace(opt, lr_schedule="step", step_size=every)
        if _trains_alike(ev, replace(ev.config, optimizer=aligned), e + 2):
            return (f"the {schedule} schedule moved once per epoch: your rate changes once "
                    f"every {e} steps (the batches of an epoch), where torch's scheduler "
                    f"steps after every optimizer step; with `--lr-schedule step "
                    f"--step-size {every} --gamma {fmt(opt.gamma)}` the reference agrees "
                    f"over {e + 2} steps (checked)")
    return None


def _trains_alike(ev: Evidence, config, steps: int) -> bool:
    """Whether the reference built with ``config`` and the candidate stay together for
    ``steps`` steps on the batch from the shared parameters."""
    if ev.builder is not None:
        ref = ev.builder(config, ev.reference_name)
    else:
        from harness.model.registry import make_backend

        ref = make_backend(ev.reference_name, config.spec, config.optimizer)
    cand = ev.fresh("candidate")
    ref.set_params(ev.params0)
    cand.set_params(ev.params0)
    for _ in range(steps):
        ref.train_step(ev.x.copy(), ev.y.copy())
        cand.train_step(ev.x.copy(), ev.y.copy())
        r, c = ref.get_params(), cand.get_params()
        if not all(close(c[k], r[k], ev.rtol, ev.atol) for k in r):
            return False
    return True

"""Recognising the loss: which function of its own logits a candidate's loss is.

Correct code written for another loss than the reference's fails, and every quantity
after the logits differs; the numbers still say which loss it is. :func:`loss_function`
evaluates every loss the harness knows (:data:`CANDIDATES`: softmax cross-entropy,
binary cross-entropy of sigmoid outputs, squared error with or without 1/2, each summed
or averaged over the outputs and over the batch) on the candidate's own logits and keeps
those equal to the loss it reported; a match is named, with the flags that compare it,
only after the reference has been rebuilt with those flags and its loss and every
gradient agree with the candidate's.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import product

import math

import numpy as np

from harness.compare.numerics import loss_value
from harness.diagnose.evidence import Evidence, close, fmt

#: (loss, over the outputs, over the batch, half) of every loss the harness knows
CANDIDATES: tuple[tuple[str, str, str, bool], ...] = (
    *(("cross_entropy", "mean", r, False) for r in ("mean", "sum")),
    *(("bce", o, r, False) for o, r in product(("sum", "mean"), ("mean", "sum"))),
    *(("mse", o, r, h) for h, o, r in product((True, False), ("sum", "mean"),
                                               ("mean", "sum"))),
)


def describe_loss(loss: str, outputs: str, reduction: str, half: bool) -> str:
    """``the binary cross-entropy of sigmoid outputs, summed over the outputs and averaged
    over the batch``."""
    batch = "averaged over the batch" if reduction == "mean" else "summed over the batch"
    if loss == "cross_entropy":
        return f"the softmax cross-entropy, {batch}"
    name = ("the binary cross-entropy of sigmoid outputs" if loss == "bce"
            else "the quadratic cost 1/2 (z - y)^2" if half else "the squared error (z - y)^2")
    over = "summed over the outputs" if outputs == "sum" else "averaged over the outputs"
    return f"{name} (one-hot targets), {over} and {batch}"


def flags_of(loss: str, outputs: str, reduction: str, half: bool) -> str:
    """The command-line flags of a loss: ``--loss`` and those conventions that differ from
    the defaults."""
    flags = [f"--loss {loss}"]
    if outputs != "mean":
        flags.append(f"--loss-outputs {outputs}")
    if reduction != "mean":
        flags.append(f"--loss-reduction {reduction}")
    if half:
        flags.append("--mse-half")
    return " ".join(flags)


def _current(spec) -> tuple[str, str, str, bool]:
    return (getattr(spec, "loss", "cross_entropy"), getattr(spec, "loss_outputs", "mean"),
            getattr(spec, "loss_reduction", "mean"), bool(getattr(spec, "mse_half", False)))


def _l2_term(ev: Evidence) -> float:
    """The L2 term both losses carry when the configuration puts the decay in the loss."""
    opt = ev.optimizer
    if getattr(opt, "weight_decay_in", "optimizer") != "loss" or not opt.weight_decay:
        return 0.0
    on = getattr(opt, "weight_decay_on", "all")
    total = sum(float(np.vdot(v, v)) for k, v in ev.params0.items()
                if on == "all" or k.startswith("W"))
    return 0.5 * float(opt.weight_decay) * total


def _agrees_when_rebuilt(ev: Evidence, choice) -> bool:
    """Whether the reference rebuilt with the loss ``choice`` gives the candidate's loss and
    every one of its gradients at the shared parameters."""
    loss, outputs, reduction, half = choice
    spec = replace(ev.spec, loss=loss, loss_outputs=outputs, loss_reduction=reduction,
                   mse_half=half)
    config = replace(ev.config, spec=spec)
    if ev.builder is not None:
        model = ev.builder(config, ev.reference_name)
    else:
        from harness.model.registry import make_backend

        model = make_backend(ev.reference_name, spec, ev.optimizer, device=config.device)
    model.set_params(ev.params0)
    r_loss, r_grads = model.loss_and_grads(ev.x.copy(), ev.y.copy())
    c = ev.cand
    return (close(c.loss, r_loss, ev.rtol, ev.atol) and bool(c.grads)
            and all(k in c.grads and close(c.grads[k], v, ev.rtol, ev.atol)
                    for k, v in r_grads.items()))


def loss_function(ev: Evidence) -> str | None:
    """The candidate's loss is another function of the same logits (module docstring)."""
    r, c = ev.ref, ev.cand
    if (c.loss is None or r.loss is None or c.logits is None or r.logits is None
            or c.logits.shape != r.logits.shape or close(c.loss, r.loss, ev.rtol, ev.atol)
            or not close(c.logits, r.logits, ev.rtol, ev.atol)):
        return None
    current = _current(ev.spec)
    extra = _l2_term(ev)
    z = np.asarray(c.logits, dtype=np.float64)
    matches = []
    for choice in CANDIDATES:
        loss, outputs, reduction, half = choice
        value = loss_value(z, ev.y, loss, reduction, outputs, half) + extra
        # another reduction over the batch alone is the summed-loss hypothesis's
        same_function = (loss, outputs, half) == (current[0], current[1], current[3])
        if not same_function and close(float(c.loss), value, ev.rtol, ev.atol):
            matches.append(choice)
    for choice in matches:
        if _agrees_when_rebuilt(ev, choice):
            flags = flags_of(*choice)
            return (f"your loss is {describe_loss(*choice)}: its value {fmt(c.loss)} is that "
                    f"function of your own logits, where the reference computes "
                    f"{describe_loss(*current)} ({fmt(r.loss)}); with `{flags}` "
                    f"the reference agrees (the loss and every gradient), so run it with "
                    f"them if that loss is intended")
    mixed = _mixed_conventions(ev, matches)
    if mixed is not None:
        return mixed
    if matches:
        return (f"your loss value {fmt(c.loss)} is {describe_loss(*matches[0])} of your "
                f"logits, but the reference rebuilt with `{flags_of(*matches[0])}` does not "
                f"give your gradients: the loss is that function, its gradient another")
    return None


def _mixed_conventions(ev: Evidence, matches) -> str | None:
    """Mixed conventions: the gradients are the reference's loss's times a constant (the
    batch size: summed over the batch) while the loss value is not that loss scaled."""
    r, c = ev.ref, ev.cand
    if not r.grads or not c.grads or not all(k in c.grads for k in r.grads):
        return None
    num = sum(float(np.vdot(c.grads[k], r.grads[k])) for k in r.grads)
    den = sum(float(np.vdot(r.grads[k], r.grads[k])) for k in r.grads)
    if den == 0:
        return None
    k = num / den
    if abs(k - 1) < 1e-6 or not all(close(c.grads[key], k * np.asarray(r.grads[key]),
                                          ev.rtol, ev.atol) for key in r.grads):
        return None
    if close(c.loss, k * r.loss, ev.rtol, ev.atol):
        return None  # loss and gradients scaled together: the summed-loss hypothesis
    n = len(ev.y)
    scale = (f"summed over the batch ({fmt(k)} = N times the reference's)"
             if math.isclose(k, n, rel_tol=1e-6) else f"{fmt(k)} times the reference's")
    what = (f"{describe_loss(*matches[0])} of your logits" if matches
            else "not the reference's loss, nor that loss scaled")
    return (f"mixed conventions: your gradients are those of the reference's loss "
            f"({describe_loss(*_current(ev.spec))}) {scale}, but your loss value "
            f"{fmt(c.loss)} is {what}: the loss you report and the gradient you return "
            f"follow different conventions; make both the same loss with the same reduction")

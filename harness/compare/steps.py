"""Several optimizer steps of the equivalence check, and how the parameters after each are judged.

One step cannot see what starts at the second: Adam's bias correction counter ``t``, a
learning-rate schedule, a batch size kept from the first call, weight decay taken from
the parameters before the previous update, a layer skipped every other step. So the
check takes ``steps`` steps (default 3) on its batch and compares the parameters (and
buffers) after each; where step 1 agrees and a later one does not, the report says
after which step they part and that the cause is state kept between steps. The last
step of three or more runs on the batch's first half (an epoch's last, smaller batch):
a batch size cached at the first call shows there.

In float32 with a float64 arbiter the parameters after a step are judged against the
arbiter (which takes the same steps) entry by entry::

    |candidate - arb64| <= k * ARBITER_MULTIPLIER * max(|ref32 - arb64|, rms) + 2 ulp + floor
                           + ARBITER_MULTIPLIER * max|arb64 - before| * min(rho, NOISE_CAP)

with ``ulp`` the float32 rounding unit of the entry (each side rounds the parameter
once per step), ``k`` the step (the optimizers' state carries the rounding of k steps)
and ``floor`` the arbiter floor of the *step* (``arb64 - before``), not of
the parameters: an error of 1e-4 of the update is then resolved wherever it exceeds a
few rounding units of the parameter, where the plain float32 tolerances
(``atol 1e-5 x max|p|``) let errors up to about 1% of an ``lr 1e-3`` step through. The
exact excusal rule (:func:`harness.compare.excusal.excusable_after_step`) still excuses
entries whose gradient is rounding noise in both backends; an entry excused after one
step stays excused after the next (its moments carry the difference on).

The last term is the gradient's rounding as the optimizer passes it on. ``rho`` is the
entry's relative gradient noise at step 1, ``max(|g_ref32 - g_arb64|, rms) / |g_arb64|``
(:func:`gradient_noise`; rms over the quantity, as above). An optimizer that normalises
the gradient (Adam, AdamW, RMSprop, Adagrad) moves an entry by about ``lr x g /
sqrt(v)``, at most the quantity's largest step ``max|arb64 - before|``, and a relative
change ``rho`` of the entry's gradient (against its history, which ``sqrt(v)`` holds)
moves it by up to that step times ``rho``: at step 2, where ``m`` nearly cancels (the
gradient changes sign), the reference's own distance there can be small by luck while
the candidate's is not (a 2e-5 gradient with 1e-9 of rounding moved a correct float32
Adam entry 4.6e-8 against a bound of 3.2e-8 without this term). SGD with momentum
moves by ``lr x g`` and gets the same bound or more. ``rho`` is capped at ``NOISE_CAP``,
so the term never exceeds ``ARBITER_MULTIPLIER x NOISE_CAP`` (0.8%) of the largest
step: a bug in the state between steps (Adam's counter t frozen changes every step by
tens of percent) still fails, and entries whose gradient is rounding noise are left to
the excusal rule.
"""

from __future__ import annotations

import math

import numpy as np

from harness.compare.closeness import (
    ARBITER_MULTIPLIER, RULE_ARBITER, Comparison, _Bounds, _verdict, arbiter_floor, compare,
    compare_dicts, scalar64,
)

#: the relative gradient noise the step rule carries into an entry's allowance, at most
#: (module docstring): the term is then at most ARBITER_MULTIPLIER x NOISE_CAP of a step
NOISE_CAP = 1e-3

#: the cause named when step 1 agrees and a later step does not
STEP_STATE_CAUSE = ("state kept between steps (Adam's bias correction counter t, a "
                    "learning-rate schedule, a batch size cached at the first call, weight "
                    "decay from the parameters before the previous update, a layer updated "
                    "only on some steps)")


def step_batches(x: np.ndarray, y: np.ndarray, steps: int) -> list[tuple[np.ndarray,
                                                                         np.ndarray]]:
    """The batch of each step: ``(x, y)`` for all, but for the last of three or more,
    the first ``ceil(N / 2)`` rows (a smaller batch, as an epoch's last)."""
    batches = [(x, y)] * steps
    if steps >= 3 and len(y) > 1:
        half = int(math.ceil(len(y) / 2))
        batches[-1] = (x[:half], y[:half])
    return batches


def after_step_name(step: int) -> str:
    """``"params after step"`` for step 1 (the one-step check's name), else ``"... step k"``."""
    return "params after step" if step == 1 else f"params after step {step}"


def compare_after_step(prefix: str, actual: dict, expected: dict, *, rtol: float,
                       atol: float, before: dict, arbiter: dict | None = None,
                       ignore: dict | None = None, carried: int = 1,
                       noise: dict | None = None) -> list[Comparison]:
    """The post-step rows, key by key: the tolerances, or the arbiter's step rule (module
    docstring) when ``arbiter`` (the float64 parameters after the same steps) is given;
    ``carried``: the steps whose rounding the optimizers' state carries (step k: k);
    ``noise``: each key's relative gradient noise (:func:`gradient_noise`), if known."""
    if arbiter is None:
        return compare_dicts(prefix, actual, expected, rtol=rtol, atol=atol, ignore=ignore)
    rows = []
    for key in expected:
        name = f"{prefix}['{key}']"
        skip = None if ignore is None else ignore.get(key)
        if key not in actual or key not in arbiter or key not in before:
            rows.extend(compare_dicts(prefix, {k: actual[k] for k in actual if k == key},
                                      {key: expected[key]}, rtol=rtol, atol=atol))
            continue
        row = compare(name, actual[key], expected[key], rtol=rtol, atol=atol, ignore=skip)
        if not math.isfinite(row.max_abs_err) and not row.passed:
            rows.append(row)  # shape, dtype or a non-finite value: said as it is
            continue
        bounds = step_bounds(actual[key], expected[key], arbiter[key], before[key], carried,
                             None if noise is None else noise.get(key))
        rows.append(_verdict(name, tuple(np.shape(expected[key])),
                             np.asarray(expected[key], dtype=np.float64).reshape(-1), bounds,
                             skip, rtol=rtol, atol=atol, rule=RULE_ARBITER))
    for key in actual:
        if key not in expected:
            rows.extend(compare_dicts(prefix, {key: actual[key]}, {}, rtol=rtol, atol=atol))
    return rows


def gradient_noise(grads_ref: dict, grads_arb: dict, before: dict | None = None,
                   weight_decay: float = 0.0) -> dict:
    """Each entry's relative gradient noise ``rho`` (module docstring): the float32
    reference's distance from the float64 gradient, at least its RMS over the quantity,
    over the magnitude of the float64 gradient the optimizer sees (with an L2 decay,
    ``g + weight_decay * p`` of the parameters ``before``; inf where that is 0)."""
    out = {}
    for key, g in grads_ref.items():
        if key not in grads_arb:
            continue
        g_r = np.asarray(g, dtype=np.float64)
        g_a = np.asarray(grads_arb[key], dtype=np.float64)
        if g_r.shape != g_a.shape or not g_r.size:
            continue
        with np.errstate(all="ignore"):
            own = np.abs(g_r - g_a)
            typical = float(np.sqrt(np.mean(own * own)))
            seen = g_a
            if weight_decay and before is not None and np.shape(before.get(key)) == g_a.shape:
                seen = g_a + weight_decay * np.asarray(before[key], dtype=np.float64)
            rho = np.maximum(own, typical) / np.abs(seen)
        out[key] = np.where(np.isfinite(rho), rho, np.inf)
    return out


def step_bounds(actual, expected, arbiter, before, carried: int = 1, noise=None
                ) -> _Bounds:
    """The arbiter's rule for a parameter after a step (module docstring): after step k
    from the same parameters, the optimizers' state (momentum, Adam's moments) carries
    the rounding of k steps, so the multiple of the reference's own distance is k times
    that of step 1; ``noise``, the entries' relative gradient noise, adds the rounding
    the step passes on from the gradient (capped at ``NOISE_CAP``)."""
    a64 = np.asarray(actual, dtype=np.float64).reshape(-1)
    e64 = np.asarray(expected, dtype=np.float64).reshape(-1)
    r64 = np.asarray(arbiter, dtype=np.float64).reshape(-1)
    p0 = np.asarray(before, dtype=np.float64).reshape(-1)
    own = np.abs(e64 - r64)
    typical = float(np.sqrt(np.mean(own * own))) if own.size else 0.0
    ulp = float(np.finfo(np.float32).eps) * np.abs(r64)
    floor = arbiter_floor(r64 - p0)
    multiple = ARBITER_MULTIPLIER * carried
    carry = np.zeros_like(r64)
    if noise is not None and np.shape(noise) == np.shape(arbiter) and r64.size:
        rho = np.minimum(np.asarray(noise, dtype=np.float64).reshape(-1), NOISE_CAP)
        carry = ARBITER_MULTIPLIER * float(np.abs(r64 - p0).max()) * np.nan_to_num(
            rho, nan=NOISE_CAP)
    bound = multiple * np.maximum(own, typical) + 2 * ulp + floor + carry
    diff = np.abs(a64 - r64)

    def allowed(flat: int) -> str:
        return (f"from the float64 arbiter's value after the same steps; allowed "
                f"{float(bound[flat]):.3e} there = {multiple:g} x the float32 "
                f"reference's own distance {float(own[flat]):.3e} (at least its RMS "
                f"{typical:.3e}) + 2 float32 units of the entry {2 * float(ulp[flat]):.3e} "
                f"+ floor {floor:.3e} of the step + the gradient's noise carried "
                f"{float(carry[flat]):.3e}")

    return _Bounds(diff, bound, diff <= bound, allowed)


def parted_note(rows: list[Comparison], steps: int) -> str | None:
    """After which step the parameters part, and the cause when step 1 agreed; None
    when every post-step row agrees, or for a one-step check (nothing to say beyond
    its rows)."""
    by_step = {}
    for r in rows:
        for k in range(steps, 0, -1):
            head = after_step_name(k)
            if r.quantity.startswith(head + "[") or r.quantity.startswith(
                    head.replace("params", "buffers") + "["):
                by_step.setdefault(k, []).append(r)
                break
    bad = [k for k in sorted(by_step) if not all(r.passed for r in by_step[k])]
    if not bad:
        return None
    first = bad[0]
    names = ", ".join(r.quantity.split("[", 1)[1].strip("[]'") for r in by_step[first]
                      if not r.passed)
    if first == 1:
        return None if steps == 1 else f"the parameters part after step 1: {names}"
    half = " (a batch of half the rows)" if first == steps and steps >= 3 else ""
    return (f"parameters agree after step {first - 1}, part after step {first}{half}: "
            f"{names}; step 1 agrees, so the cause is {STEP_STATE_CAUSE}")


def resolution_notice(optimizer_spec, dtype, steps: int) -> str | None:
    """A notice where a configured effect is below the dtype's resolution: the weight
    decay's change of a parameter per step (``lr x weight_decay`` of it, relative: SGD's
    and AdamW's decay) under a few float32 rounding units, which a float32 comparison
    cannot see."""
    if optimizer_spec is None or np.dtype(dtype) != np.float32:
        return None
    name = str(getattr(optimizer_spec, "name", type(optimizer_spec).__name__)).lower()
    if name not in ("sgd", "adamw") and not getattr(optimizer_spec, "decoupled", False):
        return None  # an L2 term Adam normalises: its effect is relative to the gradient
    lr = float(getattr(optimizer_spec, "lr", 0.0) or 0.0)
    wd = float(getattr(optimizer_spec, "weight_decay", 0.0) or 0.0)
    effect = lr * wd
    resolution = 2 * float(np.finfo(np.float32).eps)
    if 0 < effect * steps < ARBITER_MULTIPLIER * resolution:
        return (f"notice: the weight decay changes each parameter by lr x weight_decay = "
                f"{effect:.1e} of itself per step, below float32's resolution here "
                f"({ARBITER_MULTIPLIER:g} x {resolution:.1e} over {steps} steps): a wrong or "
                f"missing decay cannot be resolved in float32; run in float64 to check it")
    return None


def inert_from(params: dict, reference: dict, inert: tuple) -> dict:
    """``params`` with the inert biases (:func:`inert_after_step`) taken from
    ``reference``: their rounding noise (a full Adam step) would move the running mean of
    the batch norm they feed, which the later steps compare."""
    keys = {q.split("[", 1)[1].strip("[]'") for q in inert}
    return {k: (reference[k] if k in keys else v) for k, v in params.items()}


def later_steps(reference, candidate, arbiter, x_ref, y, tol: dict, arb: dict | None,
                run, steps: int, excused: dict) -> None:
    """Steps 2..``steps`` of each (masks drawn as training draws them), the parameters
    and buffers compared after each (:mod:`harness.compare.steps`).

    Each step starts from the reference's parameters and buffers (copied into the
    candidate and the arbiter; the optimizers keep their own state): a difference after
    step k is that step's, judged as step 1 is, not the compounded rounding of the
    steps before (which, amplified by Adam, failed correct float32 pairs); a bug in the
    state kept between steps (the step counter, a schedule, a cached batch size, the
    previous parameters) still shows.
    """
    from harness.model.transfer import copy_params

    batches = step_batches(x_ref, y, steps)
    for k in range(2, steps + 1):
        xb, yb = batches[k - 1]
        copy_params(reference, candidate)
        if arbiter is not None:
            copy_params(reference, arbiter)
        before = reference.get_params()
        step_r = reference.train_step(xb, yb)
        step_c = candidate.train_step(xb, yb)
        arb_step = None
        if arbiter is not None:
            arb_step = scalar64(arbiter.train_step(arb["x64"][:len(yb)], yb))
            arb["after"] = arbiter.get_params()
        run.rows.append(compare(f"train_step loss (step {k})", step_c, step_r, **tol,
                                scalar=True, arbiter=arb_step))
        after = compare_after_step(after_step_name(k), candidate.get_params(),
                                   reference.get_params(), **tol, before=before,
                                   arbiter=None if arbiter is None else arb["after"],
                                   ignore=excused, carried=k,
                                   noise=None if arb is None else arb.get("noise"))
        run.rows.extend(after)
        run.rows.extend(compare_buffers(f"buffers after step {k}", reference, candidate,
                                         tol, None))
        if run.inert:
            candidate.set_params(inert_from(candidate.get_params(), reference.get_params(),
                                             run.inert))


def compare_buffers(prefix: str, reference, candidate, tol: dict, run
                     ) -> list[Comparison]:
    """The rows of the buffers (batch norm's running statistics) when the reference has
    some; a note (on ``run``) when the candidate cannot show its own."""
    from harness.model.transfer import has_buffers

    if not has_buffers(reference):
        return []
    expected = reference.get_buffers()
    if not expected:
        return []
    if not has_buffers(candidate):
        if run is not None:
            run.notes.append(f"note: running statistics NOT CHECKED: {run.names[1]} has no "
                             f"get_buffers/set_buffers (optional members), so its "
                             f"{', '.join(expected)} could not be copied in or compared; "
                             f"evaluation-mode logits compare only while they start equal")
        return []
    return compare_dicts(prefix, candidate.get_buffers(), expected, **tol)

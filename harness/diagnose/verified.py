"""Hints verified before they are shown, and ranked by how much of the difference each explains.

A hint that proposes a flag (`` `--optimizer adamw` ``, `` `--lr 0.001` ``, "drop
`` `--loss-reduction sum` ``") is a claim that can be tested: the check is rerun under
the settings the flags give, and the hint is shown only where the candidate then
agrees (residual 0). A flag that only switches off the part that differs is not a
fix: where the candidate passes without weight decay but its own step does depend on
the decay, the line says so ("your decay has no effect or a wrong one").

Where no proposal holds, the convention search (:mod:`harness.diagnose.search`) looks
for one complete nearby setting that passes; it becomes the first hint, and the
command line turns it into one complete command.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from harness.diagnose.evidence import Evidence
from harness.diagnose.search import Setting, residual, search

#: flag -> (which spec, field, converter)
_FIELDS = {
    "--optimizer": ("optimizer", "name", str), "--lr": ("optimizer", "lr", float),
    "--weight-decay": ("optimizer", "weight_decay", float),
    "--weight-decay-in": ("optimizer", "weight_decay_in", str),
    "--weight-decay-on": ("optimizer", "weight_decay_on", str),
    "--momentum": ("optimizer", "momentum", float),
    "--centered": ("optimizer", "centered", None),
    "--nesterov": ("optimizer", "nesterov", None),
    "--initial-accumulator": ("optimizer", "initial_accumulator_value", float),
    "--loss-reduction": ("spec", "loss_reduction", str), "--loss": ("spec", "loss", str),
}

_FLAG = re.compile(r"(drop )?`(--[a-z-]+)(?: ([^`]+))?`")

#: the words of a hint that starts with one of these prefixes are about numerics the
#: failure may not show: listed only where the failure holds a non-finite value
_OVERFLOW = "the loss is not finite for large logits"


def proposed(hint: str, ev: Evidence) -> Setting | None:
    """The setting the flags of ``hint`` propose (None when it proposes no flag)."""
    from harness.model.specs import ModelSpec, OptimizerSpec

    changes = {"optimizer": {}, "spec": {}}
    for drop, flag, value in _FLAG.findall(hint):
        if flag not in _FIELDS:
            continue
        which, key, conv = _FIELDS[flag]
        default_of = OptimizerSpec if which == "optimizer" else ModelSpec
        if drop:
            field = {f.name: f for f in dataclasses.fields(default_of)}[key]
            changes[which][key] = field.default
        elif conv is None:
            changes[which][key] = True
        else:
            try:
                changes[which][key] = conv(value)
            except (TypeError, ValueError):
                return None
    if not changes["optimizer"] and not changes["spec"]:
        return None
    try:
        return Setting(dataclasses.replace(ev.optimizer, **changes["optimizer"]),
                       dataclasses.replace(ev.spec, **changes["spec"]))
    except Exception:  # noqa: BLE001 - a proposal the specs refuse is not shown
        return None


def _step_changes(ev: Evidence, **change) -> bool | None:
    """Whether the candidate's own first step changes when its optimizer gets ``change``
    (None when that cannot be told)."""
    other = dataclasses.replace(ev.config, optimizer=dataclasses.replace(ev.optimizer,
                                                                           **change))
    steps = []
    for cfg in (ev.config, other):
        try:
            model = ev.fresh("candidate") if cfg is ev.config else _fresh(ev, cfg)
            model.set_params({k: v.copy() for k, v in ev.params0.items()})
            model.train_step(ev.x.copy(), ev.y.copy())
            steps.append(model.get_params())
        except Exception:  # noqa: BLE001 - cannot tell
            return None
    return any(not np.array_equal(np.asarray(steps[0][k]), np.asarray(steps[1][k]))
               for k in steps[0])


def decay_switched_off(ev: Evidence, setting: Setting) -> bool:
    """Whether ``setting`` only turns the weight decay off and the candidate's own step
    depends on the decay (so the decay it implements is wrong, not absent)."""
    o = ev.optimizer
    if not o.weight_decay or setting.spec != ev.spec or setting.optimizer.weight_decay:
        return False
    if dataclasses.replace(setting.optimizer, weight_decay=o.weight_decay, lr=o.lr) != o:
        return False
    return bool(_step_changes(ev, weight_decay=0.0))


def lr_compensates(ev: Evidence, setting: Setting) -> bool:
    """Whether ``setting`` changes the learning rate of a candidate that reads it: the
    other rate then makes up for a wrong step, it is not the code's convention (plain
    SGD code with its own constant rate does not read it)."""
    lr = setting.optimizer.lr
    if lr == ev.optimizer.lr:
        return False
    return _step_changes(ev, lr=ev.optimizer.lr * 2) is not False


def _fresh(ev: Evidence, config):
    other = dataclasses.replace(ev, config=config)
    return other.fresh("candidate")


def decay_words(ev: Evidence) -> str:
    return (f"your step equals the reference without weight decay, while your own step "
            f"changes with the decay ({ev.optimizer.weight_decay:g}): your decay has no "
            f"effect or a wrong one (applied after the update, to other parameters, or "
            f"with another factor); `--weight-decay 0` only switches off the part that "
            f"differs, it is not the fix")


def passing_words(setting: Setting) -> str:
    return (f"your class agrees with the reference under nearby settings: "
            f"{setting.python()} (rerun for real, it passes the same check)")


def verify_and_rank(ev: Evidence, hints: list[str], *, steps: int = 1,
                    failure: str = "") -> tuple[list[str], list[str], Setting | None, str | None]:
    """``(hints, notes, passing setting, its hint)``: proposals verified by a rerun and
    ranked by the residual they leave, an unverified proposal dropped, the overflow
    probe moved to the notes unless the failure holds a non-finite value, and the
    convention search's setting first where no proposal holds."""
    builder = ev.builder
    if builder is None:
        from harness.diagnose.search import _registry_builder as builder
    scored, notes, passing, passing_hint = [], [], None, None
    non_finite = bool(re.search(r"\b(nan|inf|not finite|non-finite|diverge)", failure, re.I))
    for i, hint in enumerate(hints):
        if hint.startswith(_OVERFLOW) and not non_finite:
            notes.append(f"not the cause of this failure, but a latent bug: {hint}")
            continue
        setting = proposed(hint, ev)
        if setting is None:
            scored.append((1.0, i, hint))
            continue
        left = residual(dataclasses.replace(ev.config, optimizer=setting.optimizer,
                                            spec=setting.spec), ev.x, ev.y,
                        ev.reference_name, ev.candidate_name, builder, steps=max(steps, 2))
        if left != 0 or lr_compensates(ev, setting):
            continue  # the flag it proposes does not make the candidate agree
        if decay_switched_off(ev, setting):
            scored.append((0.5, i, decay_words(ev)))
            continue
        scored.append((0.0, i, hint))
        passing = passing or setting
    fails = passing is not None or residual(ev.config, ev.x, ev.y, ev.reference_name,
                                            ev.candidate_name, builder,
                                            steps=max(steps, 2)) != 0
    if fails and passing is None and not any(s == 0.5 for s, _, _ in scored):
        found = search(ev, steps=max(steps, 2),
                       accept=lambda st: not lr_compensates(ev, st))
        if found is not None and decay_switched_off(ev, found):
            scored.append((0.5, -1, decay_words(ev)))
        elif found is not None:
            passing, passing_hint = found, passing_words(found)
            scored.append((0.0, -1, passing_hint))
    if any(t[0] < 1.0 for t in scored):  # a verified line explains it: not "none of ..."
        scored = [t for t in scored if t[0] < 1.0 or " reproduces your step" not in t[2]]
    scored.sort(key=lambda t: (t[0], t[1]))
    out = []
    for _, _, hint in scored:
        if hint not in out:
            out.append(hint)
    if passing is not None and passing_hint is None:
        passing_hint = next(h for s, _, h in scored if s == 0.0)
    return out, notes, passing, passing_hint


__all__ = ["decay_switched_off", "proposed", "verify_and_rank"]

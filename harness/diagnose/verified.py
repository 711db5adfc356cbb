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

_GROUP = re.compile(r"(drop )?`(--[^`]+)`")

#: the words of a hint that starts with one of these prefixes are about numerics the
#: failure may not show: listed only where the failure holds a non-finite value
_OVERFLOW = "the loss is not finite for large logits"


def proposed(hint: str, ev: Evidence) -> Setting | None:
    """The setting the flags of ``hint`` propose (None when it proposes no flag)."""
    from harness.model.specs import ModelSpec, OptimizerSpec

    changes = {"optimizer": {}, "spec": {}}
    pairs = []
    for drop, group in _GROUP.findall(hint):
        words = group.split()
        for j, word in enumerate(words):
            if word.startswith("--"):
                nxt = words[j + 1] if j + 1 < len(words) else ""
                pairs.append((drop, word, "" if nxt.startswith("--") else nxt))
    if any(flag not in _FIELDS for _, flag, _ in pairs):
        return None  # flags this module cannot rerun: the hypothesis verified them itself
    for drop, flag, value in pairs:
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


def _step_changes(ev: Evidence, spec_change: dict | None = None, **change) -> bool | None:
    """Whether the candidate's own first step (its loss, gradients and parameters after
    it) changes when its optimizer gets ``change`` (and its spec ``spec_change``); None
    when that cannot be told."""
    try:
        other = dataclasses.replace(
            ev.config, optimizer=dataclasses.replace(ev.optimizer, **change),
            spec=dataclasses.replace(ev.spec, **(spec_change or {})))
    except Exception:  # noqa: BLE001 - a combination the specs refuse
        return None
    outs = []
    for cfg in (ev.config, other):
        try:
            model = ev.fresh("candidate") if cfg is ev.config else _fresh(ev, cfg)
            model.set_params({k: v.copy() for k, v in ev.params0.items()})
            loss, grads = model.loss_and_grads(ev.x.copy(), ev.y.copy())
            model.train_step(ev.x.copy(), ev.y.copy())
            outs.append({"loss": np.asarray(loss), **{f"g{k}": np.asarray(v)
                                                       for k, v in grads.items()},
                         **{f"p{k}": np.asarray(v) for k, v in model.get_params().items()}})
        except Exception:  # noqa: BLE001 - cannot tell
            return None
    return any(k not in outs[1] or not np.array_equal(v, outs[1][k]) for k, v in outs[0].items())


def reads_changed_setting(ev: Evidence, setting: Setting) -> bool:
    """Whether the candidate reads one of the settings ``setting`` changes (other than the
    learning rate and the weight decay, judged on their own): a class that follows the
    optimizer's name or the loss reduction it is given runs what it is told, so passing
    under another one only switches off the part of its code that differs."""
    o, s = ev.optimizer, ev.spec
    for key in ("name", "weight_decay_in", "weight_decay_on", "momentum", "nesterov"):
        value = getattr(setting.optimizer, key)
        if value != getattr(o, key) and _step_changes(ev, **{key: value}) is not False:
            return True
    for key in ("loss_reduction", "loss"):
        value = getattr(setting.spec, key, None)
        if value != getattr(s, key, None) and \
                _step_changes(ev, spec_change={key: value}) is not False:
            return True
    return False


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
        if left != 0 or lr_compensates(ev, setting) or reads_changed_setting(ev, setting):
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
                       accept=lambda st: not (lr_compensates(ev, st)
                                              or reads_changed_setting(ev, st)))
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

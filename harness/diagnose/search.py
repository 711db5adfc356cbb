"""The convention search: the nearby settings under which a failing candidate agrees.

When a plug-in fails under the settings given, the likeliest reason is a setting the
harness was not told (plain SGD code run under the default Adam, a summed loss, the
decay in the loss). :func:`search` tries a bounded list of nearby complete settings
(another optimizer, weight decay off, in the loss, on the weights, the other loss
reduction, another loss function, and for plain SGD code the learning rate its step
shows) and reruns the check for real under each: the first step's equivalence, and
for a training check a few more steps on the same batch. The first that passes is
returned as a :class:`Setting`; the command line spells it as one complete command
(:mod:`harness.cli.passing`).

:func:`verify` reruns a check under the settings a hint proposes, and
:func:`residual` measures how much of a difference remains (0: it agrees), which is
how the hints are ranked and filtered (:mod:`harness.diagnose.verified`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from harness.diagnose.evidence import Evidence, close

#: at most this many settings are rerun by one search (each a one-step rerun)
MAX_CANDIDATES = 16

#: the optimizers the search tries besides the one given
SEARCHED_OPTIMIZERS = ("sgd", "adam", "adamw")

#: ModelSpec fields the search changes, and their flags
SPEC_FLAGS = {"loss_reduction": "--loss-reduction", "loss": "--loss"}

def _num(value) -> str:
    return f"{float(value):.6g}"


@dataclass(frozen=True)
class Setting:
    """One complete setting: the optimizer and the model spec a rerun used."""

    optimizer: object
    spec: object

    def overrides(self) -> dict:
        """Argparse destinations and values: the optimizer's three main ones always, the
        others and the spec's conventions where they differ from the defaults."""
        o = self.optimizer
        out = {"optimizer": o.name, "lr": o.lr, "weight_decay": o.weight_decay}
        if o.weight_decay and o.weight_decay_in != "optimizer":
            out["weight_decay_in"] = o.weight_decay_in
        if o.weight_decay and o.weight_decay_on != "all":
            out["weight_decay_on"] = o.weight_decay_on
        if o.name in ("sgd", "rmsprop") and o.momentum:
            out["momentum"] = o.momentum
        if o.name == "sgd" and o.nesterov:
            out["nesterov"] = True
        for key in SPEC_FLAGS:
            out[key] = getattr(self.spec, key, None)
        return out

    def python(self) -> str:
        """The optimizer as Python: ``OptimizerSpec("sgd", lr=0.1, weight_decay=0)``."""
        o = self.optimizer
        parts = [f'"{o.name}"', f"lr={_num(o.lr)}", f"weight_decay={_num(o.weight_decay)}"]
        for key in ("weight_decay_in", "weight_decay_on"):
            if key in self.overrides():
                parts.append(f'{key}="{getattr(o, key)}"')
        if "momentum" in self.overrides():
            parts.append(f"momentum={_num(o.momentum)}")
        if o.name == "sgd" and o.nesterov:
            parts.append("nesterov=True")
        text = f"OptimizerSpec({', '.join(parts)})"
        for key in SPEC_FLAGS:
            value = getattr(self.spec, key, None)
            if value not in (None, "mean", "cross_entropy"):
                text += f" with {key}={value!r}"
        return text


# ------------------------------------------------------------------ reruns
def _configured(config, setting: Setting):
    return dataclasses.replace(config, optimizer=setting.optimizer, spec=setting.spec)


def residual(config, x, y, reference: str, candidate: str, builder, *, steps: int = 1
             ) -> float:
    """How much of the difference remains when the check is rerun under ``config``:
    0 when the candidate agrees (the first step's equivalence, then ``steps - 1`` more
    steps on the same batch), else the sum over the differing quantities of their
    largest relative difference (each at most 1); inf when a side cannot be run."""
    from harness.compare.equivalence import check_equivalence, resolve_tolerances

    try:
        with np.errstate(all="ignore"):
            ref = builder(config, reference)
            cand = builder(config, candidate)
            report = check_equivalence(ref, cand, x, y, rtol=config.rtol, atol=config.atol)
            if report.raised is not None or getattr(report, "not_checked", None):
                return math.inf
            left = sum(min(1.0, r.max_rel_err) if math.isfinite(r.max_rel_err) else 1.0
                       for r in report.rows if not r.passed)
            if left or steps <= 1:
                return float(left)
            rtol, atol = resolve_tolerances(np.dtype(config.spec.dtype), config.rtol,
                                            config.atol)
            for _ in range(steps - 1):
                ref.train_step(x.copy(), y.copy())
                cand.train_step(x.copy(), y.copy())
            pr, pc = ref.get_params(), cand.get_params()
            bad = [k for k in pr if k not in pc or not close(pc[k], pr[k], rtol * 10, atol * 10)]
            return float(len(bad))
    except Exception:  # noqa: BLE001 - a setting the code cannot run under explains nothing
        return math.inf


def verify(config, x, y, reference, candidate, builder, setting: Setting, *, steps: int = 1
           ) -> bool:
    """Whether the candidate agrees when the check is rerun under ``setting``."""
    return residual(_configured(config, setting), x, y, reference, candidate, builder,
                    steps=steps) == 0


# ------------------------------------------------------------------ the nearby settings
def _round(value: float) -> float:
    """Two significant digits: the learning rate code spells as a constant."""
    if value <= 0 or not math.isfinite(value):
        return value
    return float(f"{value:.2g}")


def sgd_lr_from_step(ev: Evidence) -> float | None:
    """The learning rate of plain SGD that the candidate's first step shows
    (p1 = p0 - lr * g, with the reference's gradients), or None."""
    c, r = ev.cand, ev.ref
    if c.after is None or not r.grads or not ev.grads_agree():
        return None
    num = den = 0.0
    for k, g in r.grads.items():
        g = np.asarray(g, np.float64)
        d = np.asarray(c.after[k], np.float64) - np.asarray(ev.params0[k], np.float64)
        num -= float(np.vdot(d, g))
        den += float(np.vdot(g, g))
    if den == 0:
        return None
    lr = _round(num / den)
    return lr if lr > 0 else None


def _replace(obj, **kw):
    try:
        return dataclasses.replace(obj, **kw)
    except Exception:  # noqa: BLE001 - a combination the spec refuses is not a candidate
        return None


def nearby(ev: Evidence) -> list[Setting]:
    """The settings the search reruns, likeliest first (at most :data:`MAX_CANDIDATES`)."""
    o, s = ev.optimizer, ev.spec
    opts = []
    lr = sgd_lr_from_step(ev)
    if lr is not None:  # the step is a gradient step: plain SGD at the lr it shows
        opts += [_replace(o, name="sgd", lr=lr, weight_decay=0.0, momentum=0.0,
                          nesterov=False, weight_decay_in="optimizer", weight_decay_on="all"),
                 _replace(o, name="sgd", lr=lr, momentum=0.0, nesterov=False)]
    for name in (o.name, *SEARCHED_OPTIMIZERS):
        for wd in ((0.0,) if not o.weight_decay else (0.0, o.weight_decay)):
            if name == o.name and wd == o.weight_decay:
                continue
            opts.append(_replace(o, name=name, weight_decay=wd,
                                 weight_decay_in="optimizer" if name == "adamw"
                                 else o.weight_decay_in))
    if o.weight_decay and o.name != "adamw":
        for where, on in (("loss", o.weight_decay_on), (o.weight_decay_in, "weights"),
                          ("loss", "weights")):
            if (where, on) != (o.weight_decay_in, o.weight_decay_on):
                opts.append(_replace(o, weight_decay_in=where, weight_decay_on=on))
    specs = []
    other = "sum" if getattr(s, "loss_reduction", "mean") == "mean" else "mean"
    specs.append(_replace(s, loss_reduction=other))
    for loss in ("cross_entropy", "bce", "mse"):
        if loss != getattr(s, "loss", "cross_entropy"):
            specs.append(_replace(s, loss=loss))
    out = [Setting(op, s) for op in opts if op is not None]
    out += [Setting(o, sp) for sp in specs if sp is not None]
    # the two together: plain SGD code with a summed loss
    if opts and opts[0] is not None and specs and specs[0] is not None:
        out.append(Setting(opts[0], specs[0]))
    seen, unique = {repr((o, s))}, []
    for st in out:
        if repr((st.optimizer, st.spec)) not in seen:
            seen.add(repr((st.optimizer, st.spec)))
            unique.append(st)
    return unique[:MAX_CANDIDATES]


def _registry_builder(config, name, dtype=None):
    from harness.model.registry import make_backend

    cfg = config if dtype is None else config.with_dtype(dtype)
    model = make_backend(name, cfg.spec, cfg.optimizer, device=cfg.device)
    if cfg.init_params is not None:
        model.set_params(cfg.init_params)
    return model


def search(ev: Evidence, *, steps: int = 1, accept=None) -> Setting | None:
    """The first nearby setting under which the candidate agrees with the reference
    (and that ``accept(setting)``, when given, admits)."""
    builder = ev.builder or _registry_builder
    for setting in nearby(ev):
        if accept is not None and not accept(setting):
            continue
        if verify(ev.config, ev.x, ev.y, ev.reference_name, ev.candidate_name, builder,
                  setting, steps=steps):
            return setting
    return None

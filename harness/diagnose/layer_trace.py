"""Two models traced from the same start, and what differs between their traces.

:func:`trace` makes the protocol's calls in a fixed order (a forward, a training pass,
a forward, two steps, a forward) and keeps every answer; :class:`Study` traces the
reference and the candidate of an :class:`~harness.diagnose.evidence.Evidence` from
its shared initial weights, at the check's model spec or at a changed one (both sides
rebuilt with it), as the likely causes for layer networks
(:mod:`harness.diagnose.layers`) compare them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from harness.diagnose.evidence import Evidence, close, rel_err

#: what a trace holds, in the order the calls are made
FIELDS = ("eval0", "loss", "grads", "buffers1", "eval1", "after", "buffers2", "eval2")
#: the steps a trace takes after its first training pass
STEPS = 2

# ------------------------------------------------------------------ traces
@dataclass
class Trace:
    """One model's answers from the same start: see :func:`trace`."""

    buffers0: dict = field(default_factory=dict)
    eval0: np.ndarray | None = None
    moved: tuple = ()
    loss: float | None = None
    grads: dict | None = None
    buffers1: dict | None = None
    eval1: np.ndarray | None = None
    after: dict | None = None
    buffers2: dict | None = None
    eval2: np.ndarray | None = None
    error: Exception | None = None


def _buffers(model) -> dict:
    get = getattr(model, "get_buffers", None)
    return {} if get is None else {k: np.array(v, copy=True) for k, v in get().items()}


def trace(model, params: dict, x: np.ndarray, y: np.ndarray, steps: int = STEPS) -> Trace:
    """Set ``params``; forward (``eval0``, and the buffers it ``moved``); a training pass
    (``loss``, ``grads``, ``buffers1``); forward (``eval1``); ``steps`` train_steps
    (``after``, ``buffers2``); forward (``eval2``). Stops at the first call that raises."""
    t = Trace()
    try:
        model.set_params(params)
        t.buffers0 = _buffers(model)
        t.eval0 = np.asarray(model.forward(x.copy()))
        now = _buffers(model)
        t.moved = tuple(k for k, v in t.buffers0.items() if not np.array_equal(now[k], v))
        loss, grads = model.loss_and_grads(x.copy(), y.copy())
        t.loss, t.grads = float(loss), {k: np.asarray(v) for k, v in grads.items()}
        t.buffers1 = _buffers(model)
        t.eval1 = np.asarray(model.forward(x.copy()))
        for _ in range(steps):
            model.train_step(x.copy(), y.copy())
        t.after = model.get_params()
        t.buffers2 = _buffers(model)
        t.eval2 = np.asarray(model.forward(x.copy()))
    except Exception as exc:  # noqa: BLE001 - the code under test may raise anything
        t.error = exc
    return t


def differing(cand, ref, fields, rtol: float, atol: float) -> list[str]:
    """The quantities of ``fields`` where ``cand`` and ``ref`` (traces or dicts) differ."""
    out = []
    for name in fields:
        c, r = _get(cand, name), _get(ref, name)
        if isinstance(r, dict):
            if not isinstance(c, dict):
                out.append(name)
                continue
            out.extend(f"{name}['{k}']" for k in r
                       if k not in c or not close(c[k], r[k], rtol, atol))
        elif r is None or c is None or not close(c, r, rtol, atol):
            out.append(name)
    return out


def _get(obj, name):
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name)


def named(quantity: str) -> str:
    """Words for one of :data:`FIELDS`."""
    return {"eval0": "evaluation logits", "loss": "training loss", "grads": "gradients",
            "buffers1": "running statistics after a training pass",
            "eval1": "evaluation logits after a training pass"}.get(quantity, quantity)


# ------------------------------------------------------------------ the study
class Study:
    """The reference's and the candidate's traces, at the check's spec or at ``spec``
    (both sides built with it)."""

    def __init__(self, ev: Evidence, spec=None) -> None:
        self.ev = ev
        self.spec = ev.spec if spec is None else spec
        self.eps_matters: dict[float, bool] = {}

    def build(self, which: str, spec):
        ev = self.ev
        if spec is ev.spec:
            return ev.fresh(which)
        cfg = replace(ev.config, spec=spec)
        name = ev.reference_name if which == "reference" else ev.candidate_name
        if ev.builder is not None:
            model = ev.builder(cfg, name)
            return getattr(model, "wrapped", model)
        from harness.model.registry import make_backend

        return make_backend(name, cfg.spec, cfg.optimizer, device=cfg.device)

    def traces(self, spec=None) -> tuple[Trace, Trace]:
        spec = self.spec if spec is None else spec
        ev = self.ev
        return tuple(trace(self.build(w, spec), ev.params0, ev.x, ev.y)
                     for w in ("reference", "candidate"))

    @cached_property
    def base(self) -> tuple[Trace, Trace]:
        return self.traces()

    @property
    def ref(self) -> Trace:
        return self.base[0]

    @property
    def cand(self) -> Trace:
        return self.base[1]

    def agree(self, ref: Trace, cand: Trace, fields=FIELDS) -> bool:
        return ref.error is None and cand.error is None and not differing(
            cand, ref, fields, self.ev.rtol, self.ev.atol)

    @cached_property
    def without_dropout(self) -> bool:
        """Whether both sides agree everywhere with the dropout layers taken out."""
        layers = [layer for layer in self.spec.network.layers if layer.name != "dropout"]
        spec = replace(self.spec, layers=tuple(layers))
        return self.agree(*self.traces(spec))


def largest_gap(a, b, fields=FIELDS) -> float:
    """The largest relative difference (over each array's largest entry) of two traces
    (or dicts) in ``fields``."""
    gaps = [0.0]
    for name in fields:
        x, y = _get(a, name), _get(b, name)
        if isinstance(y, dict):  # one scale for the whole dict: a bias gradient that
            # batch norm makes 0 up to rounding has no scale of its own
            keys = sorted(y)
            x = np.concatenate([np.ravel(x[k]) for k in keys]) if keys else np.zeros(0)
            y = np.concatenate([np.ravel(y[k]) for k in keys]) if keys else np.zeros(0)
        gaps.append(rel_err(x, y))
    return max(gaps)


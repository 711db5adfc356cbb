"""What the hypotheses look at: two fresh models from the same weights, run once.

An :class:`Evidence` holds a fresh reference and a fresh candidate built from the
check's configuration, both set to the same initial parameters, the batch, and
(computed on first use) a :class:`Snapshot` of each: logits, loss, gradients and the
parameters after one ``train_step``. Nothing the user passed in is changed: the
models are new, the batch is a copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from harness.runtime.deadline import current_limit, time_limit


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of ``z`` (N, C), with log-sum-exp; float64."""
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def rel_err(actual, expected) -> float:
    """Largest absolute difference over the largest magnitude of ``expected`` (inf if unusable)."""
    try:
        a = np.asarray(actual, dtype=np.float64)
        e = np.asarray(expected, dtype=np.float64)
    except (TypeError, ValueError):
        return math.inf
    if a.shape != e.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(e))):
        return math.inf
    if e.size == 0:
        return 0.0
    scale = float(np.max(np.abs(e)))
    diff = float(np.max(np.abs(a - e)))
    return diff / scale if scale > 0 else diff


def close(actual, expected, rtol: float, atol: float, ignore=None) -> bool:
    """True when every entry agrees as the harness compares: atol scaled by max(1, max|e|)."""
    try:
        a = np.asarray(actual, dtype=np.float64)
        e = np.asarray(expected, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    if a.shape != e.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(e))):
        return False
    if e.size == 0:
        return True
    floor = atol * max(1.0, float(np.max(np.abs(e))))
    ok = np.abs(a - e) <= floor + rtol * np.abs(e)
    if ignore is not None:
        ok |= np.asarray(ignore, dtype=bool)
    return bool(np.all(ok))


def fmt(x) -> str:
    """A number for a message: 4 significant digits."""
    x = float(x)
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def pair(a, b) -> tuple[str, str]:
    """Two numbers with just enough significant digits (4 to 10) to tell them apart."""
    a, b = float(a), float(b)
    for digits in range(4, 11):
        sa, sb = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if sa != sb:
            return sa, sb
    return sa, sb


@dataclass
class Snapshot:
    """One model's results at the shared initial parameters (None where it raised)."""

    params: dict | None = None
    logits: np.ndarray | None = None
    loss: float | None = None
    grads: dict | None = None
    step_loss: float | None = None
    after: dict | None = None
    errors: dict = field(default_factory=dict)


def _call(snap: Snapshot, what: str, fn, *args):
    try:
        with np.errstate(all="ignore"), time_limit(current_limit()):
            return fn(*args)
    except Exception as exc:  # noqa: BLE001 - the code under test may raise anything
        snap.errors[what] = exc
        return None


def snapshot(model, params: dict | None, x: np.ndarray, y: np.ndarray) -> Snapshot:
    """Set ``params`` (when given), then logits, loss and gradients, then one step."""
    snap = Snapshot()
    if params is not None and _call(snap, "set_params", model.set_params, params) is None \
            and "set_params" in snap.errors:
        snap.params = _call(snap, "get_params", model.get_params)
        return snap
    snap.params = _call(snap, "get_params", model.get_params)
    logits = _call(snap, "forward", model.forward, x.copy())
    snap.logits = None if logits is None else np.asarray(logits)
    out = _call(snap, "loss_and_grads", model.loss_and_grads, x.copy(), y.copy())
    if out is not None:
        snap.loss, snap.grads = out
        snap.grads = {k: np.asarray(v) for k, v in snap.grads.items()}
    snap.step_loss = _call(snap, "train_step", model.train_step, x.copy(), y.copy())
    if "train_step" not in snap.errors:
        snap.after = _call(snap, "get_params", model.get_params)
    return snap


@dataclass
class Evidence:
    """A reference and a candidate at the same initial parameters, and the batch.

    Attributes
    ----------
    config : harness.checks.CheckConfig
    reference_name, candidate_name : str
    x : ndarray (N, d_0), in the configuration's dtype; y : ndarray of int (N,)
    rtol, atol : float
        The tolerances hypotheses judge by (the check's, loosened tenfold: a
        hypothesis explains a difference, it need not reproduce rounding).
    """

    config: Any
    reference_name: str
    candidate_name: str
    x: np.ndarray
    y: np.ndarray
    rtol: float
    atol: float
    builder: Any = field(default=None, repr=False)
    #: the batch size of the training run diagnosed, if any (hints quote it)
    train_batch: int | None = None

    @classmethod
    def build(cls, config, reference_name: str, candidate_name: str, x, y, *,
              builder=None) -> Evidence:
        """Evidence for ``candidate_name`` against ``reference_name`` on ``(x, y)`` (copied).

        ``builder(config, name, dtype=None)`` builds a model; default: the registry.
        """
        from harness.compare.equivalence import resolve_tolerances

        dtype = np.dtype(config.spec.dtype)
        rtol, atol = resolve_tolerances(dtype, config.rtol, config.atol)
        return cls(config, reference_name, candidate_name,
                   np.array(x, dtype=dtype, copy=True), np.array(y, dtype=np.int64, copy=True),
                   rtol * 10, atol * 10, builder)

    # ---------------------------------------------------------------- models
    def fresh(self, which: str, *, dtype: str | None = None):
        """A new model (``"reference"`` or ``"candidate"``), not yet set to shared params.

        Built by ``builder(config, name, dtype=...)`` when one was given (the checks
        layer passes its own, which guards a plug-in), else through the registry.
        """
        name = self.reference_name if which == "reference" else self.candidate_name
        if self.builder is not None:
            model = self.builder(self.config, name, dtype=dtype)
            # the raw model behind the checks layer's guard: a hypothesis looks at what
            # the code returns (a 1-D array, a transposed gradient), not at the guard's
            # verdict on it
            return getattr(model, "wrapped", model)
        from harness.model.registry import make_backend

        cfg = self.config if dtype is None else self.config.with_dtype(dtype)
        return make_backend(name, cfg.spec, cfg.optimizer, device=cfg.device)

    @cached_property
    def params0(self) -> dict:
        """The shared initial parameters: the reference's."""
        return {k: np.array(v, copy=True) for k, v in self.fresh("reference").get_params().items()}

    @property
    def spec(self):
        return self.config.spec

    @property
    def optimizer(self):
        return self.config.optimizer

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def n_layers(self) -> int:
        return len(self.spec.dims) - 1

    @cached_property
    def ref(self) -> Snapshot:
        return snapshot(self.fresh("reference"), self.params0, self.x, self.y)

    @cached_property
    def cand(self) -> Snapshot:
        return snapshot(self.fresh("candidate"), self.params0, self.x, self.y)

    def run_both(self, params: dict, x: np.ndarray, y: np.ndarray, *, step: bool = False
                 ) -> tuple[Snapshot, Snapshot]:
        """Fresh snapshots of both sides at ``params`` on the batch ``(x, y)``."""
        out = []
        for which in ("reference", "candidate"):
            model = self.fresh(which)
            snap = Snapshot()
            if _call(snap, "set_params", model.set_params, params) is None \
                    and "set_params" in snap.errors:
                out.append(snap)
                continue
            logits = _call(snap, "forward", model.forward, x.copy())
            snap.logits = None if logits is None else np.asarray(logits)
            res = _call(snap, "loss_and_grads", model.loss_and_grads, x.copy(), y.copy())
            if res is not None:
                snap.loss = res[0]
                snap.grads = {k: np.asarray(v) for k, v in res[1].items()}
            if step:
                snap.step_loss = _call(snap, "train_step", model.train_step, x.copy(), y.copy())
                snap.after = _call(snap, "get_params", model.get_params)
            out.append(snap)
        return out[0], out[1]

    # ---------------------------------------------------------------- judgements
    def grads_agree(self, keys=None) -> bool:
        r, c = self.ref.grads, self.cand.grads
        if r is None or c is None:
            return False
        keys = list(r) if keys is None else keys
        return all(k in c and close(c[k], r[k], self.rtol, self.atol) for k in keys)

    def loss_agrees(self) -> bool:
        return (self.ref.loss is not None and self.cand.loss is not None
                and close(self.cand.loss, self.ref.loss, self.rtol, self.atol))

    def logits_agree(self) -> bool:
        return (self.ref.logits is not None and self.cand.logits is not None
                and close(self.cand.logits, self.ref.logits, self.rtol, self.atol))

"""The judge of a trajectory comparison: each step's bound, as the models train.

:class:`TrajectoryJudge` receives the callbacks of
:func:`harness.training.side_by_side.train_side_by_side` and applies the rule of
:mod:`harness.training.trajectory` ("Trajectory tolerance"): the tolerance, widened by the
witnesses' spread, or the float64 arbiter's bound.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import numpy as np


from harness.compare.closeness import ARBITER_FLOOR_ULPS
from harness.model.transfer import model_state
from harness.training.trajectory import (AMPLIFIED, DECORRELATED, DIFFERENCE, PARAM_WINDOW,
                                         SPREAD_MULTIPLIER,
                                         SPREAD_WINDOW, Divergence, trajectory_bound)


def _param_difference(ref: dict, cand: dict) -> tuple[float, float, str]:
    """(largest |difference|, largest |reference value|, where the difference is largest)."""
    diff, scale, where = 0.0, 0.0, ""
    for key, r in ref.items():
        r64 = np.asarray(r, dtype=np.float64)
        d = np.abs(np.asarray(cand[key], dtype=np.float64) - r64)
        if r64.size:
            scale = max(scale, float(np.abs(r64).max()))
            if not np.all(np.isfinite(d)):
                flat = int(np.argmin(np.isfinite(d)))
                return math.nan, scale, _entry(key, flat, d.shape)
            flat = int(np.argmax(d))
            if d.flat[flat] > diff or not where:
                diff = float(d.flat[flat])
                where = _entry(key, flat, d.shape)
    return diff, scale, where


def _entry(key: str, flat: int, shape: tuple[int, ...]) -> str:
    return f"{key}[{', '.join(str(int(i)) for i in np.unravel_index(flat, shape))}]"


class TrajectoryJudge:
    """Compares two models as :func:`harness.training.side_by_side.train_side_by_side` steps them.

    Its :meth:`on_step` and :meth:`after_epoch` are that function's callbacks. Each
    step's loss difference and each epoch end's largest parameter difference are
    judged against :func:`trajectory_bound` or, with a float64 arbiter, against the
    reference's own drift from it (module docstring, "Trajectory tolerance").

    Parameters
    ----------
    reference, candidate : Classifier
    reference_name, candidate_name : str
        Their names in the losses and metrics the callbacks receive.
    tol : dict
        ``rtol``, ``atol`` and ``growth_steps`` of :func:`trajectory_bound`.
    arbiter : Classifier, optional
        The float64 arbiter, stepping along under ``arbiter_name``; None: the tolerances.
    arbiter_name : str, optional
    witnesses : dict of str to Classifier, optional
        The float32 witnesses (:class:`~harness.training.witness.Witness`) by the names under
        which their batch losses arrive; their distance from the arbiter widens the
        bound like the reference's. Only with an arbiter.
    on_epoch : callable, optional
        Called after every epoch with the metrics (the arbiter's left out) and the
        :data:`DIFFERENCE` entry (``param_diff``, ``max_loss_diff``).

    Attributes
    ----------
    rows : list of tuple
        The comparison rows of the history (``backend`` :data:`DIFFERENCE`).
    first : Divergence or None
        The first step at which a difference left its bound.
    """

    def __init__(self, reference, candidate, *, reference_name: str, candidate_name: str,
                 tol: dict, arbiter=None, arbiter_name: str | None = None,
                 witnesses: dict | None = None,
                 on_epoch: Callable[[int, int, dict], None] | None = None) -> None:
        self.reference, self.candidate, self.arbiter = reference, candidate, arbiter
        self.witnesses = dict(witnesses or {})
        self.reference_name, self.candidate_name = reference_name, candidate_name
        self.arbiter_name = arbiter_name
        self.tol = tol
        self.on_epoch = on_epoch
        self.rows: list[tuple] = []
        self.first: Divergence | None = None
        self._epoch_max = 0.0
        # the spread of correct runs over the last few steps (epoch ends for parameters)
        self._loss_drift = _Window(SPREAD_WINDOW)
        self._param_drift = _Window(PARAM_WINDOW)
        #: the largest |loss| near this step: what a loss spread is decorrelated against
        self._recent_loss = _Window(SPREAD_WINDOW)
        #: the largest distance of correct float32 runs from float64 relative to the loss
        self.spread = 0.0
        self._loss_scale = 0.0
        #: the first step at which that exceeded :data:`AMPLIFIED`
        self.amplified_step: int | None = None
        #: the first step at which correct runs had parted by :data:`DECORRELATED` of the
        #: quantity itself: from there on only non-finite values are judged
        self.decorrelated_step: int | None = None

    def _decorrelated(self, spread: float, scale: float, step: int) -> None:
        """Note the step from which correct runs are ``DECORRELATED`` apart, relative to
        ``scale`` (the largest loss of the last steps, or the largest parameter entry)."""
        if self.decorrelated_step is None and scale > 0 and spread > DECORRELATED * scale:
            self.decorrelated_step = step
            if self.amplified_step is None:
                self.amplified_step = step

    def _widened(self, bound: float, witnessed: float, step: int) -> float:
        """The tolerance, or the witnesses' spread times the multiplier where larger."""
        wide = SPREAD_MULTIPLIER * witnessed
        if wide > bound:
            if self.amplified_step is None:
                self.amplified_step = step
            return wide
        return bound

    def _note(self, div: Divergence) -> None:
        if self.decorrelated_step is not None and math.isfinite(div.difference):
            return  # correct runs are as far apart as the values themselves
        if self.first is None:
            self.first = div

    def on_step(self, step: int, epoch: int, losses: dict) -> None:
        """Judge the batch losses of one step."""
        lr_, lc = losses[self.reference_name], losses[self.candidate_name]
        diff = abs(lc - lr_) if math.isfinite(lr_) and math.isfinite(lc) else math.nan
        self.rows.append((step, epoch, DIFFERENCE, "loss_diff", diff))
        self._epoch_max = max(self._epoch_max, diff) if math.isfinite(diff) else math.nan
        if self.arbiter is not None:
            l64 = losses[self.arbiter_name]
            drift = abs(lr_ - l64)
            judged = abs(lc - l64)
            if not math.isfinite(judged):
                judged = math.nan
            witnessed = _finite_max(abs(losses[name] - l64) for name in self.witnesses)
            spread = self._loss_drift.add(_finite_max((drift, witnessed)))
            bound = SPREAD_MULTIPLIER * spread + ARBITER_FLOOR_ULPS * _EPS32 * (
                abs(l64) if math.isfinite(l64) else 0.0)
            if math.isfinite(l64):
                self._loss_scale = max(self._loss_scale, abs(l64))
            if self._loss_scale > 0:
                self.spread = max(self.spread, spread / self._loss_scale)
                if self.amplified_step is None and self.spread > AMPLIFIED:
                    self.amplified_step = step
            self._decorrelated(spread, self._recent_loss.add(abs(l64)), step)
            self.rows.append((step, epoch, DIFFERENCE, "ref_loss_drift", drift))
            self.rows.append((step, epoch, DIFFERENCE, "cand_loss_drift", judged))
            if self.witnesses:
                self.rows.append((step, epoch, DIFFERENCE, "witness_loss_drift", witnessed))
        else:
            judged = diff
            bound = trajectory_bound(abs(lr_) if math.isfinite(lr_) else 0.0, step, **self.tol)
            if self.witnesses:  # how far correct runs part on this very run
                witnessed = _finite_max(abs(losses[name] - lr_) for name in self.witnesses)
                spread = self._loss_drift.add(witnessed)
                bound = self._widened(bound, spread, step)
                if math.isfinite(lr_):
                    self._loss_scale = max(self._loss_scale, abs(lr_))
                if self._loss_scale > 0:
                    self.spread = max(self.spread, spread / self._loss_scale)
                self._decorrelated(spread, self._recent_loss.add(abs(lr_)), step)
                self.rows.append((step, epoch, DIFFERENCE, "witness_loss_drift", witnessed))
        self.rows.append((step, epoch, DIFFERENCE, "loss_bound", bound))
        if not judged <= bound:
            self._note(Divergence(step, epoch, "loss", judged, bound))

    def after_epoch(self, epoch: int, step: int, metrics: dict) -> None:
        """Judge the parameters at an epoch's end; pass the metrics on to ``on_epoch``."""
        # the parameters and the buffers (batch norm's running statistics)
        p_ref, p_cand = model_state(self.reference), model_state(self.candidate)
        diff, scale, where = _param_difference(p_ref, p_cand)
        self.rows.append((step, epoch, DIFFERENCE, "param_diff", diff))
        if self.arbiter is not None:
            p64 = model_state(self.arbiter)
            drift, scale64, _ = _param_difference(p64, p_ref)
            judged, _, where = _param_difference(p64, p_cand)
            witnessed = _finite_max(_param_difference(p64, model_state(w))[0]
                                    for w in self.witnesses.values())
            spread = self._param_drift.add(_finite_max((drift, witnessed)))
            bound = SPREAD_MULTIPLIER * spread + ARBITER_FLOOR_ULPS * _EPS32 * scale64
            self._decorrelated(spread, scale64, step)
            self.rows.append((step, epoch, DIFFERENCE, "ref_param_drift", drift))
            self.rows.append((step, epoch, DIFFERENCE, "cand_param_drift", judged))
            if self.witnesses:
                self.rows.append((step, epoch, DIFFERENCE, "witness_param_drift", witnessed))
        else:
            judged = diff
            bound = trajectory_bound(scale, step, **self.tol)
            if self.witnesses:
                witnessed = _finite_max(_param_difference(p_ref, model_state(w))[0]
                                        for w in self.witnesses.values())
                spread = self._param_drift.add(witnessed)
                bound = self._widened(bound, spread, step)
                self._decorrelated(spread, scale, step)
                self.rows.append((step, epoch, DIFFERENCE, "witness_param_drift", witnessed))
        self.rows.append((step, epoch, DIFFERENCE, "param_bound", bound))
        if not judged <= bound:
            self._note(Divergence(step, epoch, "params", judged, bound, where))
        if self.on_epoch is not None:
            shown = {k: v for k, v in metrics.items()
                     if k != self.arbiter_name or self.arbiter is None}
            self.on_epoch(epoch, step, {**shown, DIFFERENCE: {
                "param_diff": diff, "max_loss_diff": self._epoch_max}})
        self._epoch_max = 0.0


_EPS32 = float(np.finfo(np.float32).eps)


class _Window:
    """The largest of the last ``size`` values added: the spread of correct runs near this
    step, which one early spike does not keep wide for the rest of the run."""

    def __init__(self, size: int) -> None:
        self._values: deque[float] = deque(maxlen=max(1, int(size)))

    def add(self, value: float) -> float:
        """Add ``value`` (a non-finite one counts as 0: a diverged witness widens nothing);
        the largest of the window."""
        self._values.append(float(value) if math.isfinite(value) else 0.0)
        return max(self._values)


def _finite_max(values) -> float:
    """The largest finite value (0.0 when none is): a diverged witness widens nothing."""
    return max((float(v) for v in values if math.isfinite(v)), default=0.0)

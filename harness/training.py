"""Training one model, or several side by side on identical batches, and comparing trajectories.

Three entry points, with stable signatures (cross-validation and sweeps build on them):

* :func:`train` trains one ``Classifier`` and returns its :class:`TrainingLog`;
* :func:`train_side_by_side` trains several models in lockstep: at every step each
  takes one optimizer update on the very same batch;
* :func:`compare_training` starts two models from identical parameters, trains them
  side by side and compares the trajectories step by step (:class:`TrajectoryReport`).

Batches come from :func:`harness.batches.iterate_batches`: epoch ``e`` (1-based here)
is shuffled from ``(seed, e - 1)``, the last partial batch is kept, and
``shuffle=False`` keeps the data's order.

History
-------
Everything recorded is one tidy table (a pandas DataFrame, :data:`HISTORY_COLUMNS`),
one row per measurement:

``step`` (int)
    Optimizer steps taken so far, counted from 1; an epoch's measurements carry the
    step that ended the epoch.
``epoch`` (int)
    Epoch, counted from 1.
``backend`` (str)
    The model's name, or :data:`DIFFERENCE` for a comparison of two models.
``quantity`` (str)
    Per step and model: ``loss`` (the batch loss ``train_step`` returned, before its
    update). Per epoch and model: ``epoch_loss`` (the epoch's batch losses averaged
    with their batch sizes as weights), ``train_loss`` and ``train_accuracy`` (the
    whole training set, after the epoch), ``val_loss`` and ``val_accuracy`` (when a
    validation set is given). Per step, comparisons: ``loss_diff`` (|candidate -
    reference|) and ``loss_bound`` (what the verdict allows there). Per epoch,
    comparisons: ``param_diff`` (the largest |difference| over every entry of every
    parameter) and ``param_bound``.
``value`` (float)
    The measurement; NaN or inf when a loss became non-finite.

Losses and accuracies of an epoch are evaluated from the model's logits in float64
(:func:`evaluate`), the same arithmetic for every backend.

Trajectory tolerance
--------------------
A compared quantity with reference value(s) ``r`` passes at step ``t`` when::

    max |candidate - reference| <= (atol * max(1, s) + rtol * s) * (1 + t / growth_steps)

with ``s = max |r|`` (the loss, or the largest parameter magnitude), ``(rtol, atol)``
the per-step defaults of :data:`harness.compare.DEFAULT_TOLERANCES` for the less
precise dtype of the two models, and ``growth_steps = 1000`` (:data:`GROWTH_STEPS`):
the allowance doubles over the first 1000 steps and keeps growing linearly.

Why: measured with ``nn-harness train`` defaults (features-32-classes relu network,
batch 64, 50 epochs, lr 1e-3, weight decay 1e-4, 20% held out) on digits, iris, wine,
breast_cancer and synthetic, seeds 0-2, with sgd, adam and adamw (45 runs, 100 to
1150 steps each):

* float64: the loss difference stays <= 9e-16 and the parameter difference
  <= 3e-16 (<= 5e-15 with sgd at lr 0.05 and momentum 0.9, adam at lr 3e-3, adamw
  at lr 3e-3 and weight decay 1e-2): at most 4e-7 of the allowance. Every
  deliberately wrong optimizer of the tests moves the parameters by 1e-7 or more
  within two steps.
* float32: the losses differ from step 1 by a rounding unit or two (<= 5.7e-7), and
  the parameter difference grows slowly (<= 2.1e-7 after 1150 steps; <= 9.5e-7 at
  the larger learning rates above): at most 0.3% of the allowance at the defaults,
  0.9% at the larger rates. The allowance starts at 1e-5 to 3e-4 for losses between 0
  and 2.3 and near 1e-4 for parameters of order one, so a wrong update rule
  (differences of 1e-5 to 1e-3 within the first hundred steps) still fails early, and
  the linear growth keeps long runs of correct implementations passing.
* What float32 cannot promise: now and then a pre-activation lies within rounding
  of zero and the two backends take different ReLU branches for one sample; Adam
  then normalises the changed gradient of a rarely-active weight to a full step.
  With batch 16, adamw at lr 3e-3 and weight decay 1e-2 on 320 digits rows, one such
  event at step 108 moved the parameter difference from 1e-7 to 3e-4; with adam at
  lr 1e-2 (batch 64) the difference reaches 4e-4 by step 575 and 1e-2 by step 1150.
  That is drift, not a bug, and the verdict says FAIL for it: the drift table
  (:attr:`TrajectoryReport.drift`) shows when each threshold was crossed, and the
  same run in float64 separates drift from a wrong rule.

With a float64 arbiter (``compare_training(..., arbiter=model64)``, float32 runs only)
the growth factor is replaced by the reference's own measured drift: the arbiter, started
from the reference's weights, trains side by side on the same batches, and at step ``t``
the candidate passes when::

    |candidate - arbiter| <= ARBITER_MULTIPLIER * max_{s <= t} |reference - arbiter| + floor

(losses every step; the largest parameter entry difference at epoch ends; ``floor`` is
:data:`harness.compare.ARBITER_FLOOR_ULPS` float32 units of roundoff of the arbiter's
value). The reference's drift from float64 is what float32 costs on this very run, so a
candidate that drifts several times further is doing something else.

Accuracies are recorded but not compared: one sample on a decision boundary moves
accuracy by 1/N.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.batches import iterate_batches
from harness.compare import (ARBITER_FLOOR_ULPS, ARBITER_MULTIPLIER, model_dtype,
                             resolve_tolerances, validate_batch)
from harness.errors import ConfigError, NumericalError
from harness.numerics import mean_cross_entropy
from harness.util import check_int, isna, json_float

HISTORY_COLUMNS: tuple[str, ...] = ("step", "epoch", "backend", "quantity", "value")
#: backend label of the rows that compare two models
DIFFERENCE = "difference"
#: steps over which the trajectory allowance doubles (see the module docstring)
GROWTH_STEPS = 1000
#: thresholds of the drift table: the first step at which a difference exceeds each
DRIFT_THRESHOLDS: tuple[float, ...] = (1e-14, 1e-12, 1e-10, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4,
                                      1e-3, 1e-2)

StepCallback = Callable[[int, int, dict], None]
EpochCallback = Callable[[int, int, dict], None]


# ---------------------------------------------------------------------- checking
def validate_training_args(epochs: int, batch_size: int, n_samples: int | None = None) -> int:
    """Check ``epochs`` and ``batch_size``; return the batch size to use.

    Parameters
    ----------
    epochs, batch_size : int
        Both >= 1, else :class:`~harness.errors.ConfigError`.
    n_samples : int, optional
        Size of the training set. A larger ``batch_size`` is clamped to it, with a
        ``UserWarning``.
    """
    epochs = check_int("epochs", epochs, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    if n_samples is not None and batch_size > n_samples:
        warnings.warn(f"`batch_size` {batch_size} is larger than the {n_samples} training "
                      f"samples; using {n_samples} (one batch per epoch)", UserWarning,
                      stacklevel=3)
        batch_size = int(n_samples)
    return batch_size


def _validation_set(X_val, y_val, dims) -> tuple[np.ndarray, np.ndarray] | None:
    if X_val is None and y_val is None:
        return None
    if X_val is None or y_val is None:
        raise ConfigError("give both `X_val` and `y_val` or neither")
    try:
        return validate_batch(X_val, y_val, dims)
    except ConfigError as exc:
        raise ConfigError(f"validation set: {exc}") from None


# -------------------------------------------------------------------- evaluation
def evaluate(model, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` on (X, y), computed in float64.

    Parameters
    ----------
    model : Classifier
    X : ndarray of shape (N, d_0), already in the model's dtype or castable to it
    y : ndarray of int, shape (N,)

    Returns
    -------
    dict with ``loss`` (float, NaN when the logits are not finite) and ``accuracy``
    (float in [0, 1]).
    """
    z = np.asarray(model.forward(X), dtype=np.float64)
    accuracy = float(np.mean(np.argmax(z, axis=1) == y))
    loss = mean_cross_entropy(z, y)
    return {"loss": loss if math.isfinite(loss) else math.nan, "accuracy": accuracy}


# ------------------------------------------------------------------------ logging
@dataclass
class TrainingLog:
    """What :func:`train_side_by_side` (or :func:`train`) recorded.

    Attributes
    ----------
    backends : list of str
        The models' names, in the order they step.
    epochs : int
        Epochs asked for.
    batch_size : int
        Batch size used (after clamping to the number of samples).
    rows : list of tuple
        The history, one ``(step, epoch, backend, quantity, value)`` per measurement.
    steps_done, epochs_done : int
        Optimizer steps and whole epochs completed.
    error : NumericalError or None
        Set when a loss became NaN or inf; training stopped after that step.
    """

    backends: list[str]
    epochs: int
    batch_size: int
    rows: list[tuple] = field(default_factory=list)
    steps_done: int = 0
    epochs_done: int = 0
    error: NumericalError | None = None

    def add(self, step: int, epoch: int, backend: str, quantity: str, value: float) -> None:
        self.rows.append((int(step), int(epoch), backend, quantity, float(value)))

    @property
    def history(self):
        """The tidy history as a pandas DataFrame (see the module docstring)."""
        return history_frame(self.rows)

    @property
    def final(self) -> dict[str, dict[str, float]]:
        """Per backend, the measurements of the last completed epoch (empty if none)."""
        out: dict[str, dict[str, float]] = {name: {} for name in self.backends}
        for _step, epoch, backend, quantity, value in self.rows:
            if epoch == self.epochs_done and quantity != "loss" and backend in out:
                out[backend][quantity] = value
        return out


def history_frame(rows) -> Any:
    """A list of ``(step, epoch, backend, quantity, value)`` as a tidy DataFrame."""
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=list(HISTORY_COLUMNS))
    return frame.astype({"step": "int64", "epoch": "int64", "backend": "object",
                         "quantity": "object", "value": "float64"})


# ----------------------------------------------------------------------- training
def _check_models(models: Mapping[str, Any]) -> tuple[int, ...]:
    if not isinstance(models, Mapping) or not models:
        raise ConfigError("`models` must be a non-empty dict of name -> Classifier")
    for name in models:
        if not isinstance(name, str) or not name or name == DIFFERENCE:
            raise ConfigError(f"model names must be non-empty strings other than "
                              f"{DIFFERENCE!r}, got {name!r}")
    dims = {name: tuple(m.dims) for name, m in models.items()}
    first = next(iter(dims.values()))
    for name, d in dims.items():
        if d != first:
            raise ConfigError(f"models have different dims: {next(iter(dims))} has {first}, "
                              f"{name} has {d}")
    return first


def train_side_by_side(models: Mapping[str, Any], X, y, *, epochs: int, batch_size: int,
                       seed: int = 0, shuffle: bool = True, X_val=None, y_val=None,
                       on_step: StepCallback | None = None,
                       on_epoch: EpochCallback | None = None) -> TrainingLog:
    """Train every model in ``models`` in lockstep on identical batches.

    At each step every model, in the dict's order, takes one ``train_step`` on the
    same batch. After each epoch every model is evaluated (:func:`evaluate`) on the
    whole training set and, when given, the validation set.

    Parameters
    ----------
    models : dict of str to Classifier
        Same ``dims``; each keeps its own dtype and optimizer. Names label the history.
    X : ndarray of shape (N, d_0)
    y : ndarray of int, shape (N,)
    epochs : int
        >= 1.
    batch_size : int
        >= 1; clamped to N with a ``UserWarning`` when larger.
    seed : int
        Seed of the batch order (:func:`harness.batches.iterate_batches`).
    shuffle : bool
        False keeps the data's order in every epoch.
    X_val : ndarray of shape (M, d_0), optional
    y_val : ndarray of int, shape (M,), optional
        Both or neither.
    on_step : callable, optional
        ``on_step(step, epoch, losses)`` after every step; ``losses`` maps each name to
        its batch loss (possibly NaN: it is called before training stops on one).
    on_epoch : callable, optional
        ``on_epoch(epoch, step, metrics)`` after every epoch; ``metrics[name]`` holds
        ``epoch_loss``, ``train_loss``, ``train_accuracy`` and, with a validation set,
        ``val_loss`` and ``val_accuracy``.

    Returns
    -------
    TrainingLog
        Never raises on a non-finite loss: training stops after the step where one
        appeared, and ``log.error`` is a :class:`~harness.errors.NumericalError`
        naming the step and the backend; everything recorded until then is kept.

    Raises
    ------
    ConfigError
        Bad arguments or data, before any training.
    """
    dims = _check_models(models)
    X, y = validate_batch(X, y, dims)
    val = _validation_set(X_val, y_val, dims)
    batch_size = validate_training_args(epochs, batch_size, len(X))
    if not isinstance(shuffle, (bool, np.bool_)):
        raise ConfigError(f"`shuffle` must be True or False, got {shuffle!r}")
    seed = check_int("seed", seed, 0)
    log = TrainingLog(list(models), int(epochs), batch_size)
    xs = {name: X.astype(model_dtype(m), copy=False) for name, m in models.items()}
    xs_val = {name: val[0].astype(model_dtype(m), copy=False)
              for name, m in models.items()} if val is not None else {}
    step = 0
    for epoch in range(1, int(epochs) + 1):
        loss_sum = dict.fromkeys(models, 0.0)
        for idx in iterate_batches(len(X), batch_size, epoch=epoch - 1, seed=seed,
                                   shuffle=bool(shuffle)):
            step += 1
            losses = {}
            for name, model in models.items():
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    losses[name] = float(model.train_step(xs[name][idx], y[idx]))
                log.add(step, epoch, name, "loss", losses[name])
            log.steps_done = step
            if on_step is not None:
                on_step(step, epoch, losses)
            bad = [name for name, loss in losses.items() if not math.isfinite(loss)]
            if bad:
                log.error = _nonfinite_error(step, epoch, bad, losses)
                return log
            for name, loss in losses.items():
                loss_sum[name] += loss * len(idx)
        metrics: dict[str, dict[str, float]] = {}
        for name, model in models.items():
            train_eval = evaluate(model, xs[name], y)
            m = {"epoch_loss": loss_sum[name] / len(X), "train_loss": train_eval["loss"],
                 "train_accuracy": train_eval["accuracy"]}
            if val is not None:
                val_eval = evaluate(model, xs_val[name], val[1])
                m.update(val_loss=val_eval["loss"], val_accuracy=val_eval["accuracy"])
            for quantity, value in m.items():
                log.add(step, epoch, name, quantity, value)
            metrics[name] = m
        log.epochs_done = epoch
        if on_epoch is not None:
            on_epoch(epoch, step, metrics)
    return log


def _nonfinite_error(step: int, epoch: int, bad: list[str], losses: dict) -> NumericalError:
    which = " and ".join(f"backend {name!r} ({losses[name]})" for name in bad)
    return NumericalError(
        f"the training loss became non-finite at step {step} (epoch {epoch}) in {which}; "
        f"training stopped there", step=step, backend=bad[0])


def train(model, X, y, *, epochs: int, batch_size: int, seed: int = 0, shuffle: bool = True,
          X_val=None, y_val=None, on_epoch: EpochCallback | None = None,
          name: str = "model") -> TrainingLog:
    """Train one model; :func:`train_side_by_side` with a single model.

    Parameters
    ----------
    model : Classifier
    X : ndarray of shape (N, d_0)
    y : ndarray of int, shape (N,)
    epochs, batch_size, seed, shuffle, X_val, y_val, on_epoch
        As for :func:`train_side_by_side`.
    name : str
        The model's label in the history.

    Returns
    -------
    TrainingLog

    Raises
    ------
    ConfigError
        Bad arguments or data, before any training.
    NumericalError
        A loss became NaN or inf; the exception's ``log`` attribute holds the
        :class:`TrainingLog` recorded until then, ``step`` and ``backend`` say where.
    """
    log = train_side_by_side({name: model}, X, y, epochs=epochs, batch_size=batch_size,
                             seed=seed, shuffle=shuffle, X_val=X_val, y_val=y_val,
                             on_epoch=on_epoch)
    if log.error is not None:
        log.error.log = log
        raise log.error
    return log


# --------------------------------------------------------------------- comparing
def trajectory_bound(scale: float, step: int, *, rtol: float, atol: float,
                     growth_steps: float | None = GROWTH_STEPS) -> float:
    """What the trajectory verdict allows at ``step`` for a quantity of size ``scale``.

    ``(atol * max(1, scale) + rtol * scale) * (1 + step / growth_steps)``; no growth
    when ``growth_steps`` is None.
    """
    base = atol * max(1.0, scale) + rtol * scale
    return base if growth_steps is None else base * (1.0 + step / growth_steps)


@dataclass(frozen=True)
class Divergence:
    """Where a compared quantity first left the trajectory tolerance.

    Attributes
    ----------
    step, epoch : int
    quantity : str
        ``loss`` (the batch loss of that step) or ``params`` (after that epoch).
    difference, allowed : float
        The difference found (NaN when a loss was not finite) and the bound there.
    where : str
        For ``params``, the entry that differed most, e.g. ``"b0[3]"``.
    """

    step: int
    epoch: int
    quantity: str
    difference: float
    allowed: float
    where: str = ""

    def __str__(self) -> str:
        at = f" at {self.where}" if self.where else ""
        what = "loss difference" if self.quantity == "loss" else "parameter difference"
        if not math.isfinite(self.difference):
            return f"step {self.step} (epoch {self.epoch}): the {what} is not finite{at}"
        return (f"step {self.step} (epoch {self.epoch}): {what} {self.difference:.3e}{at} "
                f"exceeds the allowed {self.allowed:.3e}")

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "epoch": self.epoch, "quantity": self.quantity,
                "difference": json_float(self.difference),
                "allowed": json_float(self.allowed), "where": self.where,
                "message": str(self)}


@dataclass
class TrajectoryReport:
    """Outcome of :func:`compare_training`.

    Attributes
    ----------
    history : pandas.DataFrame
        The tidy history of both models and their differences (module docstring).
    passed : bool
        No compared quantity left the tolerance and no loss became non-finite.
    first_divergence : Divergence or None
        The first step at which the loss or parameter difference left the tolerance.
    error : NumericalError or None
        Set when a loss became NaN or inf; the history stops at that step.
    reference, candidate : str
    dtype : str
        The dtype the tolerances were chosen for.
    rtol, atol : float
    growth_steps : float or None
    epochs, epochs_done, steps, batch_size, seed : int
    shuffle : bool
    """

    history: Any
    reference: str
    candidate: str
    dtype: str
    rtol: float
    atol: float
    growth_steps: float | None
    epochs: int
    epochs_done: int
    steps: int
    batch_size: int
    seed: int
    shuffle: bool
    first_divergence: Divergence | None = None
    error: NumericalError | None = None
    arbiter: bool = False
    n_param_entries: int = 0

    @property
    def passed(self) -> bool:
        return self.first_divergence is None and self.error is None

    @property
    def rule(self) -> str:
        """``"arbiter"`` when a float64 arbiter judged the run, else ``"tolerance"``."""
        return "arbiter" if self.arbiter else "tolerance"

    @property
    def n_loss_steps(self) -> int:
        """Steps whose batch losses were compared."""
        return int(len(self._series("loss_diff")))

    @property
    def n_param_checks(self) -> int:
        """Epoch ends at which every parameter entry was compared."""
        return int(len(self._series("param_diff")))

    @property
    def n_quantities(self) -> int:
        """Quantities compared: the loss of every step and the parameters of every epoch end."""
        return self.n_loss_steps + self.n_param_checks

    @property
    def n_entries(self) -> int:
        """Entries compared: one loss per step, every parameter entry per epoch end."""
        return self.n_loss_steps + self.n_param_checks * self.n_param_entries

    @property
    def n_excused(self) -> int:
        """Entries let through without comparison: none in a trajectory comparison."""
        return 0

    @property
    def counts_line(self) -> str:
        return (f"{self.n_quantities:,} quantities ({self.n_loss_steps:,} step losses, "
                f"{self.n_param_checks} epoch-end parameter sets), {self.n_entries:,} entries "
                f"compared, {self.n_excused} excused")

    def _series(self, quantity: str, backend: str = DIFFERENCE):
        h = self.history
        sel = h[(h["backend"] == backend) & (h["quantity"] == quantity)]
        return sel.set_index("step")["value"]

    @property
    def max_loss_diff(self) -> float:
        """Largest |loss difference| over every step (NaN when one was not finite)."""
        s = self._series("loss_diff")
        return float(s.max(skipna=False)) if len(s) else math.nan

    @property
    def max_param_diff(self) -> float:
        """Largest parameter difference over every epoch end (NaN if no epoch finished)."""
        s = self._series("param_diff")
        return float(s.max(skipna=False)) if len(s) else math.nan

    @property
    def drift(self):
        """First step at which each difference exceeded each of :data:`DRIFT_THRESHOLDS`.

        A DataFrame with columns ``threshold``, ``loss_diff_step`` and
        ``param_diff_step`` (nullable integers; missing: never exceeded within the
        run). Parameter differences are measured at epoch ends, so their steps are
        epoch-end steps.
        """
        import pandas as pd

        loss, params = self._series("loss_diff"), self._series("param_diff")

        def first(series, threshold):
            over = series[~(series <= threshold)]  # NaN counts as exceeded
            return int(over.index[0]) if len(over) else pd.NA

        return pd.DataFrame({
            "threshold": list(DRIFT_THRESHOLDS),
            "loss_diff_step": pd.array([first(loss, t) for t in DRIFT_THRESHOLDS], "Int64"),
            "param_diff_step": pd.array([first(params, t) for t in DRIFT_THRESHOLDS], "Int64"),
        })

    @property
    def final(self) -> dict[str, dict[str, float]]:
        """Per backend, the measurements of the last completed epoch."""
        h = self.history
        last = h[(h["epoch"] == self.epochs_done) & (h["quantity"] != "loss")
                 & (h["backend"] != DIFFERENCE)]
        out: dict[str, dict[str, float]] = {self.reference: {}, self.candidate: {}}
        for backend, quantity, value in zip(last["backend"], last["quantity"], last["value"]):
            out.setdefault(backend, {})[quantity] = float(value)
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no history)."""
        drift = self.drift
        return {
            "check": "training",
            "passed": self.passed,
            "reference": self.reference,
            "candidate": self.candidate,
            "dtype": self.dtype,
            "rtol": self.rtol,
            "atol": self.atol,
            "growth_steps": self.growth_steps,
            "rule": self.rule,
            "arbiter": self.arbiter,
            "n_quantities": self.n_quantities,
            "n_loss_steps": self.n_loss_steps,
            "n_param_checks": self.n_param_checks,
            "n_entries": self.n_entries,
            "n_excused": self.n_excused,
            "epochs": self.epochs,
            "epochs_done": self.epochs_done,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "max_loss_diff": json_float(self.max_loss_diff),
            "max_param_diff": json_float(self.max_param_diff),
            "first_divergence": None if self.first_divergence is None
            else self.first_divergence.to_dict(),
            "error": None if self.error is None else {
                "message": str(self.error), "step": self.error.step,
                "backend": self.error.backend},
            "drift": [{"threshold": t,
                       "loss_diff_step": None if isna(a) else int(a),
                       "param_diff_step": None if isna(b) else int(b)}
                      for t, a, b in zip(drift["threshold"], drift["loss_diff_step"],
                                         drift["param_diff_step"])],
            "final": {k: {q: json_float(v) for q, v in m.items()}
                      for k, m in self.final.items()},
        }

    def __str__(self) -> str:
        growth = "" if self.growth_steps is None else f" x (1 + step/{self.growth_steps:g})"
        if self.arbiter:
            rule = (f"rule at each step: |{self.candidate} - float64 arbiter| <= "
                    f"{ARBITER_MULTIPLIER:g} x the largest |{self.reference} - arbiter| so far "
                    f"+ {ARBITER_FLOOR_ULPS:g} float32 ulps")
        else:
            rule = (f"tolerance at each step: (atol max(1, |ref|) + rtol |ref|){growth}, "
                    f"rtol={self.rtol:g}, atol={self.atol:g}")
        lines = [
            (f"training: {self.candidate} against {self.reference}, {self.dtype}, "
             f"{self.epochs_done}/{self.epochs} epochs, {self.steps} steps of batch size "
             f"{self.batch_size}, seed {self.seed}{'' if self.shuffle else ', no shuffle'}"),
            rule,
        ]
        final = self.final
        quantities = [q for q in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
                      if any(q in m for m in final.values())]
        if quantities:
            width = max(10, *(len(b) for b in final)) + 2
            lines.append(f"after epoch {self.epochs_done}:")
            lines.append(f"  {'backend':<{width}}" + "".join(f"{q:>16}" for q in quantities))
            for backend, m in final.items():
                lines.append(f"  {backend:<{width}}" + "".join(
                    f"{m.get(q, math.nan):>16.6g}" for q in quantities))
        lines.append(f"largest loss difference {self.max_loss_diff:.3e} (any step), "
                     f"largest parameter difference {self.max_param_diff:.3e} (epoch ends)")
        lines.append("drift: first step at which a difference exceeded")
        lines.append(f"  {'threshold':>10} {'loss':>8} {'params':>8}")
        for t, a, b in zip(*(self.drift[c] for c in ("threshold", "loss_diff_step",
                                                     "param_diff_step"))):
            lines.append(f"  {t:>10.0e} {'never' if isna(a) else a:>8} "
                         f"{'never' if isna(b) else b:>8}")
        first = self.first_divergence
        if self.error is not None:
            lines.append(f"FAIL: {self.error}")
            if first is not None and first.step < (self.error.step or 0):
                lines.append(f"first divergence before that: {first}")
        elif first is None:
            lines.append(f"PASS: the trajectories agree within tolerance for all "
                         f"{self.steps} steps")
        else:
            lines.append(f"FAIL: first divergence at {first}")
            if self.dtype == "float32" and not self.arbiter:
                lines.append("note: float32 trajectories of two correct implementations can "
                             "part late in a run (a ReLU input within rounding of zero, Adam "
                             "scaling up a rounding-sized gradient); a divergence in the first "
                             "steps points to a wrong rule; rerun in float64 to tell")
        lines.append(self.counts_line)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The HTML form Jupyter shows (:mod:`harness.display`)."""
        from harness.display import to_html

        return to_html(self)


def _dtype_for_tolerances(reference, candidate) -> np.dtype:
    dtypes = [model_dtype(reference), model_dtype(candidate)]
    return max(dtypes, key=lambda d: np.finfo(d).eps if d.kind == "f" else 0.0)


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


def compare_training(reference, candidate, X, y, *, epochs: int, batch_size: int,
                     seed: int = 0, X_val=None, y_val=None, rtol: float | None = None,
                     atol: float | None = None, shuffle: bool = True,
                     growth_steps: float | None = GROWTH_STEPS,
                     reference_name: str = "reference", candidate_name: str = "candidate",
                     on_epoch: EpochCallback | None = None, arbiter=None) -> TrajectoryReport:
    """Train two models from identical parameters on identical batches; compare trajectories.

    The candidate first receives the reference's parameters; both should be fresh
    (no optimizer state yet). Then, at every step, both take one ``train_step`` on
    the same batch, and the two batch losses and their difference are recorded; after
    every epoch, the largest parameter difference and each model's loss and accuracy
    on the training (and validation) set. Training goes on after a divergence, so the
    history shows how far the trajectories drift; it stops at a NaN or inf loss.

    Parameters
    ----------
    reference, candidate : Classifier
        Same ``dims``.
    X : ndarray of shape (N, d_0)
    y : ndarray of int, shape (N,)
    epochs, batch_size : int
        >= 1; ``batch_size`` is clamped to N with a warning when larger.
    seed : int
        Seed of the batch order.
    X_val : ndarray of shape (M, d_0), optional
    y_val : ndarray of int, shape (M,), optional
    rtol, atol : float, optional
        Base tolerances, both or neither; default: :data:`harness.compare.DEFAULT_TOLERANCES`
        for the less precise of the two dtypes. The verdict and why it holds for
        correct implementations (measured drift per dtype) are in this module's
        docstring, "Trajectory tolerance".
    shuffle : bool
        False keeps the data's order.
    growth_steps : float or None
        The allowance grows by a factor ``1 + step / growth_steps``; None keeps it fixed.
    reference_name, candidate_name : str
        Labels in the history and report.
    on_epoch : callable, optional
        ``on_epoch(epoch, step, metrics)`` after each epoch (e.g. a progress bar);
        ``metrics`` has an entry per model and one, :data:`DIFFERENCE`, with
        ``param_diff`` and ``max_loss_diff`` (the epoch's largest loss difference).
    arbiter : Classifier, optional
        A float64 model of the reference's kind and optimizer. Its parameters are set
        to the reference's (up-cast) and it trains on the same batches; in a float32
        comparison it replaces the tolerances and their growth (module docstring,
        "Trajectory tolerance"); the history gains ``ref_loss_drift``,
        ``cand_loss_drift`` (every step) and ``ref_param_drift``, ``cand_param_drift``
        (epoch ends), the distances of each model from it. Not used in float64.

    Returns
    -------
    TrajectoryReport

    Raises
    ------
    ConfigError
        Bad arguments, before any training.
    """
    from harness.params import copy_params

    if reference_name == candidate_name:
        raise ConfigError(f"`reference_name` and `candidate_name` must differ, both are "
                          f"{reference_name!r}")
    models = {reference_name: reference, candidate_name: candidate}
    dims = _check_models(models)
    validate_batch(X, y, dims)
    _validation_set(X_val, y_val, dims)
    validate_training_args(epochs, batch_size)
    check_int("seed", seed, 0)
    if growth_steps is not None and (isinstance(growth_steps, bool) or not isinstance(
            growth_steps, (int, float)) or not growth_steps > 0 or
            not math.isfinite(growth_steps)):
        raise ConfigError(f"`growth_steps` must be a number > 0 or None, got {growth_steps!r}")
    dtype = _dtype_for_tolerances(reference, candidate)
    rtol, atol = resolve_tolerances(dtype, rtol, atol)
    tol = {"rtol": rtol, "atol": atol, "growth_steps": growth_steps}

    use_arbiter = arbiter is not None and np.dtype(dtype) != np.float64
    arbiter_name = f"{reference_name} (float64 arbiter)"
    if arbiter is not None:
        if tuple(getattr(arbiter, "dims", ())) != tuple(dims):
            raise ConfigError(f"the arbiter's dims {tuple(getattr(arbiter, 'dims', ()))} "
                              f"differ from the models' {tuple(dims)}")
        if model_dtype(arbiter) != np.float64:
            raise ConfigError(f"the arbiter must be a float64 model, got "
                              f"{model_dtype(arbiter).name}")
        if arbiter_name == candidate_name:
            raise ConfigError(f"`candidate_name` {candidate_name!r} is the arbiter's label")

    copy_params(reference, candidate)
    if use_arbiter:
        arbiter.set_params({k: np.asarray(v, dtype=np.float64)
                            for k, v in reference.get_params().items()})
        models[arbiter_name] = arbiter
    n_param_entries = sum(int(np.size(v)) for v in reference.get_params().values())
    eps32 = float(np.finfo(np.float32).eps)
    rows: list[tuple] = []
    state: dict[str, Any] = {"first": None, "epoch_max": 0.0, "loss_drift": 0.0,
                             "param_drift": 0.0}

    def note(div: Divergence) -> None:
        if state["first"] is None:
            state["first"] = div

    def on_step(step: int, epoch: int, losses: dict) -> None:
        lr_, lc = losses[reference_name], losses[candidate_name]
        diff = abs(lc - lr_) if math.isfinite(lr_) and math.isfinite(lc) else math.nan
        rows.append((step, epoch, DIFFERENCE, "loss_diff", diff))
        state["epoch_max"] = max(state["epoch_max"], diff) if math.isfinite(diff) else math.nan
        if use_arbiter:
            l64 = losses[arbiter_name]
            drift = abs(lr_ - l64)
            judged = abs(lc - l64)
            if not math.isfinite(judged):
                judged = math.nan
            if math.isfinite(drift):
                state["loss_drift"] = max(state["loss_drift"], drift)
            bound = ARBITER_MULTIPLIER * state["loss_drift"] + ARBITER_FLOOR_ULPS * eps32 * (
                abs(l64) if math.isfinite(l64) else 0.0)
            rows.append((step, epoch, DIFFERENCE, "ref_loss_drift", drift))
            rows.append((step, epoch, DIFFERENCE, "cand_loss_drift", judged))
        else:
            judged = diff
            bound = trajectory_bound(abs(lr_) if math.isfinite(lr_) else 0.0, step, **tol)
        rows.append((step, epoch, DIFFERENCE, "loss_bound", bound))
        if not judged <= bound:
            note(Divergence(step, epoch, "loss", judged, bound))

    def after_epoch(epoch: int, step: int, metrics: dict) -> None:
        p_ref, p_cand = reference.get_params(), candidate.get_params()
        diff, scale, where = _param_difference(p_ref, p_cand)
        rows.append((step, epoch, DIFFERENCE, "param_diff", diff))
        if use_arbiter:
            p64 = arbiter.get_params()
            drift, scale64, _ = _param_difference(p64, p_ref)
            judged, _, where = _param_difference(p64, p_cand)
            if math.isfinite(drift):
                state["param_drift"] = max(state["param_drift"], drift)
            bound = (ARBITER_MULTIPLIER * state["param_drift"]
                     + ARBITER_FLOOR_ULPS * eps32 * scale64)
            rows.append((step, epoch, DIFFERENCE, "ref_param_drift", drift))
            rows.append((step, epoch, DIFFERENCE, "cand_param_drift", judged))
        else:
            judged = diff
            bound = trajectory_bound(scale, step, **tol)
        rows.append((step, epoch, DIFFERENCE, "param_bound", bound))
        if not judged <= bound:
            note(Divergence(step, epoch, "params", judged, bound, where))
        if on_epoch is not None:
            shown = {k: v for k, v in metrics.items() if k != arbiter_name or not use_arbiter}
            on_epoch(epoch, step, {**shown, DIFFERENCE: {
                "param_diff": diff, "max_loss_diff": state["epoch_max"]}})
        state["epoch_max"] = 0.0

    log = train_side_by_side(models, X, y, epochs=epochs, batch_size=batch_size, seed=seed,
                             shuffle=shuffle, X_val=X_val, y_val=y_val, on_step=on_step,
                             on_epoch=after_epoch)
    history = history_frame(log.rows + rows).sort_values("step", kind="stable")
    return TrajectoryReport(
        history=history.reset_index(drop=True), reference=reference_name,
        candidate=candidate_name, dtype=np.dtype(dtype).name, rtol=rtol, atol=atol,
        growth_steps=None if use_arbiter else growth_steps, epochs=int(epochs),
        epochs_done=log.epochs_done, steps=log.steps_done, batch_size=log.batch_size,
        seed=int(seed), shuffle=bool(shuffle), first_divergence=state["first"],
        error=log.error, arbiter=use_arbiter, n_param_entries=n_param_entries)

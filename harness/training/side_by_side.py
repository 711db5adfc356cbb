"""Training one model, or several side by side on identical batches, and comparing trajectories.

Three entry points, with stable signatures (cross-validation and sweeps build on them):

* :func:`train` trains one ``Classifier`` and returns its :class:`TrainingLog`;
* :func:`train_side_by_side` trains several models in lockstep: at every step each
  takes one optimizer update on the very same batch;
* :func:`compare_training` starts two models from identical parameters, trains them
  side by side and compares the trajectories step by step (:class:`TrajectoryReport`).

Batches come from :func:`harness.training.batches.iterate_batches`: epoch ``e`` (1-based here)
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
How :func:`compare_training` judges the two trajectories, with the per-dtype
tolerances growing with the step count or a float64 arbiter, and why those bounds
hold for correct implementations: :mod:`harness.training.trajectory`, "Trajectory tolerance".
Accuracies are recorded but not compared.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.training.batches import iterate_batches
from harness.training.follow import follow_on, followed_clause
from harness.compare.equivalence import model_dtype, resolve_tolerances, validate_batch
from harness.errors import ConfigError, NumericalError
from harness.compare.numerics import mean_cross_entropy
from harness.training.trajectory import (
    DIFFERENCE, GROWTH_STEPS, TrajectoryReport,
    dtype_for_tolerances,
)
from harness.training.judge import TrajectoryJudge
from harness.runtime.values import check_int
from harness.training.witness import Witness

HISTORY_COLUMNS: tuple[str, ...] = ("step", "epoch", "backend", "quantity", "value")

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


def _validation_set(X_val, y_val, dims, shaped=None) -> tuple[np.ndarray, np.ndarray] | None:
    if X_val is None and y_val is None:
        return None
    if X_val is None or y_val is None:
        raise ConfigError("give both `X_val` and `y_val` or neither")
    try:
        return validate_batch(X_val, y_val, dims, shaped)
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
                       on_epoch: EpochCallback | None = None,
                       followers: Mapping[str, Any] | None = None) -> TrainingLog:
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
    epochs : int (>= 1)
    batch_size : int
        >= 1; clamped to N with a ``UserWarning`` when larger.
    seed : int
        Seed of the batch order (:func:`harness.training.batches.iterate_batches`).
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
    followers : dict of str to Classifier, optional
        Models that take a step on every batch too, after ``models``, and whose batch
        losses join ``losses`` in ``on_step``, but that are neither recorded in the
        history nor evaluated, and whose non-finite losses do not stop training (the
        witnesses of :mod:`harness.training.trajectory`).

    Returns
    -------
    TrainingLog
        Never raises on a non-finite loss: training stops after its step, ``log.error``
        a :class:`~harness.errors.NumericalError` naming it; all recorded is kept.

    Raises
    ------
    ConfigError
        Bad arguments or data, before any training.
    """
    X, y, val, batch_size, seed = _checked_run(models, X, y, X_val, y_val, epochs=epochs,
                                               batch_size=batch_size, shuffle=shuffle,
                                               seed=seed)
    log = TrainingLog(list(models), int(epochs), batch_size)
    followers = dict(followers or {})
    xs, xs_val = _inputs(models, followers, X, val)
    schedule = _schedule(len(X), batch_size, int(epochs), seed, bool(shuffle))
    firsts: dict[str, float] = {}
    loss_sum = dict.fromkeys(models, 0.0)
    for epoch, step, idx, last in schedule:
        losses, followed = _lockstep(models, followers, xs, y, idx, step, epoch, log, on_step)
        if step == 1:
            firsts = {**losses, **followed}
        bad = [name for name, loss in losses.items() if not math.isfinite(loss)]
        if bad:
            log.error = _stopped(models, followers, xs, y, schedule, (step, epoch), bad,
                                 losses, followed, firsts)
            return log
        for name, loss in losses.items():
            loss_sum[name] += loss * len(idx)
        if not last:
            continue
        metrics = _epoch_metrics(models, xs, y, xs_val, val, loss_sum, log, step, epoch)
        loss_sum = dict.fromkeys(models, 0.0)
        log.epochs_done = epoch
        if on_epoch is not None:
            on_epoch(epoch, step, metrics)
    return log


def _stopped(models, followers, xs, y, schedule, at, bad, losses, followed, firsts):
    """The :class:`~harness.errors.NumericalError` of a run stopped at ``at`` (step, epoch)
    on the non-finite losses of ``bad``: the others still finite trained on alone on the
    rest of ``schedule`` (:func:`follow_on`): whether and when they followed."""
    step, epoch = at
    runners = {n: m for n, m in {**models, **followers}.items()
               if n not in bad and math.isfinite({**losses, **followed}[n])}
    after, grew, _ = follow_on(runners, xs, y, ((e, s, i) for e, s, i, _ in schedule), firsts)
    after.update({n: (step, v) for n, v in followed.items() if not math.isfinite(v)})
    stayed = [n for n in models if n not in bad and n not in after]
    error = _nonfinite_error(step, epoch, bad, losses, after, grew, followed_clause(
        after, grew, stayed, list(followers), firsts))
    error.stayed = tuple(n for n in runners if n not in after)  # witnesses included
    return error


def _schedule(n: int, batch_size: int, epochs: int, seed: int, shuffle: bool):
    """The run's batches in order: ``(epoch, step, idx, last_of_its_epoch)``."""
    step = 0
    for epoch in range(1, epochs + 1):
        batches = list(iterate_batches(n, batch_size, epoch=epoch - 1, seed=seed,
                                       shuffle=shuffle))
        for i, idx in enumerate(batches):
            step += 1
            yield epoch, step, idx, i == len(batches) - 1


def _checked_run(models, X, y, X_val, y_val, *, epochs, batch_size, shuffle, seed):
    """The checked data, validation set, batch size and seed of :func:`train_side_by_side`."""
    dims = _check_models(models)
    first = next(iter(models.values()))
    X, y = validate_batch(X, y, dims, first)
    val = _validation_set(X_val, y_val, dims, first)
    batch_size = validate_training_args(epochs, batch_size, len(X))
    if not isinstance(shuffle, (bool, np.bool_)):
        raise ConfigError(f"`shuffle` must be True or False, got {shuffle!r}")
    seed = check_int("seed", seed, 0)
    return X, y, val, batch_size, seed


def _inputs(models, followers, X, val) -> tuple[dict, dict]:
    """The training (and validation) inputs cast to each model's dtype."""
    xs = {name: X.astype(model_dtype(m), copy=False)
          for name, m in {**models, **followers}.items()}
    xs_val = {name: val[0].astype(model_dtype(m), copy=False)
              for name, m in models.items()} if val is not None else {}
    return xs, xs_val


def _lockstep(models, followers, xs, y, idx, step: int, epoch: int, log: TrainingLog,
              on_step) -> tuple[dict[str, float], dict[str, float]]:
    """One ``train_step`` of every model and follower on batch ``idx``; the models' and the
    followers' losses."""
    losses = {}
    for name, model in models.items():
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            losses[name] = float(model.train_step(xs[name][idx], y[idx]))
        log.add(step, epoch, name, "loss", losses[name])
    log.steps_done = step
    followed = {}
    for name, model in followers.items():
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            followed[name] = float(model.train_step(xs[name][idx], y[idx]))
    if on_step is not None:
        on_step(step, epoch, {**losses, **followed})
    return losses, followed


def _epoch_metrics(models, xs, y, xs_val, val, loss_sum, log: TrainingLog, step: int,
                   epoch: int) -> dict[str, dict[str, float]]:
    """Every model evaluated after an epoch, recorded in ``log`` and returned."""
    metrics: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        train_eval = evaluate(model, xs[name], y)
        m = {"epoch_loss": loss_sum[name] / len(y), "train_loss": train_eval["loss"],
             "train_accuracy": train_eval["accuracy"]}
        if val is not None:
            val_eval = evaluate(model, xs_val[name], val[1])
            m.update(val_loss=val_eval["loss"], val_accuracy=val_eval["accuracy"])
        for quantity, value in m.items():
            log.add(step, epoch, name, quantity, value)
        metrics[name] = m
    return metrics


def _nonfinite_error(step: int, epoch: int, bad: list[str], losses: dict, followed: dict,
                     grew: dict, clause: str) -> NumericalError:
    which = " and ".join(f"backend {name!r} ({losses[name]})" for name in bad)
    return NumericalError(
        f"the training loss became non-finite at step {step} (epoch {epoch}) in {which}; "
        f"training stopped there{clause}", step=step, backend=bad[0], backends=tuple(bad),
        followed=followed, grew=grew)


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
def compare_training(reference, candidate, X, y, *, epochs: int, batch_size: int,
                     seed: int = 0, X_val=None, y_val=None, rtol: float | None = None,
                     atol: float | None = None, shuffle: bool = True,
                     growth_steps: float | None = GROWTH_STEPS,
                     reference_name: str = "reference", candidate_name: str = "candidate",
                     on_epoch: EpochCallback | None = None, arbiter=None,
                     witnesses=()) -> TrajectoryReport:
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
        Base tolerances, both or neither; default: :data:`harness.compare.equivalence.DEFAULT_TOLERANCES`
        for the less precise of the two dtypes. The verdict and why it holds for
        correct implementations (measured drift per dtype) are in the docstring of
        :mod:`harness.training.trajectory`, "Trajectory tolerance".
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
        comparison it replaces the tolerances and their growth (:mod:`harness.training.trajectory`,
        "Trajectory tolerance"); the history gains ``ref_loss_drift``,
        ``cand_loss_drift`` (every step) and ``ref_param_drift``, ``cand_param_drift``
        (epoch ends), the distances of each model from it. Not used in float64.
    witnesses : sequence of Classifier, optional
        Fresh models built like the reference (same kind, dtype and optimizer): each
        trains as a :class:`~harness.training.witness.Witness` (the reference's weights one
        roundoff unit away, every batch's rows reordered). With an arbiter, their
        distance from it widens the bound like the reference's; without one, their
        distance from the reference, times the arbiter's multiplier, replaces the
        tolerance wherever it is larger (a run that amplifies rounding; the report
        says so). ``witness_loss_drift`` and ``witness_param_drift`` in the history are
        the largest over the witnesses.

    Returns
    -------
    TrajectoryReport

    Raises
    ------
    ConfigError
        Bad arguments, before any training.
    """
    s = _trajectory_setup(reference, candidate, X, y, X_val=X_val, y_val=y_val,
                          epochs=epochs, batch_size=batch_size, seed=seed, rtol=rtol,
                          atol=atol, growth_steps=growth_steps, arbiter=arbiter,
                          reference_name=reference_name, candidate_name=candidate_name)
    followers = _start_followers(s, reference, candidate, arbiter, witnesses, seed)
    return _train_and_judge(s, reference, candidate, arbiter, followers, X, y, X_val=X_val,
                            y_val=y_val, epochs=epochs, batch_size=batch_size, seed=seed,
                            shuffle=shuffle, on_epoch=on_epoch)


@dataclass
class _TrajectorySetup:
    """The checked arguments of :func:`compare_training`."""

    models: dict[str, Any]
    dims: tuple[int, ...]
    dtype: Any
    rtol: float
    atol: float
    growth_steps: float | None
    use_arbiter: bool
    arbiter_name: str
    reference_name: str
    candidate_name: str

    @property
    def tol(self) -> dict[str, Any]:
        return {"rtol": self.rtol, "atol": self.atol, "growth_steps": self.growth_steps}


def _trajectory_setup(reference, candidate, X, y, *, X_val, y_val, epochs, batch_size, seed,
                      rtol, atol, growth_steps, arbiter, reference_name,
                      candidate_name) -> _TrajectorySetup:
    """Check the arguments of :func:`compare_training`, before any training."""
    if reference_name == candidate_name:
        raise ConfigError(f"`reference_name` and `candidate_name` must differ, both are "
                          f"{reference_name!r}")
    models = {reference_name: reference, candidate_name: candidate}
    dims = _check_models(models)
    validate_batch(X, y, dims, reference)
    _validation_set(X_val, y_val, dims, reference)
    validate_training_args(epochs, batch_size)
    check_int("seed", seed, 0)
    if growth_steps is not None and (isinstance(growth_steps, bool) or not isinstance(
            growth_steps, (int, float)) or not growth_steps > 0 or
            not math.isfinite(growth_steps)):
        raise ConfigError(f"`growth_steps` must be a number > 0 or None, got {growth_steps!r}")
    dtype = dtype_for_tolerances(reference, candidate)
    rtol, atol = resolve_tolerances(dtype, rtol, atol)

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
    return _TrajectorySetup(models, dims, dtype, rtol, atol, growth_steps, use_arbiter,
                            arbiter_name, reference_name, candidate_name)


def _start_followers(s: _TrajectorySetup, reference, candidate, arbiter, witnesses,
                     seed) -> dict[str, Witness]:
    """Give the candidate (and the arbiter, up-cast) the reference's parameters; start the
    witnesses one roundoff unit away from them."""
    from harness.model.transfer import copy_buffers, copy_params

    copy_params(reference, candidate)
    followers = {}
    if s.use_arbiter:
        arbiter.set_params({k: np.asarray(v, dtype=np.float64)
                            for k, v in reference.get_params().items()})
        copy_buffers(reference, arbiter)
        s.models[s.arbiter_name] = arbiter
    for i, model in enumerate(witnesses, 1):
        if tuple(getattr(model, "dims", ())) != tuple(s.dims) or (
                model_dtype(model) != model_dtype(reference)):
            raise ConfigError(f"witness {i} must be built like the reference "
                              f"({tuple(s.dims)}, {model_dtype(reference).name})")
        witness = Witness(model, seed=int(seed) * 1000 + i, permute=i % 2 == 0)
        witness.start(reference.get_params())
        followers[f"{s.reference_name} (witness {i})"] = witness
    return followers


def _train_and_judge(s: _TrajectorySetup, reference, candidate, arbiter, followers, X, y, *,
                     X_val, y_val, epochs, batch_size, seed, shuffle,
                     on_epoch) -> TrajectoryReport:
    """Train the models in lockstep, judging every step; the report."""
    from harness.model.transfer import model_state

    n_param_entries = sum(int(np.size(v)) for v in model_state(reference).values())
    judge = TrajectoryJudge(reference, candidate, reference_name=s.reference_name,
                            candidate_name=s.candidate_name, tol=s.tol,
                            arbiter=arbiter if s.use_arbiter else None,
                            arbiter_name=s.arbiter_name, witnesses=followers,
                            on_epoch=on_epoch)
    log = train_side_by_side(s.models, X, y, epochs=epochs, batch_size=batch_size, seed=seed,
                             shuffle=shuffle, X_val=X_val, y_val=y_val, on_step=judge.on_step,
                             on_epoch=judge.after_epoch, followers=followers)
    history = history_frame(log.rows + judge.rows).sort_values("step", kind="stable")
    return TrajectoryReport(
        history=history.reset_index(drop=True), reference=s.reference_name,
        candidate=s.candidate_name, dtype=np.dtype(s.dtype).name, rtol=s.rtol, atol=s.atol,
        growth_steps=None if s.use_arbiter else s.growth_steps, epochs=int(epochs),
        epochs_done=log.epochs_done, steps=log.steps_done, batch_size=log.batch_size,
        seed=int(seed), shuffle=bool(shuffle), first_divergence=judge.first,
        error=log.error, arbiter=s.use_arbiter, n_param_entries=n_param_entries,
        witnesses=len(followers), spread=judge.spread, amplified_step=judge.amplified_step,
        decorrelated_step=judge.decorrelated_step)

"""K-fold cross-validation of several backends on the same folds, side by side.

The workflow it reproduces, once for every backend::

    for train, val in KFold(n_splits=k, shuffle=True, random_state=42).split(X, y):
        model = fresh model; optimizer = Adam(..., weight_decay=...)
        for epoch in range(epochs):
            for batch in batches(train): loss = cross_entropy(model(X[batch]), y[batch]); step
        accuracies.append(accuracy(model(X[val]), y[val]))

but with every backend of a fold starting from the same initial parameters and
training on the same batches, so that any difference between them is the
implementations' and not the data's or the seed's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.data.datasets import encode_labels, fit_standardizer
from harness.errors import ConfigError, DataError, NumericalError
from harness.compare.numerics import mean_cross_entropy
from harness.model.transfer import copy_params
from harness.model.registry import make_backend, validate_backend_name
from harness.model.specs import ModelSpec, OptimizerSpec
from harness.training.side_by_side import train_side_by_side
from harness.runtime.values import check_int
from harness.training.witness import Witness

#: metrics of one fold and backend, the columns of :attr:`CVReport.table` after the keys
METRICS = ("train_loss", "train_acc", "val_acc", "train_f1", "val_f1", "train_time_s")
#: columns of :attr:`CVReport.curves`
CURVE_COLUMNS = ("fold", "backend", "epoch", "epoch_loss", "train_loss", "train_acc",
                 "val_loss", "val_acc")


class _Timed:
    """A backend whose ``train_step`` calls are timed; everything else passes through."""

    def __init__(self, model):
        self.model = model
        self.dims = model.dims
        self.seconds = 0.0

    def __getattr__(self, name: str):  # the optional members (buffers, intermediates)
        return getattr(self.model, name)

    def train_step(self, x, y):
        t0 = time.perf_counter()
        try:
            return self.model.train_step(x, y)
        finally:
            self.seconds += time.perf_counter() - t0

    def forward(self, x):
        return self.model.forward(x)

    def loss_and_grads(self, x, y):
        return self.model.loss_and_grads(x, y)

    def get_params(self):
        return self.model.get_params()

    def set_params(self, params):
        self.model.set_params(params)


@dataclass
class CVReport:
    """Outcome of :func:`cross_validate`.

    Attributes
    ----------
    table : DataFrame
        One row per fold x backend: ``fold`` (1..k), ``backend``, ``n_train``,
        ``n_val``, ``train_loss`` (mean cross-entropy on the fold's whole training
        part after the last epoch), ``train_acc``, ``val_acc``, ``train_f1``,
        ``val_f1`` (macro-F1), ``train_time_s`` (seconds spent in ``train_step``).
    agreement : DataFrame
        One row per fold: ``n_val``, ``n_identical`` (validation samples on which every
        backend predicts the same class), ``agreement`` (their fraction) and
        ``val_acc_diff`` (largest minus smallest validation accuracy of the backends).
    curves : DataFrame
        One row per fold x backend x epoch: ``epoch_loss`` (mean of the epoch's batch
        losses, each taken before its update), then after the epoch ``train_loss``,
        ``train_acc`` (the fold's whole training part), ``val_loss`` and ``val_acc``.
    splits : list of (train_indices, val_indices), one pair per fold, into X
    predictions : list of dict backend -> validation predictions (class indices), per fold
    backends : tuple of str
    class_names : list of str
    config : dict
        Everything needed to rerun it.
    y : ndarray of int64, shape (N,)
        The labels as class indices (``class_names[y[i]]`` is the original label).
    """

    table: Any
    agreement: Any
    curves: Any
    splits: list[tuple[np.ndarray, np.ndarray]]
    predictions: list[dict[str, np.ndarray]]
    backends: tuple[str, ...]
    class_names: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    y: np.ndarray | None = field(default=None, repr=False)

    @property
    def folds(self) -> int:
        return len(self.splits)

    @property
    def summary(self):
        """One row per backend: mean and standard deviation (ddof=1) over the folds."""
        import pandas as pd

        rows = []
        for name in self.backends:
            part = self.table[self.table["backend"] == name]
            row: dict[str, Any] = {"backend": name, "folds": len(part)}
            for metric in METRICS:
                values = part[metric].to_numpy(dtype=float)
                row[f"{metric}_mean"] = float(values.mean())
                row[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            rows.append(row)
        return pd.DataFrame(rows)

    @property
    def agreement_fraction(self) -> float:
        """Fraction of all validation predictions (every fold) identical across backends."""
        return float(self.agreement["n_identical"].sum() / self.agreement["n_val"].sum())

    @property
    def witness_agreement_fraction(self) -> float | None:
        """Fraction of validation predictions on which the first backend's witness (the
        same backend, one rounding unit apart, batches reordered) agrees with it; None
        without witnesses. Well below 1: the workload amplifies rounding, and correct
        implementations cannot be expected to predict alike."""
        col = self.agreement.get("n_witness_identical")
        if col is None or col.isna().all() or not len(col):
            return None
        return float(col.sum() / self.agreement["n_val"].sum())

    @property
    def max_val_acc_diff(self) -> float:
        """Largest difference in validation accuracy between backends, over the folds."""
        return float(self.agreement["val_acc_diff"].max())

    def predictions_table(self):
        """One row per validation sample and fold: its row in X, true and predicted labels
        (original class names) of each backend."""
        import pandas as pd

        names = np.asarray(self.class_names, dtype=object)
        frames = []
        for k, ((_, val), preds) in enumerate(zip(self.splits, self.predictions), start=1):
            frame = {"fold": k, "sample": val, "true": names[self.y[val]]}
            for b in self.backends:
                frame[f"pred_{b}"] = names[preds[b]]
            frames.append(pd.DataFrame(frame))
        return pd.concat(frames, ignore_index=True)

    def __str__(self) -> str:
        s = self.summary
        lines = [f"{self.folds}-fold cross-validation ({self.config.get('splitter', '')}), "
                 f"{self.config.get('epochs')} epochs, batch size "
                 f"{self.config.get('batch_size')}; mean +- std over folds"]
        w = max(14, *(len(b) for b in self.backends))
        header = f"{'backend':<{w}} {'val_acc':>17} {'val_f1':>17} {'train_acc':>17} " \
                 f"{'train_loss':>10} {'time_s':>8}"
        lines += [header, "-" * len(header)]
        for _, r in s.iterrows():
            lines.append(
                f"{r['backend']:<{w}} {r['val_acc_mean']:>8.4f} +- {r['val_acc_std']:.4f} "
                f"{r['val_f1_mean']:>8.4f} +- {r['val_f1_std']:.4f} "
                f"{r['train_acc_mean']:>8.4f} +- {r['train_acc_std']:.4f} "
                f"{r['train_loss_mean']:>10.4g} {r['train_time_s_mean']:>8.2f}")
        if len(self.backends) > 1:
            n = int(self.agreement["n_val"].sum())
            same = int(self.agreement["n_identical"].sum())
            lines.append(f"agreement: {same} of {n} validation predictions identical "
                         f"({self.agreement_fraction:.2%}); largest validation accuracy "
                         f"difference in a fold {self.max_val_acc_diff:.4f}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "class_names": list(self.class_names),
            "folds": self.table.to_dict(orient="records"),
            "summary": self.summary.to_dict(orient="records"),
            "agreement": self.agreement.to_dict(orient="records"),
            "agreement_fraction": self.agreement_fraction if len(self.backends) > 1 else None,
            "max_val_acc_diff": self.max_val_acc_diff if len(self.backends) > 1 else None,
        }

    def _repr_html_(self) -> str:
        """The HTML form Jupyter shows (:mod:`harness.compare.html`)."""
        from harness.compare.html import to_html

        return to_html(self)


# ---------------------------------------------------------------------- checks
def _check_xy(X, y, class_names) -> tuple[np.ndarray, np.ndarray, list[str]]:
    X = np.asarray(X)
    if X.ndim not in (2, 4) or 0 in X.shape:
        raise DataError(f"`X` must be a non-empty 2-D array (samples x features) or a batch "
                        f"of images (N, C, H, W), got shape {X.shape}")
    if X.dtype.kind not in "fiub":
        raise DataError(f"`X` must hold numbers, got dtype {X.dtype}")
    X = X.astype(np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        where = (f"(row {at[0]}, column {at[1]})" if X.ndim == 2 else
                 f"(sample {at[0]}, channel {at[1]}, row {at[2]}, column {at[3]})")
        raise DataError(f"`X` must be finite; X[{', '.join(map(str, at))}] is "
                        f"{'NaN' if np.isnan(X[at]) else 'infinite'} {where}")
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise DataError(f"`y` must have shape ({X.shape[0]},) to match X, got {y.shape}")
    if class_names is None:
        y, class_names = encode_labels(y)
    else:
        class_names = [str(c) for c in class_names]
        if y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= len(class_names):
            raise DataError(f"with `class_names`, `y` must hold class indices in "
                            f"0..{len(class_names) - 1}")
        y = y.astype(np.int64)
    present = np.unique(y)
    if len(present) < 2:
        raise DataError(f"`y` has a single class ({class_names[int(present[0])]!r}); "
                        f"a classifier needs at least two")
    return X, y, class_names


# ------------------------------------------------------------------------ main
def cross_validate(backends: Sequence[str], X, y, *, spec: ModelSpec,
                   optimizer: OptimizerSpec, folds: int = 5, stratified: bool = True,
                   seed: int = 42, epochs: int, batch_size: int, shuffle: bool = True,
                   device: str = "cpu", class_names: Sequence[str] | None = None,
                   quiet: bool = False, init_params: dict | None = None,
                   on_fold: Callable[[int, CVReport], None] | None = None,
                   wrap: Callable | None = None, witnesses: int = 0) -> CVReport:
    """Cross-validate every backend on the same ``folds`` folds of (X, y).

    For each fold:

    * features are standardised with the mean and scale of the fold's training part
      only, then cast to ``spec.dtype``;
    * a fresh model of every backend is built; the first backend's initial parameters
      (``spec.seed``, the same in every fold) are copied into the others;
    * every backend trains ``epochs`` epochs on the fold's training part only, in
      lockstep on the same batches (:func:`harness.training.side_by_side.train_side_by_side`, batch
      order seeded by ``spec.seed + k`` in fold ``k``), with cross-entropy and
      ``optimizer``;
    * the models are scored on the fold's training and validation parts.

    Parameters
    ----------
    backends : sequence of str
        Backend names (``scratch``, ``torch``, ``package.module:Class``); the first one
        provides the initial parameters.
    X : array of shape (N, D), finite numbers, unstandardised
    y : array of shape (N,)
        Labels of any kind (strings, arbitrary integers), mapped to 0..C-1 in sorted
        order; or class indices when ``class_names`` is given.
    spec : ModelSpec
        ``dims`` must start with D and end with C.
    optimizer : OptimizerSpec
    folds : int
        Number of folds, 2..N.
    stratified : bool
        ``StratifiedKFold`` (each class needs at least ``folds`` members) or ``KFold``;
        both shuffled with ``random_state=seed``.
    seed : int
        ``random_state`` of the fold split.
    epochs, batch_size : int
        A batch size above a fold's training part is clamped to it.
    shuffle : bool
        Reshuffle the batches every epoch (False: the training part's order).
    device : str
        Device of the torch backend.
    class_names : sequence of str, optional
        Names of the classes when ``y`` already holds indices 0..C-1.
    quiet : bool
        No progress bar (there is none anyway when stderr is not a terminal).
    init_params : dict, optional
        Initial parameters (canonical layout) for every fold instead of the seeded
        initialisation, e.g. from a weight file (:mod:`harness.data.weights`).
    wrap : callable, optional
        ``wrap(name, model)`` returns the model to train in its place (the checks layer
        guards a user's class with it).
    witnesses : int
        Per fold, this many :class:`~harness.training.witness.Witness` copies of the first
        backend train beside it; ``agreement["n_witness_identical"]`` counts the
        validation predictions on which the least agreeing one matches it (how alike
        correct implementations can predict on this workload).
    on_fold : callable, optional
        ``on_fold(k, report)`` after fold ``k``: ``report`` covers folds 1..k (for
        writing partial results as they come).

    Raises
    ------
    ConfigError, DataError
        Bad arguments or data, before any training.
    NumericalError
        A training loss became NaN or inf.
    """
    plan = _plan(backends, X, y, spec=spec, optimizer=optimizer, folds=folds,
                 stratified=stratified, seed=seed, epochs=epochs, batch_size=batch_size,
                 shuffle=shuffle, device=device, class_names=class_names,
                 init_params=init_params, wrap=wrap, witnesses=witnesses)
    return _run_folds(plan, quiet=quiet, on_fold=on_fold)


@dataclass
class _Plan:
    """The checked arguments of :func:`cross_validate`, its folds and its config record."""

    names: tuple[str, ...]
    X: np.ndarray
    y: np.ndarray
    class_names: list[str]
    spec: ModelSpec
    optimizer: OptimizerSpec
    folds: int
    seed: int
    epochs: int
    batch_size: int
    shuffle: bool
    device: str
    init_params: dict | None
    wrap: Callable | None
    witnesses: int
    splits: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Tables:
    """The rows :func:`cross_validate` collects, fold after fold."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    curve_rows: list[dict[str, Any]] = field(default_factory=list)
    agreement_rows: list[dict[str, Any]] = field(default_factory=list)
    predictions: list[dict[str, np.ndarray]] = field(default_factory=list)

    def report(self, plan: _Plan, k: int | None = None) -> CVReport:
        """The report of folds 1..k (every fold when ``k`` is None)."""
        splits = plan.splits if k is None else plan.splits[:k]
        return _report(self.rows, self.agreement_rows, self.curve_rows, splits,
                       self.predictions, plan.names, plan.class_names, plan.config, plan.y)


def _check_names(backends) -> tuple[str, ...]:
    names = tuple(backends) if not isinstance(backends, str) else (backends,)
    if not names:
        raise ConfigError("`backends` must name at least one backend")
    for name in names:
        validate_backend_name(name)
    if len(set(names)) != len(names):
        raise ConfigError(f"`backends` names a backend twice: {', '.join(names)}")
    return names


def _check_dims(spec: ModelSpec, X: np.ndarray, n_classes: int) -> None:
    from harness.data.images import IMAGE_LAYOUT, image_shape

    n_features = int(np.prod(X.shape[1:]))
    shape = image_shape(spec)
    if (X.ndim == 4) != (shape is not None) or (shape and tuple(X.shape[1:]) != shape):
        want = (f"images {IMAGE_LAYOUT} of shape (N, {', '.join(map(str, shape))})" if shape
                else "rows (N, F)")
        raise ConfigError(f"the network takes {want}; `X` has shape {X.shape}")
    if spec.dims[0] != n_features:
        raise ConfigError(f"`spec.dims` must start with the number of features "
                          f"({n_features}), got {spec.dims}")
    if spec.dims[-1] != n_classes:
        raise ConfigError(f"`spec.dims` must end with the number of classes "
                          f"({n_classes}), got {spec.dims}")


def _check_stratifiable(y: np.ndarray, class_names: list[str], folds: int) -> None:
    counts = np.bincount(y, minlength=len(class_names))
    k = int(np.argmin(counts))
    if counts[k] < folds:
        raise DataError(
            f"class {class_names[k]!r} has {counts[k]} member{'s' if counts[k] != 1 else ''}"
            f", fewer than the {folds} folds of stratified splitting; use fewer folds or "
            f"unstratified splitting")


def _plan(backends, X, y, *, spec, optimizer, folds, stratified, seed, epochs, batch_size,
          shuffle, device, class_names, init_params, wrap, witnesses) -> _Plan:
    """Check the arguments of :func:`cross_validate` (before any training); split the folds."""
    names = _check_names(backends)
    if not isinstance(spec, ModelSpec):
        raise ConfigError(f"`spec` must be a ModelSpec, got {type(spec).__name__}")
    if not isinstance(optimizer, OptimizerSpec):
        raise ConfigError(f"`optimizer` must be an OptimizerSpec, got {type(optimizer).__name__}")
    X, y, class_names = _check_xy(X, y, class_names)
    _check_dims(spec, X, len(class_names))
    folds = check_int("folds", folds, 2, X.shape[0], " (the number of samples)")
    epochs = check_int("epochs", epochs, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    seed = check_int("seed", seed, 0)
    for flag, value in (("stratified", stratified), ("shuffle", shuffle)):
        if not isinstance(value, bool):
            raise ConfigError(f"`{flag}` must be True or False, got {value!r}")
    if init_params is not None:
        from harness.model.layout import validate_params

        init_params = validate_params(init_params, spec.dims, spec.np_dtype)
    if stratified:
        _check_stratifiable(y, class_names, folds)

    from sklearn.model_selection import KFold, StratifiedKFold

    splitter = (StratifiedKFold if stratified else KFold)(
        n_splits=folds, shuffle=True, random_state=seed)
    plan = _Plan(names, X, y, class_names, spec, optimizer, folds, seed, epochs, batch_size,
                 shuffle, device, init_params, wrap, witnesses,
                 splits=[(np.asarray(tr), np.asarray(va)) for tr, va in splitter.split(X, y)])
    plan.config = _config(plan, stratified)
    return plan


def _config(plan: _Plan, stratified: bool) -> dict[str, Any]:
    """Everything needed to rerun the cross-validation (:attr:`CVReport.config`)."""
    folds, seed = plan.folds, plan.seed
    return {
        "backends": list(plan.names), "n_samples": plan.X.shape[0],
        "n_features": int(np.prod(plan.X.shape[1:])), "n_classes": len(plan.class_names), "folds": folds,
        "splitter": f"{'Stratified' if stratified else ''}KFold(n_splits={folds}, "
                    f"shuffle=True, random_state={seed})",
        "stratified": stratified, "seed": seed, "epochs": plan.epochs,
        "batch_size": plan.batch_size, "shuffle": plan.shuffle,
        "model": plan.spec.to_dict(), "optimizer": plan.optimizer.to_dict(),
        "device": plan.device,
        "standardisation": "per fold, with the fold's training part's mean and scale",
        "initialisation": "seeded" if plan.init_params is None else "given parameters",
    }



def _run_folds(plan: _Plan, *, quiet: bool, on_fold) -> CVReport:
    """Every fold in turn, under one progress bar; ``on_fold`` after each."""
    from harness.runtime.console import progress

    tables = _Tables()
    bar = progress(total=plan.folds * plan.epochs, desc="cv", quiet=quiet)
    try:
        for k, (tr, va) in enumerate(plan.splits, start=1):
            bar.set_description(f"cv fold {k}/{plan.folds}")
            _run_fold(plan, k, tr, va, tables, bar)
            if on_fold is not None:
                on_fold(k, tables.report(plan, k))
    finally:
        bar.close()
    return tables.report(plan)


def _fold_models(plan: _Plan) -> dict[str, Any]:
    """Fresh models of every backend, all starting from the first one's parameters."""
    names = plan.names
    models = {name: make_backend(name, plan.spec, plan.optimizer, device=plan.device)
              for name in names}
    if plan.wrap is not None:  # e.g. a guard that turns a plug-in's raise into a finding
        models = {name: plan.wrap(name, m) for name, m in models.items()}
    first = models[names[0]]
    if plan.init_params is not None:
        first.set_params(plan.init_params)
    for name in names[1:]:
        copy_params(first, models[name])
    return models


def _fold_witnesses(plan: _Plan, k: int, first) -> dict[str, Witness]:
    """The witnesses of fold ``k``: the first backend, rounding otherwise."""
    witnessing = {}
    name = plan.names[0]
    for i in range(1, plan.witnesses + 1):
        model = make_backend(name, plan.spec, plan.optimizer, device=plan.device)
        witness = Witness(plan.wrap(name, model) if plan.wrap is not None else model,
                          seed=plan.seed * 1000 + k * 10 + i)
        witness.start(first.get_params())
        witnessing[f"{name} (witness {i})"] = witness
    return witnessing


def _run_fold(plan: _Plan, k: int, tr: np.ndarray, va: np.ndarray, tables: _Tables,
              bar) -> None:
    """Standardise fold ``k``, train every backend on it in lockstep, score them."""
    mean, scale = fit_standardizer(plan.X[tr])
    dtype = plan.spec.np_dtype
    X_tr = ((plan.X[tr] - mean) / scale).astype(dtype)
    X_va = ((plan.X[va] - mean) / scale).astype(dtype)
    y_tr, y_va = plan.y[tr], plan.y[va]

    models = _fold_models(plan)
    timed = {name: _Timed(model) for name, model in models.items()}
    witnessing = _fold_witnesses(plan, k, models[plan.names[0]])

    def on_epoch(epoch, step, metrics):
        for name, m in metrics.items():
            tables.curve_rows.append({
                "fold": k, "backend": name, "epoch": epoch,
                "epoch_loss": m["epoch_loss"], "train_loss": m["train_loss"],
                "train_acc": m["train_accuracy"], "val_loss": m["val_loss"],
                "val_acc": m["val_accuracy"]})
        bar.update(1)

    log = train_side_by_side(timed, X_tr, y_tr, epochs=plan.epochs,
                             batch_size=min(plan.batch_size, len(tr)), seed=plan.spec.seed + k,
                             shuffle=plan.shuffle, X_val=X_va, y_val=y_va,
                             on_epoch=on_epoch, followers=witnessing)
    if log.error is not None:
        err = log.error
        raise NumericalError(f"fold {k} of {plan.folds}: {err}", step=err.step,
                             backend=err.backend, backends=getattr(err, "backends", ()),
                             followed=getattr(err, "followed", {}),
                             grew=getattr(err, "grew", {}))
    seconds = {name: t.seconds for name, t in timed.items()}
    _score_fold(plan, k, models, seconds, witnessing, (X_tr, y_tr, X_va, y_va), tables)


def _score_fold(plan: _Plan, k: int, models: dict, seconds: dict[str, float],
                witnessing: dict[str, Witness], data, tables: _Tables) -> None:
    """Score fold ``k``'s trained models; append its table, prediction and agreement rows."""
    X_tr, y_tr, X_va, y_va = data
    names = plan.names
    preds = {}
    for name, model in models.items():
        row = _score(model, X_tr, y_tr, X_va, y_va)
        preds[name] = row.pop("val_pred")
        tables.rows.append({"fold": k, "backend": name, "n_train": len(y_tr),
                            "n_val": len(y_va), **row, "train_time_s": seconds[name]})
    tables.predictions.append(preds)
    stacked = np.stack([preds[name] for name in names])
    identical = int(np.all(stacked == stacked[0], axis=0).sum())
    accs = [r["val_acc"] for r in tables.rows[-len(names):]]
    witnessed = min((int((np.argmax(w.forward(X_va), axis=1) == preds[names[0]]).sum())
                     for w in witnessing.values()), default=None)
    tables.agreement_rows.append({"fold": k, "n_val": len(y_va), "n_identical": identical,
                                  "agreement": identical / len(y_va),
                                  "val_acc_diff": max(accs) - min(accs),
                                  "n_witness_identical": witnessed})


def _report(rows, agreement_rows, curve_rows, splits, predictions, names, class_names,
            config, y) -> CVReport:
    import pandas as pd

    return CVReport(
        table=pd.DataFrame(rows, columns=["fold", "backend", "n_train", "n_val", *METRICS]),
        agreement=pd.DataFrame(agreement_rows, columns=["fold", "n_val", "n_identical",
                                                        "agreement", "val_acc_diff",
                                                        "n_witness_identical"]),
        curves=pd.DataFrame(curve_rows, columns=list(CURVE_COLUMNS)),
        splits=list(splits), predictions=list(predictions), backends=names,
        class_names=list(class_names), config=dict(config), y=y)


def _score(model, X_tr, y_tr, X_va, y_va) -> dict[str, Any]:
    from sklearn.metrics import f1_score

    logits_tr = model.forward(X_tr)
    logits_va = model.forward(X_va)
    pred_tr = np.argmax(logits_tr, axis=1)
    pred_va = np.argmax(logits_va, axis=1)
    return {
        "train_loss": mean_cross_entropy(logits_tr, y_tr),
        "train_acc": float(np.mean(pred_tr == y_tr)),
        "val_acc": float(np.mean(pred_va == y_va)),
        "train_f1": float(f1_score(y_tr, pred_tr, average="macro", zero_division=0)),
        "val_f1": float(f1_score(y_va, pred_va, average="macro", zero_division=0)),
        "val_pred": pred_va.astype(np.int64),
    }

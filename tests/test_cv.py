"""cross_validate: same folds, same start, same batches, no leakage, correct tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

import harness.training.cv as cv_module
from harness.training.cv import cross_validate
from harness.errors import ConfigError, DataError, NumericalError
from harness.model.specs import ModelSpec, OptimizerSpec

ADAM = OptimizerSpec("adam", lr=1e-3, weight_decay=1e-4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def id_data(n=90, classes=3, seed=0):
    """Column 0 is each sample's row number, so a standardised row can be traced back."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = np.column_stack([np.arange(n, dtype=float), rng.normal(size=(n, 3)) + y[:, None]])
    return X, y


class Recorder:
    """A backend wrapper that remembers what it was trained on and asked to predict."""

    def __init__(self, model, name, fold):
        self.model, self.name, self.fold = model, name, fold
        self.dims = model.dims
        self.batches: list[tuple[np.ndarray, np.ndarray]] = []
        self.forward_inputs: list[np.ndarray] = []
        self.initial_params = None

    def train_step(self, x, y):
        if self.initial_params is None:
            self.initial_params = self.model.get_params()
        self.batches.append((np.array(x), np.array(y)))
        return self.model.train_step(x, y)

    def forward(self, x):
        self.forward_inputs.append(np.array(x))
        return self.model.forward(x)

    def get_params(self):
        return self.model.get_params()

    def set_params(self, params):
        self.model.set_params(params)

    def loss_and_grads(self, x, y):
        return self.model.loss_and_grads(x, y)


@pytest.fixture
def spies(monkeypatch):
    """Record every standardiser fit and every model built by cross_validate."""
    stats, models = [], []
    real_fit, real_make = cv_module.fit_standardizer, cv_module.make_backend

    def fit(X_train):
        mean, std = real_fit(X_train)
        stats.append((np.array(X_train), mean.copy(), std.copy()))
        return mean, std

    def make(name, spec, optimizer, **kw):
        rec = Recorder(real_make(name, spec, optimizer, **kw), name, fold=len(stats))
        models.append(rec)
        return rec

    monkeypatch.setattr(cv_module, "fit_standardizer", fit)
    monkeypatch.setattr(cv_module, "make_backend", make)
    return stats, models


def run(X, y, **kw):
    opts = dict(spec=ModelSpec((X.shape[1], 8, len(np.unique(y)))), optimizer=ADAM, folds=3,
                epochs=2, batch_size=16, quiet=True)
    opts.update(kw)
    return cross_validate(["scratch", "torch"], X, y, **opts)


# ------------------------------------------------------------------ no leakage
def test_no_fold_sees_its_validation_samples_in_training_or_standardisation(spies):
    stats, models = spies
    X, y = id_data()
    epochs, bs = 3, 16
    report = run(X, y, epochs=epochs, batch_size=bs)
    assert len(stats) == 3 and len(models) == 6

    for k, (tr, va) in enumerate(report.splits, start=1):
        assert set(tr).isdisjoint(va)
        # standardisation was fitted on exactly this fold's training rows
        X_fit, mean, std = stats[k - 1]
        np.testing.assert_array_equal(X_fit, X[tr])
        fold_models = [m for m in models if m.fold == k]
        assert [m.name for m in fold_models] == ["scratch", "torch"]
        for m in fold_models:
            ids = [np.rint(xb[:, 0] * std[0] + mean[0]).astype(int) for xb, _ in m.batches]
            seen = np.concatenate(ids)
            assert not set(seen) & set(va), f"fold {k}: trained on validation samples"
            # every training sample exactly once per epoch, and nothing else
            np.testing.assert_array_equal(np.sort(seen), np.sort(np.repeat(tr, epochs)))
            assert len(m.batches) == epochs * -(-len(tr) // bs)
            # labels travel with their rows
            np.testing.assert_array_equal(np.concatenate([yb for _, yb in m.batches]), y[seen])
            # validation data is standardised with the training part's statistics
            expected_val = (X[va] - mean) / std
            assert any(f.shape == expected_val.shape and np.array_equal(f, expected_val)
                       for f in m.forward_inputs)
        # the training part's own statistics are not the whole data's
        assert not np.allclose(mean, X.mean(axis=0))


def test_backends_share_start_and_batches_and_every_fold_starts_fresh(spies):
    _, models = spies
    X, y = id_data()
    run(X, y)
    by_fold = {}
    for m in models:
        by_fold.setdefault(m.fold, {})[m.name] = m
    for pair in by_fold.values():
        s, t = pair["scratch"], pair["torch"]
        for key, value in s.initial_params.items():
            np.testing.assert_array_equal(t.initial_params[key], value)
        assert len(s.batches) == len(t.batches)
        for (xs, ys), (xt, yt) in zip(s.batches, t.batches):
            np.testing.assert_array_equal(xs, xt)
            np.testing.assert_array_equal(ys, yt)
    # a fresh model in every fold: fold 2 starts where fold 1 started, not where it ended
    first, second = by_fold[1]["scratch"], by_fold[2]["scratch"]
    for key in first.initial_params:
        np.testing.assert_array_equal(second.initial_params[key], first.initial_params[key])
        assert not np.array_equal(first.get_params()[key], first.initial_params[key])


def test_splits_are_sklearns_stratified_or_plain_kfold():
    from sklearn.model_selection import KFold, StratifiedKFold

    X, y = id_data(60)
    for stratified, cls in ((True, StratifiedKFold), (False, KFold)):
        report = run(X, y, stratified=stratified, seed=7, epochs=1)
        expected = list(cls(n_splits=3, shuffle=True, random_state=7).split(X, y))
        for (tr, va), (etr, eva) in zip(report.splits, expected):
            np.testing.assert_array_equal(tr, etr)
            np.testing.assert_array_equal(va, eva)
        assert np.array_equal(np.sort(np.concatenate([va for _, va in report.splits])),
                              np.arange(60))


# -------------------------------------------------------------------- tables
def test_tables_are_tidy_and_consistent_with_the_predictions():
    from sklearn.metrics import f1_score

    X, y = id_data()
    report = run(X, y)
    t = report.table
    assert list(t.columns) == ["fold", "backend", "n_train", "n_val", "train_loss", "train_acc",
                               "val_acc", "train_f1", "val_f1", "train_time_s"]
    assert len(t) == 6 and t["fold"].tolist() == [1, 1, 2, 2, 3, 3]
    assert t["backend"].tolist() == ["scratch", "torch"] * 3
    for (_, row), k in zip(t.iterrows(), [0, 0, 1, 1, 2, 2]):
        va = report.splits[k][1]
        pred = report.predictions[k][row["backend"]]
        assert row["n_val"] == len(va) and row["n_train"] == 90 - len(va)
        assert row["val_acc"] == pytest.approx(np.mean(pred == y[va]))
        assert row["val_f1"] == pytest.approx(f1_score(y[va], pred, average="macro"))
        assert row["train_time_s"] > 0 and row["train_loss"] > 0

    s = report.summary
    assert s["backend"].tolist() == ["scratch", "torch"] and len(s) == 2
    for _, row in s.iterrows():
        part = t[t["backend"] == row["backend"]]
        assert row["val_acc_mean"] == pytest.approx(part["val_acc"].mean())
        assert row["val_acc_std"] == pytest.approx(part["val_acc"].std(ddof=1))
        assert row["train_time_s_mean"] == pytest.approx(part["train_time_s"].mean())

    a = report.agreement
    assert len(a) == 3 and a["fold"].tolist() == [1, 2, 3]
    assert (a["agreement"] == 1.0).all() and (a["val_acc_diff"] == 0.0).all()
    c = report.curves
    assert list(c.columns) == ["fold", "backend", "epoch", "epoch_loss", "train_loss",
                               "train_acc", "val_loss", "val_acc"]
    assert len(c) == 3 * 2 * 2 and set(c["epoch"]) == {1, 2}
    last = c[c["epoch"] == 2].reset_index(drop=True)  # after the last epoch = the table
    np.testing.assert_allclose(last["val_acc"], t["val_acc"])
    np.testing.assert_allclose(last["train_loss"], t["train_loss"])
    json.dumps(report.to_dict())  # plain data only
    assert "agreement: 90 of 90 validation predictions identical" in str(report)


def test_agreement_counts_differing_predictions(monkeypatch):
    """A candidate that predicts the next class wherever feature 1 is above the training
    mean: agreement and accuracy difference must follow exactly."""
    real_make = cv_module.make_backend

    class Shifted(Recorder):
        def forward(self, x):
            logits = self.model.forward(x)
            rows = x[:, 1] > 0
            logits[rows] = np.roll(logits[rows], 1, axis=1)
            return logits

    def make(name, spec, optimizer, **kw):
        model = real_make(name, spec, optimizer, **kw)
        return Shifted(model, name, 0) if name == "torch" else model

    monkeypatch.setattr(cv_module, "make_backend", make)
    X, y = id_data()
    report = run(X, y)
    for k, (tr, va) in enumerate(report.splits):
        shifted = X[va, 1] > X[tr, 1].mean()
        row = report.agreement.iloc[k]
        assert row["n_identical"] == np.sum(~shifted)
        assert row["agreement"] == pytest.approx(np.mean(~shifted))
        p = report.predictions[k]
        np.testing.assert_array_equal(p["scratch"] != p["torch"], shifted)
        accs = report.table[report.table["fold"] == k + 1]["val_acc"]
        assert row["val_acc_diff"] == pytest.approx(abs(accs.iloc[0] - accs.iloc[1]))
    assert report.agreement_fraction < 1.0


def test_string_labels_are_mapped_and_named():
    X, y = id_data(60, classes=2)
    labels = np.where(y == 0, "spam", "ham")
    report = run(X, labels)
    assert report.class_names == ["ham", "spam"]
    table = report.predictions_table()
    assert len(table) == 60 and set(table["true"]) == {"ham", "spam"}
    np.testing.assert_array_equal(table["true"].to_numpy(), labels[table["sample"].to_numpy()])


# ------------------------------------------------------------------- bad input
@pytest.mark.parametrize("change, error, message", [
    (dict(folds=1), ConfigError, "`folds` must be between 2 and 90 (the number of samples), got 1"),
    (dict(folds=91), ConfigError, "`folds` must be between 2 and 90 (the number of samples), "
                                  "got 91"),
    (dict(folds=2.5), ConfigError, "`folds` must be an integer, got 2.5"),
    (dict(epochs=0), ConfigError, "`epochs` must be >= 1, got 0"),
    (dict(batch_size=0), ConfigError, "`batch_size` must be >= 1, got 0"),
    (dict(spec=ModelSpec((3, 8, 3))), ConfigError, "`spec.dims` must start with the number of "
                                                   "features (4)"),
    (dict(spec=ModelSpec((4, 8, 2))), ConfigError, "must end with the number of classes (3)"),
    (dict(y=np.array(["a"] * 88 + ["rare"] * 2), folds=3), DataError,
     "class 'rare' has 2 members, fewer than the 3 folds of stratified splitting"),
    (dict(y=np.zeros(90, dtype=int)), DataError, "`y` has a single class ('0')"),
    (dict(y=np.zeros(89, dtype=int)), DataError, "`y` must have shape (90,) to match X"),
    (dict(X="nan"), DataError, "`X` must be finite; X[5, 2] is NaN (row 5, column 2)"),
    (dict(backends=["scratch", "jax"]), ConfigError, "unknown backend 'jax'"),
])
def test_bad_input_is_refused_before_any_training(monkeypatch, change, error, message):
    built = []
    monkeypatch.setattr(cv_module, "make_backend", lambda *a, **k: built.append(a))
    X, y = id_data()
    change = dict(change)
    if change.pop("X", None) == "nan":
        X[5, 2] = np.nan
    y = change.pop("y", y)
    backends = change.pop("backends", ["scratch", "torch"])
    opts = dict(spec=ModelSpec((4, 8, len(np.unique(y)))), optimizer=ADAM, folds=3, epochs=1,
                batch_size=16, quiet=True)
    opts.update(change)
    with pytest.raises(error) as info:
        cross_validate(backends, X, y, **opts)
    assert message in str(info.value)
    assert built == []


def test_unstratified_splitting_accepts_a_rare_class():
    X, y = id_data()
    y = np.where(np.arange(90) < 2, 3, y)  # class 3 has two members, fewer than 3 folds
    with pytest.raises(DataError, match="class '3' has 2 members"):
        run(X, y, spec=ModelSpec((4, 8, 4)))
    report = run(X, y, spec=ModelSpec((4, 8, 4)), stratified=False)
    assert report.config["splitter"].startswith("KFold(n_splits=3")


def test_a_nan_loss_is_a_numerical_error_naming_the_backend(monkeypatch):
    real_make = cv_module.make_backend

    class Broken(Recorder):
        def train_step(self, x, y):
            return float("nan")

    monkeypatch.setattr(cv_module, "make_backend", lambda name, *a, **k: (
        Broken(real_make(name, *a, **k), name, 0) if name == "torch" else real_make(name, *a, **k)))
    X, y = id_data()
    with pytest.raises(NumericalError, match=r"fold 1 of 3: the training loss became "
                                             r"non-finite at step 1 \(epoch 1\) in backend "
                                             r"'torch' \(nan\)") as info:
        run(X, y)
    assert info.value.backend == "torch" and info.value.step == 1


# ----------------------------------------------------------------- acceptance
def _digits_cv(epochs):
    from harness.data.datasets import load_dataset

    data = load_dataset("digits")
    return cross_validate(["scratch", "torch"], data.X, data.y,
                          spec=ModelSpec((64, 32, 10), "relu", "float64"), optimizer=ADAM,
                          folds=5, epochs=epochs, batch_size=32, class_names=data.class_names,
                          quiet=True)


def _check_acceptance(report):
    assert report.folds == 5 and len(report.table) == 10
    assert (report.agreement["agreement"] == 1.0).all(), report.agreement
    assert report.max_val_acc_diff == 0.0
    for _, row in report.summary.iterrows():
        assert row["val_acc_mean"] >= 0.95, row


def test_digits_acceptance_short():
    """[64, 32, 10] ReLU, Adam lr 1e-3 weight decay 1e-4, float64, 5 folds, 20 epochs."""
    _check_acceptance(_digits_cv(20))


@pytest.mark.slow
def test_digits_acceptance_100_epochs():
    _check_acceptance(_digits_cv(100))

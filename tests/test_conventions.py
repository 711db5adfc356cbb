"""Named conventions: a correct hand-written network in another convention passes once
the convention is named, and fails without it; the built-in backends agree under every
combination of conventions, optimizers and dtypes."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from harness import ConfigError, ModelSpec, OptimizerSpec, make_backend
from harness.cli import main
from harness.compare.equivalence import check_equivalence
from harness.gradients.finite_diff import gradcheck

ROOT = Path(__file__).resolve().parents[1]
DIMS = (4, 8, 3)


@pytest.fixture
def batch():
    rng = np.random.default_rng(7)
    return rng.normal(size=(24, 4)), rng.integers(0, 3, 24)


# ------------------------------------------------------------ book-style networks
class BookNet:
    """One hidden relu layer, written as course notes write it; subclasses pick the
    loss and the update. ``W0, b0, W1, b1`` as the harness names them."""

    def __init__(self, spec, optimizer):
        self.dims = spec.dims
        self.lr = optimizer.lr
        self.reg = optimizer.weight_decay
        rng = np.random.default_rng(spec.seed)
        self.params = {}
        for i, (a, b) in enumerate(zip(spec.dims[:-1], spec.dims[1:])):
            self.params[f"W{i}"] = rng.uniform(-1, 1, (a, b)) / np.sqrt(a)
            self.params[f"b{i}"] = rng.uniform(-1, 1, b) / np.sqrt(a)

    def forward(self, x):
        h = np.maximum(0, x @ self.params["W0"] + self.params["b0"])
        return h @ self.params["W1"] + self.params["b1"]

    def data_loss(self, x, y):
        """Cross-entropy summed over the batch and dL/dscores (book: before dividing)."""
        h = np.maximum(0, x @ self.params["W0"] + self.params["b0"])
        scores = h @ self.params["W1"] + self.params["b1"]
        scores = scores - scores.max(axis=1, keepdims=True)
        probs = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
        n = x.shape[0]
        loss = -np.log(probs[np.arange(n), y]).sum()
        dscores = probs.copy()
        dscores[np.arange(n), y] -= 1
        return loss, dscores, h

    def backprop(self, x, h, dscores):
        grads = {"W1": h.T @ dscores, "b1": dscores.sum(axis=0)}
        dh = dscores @ self.params["W1"].T
        dh[h <= 0] = 0
        grads["W0"] = x.T @ dh
        grads["b0"] = dh.sum(axis=0)
        return grads

    def get_params(self):
        return {k: v.copy() for k, v in self.params.items()}

    def set_params(self, params):
        for k, v in self.params.items():
            if np.shape(params[k]) != v.shape:
                raise ValueError(f"{k} must have shape {v.shape}")
        self.params = {k: np.array(params[k], dtype=float) for k in self.params}

    def train_step(self, x, y):
        loss, grads = self.loss_and_grads(x, y)
        self.update(grads)
        return loss

    def update(self, grads):  # plain SGD
        for k in self.params:
            self.params[k] -= self.lr * grads[k]


class SumLossSGD(BookNet):
    """Loss summed over the batch, plain SGD on the summed gradients."""

    def loss_and_grads(self, x, y):
        loss, dscores, h = self.data_loss(x, y)
        return loss, self.backprop(x, h, dscores)


class RegInLossSGD(BookNet):
    """cs231n style: mean loss + reg * 0.5 * sum(W*W) on the weights only, plain SGD."""

    def loss_and_grads(self, x, y):
        n = x.shape[0]
        loss, dscores, h = self.data_loss(x, y)
        loss = loss / n
        grads = self.backprop(x, h, dscores / n)
        for w in ("W0", "W1"):
            loss += self.reg * 0.5 * np.sum(self.params[w] * self.params[w])
            grads[w] += self.reg * self.params[w]
        return loss, grads


class AdamMixin:
    """Adam as the paper writes it, with an optional L2 term added to chosen gradients."""

    decay = ()  # names whose gradient gets reg * p inside the optimizer

    def update(self, grads):
        if not hasattr(self, "m"):
            self.m = {k: np.zeros_like(v) for k, v in self.params.items()}
            self.v = {k: np.zeros_like(v) for k, v in self.params.items()}
            self.t = 0
        self.t += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        for k in self.params:
            g = grads[k] + (self.reg * self.params[k] if k in self.decay else 0)
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            m_hat = self.m[k] / (1 - b1 ** self.t)
            v_hat = self.v[k] / (1 - b2 ** self.t)
            self.params[k] -= self.lr * m_hat / (np.sqrt(v_hat) + eps)


class AdamDecayWeightsOnly(AdamMixin, BookNet):
    """Mean loss; Adam with weight decay on the weights only (biases are not decayed)."""

    decay = ("W0", "W1")

    def loss_and_grads(self, x, y):
        n = x.shape[0]
        loss, dscores, h = self.data_loss(x, y)
        return loss / n, self.backprop(x, h, dscores / n)


class SumLossL2AllAdam(AdamMixin, BookNet):
    """Summed loss + 0.5 * reg * sum of every parameter squared; Adam adds nothing."""

    def loss_and_grads(self, x, y):
        loss, dscores, h = self.data_loss(x, y)
        grads = self.backprop(x, h, dscores)
        for k, p in self.params.items():
            loss += 0.5 * self.reg * np.sum(p * p)
            grads[k] += self.reg * p
        return loss, grads


# (class, its conventions, optimizer); the optimizer name and numbers are the same either way
CASES = [
    (SumLossSGD, dict(loss_reduction="sum"), dict(name="sgd", lr=0.01, weight_decay=0.0)),
    (RegInLossSGD, dict(weight_decay_in="loss", weight_decay_on="weights"),
     dict(name="sgd", lr=0.1, weight_decay=0.05)),
    (AdamDecayWeightsOnly, dict(weight_decay_on="weights"),
     dict(name="adam", lr=0.01, weight_decay=0.05)),
    (SumLossL2AllAdam, dict(loss_reduction="sum", weight_decay_in="loss"),
     dict(name="adam", lr=0.01, weight_decay=0.05)),
]


def _specs(conventions, optimizer):
    spec = ModelSpec(DIMS, seed=3, loss_reduction=conventions.get("loss_reduction", "mean"))
    opt = OptimizerSpec(**optimizer, **{k: v for k, v in conventions.items()
                                        if k != "loss_reduction"})
    return spec, opt


@pytest.mark.parametrize("reference", ["torch", "scratch"])
@pytest.mark.parametrize("cls, conventions, optimizer", CASES,
                         ids=[c[0].__name__ for c in CASES])
def test_a_book_network_passes_once_its_convention_is_named(reference, cls, conventions,
                                                            optimizer, batch):
    x, y = batch
    spec, opt = _specs(conventions, optimizer)
    report = check_equivalence(make_backend(reference, spec, opt), cls(spec, opt), x, y)
    assert report.passed, str(report)


@pytest.mark.parametrize("reference", ["torch", "scratch"])
@pytest.mark.parametrize("cls, conventions, optimizer", CASES,
                         ids=[c[0].__name__ for c in CASES])
def test_the_same_network_fails_under_the_default_conventions(reference, cls, conventions,
                                                              optimizer, batch):
    x, y = batch
    spec, opt = _specs({}, optimizer)
    report = check_equivalence(make_backend(reference, spec, opt), cls(spec, opt), x, y)
    assert not report.passed


# ------------------------------------------------------------ built-ins agree
COMBOS = [c for c in itertools.product(("mean", "sum"), ("optimizer", "loss"),
                                       ("all", "weights"), ("sgd", "adam", "adamw"),
                                       ("float64", "float32"))
          if not (c[3] == "adamw" and c[1] == "loss")]


@pytest.mark.parametrize("reduction, where, on, name, dtype", COMBOS)
def test_the_built_in_backends_agree_under_every_convention(reduction, where, on, name, dtype):
    """Property-style: numbers drawn from a generator seeded by the combination."""
    rng = np.random.default_rng(COMBOS.index((reduction, where, on, name, dtype)))
    n, d, c = int(rng.integers(2, 20)), int(rng.integers(1, 6)), int(rng.integers(2, 5))
    x, y = rng.normal(size=(n, d)), rng.integers(0, c, n)
    extra = {}
    if name == "sgd":
        extra = dict(momentum=float(rng.choice([0.0, 0.9])))
    spec = ModelSpec((d, int(rng.integers(1, 9)), c), activation=str(rng.choice(
        ["relu", "tanh"])), dtype=dtype, seed=int(rng.integers(100)), loss_reduction=reduction)
    opt = OptimizerSpec(name, lr=float(rng.uniform(1e-3, 0.1)),
                        weight_decay=float(rng.choice([0.0, 1e-3, 0.1])),
                        weight_decay_in=where, weight_decay_on=on, **extra)
    report = check_equivalence(make_backend("torch", spec, opt), make_backend("scratch", spec, opt),
                               x, y)
    assert report.passed, str(report)


def test_sum_and_loss_decay_change_what_the_built_ins_report(batch):
    x, y = batch
    base = make_backend("scratch", ModelSpec(DIMS))
    loss, grads = base.loss_and_grads(x, y)
    summed = make_backend("scratch", ModelSpec(DIMS, loss_reduction="sum"))
    loss_s, grads_s = summed.loss_and_grads(x, y)
    assert loss_s == pytest.approx(len(y) * loss)
    np.testing.assert_allclose(grads_s["W1"], len(y) * grads["W1"])
    opt = OptimizerSpec("sgd", weight_decay=0.5, weight_decay_in="loss", weight_decay_on="weights")
    for name in ("scratch", "torch"):
        model = make_backend(name, ModelSpec(DIMS), opt)
        model.set_params(base.get_params())
        p = model.get_params()
        loss_l, grads_l = model.loss_and_grads(x, y)
        assert loss_l == pytest.approx(loss + 0.25 * sum(np.sum(p[k] ** 2) for k in ("W0", "W1")))
        np.testing.assert_allclose(grads_l["W0"], grads["W0"] + 0.5 * p["W0"], atol=1e-12)
        np.testing.assert_allclose(grads_l["b0"], grads["b0"], atol=1e-12)


@pytest.mark.parametrize("spec_kw, opt_kw", [
    (dict(loss_reduction="sum"), {}),
    ({}, dict(name="adam", weight_decay=0.1, weight_decay_in="loss", weight_decay_on="weights")),
])
def test_gradcheck_passes_under_the_conventions(spec_kw, opt_kw, batch):
    x, y = batch
    model = make_backend("scratch", ModelSpec(DIMS, activation="tanh", **spec_kw),
                         OptimizerSpec(**opt_kw))
    assert gradcheck(model, x, y).passed


# ------------------------------------------------------------ specs
@pytest.mark.parametrize("make, message", [
    (lambda: ModelSpec(DIMS, loss_reduction="avg"),
     "`loss_reduction` must be one of mean, sum, got 'avg'"),
    (lambda: OptimizerSpec(weight_decay_in="model"),
     "`weight_decay_in` must be one of optimizer, loss, got 'model'"),
    (lambda: OptimizerSpec(weight_decay_on="biases"),
     "`weight_decay_on` must be one of all, weights, got 'biases'"),
    (lambda: OptimizerSpec("adamw", weight_decay_in="loss", weight_decay=0.0),
     "`weight_decay_in` loss does not apply to adamw: AdamW's decay is decoupled"),
])
def test_specs_refuse_unknown_conventions(make, message):
    with pytest.raises(ConfigError) as err:
        make()
    assert message in str(err.value)


def test_specs_describe_themselves_in_one_line_and_keep_the_conventions_in_to_dict():
    opt = OptimizerSpec("adam", lr=1e-3, weight_decay=1e-4)
    assert opt.describe() == ("adam (lr 0.001, betas (0.9, 0.999), eps 1e-08, weight decay "
                              "0.0001 in the optimizer, on all parameters)")
    assert OptimizerSpec("sgd", lr=0.1, weight_decay=0.01, weight_decay_in="loss",
                         weight_decay_on="weights").describe() == (
        "sgd (lr 0.1, weight decay 0.01 in the loss, on weights only)")
    assert ModelSpec(DIMS).describe().endswith("loss: mean over the batch")
    assert ModelSpec(DIMS, loss_reduction="sum").to_dict()["loss_reduction"] == "sum"
    d = OptimizerSpec(weight_decay_in="loss", weight_decay_on="weights").to_dict()
    assert (d["weight_decay_in"], d["weight_decay_on"]) == ("loss", "weights")


# ------------------------------------------------------ CLI and docs/protocol.md
def _protocol_page_class() -> str:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = text.split("## Plugging in your own class", 1)[1]
    return re.search(r"```python file=mynet\.py\n(# mynet\.py.*?)```", section, re.DOTALL).group(1)


def _protocol_page_command() -> list[str]:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = text.split("## Plugging in your own class", 1)[1]
    line = re.search(r"```bash\n(nn-harness check [^\n]*mynet:MyMLP[^\n]*)\n", section).group(1)
    return line.split()[1:]


def test_the_protocol_page_plug_in_example_passes_as_written(tmp_path, monkeypatch, capsys):
    (tmp_path / "mynet.py").write_text(_protocol_page_class())
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(_protocol_page_command()) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "optimizer: sgd (lr" in out and "loss: mean over the batch" in out


def test_cli_flags_name_the_conventions(tmp_path, monkeypatch, capsys):
    (tmp_path / "booknets.py").write_text(
        f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_conventions import *\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    base = ["check", "--dataset", "iris", "--dims", "4,8,3", "--backends",
            "torch,booknets:RegInLossSGD", "--optimizer", "sgd", "--lr", "0.1",
            "--weight-decay", "0.05"]
    assert main(base) == 1
    capsys.readouterr()
    assert main(base + ["--weight-decay-in", "loss", "--weight-decay-on", "weights"]) == 0
    out = capsys.readouterr().out
    assert "weight decay 0.05 in the loss, on weights only" in out
    assert main(["check", "--dataset", "iris", "--dims", "4,8,3", "--backends",
                 "scratch,booknets:SumLossSGD", "--optimizer", "sgd", "--lr", "0.01",
                 "--weight-decay", "0", "--loss-reduction", "sum", "--json"]) == 0
    assert '"loss_reduction": "sum"' in capsys.readouterr().out

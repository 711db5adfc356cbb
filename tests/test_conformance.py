"""The conformance suite: a correct class passes, each bug fails the right cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.testing import check_network, checks_for, parametrize_with_checks
from harness.testing.conformance import SKIP


class NumpyMLP:
    """An independent small NumPy MLP (not the project's scratch code): relu, tanh, sgd."""

    nnh_capabilities = {"activations": ["relu", "tanh"], "dtypes": ["float64", "float32"],
                        "optimizers": ["sgd"]}

    def __init__(self, spec, optimizer):
        self.dims, self.act, self.dtype = spec.dims, spec.activation, np.dtype(spec.dtype)
        self.lr = optimizer.lr
        rng = np.random.default_rng(spec.seed)
        self.p = {}
        for i, (a, b) in enumerate(zip(self.dims[:-1], self.dims[1:])):
            k = 1 / np.sqrt(a)
            self.p[f"W{i}"] = rng.uniform(-k, k, (a, b)).astype(self.dtype)
            self.p[f"b{i}"] = rng.uniform(-k, k, b).astype(self.dtype)

    def f(self, z):
        return np.maximum(z, 0) if self.act == "relu" else np.tanh(z)

    def df(self, z, a):
        return (z > 0).astype(z.dtype) if self.act == "relu" else 1 - a * a

    def _forward(self, x):
        hs, zs = [np.asarray(x, self.dtype)], []
        n = len(self.dims) - 1
        for i in range(n):
            zs.append(hs[-1] @ self.p[f"W{i}"] + self.p[f"b{i}"])
            if i < n - 1:
                hs.append(self.f(zs[-1]))
        return hs, zs

    def forward(self, x):
        return self._forward(x)[1][-1]

    def reduce(self, per_sample):
        return per_sample.mean()

    def loss_and_grads(self, x, y):
        hs, zs = self._forward(x)
        z = zs[-1] - zs[-1].max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        rows = np.arange(len(y))
        loss = self.reduce(-logp[rows, y])
        dz = np.exp(logp)
        dz[rows, y] -= 1
        dz = (dz / len(y)).astype(self.dtype)
        grads = {}
        for i in reversed(range(len(zs))):
            grads[f"W{i}"] = hs[i].T @ dz
            grads[f"b{i}"] = dz.sum(axis=0)
            if i:
                dz = (dz @ self.p[f"W{i}"].T) * self.df(zs[i - 1], hs[i])
        return float(loss), {k: grads[k] for k in self.p}

    def get_params(self):
        return {k: v.copy() for k, v in self.p.items()}

    def set_params(self, params):
        if set(params) != set(self.p):
            raise ValueError(f"expected parameters {sorted(self.p)}, got {sorted(params)}")
        for k, v in params.items():
            v = np.asarray(v)
            if v.shape != self.p[k].shape or not np.all(np.isfinite(v)):
                raise ValueError(f"{k}: shape {v.shape} or values do not fit")
        self.p = {k: np.array(v, dtype=self.dtype) for k, v in params.items()}

    def train_step(self, x, y):
        loss, grads = self.loss_and_grads(x, y)
        for k in self.p:
            self.p[k] -= self.lr * grads[k]
        return loss


class WrongTanhDerivative(NumpyMLP):
    def df(self, z, a):
        return (z > 0).astype(z.dtype) if self.act == "relu" else 1 - a


class SummedLoss(NumpyMLP):
    def reduce(self, per_sample):
        return per_sample.sum()


class ReturnsFloat64(NumpyMLP):
    def __init__(self, spec, optimizer):
        super().__init__(spec, optimizer)
        self.dtype = np.dtype("float64")
        self.p = {k: v.astype(np.float64) for k, v in self.p.items()}


class AliasingSetParams(NumpyMLP):
    def set_params(self, params):
        self.p = dict(params)


class LossAfterStep(NumpyMLP):
    def train_step(self, x, y):
        super().train_step(x, y)
        return self.loss_and_grads(x, y)[0]


class RaisesInForward(NumpyMLP):
    def forward(self, x):
        return np.zeros((len(x),))[:, None] @ self.p["W9"]


class Undeclared(NumpyMLP):
    """Declares nothing: relu, float64, sgd only."""

    nnh_capabilities = None


def _run(cls, *ids):
    out = {}
    for check in checks_for(cls):
        if check.id in ids:
            out[check.id] = check.run(cls)
    assert set(out) == set(ids), set(ids) - set(out)
    return out


def test_ids_are_readable_and_complete():
    ids = [c.id for c in checks_for(NumpyMLP)]
    assert len(ids) == len(set(ids))
    for expected in ("contract-forward", "contract-set_params", "dtype-float32",
                     "gradients-tanh-float64", "loss-relu-float32", "forward-gelu-float64",
                     "gradients-depth3", "gradients-batch1", "gradients-duplicated-batch",
                     "gradients-zero-input", "step-sgd", "step-adam", "trajectory-sgd",
                     "determinism", "float32-end-to-end"):
        assert expected in ids


def test_a_correct_independent_implementation_passes_everything_it_declares():
    run = check_network(NumpyMLP)
    assert run.passed, run.text() + "\n" + "\n".join(o.result.text() for o in run.failed)
    skipped = {o.id: o.reason for o in run.outcomes if o.status == SKIP}
    assert "gradients-gelu-float64" in skipped and "step-adam" in skipped
    assert "does not declare optimizer 'adam'" in skipped["step-adam"]
    assert run["gradients-tanh-float32"].status == "PASS"
    assert run.counts()["PASS"] >= 25


def test_the_scratch_backend_passes_everything():
    run = check_network("scratch")
    assert run.passed, run.text()
    assert run.counts()["FAIL"] == 0 and run.counts()["PASS"] >= 45


def test_wrong_activation_derivative_fails_the_gradient_cases_only():
    out = _run(WrongTanhDerivative, "gradients-tanh-float64", "gradients-tanh-float32",
               "forward-tanh-float64", "loss-tanh-float64", "gradients-relu-float64")
    assert not out["gradients-tanh-float64"].passed
    assert not out["gradients-tanh-float32"].passed
    assert out["forward-tanh-float64"].passed and out["loss-tanh-float64"].passed
    assert out["gradients-relu-float64"].passed
    text = out["gradients-tanh-float64"].text()
    assert "grads['W0']" in text and "FAIL" in text and "quantities differ" in text
    assert "grads['W1']" in text  # the output layer's gradient is right: shown as PASS rows


def test_summed_loss_fails_the_loss_case():
    out = _run(SummedLoss, "loss-relu-float64", "forward-relu-float64")
    assert not out["loss-relu-float64"].passed and out["forward-relu-float64"].passed
    assert "loss" in out["loss-relu-float64"].summary
    assert "loss" in out["loss-relu-float64"].text()


def test_float64_when_float32_was_asked_fails_the_dtype_cases():
    out = _run(ReturnsFloat64, "dtype-float32", "dtype-float64", "float32-end-to-end")
    assert not out["dtype-float32"].passed and out["dtype-float64"].passed
    assert "dtype float64, expected float32" in out["dtype-float32"].summary
    assert not out["float32-end-to-end"].passed


def test_contract_bugs_are_named():
    out = _run(AliasingSetParams, "contract-set_params")
    assert out["contract-set_params"].status == "FAIL"  # aliasing: a verdict is at stake
    assert "kept the arrays it was given, not copies" in out["contract-set_params"].summary
    # accepting a missing name is a recommendation, said after the failure
    assert "accepted a missing parameter (W0); recommended: refuse it" in \
        out["contract-set_params"].text()
    out = _run(LossAfterStep, "contract-train_step")
    # the same rule, in the same words, as the preflight of every command
    assert "returned the loss after its update" in out["contract-train_step"].summary
    assert "expected the loss before it" in out["contract-train_step"].summary


def test_code_under_test_raising_is_a_finding_with_the_users_line():
    out = _run(RaisesInForward, "contract-forward")
    result = out["contract-forward"]
    assert not result.passed and result.findings
    assert result.findings[0].method == "forward"
    assert "test_conformance.py" in result.findings[0].where


def test_fewer_capabilities_skip_with_reasons():
    checks = {c.id: c for c in checks_for(Undeclared)}
    assert checks["gradients-tanh-float64"].skip == (
        "Undeclared does not declare activation 'tanh' in nnh_capabilities (declared: relu)")
    assert "float32" in checks["dtype-float32"].skip
    assert "float32" in checks["float32-end-to-end"].skip
    assert checks["gradients-relu-float64"].skip is None
    assert checks["step-sgd"].skip is None and checks["step-adamw"].skip


def test_bad_capabilities_are_bad_input():
    from harness.errors import ConfigError

    class Bad(NumpyMLP):
        nnh_capabilities = {"activations": ["swish"]}

    with pytest.raises(ConfigError, match="must list some of relu"):
        checks_for(Bad)


@parametrize_with_checks([Undeclared])
def test_parametrized_cases(network, check):
    if check.id.startswith(("forward-", "loss-", "gradients-", "contract-", "dtype-")):
        check(network)
    else:
        pytest.skip("the rest are run by check_network above")


def test_parametrize_ids_and_skip_marks():
    mark = parametrize_with_checks([Undeclared])
    params = mark.args[1]
    ids = [p.id for p in params]
    assert "Undeclared-gradients-relu-float64" in ids
    skipped = [p for p in params if p.marks]
    assert any(p.id == "Undeclared-gradients-tanh-float64" for p in skipped)


def test_cli_checklist_exit_codes_and_json(capsys):
    from harness.cli import main

    assert main(["conformance", "tests.test_conformance:SummedLoss"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  loss-relu-float64: " in out and "PASS  forward-relu-float64" in out
    assert "SKIP  gradients-tanh-float64: SummedLoss does not declare" not in out  # declares tanh
    assert "SKIP  step-adam: SummedLoss does not declare optimizer 'adam'" in out
    assert main(["conformance", "tests.test_conformance:Undeclared", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] and data["FAIL"] == 0 and data["SKIP"] > 0
    statuses = {c["id"]: c["status"] for c in data["checks"]}
    assert statuses["gradients-relu-float64"] == "PASS"
    assert statuses["gradients-tanh-float64"] == "SKIP"
    assert main(["conformance", "no_such_module_here:MyMLP"]) == 2
    assert "cannot import module 'no_such_module_here'" in capsys.readouterr().err


def test_same_verdicts_from_pytest_and_the_command_line():
    run = check_network(WrongTanhDerivative)
    failed = {o.id for o in run.failed}
    assert failed == {"gradients-tanh-float64", "gradients-tanh-float32"}

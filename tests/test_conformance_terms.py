"""Conformance in the class's own terms: each class passes in the terms it declares (its
optimizer, its depth, its loss reduction, its weight-decay convention), and a bug in each
still fails; the contract fails on harm and recommends the rest."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.testing import check_network, checks_for
from harness.testing.conformance import SKIP
from tests.test_conformance import NumpyMLP

ROOT = Path(__file__).resolve().parents[1]
ME = "tests.test_conformance_terms"


def _failures(run) -> str:
    return run.text() + "\n" + "\n".join(o.result.text() for o in run.failed if o.result)


# ------------------------------------------------------------------ AdamW only
class AdamWOnly(NumpyMLP):
    """torch.optim.AdamW written by hand; any other optimizer is refused."""

    nnh_capabilities = {"activations": ["relu", "tanh"], "optimizers": ["adamw"]}
    bias_correction = True

    def __init__(self, spec, optimizer):
        if optimizer.name != "adamw":
            raise ValueError(f"AdamWOnly implements adamw only, got {optimizer.name!r}")
        super().__init__(spec, optimizer)
        self.b1, self.b2 = optimizer.betas
        self.eps, self.wd, self.t = optimizer.eps, optimizer.weight_decay, 0
        self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.p.items()}

    def train_step(self, x, y):
        loss, grads = self.loss_and_grads(x, y)
        self.t += 1
        for k, g in grads.items():
            self.p[k] *= 1 - self.lr * self.wd
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            m, v = self.m[k], self.v[k]
            if self.bias_correction:
                m, v = m / (1 - self.b1 ** self.t), v / (1 - self.b2 ** self.t)
            self.p[k] -= self.lr * m / (np.sqrt(v) + self.eps)
        return loss


class AdamWNoBiasCorrection(AdamWOnly):
    bias_correction = False


# ------------------------------------------------------------------ one depth
class OneHiddenLayer(NumpyMLP):
    """Written for exactly one hidden layer; its constructor refuses any other depth."""

    nnh_capabilities = {"activations": ["relu", "tanh"]}

    def __init__(self, spec, optimizer):
        if len(spec.dims) != 3:
            raise ValueError(f"OneHiddenLayer has one hidden layer, got dims {spec.dims}")
        super().__init__(spec, optimizer)


class OneHiddenLayerDeclared(OneHiddenLayer):
    nnh_capabilities = {"activations": ["relu", "tanh"], "depths": [1]}


class OneHiddenLayerWrongTanh(OneHiddenLayer):
    def df(self, z, a):
        return (z > 0).astype(z.dtype) if self.act == "relu" else 1 - a


# ------------------------------------------------------------------ summed loss only
class SumOnly(NumpyMLP):
    """The loss summed over the batch, and so its gradients (course code's convention)."""

    nnh_capabilities = {"activations": ["relu", "tanh"], "conventions": {"loss_reduction": ["sum"]}}
    grads_scale = 1.0

    def reduce(self, per_sample):
        return per_sample.sum()

    def loss_and_grads(self, x, y):
        loss, grads = super().loss_and_grads(x, y)
        return loss, {k: g * len(y) * self.grads_scale for k, g in grads.items()}


class SumLossMeanGrads(SumOnly):
    """The bug: the loss summed but the gradients of the mean."""

    def loss_and_grads(self, x, y):
        loss, grads = super().loss_and_grads(x, y)
        return loss, {k: g / len(y) for k, g in grads.items()}


# ------------------------------------------------------------------ cs231n-style L2
class L2InLoss(NumpyMLP):
    """cs231n's ``loss += 0.5 * reg * sum(W * W)`` on the weights, ``dW += reg * W``."""

    nnh_capabilities = {"activations": ["relu", "tanh"],
                        "conventions": {"weight_decay_in": ["loss"], "weight_decay_on": ["weights"]}}
    on_biases = False

    def __init__(self, spec, optimizer):
        super().__init__(spec, optimizer)
        self.reg = optimizer.weight_decay

    def loss_and_grads(self, x, y):
        loss, grads = super().loss_and_grads(x, y)
        for k, p in self.p.items():
            if k.startswith("W") or self.on_biases:
                loss += 0.5 * self.reg * float(np.sum(p * p))
                grads[k] = grads[k] + self.reg * p
        return loss, grads


class L2OnBiasesToo(L2InLoss):
    on_biases = True


# ------------------------------------------------------------------ contract forms
class KeyErrorSetParams(NumpyMLP):
    """set_params as Python code writes it: a KeyError for a missing name; an extra name
    and a NaN taken as they come; a wrong shape refused."""

    def set_params(self, params):
        new = {}
        for k in self.p:
            v = np.asarray(params[k], dtype=self.dtype)
            if v.shape != self.p[k].shape:
                raise ValueError(f"{k} must have shape {self.p[k].shape}, got {v.shape}")
            new[k] = v.copy()
        self.p = new


class TakesAnyShape(KeyErrorSetParams):
    """The harmful form: a parameter of the wrong shape taken as it is."""

    def set_params(self, params):
        self.p = {k: np.array(params[k], dtype=self.dtype) for k in self.p}


class Float32Only(NumpyMLP):
    """float32 only, input used as given: float64 x gives float64 logits."""

    nnh_capabilities = {"activations": ["relu"], "dtypes": ["float32"]}

    def _forward(self, x):
        hs, zs = [np.asarray(x)], []
        n = len(self.dims) - 1
        for i in range(n):
            zs.append(hs[-1] @ self.p[f"W{i}"] + self.p[f"b{i}"])
            if i < n - 1:
                hs.append(self.f(zs[-1]))
        return hs, zs


class Float32GradsInFloat64(Float32Only):
    """The harmful form: float32 parameters, gradients computed in float64."""

    def loss_and_grads(self, x, y):
        loss, grads = super().loss_and_grads(x, y)
        return loss, {k: g.astype(np.float64) for k, g in grads.items()}


# ------------------------------------------------------------------ the tests
@pytest.mark.parametrize("good, bad, failing", [
    (AdamWOnly, AdamWNoBiasCorrection, "step-adamw"),
    (OneHiddenLayer, OneHiddenLayerWrongTanh, "gradients-tanh-float64"),
    (SumOnly, SumLossMeanGrads, "gradients-relu-float64"),
    (L2InLoss, L2OnBiasesToo, "convention-weight_decay_in-loss"),
])
def test_each_class_passes_in_its_terms_and_its_bug_still_fails(good, bad, failing):
    run = check_network(good)
    assert run.passed and run.exit_code == 0, _failures(run)
    assert run.counts()["PASS"] >= 10
    broken = check_network(bad)
    assert not broken.passed and broken.exit_code == 1
    assert failing in {o.id for o in broken.failed}, broken.text()


def test_the_declared_optimizer_builds_the_contract_checks():
    checks = {c.id: c for c in checks_for(AdamWOnly)}
    assert checks["contract-set_params"].kwargs["optimizer"] == "adamw"
    assert checks["trajectory-adamw"].skip is None and checks["step-sgd"].skip
    run = check_network(AdamWOnly)
    assert run["contract-train_step"].status == "PASS"
    assert "adamw" in "\n".join(run["contract-train_step"].result.header)


def test_a_refused_depth_is_skipped_with_the_constructors_reason():
    run = check_network(OneHiddenLayer)
    for depth in ("gradients-depth1", "gradients-depth3"):
        assert run[depth].status == SKIP
        assert "OneHiddenLayer refused to be built for it: ValueError: OneHiddenLayer has one " \
               "hidden layer" in run[depth].reason
    declared = {c.id: c for c in checks_for(OneHiddenLayerDeclared)}
    assert declared["gradients-depth3"].skip == (
        "OneHiddenLayerDeclared does not declare depth 2 (hidden layers) in nnh_capabilities "
        "(declared: 1)")


def test_depths_and_fixed_dims_size_the_networks():
    class TwoHidden(NumpyMLP):
        nnh_capabilities = {"depths": [2]}

    class Fixed(NumpyMLP):
        nnh_capabilities = {"dims": [4, 10, 3]}

    two = {c.id: c for c in checks_for(TwoHidden)}
    assert two["contract-forward"].kwargs["terms"].dims == (5, 7, 7, 3)
    assert two["gradients-depth3"].skip is None and two["gradients-depth1"].skip
    fixed = {c.id: c for c in checks_for(Fixed)}
    assert fixed["contract-forward"].kwargs["terms"].dims == (4, 10, 3)
    assert "fixed dims (4, 10, 3)" in fixed["gradients-depth1"].skip
    run = check_network(Fixed)
    assert run.passed, _failures(run)


def test_conventions_are_tested_in_the_combination_declared():
    ids = {c.id: c for c in checks_for(SumOnly)}
    assert ids["convention-loss_reduction-sum"].skip is None
    assert "does not declare convention loss_reduction 'mean'" in \
        ids["convention-loss_reduction-mean"].skip
    assert ids["gradients-relu-float64"].kwargs["terms"].conventions == {"loss_reduction": "sum"}
    l2 = {c.id: c for c in checks_for(L2InLoss)}
    assert l2["convention-weight_decay_in-loss"].kwargs["weight_decay"] == 0.1
    assert l2["convention-weight_decay_in-loss"].skip is None
    # the declared combination is one step, run once
    assert l2["convention-weight_decay_on-weights"].skip == (
        "the same conventions as convention-weight_decay_in-loss, L2InLoss's declared ones")
    assert "does not declare convention weight_decay_on 'all'" in \
        l2["convention-weight_decay_on-all"].skip


def test_keyerror_for_a_missing_name_is_accepted_the_rest_recommended():
    run = check_network(KeyErrorSetParams)
    assert run.passed, _failures(run)
    outcome = run["contract-set_params"]
    assert outcome.status == "WARN"
    text = outcome.result.text()
    assert "missing parameter" not in text  # the KeyError names it: accepted
    assert "accepted an extra parameter (W99); recommended: refuse it" in text
    assert "accepted a NaN in W0" in text
    assert outcome.line.startswith("WARN  contract-set_params: set_params accepted")
    bad = check_network(TakesAnyShape)
    assert bad["contract-set_params"].status == "FAIL"
    assert "accepted a wrong shape (W0 transposed) silently" in \
        bad["contract-set_params"].result.summary


def test_a_float32_only_model_passes_and_float64_grads_fail():
    run = check_network(Float32Only)
    assert run.passed, _failures(run)
    assert run["float32-end-to-end"].status == "WARN"
    assert "forward(float64 x) returns float64" in run["float32-end-to-end"].result.summary
    bad = check_network(Float32GradsInFloat64)
    assert bad["dtype-float32"].status == "FAIL"
    assert "grads['W0'] has dtype float64, expected float32" in \
        bad["dtype-float32"].result.summary


def test_a_failure_carries_the_likely_causes_check_prints():
    # the summed class checked with the mean, as check would compare it without flags
    out = {c.id: c for c in checks_for(SumOnly, flags={"loss_reduction": "mean"})}
    result = out["gradients-relu-float64"].run(SumOnly)
    assert not result.passed
    assert any("--loss-reduction sum" in h for h in result.hints), result.text()
    assert "likely causes:" in result.text()
    assert any(n.startswith("localised:") for n in result.notes)


def _cli(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_readmes_mynet_passes_from_a_folder_of_its_own(tmp_path):
    shutil.copy(ROOT / "examples" / "mynet.py", tmp_path / "mynet.py")
    done = _cli(["conformance", "mynet:MyMLP"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL " not in done.stdout and "PASS: " in done.stdout
    typo = _cli(["conformance", "mynet:MyMLp"], tmp_path)
    assert typo.returncode == 2
    assert "has no attribute 'MyMLp'; did you mean `MyMLP`?" in typo.stderr
    assert "Traceback" not in typo.stderr


def test_cli_flags_put_the_class_in_its_terms(capsys):
    from harness.cli import main

    assert main(["conformance", f"{ME}:SumOnly", "--activation", "relu"]) == 0
    out = capsys.readouterr().out
    assert "SKIP  gradients-tanh-float64: SumOnly does not declare activation 'tanh'" in out
    # a plain class checked in the summed convention from the command line
    assert main(["conformance", "tests.test_conformance:SummedLoss", "--loss-reduction",
                 "sum"]) == 1  # its gradients are the mean's: still a FAIL
    out = capsys.readouterr().out
    assert "PASS  loss-relu-float64" in out and "FAIL  gradients-relu-float64" in out
    assert main(["conformance", f"{ME}:SumOnly", "--loss-reduction", "mean", "--verbose"]) == 1
    out = capsys.readouterr().out
    assert "likely causes:" in out and "--loss-reduction sum" in out
    assert main(["conformance", f"{ME}:AdamWOnly", "--optimizer", "sgd"]) == 1
    out = capsys.readouterr().out
    assert "no check ran" in out and "refused to be built for it" in out
    assert main(["conformance", f"{ME}:SumOnly", "--optimizer", "sgdd"]) == 2
    assert "`--optimizer` must be one of sgd, adam" in capsys.readouterr().err


def test_the_templates_stated_command_works_from_the_folder_holding_mynet(tmp_path):
    shutil.copy(ROOT / "examples" / "mynet.py", tmp_path / "mynet.py")
    (tmp_path / "tests").mkdir()
    template = (ROOT / "examples" / "test_mynet_template.py").read_text()
    assert "python -m pytest tests/test_mynet.py" in template
    (tmp_path / "tests" / "test_mynet.py").write_text(template)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the project only: not the user's folder
    from tests.test_plugin import plugin_args

    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *plugin_args(), "tests/test_mynet.py", "-k",
                           "conformance and (contract or relu-float64) or iris"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout


def test_a_class_name_typo_gets_did_you_mean_in_every_command(capsys):
    from harness.cli import main
    from harness.errors import ProtocolError
    from harness.model.registry import load_user_class

    with pytest.raises(ProtocolError, match=r"has no attribute 'SumOnyl'; did you mean "
                                            r"`SumOnly`\?"):
        load_user_class(f"{ME}:SumOnyl")
    with pytest.raises(ProtocolError) as err:
        load_user_class(f"{ME}:Zzzzzz")
    assert "did you mean" not in str(err.value)
    for argv in (["check", "--backends", f"torch,{ME}:L2InLos", "--dataset", "iris"],
                 ["conformance", f"{ME}:L2InLos"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "did you mean `L2InLoss`?" in err and "Traceback" not in err


def test_a_combination_no_spec_can_express_is_skipped_with_the_reason():
    checks = {c.id: c for c in checks_for("scratch", flags={"optimizers": ["adamw"]})}
    assert checks["convention-weight_decay_in-loss"].skip.startswith(
        "no such configuration: `weight_decay_in` loss does not apply to adamw")
    assert checks["step-adamw"].skip is None

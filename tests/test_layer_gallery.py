"""The gallery of layer networks (tests/gallery/layer_nets.py) through the equivalence check.

Each correct network passes in its convention, in float64 and float32, with no hint;
each wrong one fails with its likely cause first. Small seeded data: 48 rows, 8 features.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.checks import CheckConfig, run_checks
from harness.checks.run import build_model, check_rows
from harness.compare.equivalence import resolve_tolerances
from harness.data.datasets import make_synthetic
from harness.diagnose import diagnose
from harness.diagnose.evidence import close
from harness.model.specs import ModelSpec, OptimizerSpec

DATA = make_synthetic(48, 8, 3, seed=0)
SGD = OptimizerSpec(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.0)
CS231N = dict(bn_momentum=0.9, bn_momentum_convention="cs231n", bn_running_var="biased")

BN = "linear(16),batchnorm,relu,linear(3)"
LN = "linear(16),layernorm,relu,linear(3)"
DROP = "linear(16),relu,dropout(0.3),linear(3)"
ALL = "linear(16),batchnorm,relu,dropout(0.3),linear(3)"
ALL_LN = "linear(16),layernorm,relu,dropout(0.3),linear(3)"


def _config(net: str, layers: str, dtype: str = "float64", optimizer=SGD,
            **conventions) -> CheckConfig:
    spec = ModelSpec(layers=layers, input_shape=8, dtype=dtype, **conventions)
    return CheckConfig(backends=("scratch", f"tests.gallery.layer_nets:{net}"), spec=spec,
                       optimizer=optimizer, threads=1)


def _buffers_differ(config: CheckConfig) -> bool:
    """The running statistics after the check's calls (forward, a training pass, a step),
    compared as the check compares: a stand-in until the equivalence report has
    buffer rows of its own."""
    x, y = check_rows(config, DATA)
    ref, cand = (build_model(config, name) for name in config.backends)
    if not hasattr(ref, "get_buffers"):
        return False
    cand.set_params(ref.get_params())
    for model in (ref, cand):
        model.forward(x)
        model.loss_and_grads(x, y)
        model.train_step(x, y)
    rtol, atol = resolve_tolerances(np.dtype(config.spec.dtype), None, None)
    br, bc = ref.get_buffers(), cand.get_buffers()
    return not all(k in bc and close(bc[k], br[k], rtol, atol) for k in br)


def check(net: str, layers: str, dtype: str = "float64", optimizer=SGD, **conventions):
    """(failed, hints): the equivalence check's verdict and its likely causes."""
    config = _config(net, layers, dtype, optimizer, **conventions)
    result = run_checks(config, DATA, ["equivalence"]).results[0]
    if not result.passed:
        return True, list(result.hints)
    if _buffers_differ(config):  # passes the check's rows, not the running statistics
        x, y = check_rows(config, DATA)
        found = diagnose(config, x, y, *config.backends, builder=build_model)
        return True, found.hints
    return False, list(result.hints)


# (network, layers, conventions) of the correct ones
CORRECT = [
    ("CS231nNet", ALL, CS231N), ("CS231nNet", ALL_LN, CS231N), ("CS231nNet", BN, CS231N),
    ("NNFSNet", ALL, {}), ("NNFSNet", ALL_LN, {}), ("NNFSNet", DROP, {}),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("net, layers, conventions", CORRECT,
                         ids=[f"{c[0]}-{c[1]}" for c in CORRECT])
def test_a_correct_layer_network_passes_in_its_convention(net, layers, conventions, dtype):
    failed, hints = check(net, layers, dtype, **conventions)
    assert not failed and hints == [], hints


@pytest.mark.parametrize("on", ["all", "weights"])
@pytest.mark.parametrize("net, conventions", [("CS231nNet", CS231N), ("NNFSNet", {})])
def test_a_correct_layer_network_passes_with_weight_decay(net, conventions, on):
    decay = OptimizerSpec(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.05,
                          weight_decay_on=on)
    failed, hints = check(net, ALL, optimizer=decay, **conventions)
    assert not failed and hints == [], hints


def test_an_optimizer_the_gallery_lacks_is_refused_by_name():
    with pytest.raises(Exception, match=r"this code has no adam optimizer \(it has sgd\)"):
        build_model(_config("NNFSNet", ALL, optimizer=OptimizerSpec(name="adam",
                                                                    weight_decay=0.0)),
                    "tests.gallery.layer_nets:NNFSNet")


# (network, layers, conventions, the start of the first likely cause, text in it)
WRONG = [
    ("CS231nNet", ALL, {}, "batch norm's momentum inverted",
     "`--bn-momentum-convention cs231n` `--bn-momentum 0.9` `--bn-running-var biased`"),
    ("BiasedRunningVar", BN, {}, "a biased running variance",
     "with `--bn-running-var biased` the reference follows"),
    ("InvertedMomentum", BN, {}, "batch norm's momentum inverted",
     "with `--bn-momentum-convention cs231n` `--bn-momentum 0.9` the reference follows"),
    ("EpsOutsideRoot", BN, {}, "eps outside the square root", "sqrt(var) + eps"),
    ("BatchNormWrongAxis", BN, {}, "batch norm over the wrong axis", "axis=1"),
    ("LayerNormOverBatch", LN, {}, "layer norm over the batch", "axis=0"),
    ("RunningStatsInEval", BN, {}, "running statistics updated in evaluation",
     "your forward changed running_mean0, running_var0"),
    ("BatchNormBackwardMissingTerm", BN, CS231N, "batch norm's backward with a missing term",
     "xhat·Σ(dxhat·xhat)"),
    ("DropoutNotInverted", DROP, CS231N, "dropout not inverted", "1 - p = 0.7"),
    ("KeepAsDrop", DROP, CS231N, "p used as the keep probability",
     "near 1 - p = 70%"),
    ("MaskRedrawn", DROP, CS231N, "a mask redrawn between forward and backward",
     "the gradients do not"),
    ("DropoutInEval", DROP, CS231N, "dropout left on in evaluation",
     "the training pass agrees with the same masks"),
]


@pytest.mark.parametrize("net, layers, conventions, cause, detail", WRONG,
                         ids=[c[0] + ("-torch-flags" if c[0] == "CS231nNet" else "")
                              for c in WRONG])
def test_a_wrong_layer_network_fails_with_its_cause(net, layers, conventions, cause, detail):
    failed, hints = check(net, layers, **conventions)
    assert failed, hints
    assert hints and hints[0].startswith(cause), hints
    assert detail in hints[0], hints[0]
    assert "checked" in hints[0], hints[0]


def test_the_convention_hints_name_only_flags_that_were_rerun():
    """The flags named make the same network pass; a network whose mistake no flag
    aligns (eps outside the square root) gets no flag, though --norm-eps 1e-8 would make
    its difference too small to see."""
    failed, hints = check("BiasedRunningVar", BN, bn_running_var="biased")
    assert not failed and hints == []
    failed, hints = check("InvertedMomentum", BN, bn_momentum=0.9,
                          bn_momentum_convention="cs231n")
    assert not failed and hints == []
    _, hints = check("EpsOutsideRoot", BN)
    assert "--norm-eps" not in hints[0]


def test_the_biased_variance_hint_shows_the_ratio():
    _, hints = check("BiasedRunningVar", BN)
    assert "N/(N-1) = 48/47 = 1.021 times yours in every feature" in hints[0]


def test_a_bug_fails_in_float32_too():
    failed, hints = check("MaskRedrawn", DROP, "float32", **CS231N)
    assert failed and hints[0].startswith("a mask redrawn"), hints


@pytest.mark.parametrize("net, layers, conventions", CORRECT,
                         ids=[f"{c[0]}-{c[1]}" for c in CORRECT])
def test_a_correct_layer_network_has_no_layer_cause(net, layers, conventions):
    """Asked directly (the check would not ask: it passes), the causes find nothing."""
    from harness.diagnose.evidence import Evidence
    from harness.diagnose.layers import layer_causes

    config = _config(net, layers, **conventions)
    x, y = check_rows(config, DATA)
    ev = Evidence.build(config, *config.backends, x, y, builder=build_model)
    assert layer_causes(ev) is None


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("net, layers, conventions, cause", [
    ("CS231nNet", ALL, CS231N, None),
    ("NNFSNet", ALL, {}, None),
    ("CS231nNet", ALL, {}, "batch norm's momentum inverted"),
    ("KeepAsDrop", DROP, CS231N, "p used as the keep probability"),
    ("EpsOutsideRoot", BN, {}, "eps outside the square root"),
])
def test_the_torch_reference_gives_the_same_verdicts(net, layers, conventions, cause):
    config = _config(net, layers, **conventions)
    config = CheckConfig(backends=("torch", config.backends[1]), spec=config.spec,
                         optimizer=SGD, threads=1)
    result = run_checks(config, DATA, ["equivalence"]).results[0]
    failed = not result.passed or _buffers_differ(config)
    assert failed == (cause is not None)
    if cause is not None:
        x, y = check_rows(config, DATA)
        hints = result.hints or diagnose(config, x, y, *config.backends,
                                         builder=build_model).hints
        assert hints and hints[0].startswith(cause), hints


def test_the_emulation_reproduces_the_scratch_network():
    """The float64 emulation the causes compare with is the reference network itself,
    every layer kind and activation included."""
    from harness.diagnose.layer_math import Conventions, emulate
    from harness.model.masks import HandedMasks, dropout_layout
    from harness.model.registry import make_backend

    layers = ("linear(12),batchnorm,tanh,dropout(0.25),linear(10),layernorm,gelu,"
              "linear(9),leaky_relu(0.2),linear(8),sigmoid,linear(3)")
    spec = ModelSpec(layers=layers, input_shape=8, bn_momentum=0.3)
    model = make_backend("scratch", spec, SGD)
    x, y = check_rows(_config("NNFSNet", BN), DATA)
    masks = HandedMasks(None, dropout_layout(spec.network), spec.seed).draw(len(y))
    out = emulate(spec.network.plain(), model.get_params(), model.get_buffers(), x, y, masks,
                  Conventions.of(spec))
    assert close(out["eval0"], model.forward(x), 1e-12, 1e-12)
    loss, grads = model.loss_and_grads(x, y)
    assert close(out["loss"], loss, 1e-12, 1e-12)
    assert all(close(out["grads"][k], grads[k], 1e-10, 1e-12) for k in grads)
    assert all(close(out["buffers1"][k], v, 1e-12, 1e-12) for k, v in model.get_buffers().items())
    assert close(out["eval1"], model.forward(x), 1e-12, 1e-12)


@pytest.mark.parametrize("net, layers, conventions", [("NNFSNet", ALL, {}),
                                                      ("CS231nNet", ALL, CS231N),
                                                      ("MaskRedrawn", DROP, CS231N)])
def test_a_network_with_dropout_keeps_the_contract(net, layers, conventions):
    """The contract's passes on one batch (a training pass, then the step whose loss must
    be the same) see the same handed masks: no broken rule for a network with dropout."""
    from harness.checks.preflight import preflight

    result = preflight(_config(net, layers, **conventions), DATA)
    assert result.passed and not result.findings, [f.message for f in result.findings]


@pytest.mark.parametrize("net, cause", [
    ("DropoutInEval", "dropout left on in evaluation"),
    ("KeepAsDrop", "p used as the keep probability"),
    ("MaskRedrawn", "a mask redrawn between forward and backward"),
    ("BatchNormBackwardMissingTerm", "batch norm's backward with a missing term"),
])
def test_a_mistake_in_another_convention_is_named_with_the_convention(net, cause):
    """A cs231n network with a mistake, checked with torch's conventions: the mistake
    first, then the flags under which the running statistics agree."""
    failed, hints = check(net, ALL)
    assert failed and hints[0].startswith(cause), hints
    assert ("; and batch norm's momentum inverted" in hints[0]
            and "`--bn-momentum-convention cs231n` `--bn-momentum 0.9` "
                "`--bn-running-var biased` the running statistics agree" in hints[0]), hints[0]

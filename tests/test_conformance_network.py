"""Conformance of a class that fixes its loss or its whole network: ``nnh_capabilities``
``loss`` (the book's sigmoid + bce summed over the outputs) and ``network`` with
``input_shape`` (a course-style conv net that builds one architecture), and the
command line's ``--layers`` as the same fixed network."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.testing import check_network, checks_for
from harness.testing.terms import capabilities_of
from tests.gallery.conv_nets import CS231nConvNet, KernelFlipped

ME = "tests.test_conformance_network"
CONV = "conv2d(3,3,padding=1),relu,maxpool2d(2),flatten,linear(3)"
CONV_CAPS = {"network": CONV, "input_shape": [2, 4, 4]}


def _refuse_other_networks(spec) -> None:
    if str(spec.layers) != str(capabilities_of(FixedConvNet)["network"]):
        raise ValueError(f"this network is {CONV}, got {spec.layers}")


class FixedConvNet(CS231nConvNet):
    """cs231n's naive conv functions in one architecture, refusing any other."""

    nnh_capabilities = CONV_CAPS

    def __init__(self, spec, optimizer):
        _refuse_other_networks(spec)
        super().__init__(spec, optimizer)


class FixedKernelFlipped(KernelFlipped):
    """The same architecture with the kernel flipped (a convolution, not torch's
    cross-correlation)."""

    nnh_capabilities = CONV_CAPS


def _failures(run) -> str:
    return run.text() + "\n" + "\n".join(o.result.text() for o in run.failed if o.result)


def test_the_books_network_passes_in_its_declared_loss_and_its_quadratic_cost_fails():
    from tests.gallery.nielsen import BookNetwork, BookQuadratic

    caps = capabilities_of(BookNetwork)
    assert caps["loss"] == {"loss": "bce", "loss_outputs": "sum"}
    run = check_network(BookNetwork)
    assert run.passed, _failures(run)
    assert run["forward-sigmoid-float64"].status == "PASS"
    assert run["step-sgd"].result.header[0] == (
        "model: dims 5-7-3, sigmoid, float64, seed 0; loss: binary cross-entropy of sigmoid "
        "outputs, sum over the outputs, mean over the batch")
    bad = check_network(BookQuadratic)
    assert not bad.passed and bad["loss-sigmoid-float64"].status == "FAIL"


def test_a_fixed_network_builds_every_check_and_skips_what_it_fixes():
    run = check_network(FixedConvNet)
    assert run.passed, _failures(run)
    ran = [o.id for o in run.outcomes if o.status != "SKIP"]
    assert {"contract-forward", "gradients-relu-float64", "step-sgd", "trajectory-sgd",
            "determinism", "gradients-batch1", "gradients-zero-input"} <= set(ran)
    skips = {o.id: o.reason for o in run.outcomes if o.status == "SKIP"}
    assert skips["gradients-depth3"] == ("FixedConvNet is checked on one fixed network, "
                                         "conv2d(3, 3, padding=1),relu,maxpool2d(2),flatten,"
                                         "linear(3)")
    assert skips["gradients-tanh-float64"].endswith("its activations are the network's")
    assert skips["layer-conv2d"].endswith("every check is built with it")
    assert run["gradients-relu-float64"].result.header[0].startswith(
        "model: layers conv2d(3, 3, padding=1),relu,maxpool2d(2),flatten,linear(3) on "
        "(N, C, H, W) = (N, 2, 4, 4) inputs")


def test_a_bug_in_the_fixed_network_fails_with_its_cause():
    run = check_network(FixedKernelFlipped)
    assert not run.passed
    assert run["gradients-relu-float64"].status == "FAIL"
    assert run["step-sgd"].status == "FAIL"


def test_batch_norm_in_a_fixed_network_skips_the_degenerate_batches():
    layers = "linear(7),batchnorm,relu,dropout(0.5),linear(3)"
    checks = {c.id: c for c in checks_for("scratch", flags={"network": layers})}
    assert checks["gradients-batch1"].skip == "batch norm in training needs more than one row"
    assert checks["gradients-zero-input"].skip.startswith("batch norm of identical rows")
    assert checks["gradients-duplicated-batch"].skip is None
    run = check_network("scratch", flags={"network": layers})
    assert run.passed, _failures(run)


@pytest.mark.parametrize("declared, message", [
    ({"loss": "hinge"}, r"`Bad.nnh_capabilities\['loss'\]`: .*hinge"),
    ({"loss": {"loss": "bce", "outputs": "sum"}}, r"a loss name or a dict of loss, "
                                                  r"loss_outputs, mse_half"),
    ({"network": "linear(7),relu"}, r"`Bad.nnh_capabilities\['network'\]`"),
    ({"network": "linear(7),relu,linear(3)", "dims": [5, 7, 3]}, r"fixed `network` with `depths` or `dims`"),
    ({"input_shape": [1, 8, 8]}, r"\['input_shape'\]` goes with a fixed `network`"),
    ({"network": CONV, "input_shape": [8, 8]}, r"\(features,\) or \(C, H, W\)"),
])
def test_a_bad_declaration_is_refused_naming_the_key(declared, message):
    bad = type("Bad", (), {"nnh_capabilities": declared})
    with pytest.raises(ConfigError, match=message):
        capabilities_of(bad)


def test_cli_layers_is_the_fixed_network_and_goes_without_dims(capsys):
    from harness.cli import main

    code = main(["conformance", f"{ME}:FixedConvNet", "--layers", CONV,
                 "--input-shape", "2,4,4"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "SKIP  gradients-depth1: FixedConvNet is checked on one fixed network" in out
    assert main(["conformance", "scratch", "--layers", "linear(3)", "--dims", "5,3"]) == 2
    err = capsys.readouterr().err
    assert "`--layers` and `--dims` both fix the network" in err and "Traceback" not in err
    assert main(["conformance", "scratch", "--input-shape", "1,8,8"]) == 2
    assert "`--input-shape` goes with --layers" in capsys.readouterr().err

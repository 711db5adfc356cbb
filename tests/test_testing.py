"""harness.testing's assertions: pass quietly, fail with the harness's report."""

from __future__ import annotations

from tests.amplifying import AMPLIFYING_CONFIG

import subprocess
import sys

import numpy as np
import pytest

from harness.checks import CheckResult
from harness.errors import ConfigError
from harness.testing import (
    HarnessAssertionError, assert_equivalent, assert_gradients_match, assert_trains_alike,
)
from harness.testing.build import supported_conventions
from tests.test_conformance import NumpyMLP, RaisesInForward, SummedLoss, WrongTanhDerivative

DIMS = (5, 7, 3)


@pytest.fixture
def xy():
    rng = np.random.default_rng(0)
    return rng.normal(size=(9, 5)), np.arange(9) % 3


def test_equivalent_backends_pass_and_return_the_result(xy):
    result = assert_equivalent("torch", "scratch", *xy, dims=DIMS, activation="tanh")
    assert isinstance(result, CheckResult) and result.passed
    assert result.header[0].startswith("model: dims 5-7-3, tanh, float64")


def test_dims_inferred_from_the_data_and_built_objects_accepted(xy):
    from harness import ModelSpec, OptimizerSpec, make_backend

    result = assert_equivalent("torch", NumpyMLP, *xy)
    assert "dims 5-32-3" in result.header[0]
    built = make_backend("scratch", ModelSpec(DIMS, activation="tanh", dtype="float32"),
                         OptimizerSpec("sgd", lr=0.01, weight_decay=0.0))
    result = assert_equivalent("torch", built, *xy)  # spec read off the built model
    assert "tanh, float32" in result.header[0]


def test_a_difference_raises_with_the_table_counts_and_localisation(xy):
    with pytest.raises(HarnessAssertionError) as info:
        assert_equivalent("torch", SummedLoss, *xy, dims=DIMS)
    message = str(info.value)
    assert isinstance(info.value, AssertionError)
    assert "quantity" in message and "max_abs_err" in message  # the table
    assert "quantities differ; first: loss" in message  # the counts
    assert info.value.result.status == "FAIL"


def test_the_message_reads_well_without_pytest_rewriting(tmp_path, xy):
    script = tmp_path / "plain.py"
    script.write_text(
        "import numpy as np\n"
        "from harness.testing import assert_equivalent\n"
        "from tests.test_conformance import WrongTanhDerivative\n"
        "x = np.random.default_rng(0).normal(size=(9, 5)); y = np.arange(9) % 3\n"
        "assert_equivalent('torch', WrongTanhDerivative, x, y, dims=(5, 7, 3), "
        "activation='tanh')\n")
    root = str(__import__("pathlib").Path(__file__).parents[1])
    env = {**__import__("os").environ, "PYTHONPATH": root}  # the script imports tests.*
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=root, env=env)
    assert out.returncode == 1
    assert "HarnessAssertionError: " in out.stderr and "grads['W0']" in out.stderr
    assert "first divergence" in out.stderr or "no layer-level localisation" in out.stderr


def test_gradients_match_finite_differences_and_autograd(xy):
    result = assert_gradients_match(NumpyMLP, *xy, dims=DIMS, activation="tanh")
    assert [v.name for v in result.verdicts] == ["gradcheck", "autograd"]
    with pytest.raises(HarnessAssertionError) as info:
        assert_gradients_match(WrongTanhDerivative, *xy, dims=DIMS, activation="tanh")
    message = str(info.value)
    assert "central differences" in message and "torch.autograd" in message
    assert "FAIL gradcheck" in message and "FAIL autograd" in message


def test_trains_alike_and_apart(xy):
    assert assert_trains_alike("torch", NumpyMLP, *xy, epochs=2, batch_size=3,
                               dims=DIMS).passed
    with pytest.raises(HarnessAssertionError, match="first divergence"):
        assert_trains_alike("torch", SummedLoss, *xy, epochs=1, batch_size=3, dims=DIMS,
                            optimizer={"name": "sgd", "lr": 0.1})


def test_float32_is_judged_by_the_float64_arbiter_as_on_the_command_line(xy):
    from harness import ModelSpec, OptimizerSpec, make_backend

    result = assert_equivalent("torch", "scratch", *xy, dims=DIMS, dtype="float32")
    assert {row.rule for row in result.report.rows} == {"arbiter"}  # the step rows too
    assert all(r.rule == "arbiter" for r in result.report.rows
               if r.quantity.startswith("grads"))
    trained = assert_trains_alike("torch", NumpyMLP, *xy, epochs=2, batch_size=3, dims=DIMS,
                                  dtype="float32")
    assert trained.report.rule == "arbiter" and trained.report.witnesses == 4
    # a built reference cannot be rebuilt in float64: the tolerances judge, and say so
    built = make_backend("torch", ModelSpec(DIMS, dtype="float32"),
                         OptimizerSpec("sgd", lr=0.01, weight_decay=0.0))
    alone = assert_trains_alike(built, NumpyMLP, *xy, epochs=2, batch_size=3)
    assert alone.report.rule == "tolerance" and alone.report.witnesses == 0


def test_an_amplifying_float32_run_passes_with_a_warn_not_an_assertion_error():
    """The calibration's configuration 233 through assert_trains_alike."""
    from harness.calibrate import configs as C
    from harness.calibrate.run import check_config
    from harness.checks.run import training_rows

    cfg = dict(AMPLIFYING_CONFIG)
    data = C.dataset_of(cfg)
    spec, opt = C.specs_of(cfg, data)
    X, y, *_ = training_rows(check_config(("torch", "scratch"), spec, opt, batch_size=4),
                             data)
    result = assert_trains_alike("torch", "scratch", X, y, epochs=2, batch_size=4,
                                 dims=spec.dims, activation=spec.activation, dtype="float32",
                                 seed=spec.seed, optimizer=opt)
    assert result.status == "WARN" and "amplifies rounding" in result.summary


def test_code_under_test_raising_is_reported_with_its_line(xy):
    with pytest.raises(HarnessAssertionError) as info:
        assert_equivalent("torch", RaisesInForward, *xy, dims=DIMS)
    message = str(info.value)
    assert "RaisesInForward.forward raised KeyError" in message
    assert "test_conformance.py:" in message


def test_conventions_pass_through_when_the_specs_take_them(xy):
    if "loss_reduction" in supported_conventions():
        assert_equivalent("torch", "scratch", *xy, dims=DIMS, loss_reduction="sum")
    else:
        with pytest.raises(ConfigError, match="`loss_reduction` 'sum' is not supported"):
            assert_equivalent("torch", "scratch", *xy, dims=DIMS, loss_reduction="sum")
        # the default is accepted (and left out of the spec)
        assert_equivalent("torch", "scratch", *xy, dims=DIMS, loss_reduction="mean",
                          weight_decay_in="optimizer", weight_decay_on="all")


def test_bad_input_is_a_config_error(xy):
    with pytest.raises(ConfigError, match="unknown backend"):
        assert_equivalent("torch", "nope", *xy, dims=DIMS)
    with pytest.raises(ConfigError, match="`x` has 5 features"):
        assert_equivalent("torch", "scratch", *xy, dims=(4, 3))


def test_hints_show_in_the_message_when_present():
    from harness.checks.result import FAIL, Verdict

    result = CheckResult("equivalence", [Verdict("equivalence", "t", FAIL, "2 differ")],
                         hints=["the loss is summed over the batch: try --loss-reduction sum"])
    message = str(HarnessAssertionError(result))
    assert "likely causes:" in message and "--loss-reduction sum" in message


def test_importing_the_package_and_plugin_does_not_import_torch():
    code = ("import sys, harness.testing, harness.testing.plugin; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

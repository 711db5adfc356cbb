"""`check` takes several optimizer steps, judges float32 steps by the float64 arbiter, and
stresses the batch where latent bugs act (issue 22, findings 4, 5 and 8); the kink cap.

Every class under test is written outside the built-in backends (tests.broken_steps).
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.checks import CheckConfig, run_equivalence
from harness.data.datasets import load_dataset
from harness.model.specs import ModelSpec, OptimizerSpec

ADAM = OptimizerSpec("adam", lr=1e-3)


@pytest.fixture(scope="module")
def iris():
    return load_dataset("iris")


def _check(data, name, dtype, optimizer=ADAM, reference="scratch", **kw):
    config = CheckConfig((reference, f"tests.broken_steps:{name}"),
                         ModelSpec((4, 8, 3), dtype=dtype), optimizer, **kw)
    return run_equivalence(config, data)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,optimizer", [
    ("OwnAdam", ADAM), ("OwnAdamW", OptimizerSpec("adamw", lr=1e-3, weight_decay=1e-2))])
def test_a_correct_class_of_its_own_passes_every_step(iris, name, optimizer, dtype):
    result = _check(iris, name, dtype, optimizer)
    assert result.status == "PASS", result.text()
    assert "3 optimizer steps" in result.summary
    names = [r.quantity for r in result.report.rows]
    assert "params after step 3['W1']" in names and "stress: logits near 1000" in names


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,kw,parted_after", [
    ("AdamBiasFromTMinus1", {}, 2), ("AdamBiasFrozen", {}, 2), ("LrDecayFromStep2", {}, 2),
    ("DecayFromPreviousParams", {"weight_decay": 1e-2}, 2),
    ("SkipsLastLayerEveryOtherStep", {}, 2), ("CachesBatchSize", {}, 3)])
def test_bugs_that_start_at_step_2_fail_and_say_where(iris, name, kw, parted_after, dtype):
    result = _check(iris, name, dtype, OptimizerSpec("adam", lr=1e-3, **kw))
    assert result.status == "FAIL", result.summary
    parted = result.report.parted
    assert parted.startswith(f"parameters agree after step {parted_after - 1}, part after "
                             f"step {parted_after}")
    assert "state kept between steps (Adam's bias correction counter t" in parted
    assert parted in result.summary
    # the same class passes a one-step check: what the steps add
    one = _check(iris, name, dtype, OptimizerSpec("adam", lr=1e-3, **kw), steps=1,
                 stress=False)
    assert one.status == "PASS", one.summary


@pytest.mark.parametrize("name,optimizer", [
    ("AdamUpdateOff1e4", ADAM),
    ("AdamWWithoutDecay", OptimizerSpec("adamw", lr=1e-3, weight_decay=1e-2)),
    ("AdamWLrTwice", OptimizerSpec("adamw", lr=1e-3, weight_decay=1e-2)),
    ("SGDDecayAfterUpdate", OptimizerSpec("sgd", lr=0.02, weight_decay=1e-2))])
def test_float32_steps_are_judged_by_the_arbiter(iris, name, optimizer):
    """Errors below 1% of the step: the plain float32 tolerances let them through."""
    result = _check(iris, name, "float32", optimizer)
    assert result.status == "FAIL", result.summary
    bad = [r for r in result.report.rows if not r.passed]
    assert bad[0].quantity.startswith("params after step") and bad[0].rule == "arbiter"
    plain = _check(iris, name, "float32", optimizer, arbiter=False, stress=False)
    assert plain.status == "PASS", plain.summary


def test_adam_without_eps_fails_in_float32(iris):
    digits = load_dataset("digits")
    config = CheckConfig(("torch", "tests.broken_steps:AdamWithoutEps"),
                         ModelSpec((64, 16, 10), dtype="float32"), ADAM, check_samples=200)
    assert run_equivalence(config, digits).status == "FAIL"


def test_statistics_include_excused_entries():
    from harness.compare.closeness import compare

    expected = np.array([1.0, 2.0, 3.0])
    actual = np.array([1.0, 2.5, 3.0])
    row = compare("q", actual, expected, rtol=1e-7, atol=1e-12,
                  ignore=np.array([False, True, False]))
    assert row.passed and row.n_excused == 1
    assert row.max_abs_err == pytest.approx(0.5)


def test_a_decay_below_float32_resolution_gets_a_notice(iris):
    tiny = OptimizerSpec("adamw", lr=1e-3, weight_decay=1e-5)
    result = _check(iris, "OwnAdamW", "float32", tiny)
    assert result.status == "PASS"
    assert any(n.startswith("notice: the weight decay changes each parameter by lr x "
                            "weight_decay = 1.0e-08") and "run in float64" in n
               for n in result.report.notes)
    assert not any(n.startswith("notice: the weight decay")
                   for n in _check(iris, "OwnAdamW", "float64", tiny).report.notes)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,row,cause", [
    ("NaiveSoftmax", "stress: logits near 1000", "without the max shift overflows"),
    ("ZeroesTinyGradients", "stress: gradients near 1e-9", "zeroes small gradients"),
    ("ClipsGradientNorm", "stress: gradient norm in the hundreds", "clips the gradient")])
def test_latent_bugs_fail_their_stress_row(iris, name, row, cause, dtype):
    result = _check(iris, name, dtype, OptimizerSpec("sgd", lr=0.1))
    bad = [r for r in result.report.rows if not r.passed]
    assert [r.quantity for r in bad] == [row], [r.quantity for r in bad]
    assert cause in bad[0].message


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_builtin_backends_pass_the_stress_rows(iris, dtype):
    config = CheckConfig(("scratch", "torch"), ModelSpec((4, 8, 3), dtype=dtype),
                         OptimizerSpec("sgd", lr=0.1, momentum=0.9))
    result = run_equivalence(config, iris)
    assert result.status == "PASS", result.text()


def test_steps_must_be_a_positive_int():
    from harness.errors import ConfigError

    with pytest.raises(ConfigError):
        CheckConfig(("scratch", "torch"), ModelSpec((4, 8, 3)), steps=0)


def test_more_than_a_quarter_skipped_as_kinks_is_not_checked():
    from harness.gradients.gradcheck_report import ParamCheck

    assert ParamCheck("W0", (4, 8), 32, checked=8, kinks=2).verdict == "PASS"
    capped = ParamCheck("W0", (4, 8), 32, checked=8, kinks=3)
    assert capped.too_many_kinks and capped.verdict == "NOT CHECKED"
    assert ParamCheck("W0", (4, 8), 32, checked=8, kinks=3, failed=1).verdict == "FAIL"
    # one kink is always allowed (a 3-entry bias with one relu unit on its kink)
    assert ParamCheck("b1", (3,), 3, checked=3, kinks=1).verdict == "PASS"
    assert ParamCheck("b1", (3,), 3, checked=3, kinks=2).verdict == "NOT CHECKED"

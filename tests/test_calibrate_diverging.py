"""Workloads that diverge, one backend overflowing before the other: calibration's false
alarms of seed 0 (indices 821, 1330) and a cross-validation whose one witness sampled the
rounding spread too thinly (1611); the reference's float32 run overflowing alone where
float64 stays finite (3032); a candidate that overflows alone still FAILs."""

from __future__ import annotations

import functools
from types import SimpleNamespace as NS

import pytest

from harness.errors import NumericalError
from harness.training.follow import workload_diverged


@functools.cache
def _rows(index: int) -> tuple:
    from harness.calibrate import run as R

    return tuple(R.config_rows(0, index))


def _status(index: int, check: str) -> dict[str, str]:
    return {r["pair"]: r["status"] for r in _rows(index) if r["check"] == check}


@pytest.mark.parametrize("check", ["training", "drift", "cv"])
def test_scratch_overflowing_first_on_a_diverging_workload_is_a_caution(check):
    """Index 821 (wine 13-3-21-6-3 leaky_relu, float32, SGD lr 0.153 momentum 0.9, batch 4):
    scratch reaches inf at step 97, torch (trained on alone) NaN at step 115, its float64
    arbiter at 118 and every witness too."""
    assert _status(821, check) == {"scratch-torch": "WARN", "simple-torch": "WARN"}
    row = next(r for r in _rows(821) if r["check"] == check and r["pair"] == "scratch-torch")
    assert "both diverged together" in row["summary"]
    assert "in backend 'scratch'" in row["summary"]  # who went first


def test_the_report_says_who_went_first_and_when_the_other_followed():
    from harness.calibrate import configs as C
    from harness.calibrate.run import check_config
    from harness.checks import run_training

    cfg = C.draw_config(0, 821)
    data = C.dataset_of(cfg)
    spec, opt = C.specs_of(cfg, data)
    config = check_config(C.PAIRS["scratch-torch"], spec, opt,
                          batch_size=min(cfg["batch_size"], len(data.y)),
                          epochs=cfg.get("epochs", C.EPOCHS))
    result = run_training(config, data)
    assert result.status == "FAIL" and result.report.diverged_together
    err = result.report.error
    assert (err.step, err.backends) == (97, ("scratch",))
    assert err.followed["torch"][0] > 97
    assert (f"scratch reached a non-finite loss at step 97, torch (trained on alone) at step "
            f"{err.followed['torch'][0]}: both diverged together") in result.summary


@pytest.mark.parametrize("check", ["training", "drift", "cv"])
def test_either_side_overflowing_first_is_a_caution(check):
    """Index 1330 (iris, float32, SGD lr 0.25 Nesterov momentum 0.9, batch 4): scratch
    NaN at step 135, the simple class at 139, torch at 145; on fold 3 of the CV torch goes
    first (step 138) and scratch, trained on alone, grows 206-fold."""
    assert _status(1330, check) == {"scratch-torch": "WARN", "simple-torch": "WARN"}


def test_a_candidate_that_grows_after_the_reference_overflowed_diverged_too():
    row = next(r for r in _rows(1330) if r["check"] == "cv" and r["pair"] == "scratch-torch")
    assert "in backend 'torch'" in row["summary"]
    assert "grew to" in row["summary"]


def test_a_cv_fail_whose_one_witness_matched_is_judged_with_more_witnesses():
    """Index 1611 (wine 13-1-5-3 gelu, float64, SGD lr 0.243 Nesterov momentum 0.9,
    batch 4): on fold 1 the candidate matched torch on 31 of 40 validation predictions, the
    first witness on 39, a second on 30: run with 4 witnesses, correct runs part as far."""
    assert _status(1611, "cv") == {"scratch-torch": "WARN", "simple-torch": "WARN"}
    row = next(r for r in _rows(1611) if r["check"] == "cv" and r["pair"] == "scratch-torch")
    assert "the furthest of 4" in row["summary"]


def test_a_cv_fail_against_one_witness_below_the_minimum_is_judged_with_more_witnesses():
    """Index 3094 (float64): 104 of 120 predictions identical against one witness at
    97.5%, 13.3% disagreements against 12.6% allowed; the furthest of 4 witnesses matches
    torch on 85%, so correct runs part as far: a WARN, for scratch as for the simple class."""
    row = next(r for r in _rows(3094) if r["check"] == "cv" and r["pair"] == "scratch-torch")
    assert row["status"] == "WARN", row["summary"]
    assert "the furthest of 4" in row["summary"]


def test_a_candidate_overflowing_alone_on_large_logits_still_fails():
    """A softmax without its max shift overflows at step 1 where torch's loss grows 976-fold
    but stays finite: a reference that only grows does not make it the workload's."""
    from harness.calibrate.entries import CATALOGUE
    from harness.calibrate.run import bug_config
    from harness.checks import run_cv, run_training

    bug = next(b for b in CATALOGUE if b.key == "softmax_no_max_sub@large_logits")
    config, data = bug_config(bug, "wine", (16, 16), "float32", 0)
    result = run_training(config, data)
    assert result.status == "FAIL" and not result.report.diverged_together
    assert "'torch' stayed finite" in result.summary
    assert "diverged together" not in result.summary
    cv = run_cv(config, data)
    assert cv.status == "FAIL" and not cv.fields["cv_diverged_together"]


def _error(backends, followed=(), grew=()):
    return NumericalError("x", step=5, backends=tuple(backends), followed=dict(followed),
                          grew=dict(grew))


def test_workload_diverged_needs_the_reference_side_non_finite_and_the_candidate_too():
    ref, cand = "torch", "mine"
    assert workload_diverged(_error([ref, cand]), ref, cand)
    assert workload_diverged(_error([cand], followed={ref: (9, float("nan"))}), ref, cand)
    assert workload_diverged(_error([cand], followed={"torch (witness 1)": (7, 1e30)}),
                             ref, cand)
    assert workload_diverged(_error([ref], grew={cand: (9, 300.0)}), ref, cand)
    assert workload_diverged(_error([ref], followed={cand: (8, float("inf"))}), ref, cand)
    # the candidate alone; the reference only grew; the reference alone
    assert not workload_diverged(_error([cand]), ref, cand)
    assert not workload_diverged(_error([cand], grew={ref: (2, 1e6)}), ref, cand)
    assert not workload_diverged(_error([ref]), ref, cand)
    assert not workload_diverged(None, ref, cand)


class _Overflowing:
    """A model that trains like ``inner`` but whose loss is inf from step ``at`` on."""

    def __init__(self, inner, at):
        self.inner, self.at, self.steps = inner, at, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def train_step(self, X, y):
        self.steps += 1
        loss = self.inner.train_step(X, y)
        return float("inf") if self.steps >= self.at else loss


def test_a_run_whose_others_train_normally_after_the_overflow_names_them_finite():
    from harness import ModelSpec, OptimizerSpec
    from harness.calibrate import configs as C
    from harness.model.registry import make_backend
    from harness.training.side_by_side import train_side_by_side

    data = C._bundled("iris")
    spec = ModelSpec((4, 8, 3), activation="tanh", seed=3)
    opt = OptimizerSpec(name="sgd", lr=0.05)
    ref = make_backend("torch", spec, opt)
    bad = _Overflowing(make_backend("scratch", spec, opt), at=4)
    bad.set_params(ref.get_params())
    log = train_side_by_side({"torch": ref, "mine": bad}, data.X, data.y, epochs=2,
                             batch_size=30, seed=0)
    err = log.error
    assert (err.step, err.backends, err.followed, err.grew) == (4, ("mine",), {}, {})
    assert str(err).endswith("training stopped there; trained on alone: 'torch' stayed "
                             "finite to the run's end")
    assert not workload_diverged(err, "torch", "mine")
    assert err.stayed == ("torch",)
    assert ref.train_step(data.X[:4], data.y[:4]) < 10  # trained on, still sane


def test_the_reference_overflowing_alone_in_float32_where_float64_stays_finite_is_a_caution():
    """Index 3032 (synthetic 5-19-8-53-5 leaky_relu, float64, SGD lr 0.114 momentum 0.9,
    batch 4): in the float32 drift run torch's loss becomes NaN at step 189 while scratch,
    the float64 arbiter and every witness stay finite; the float64 run follows torch."""
    result = _drift(3032)
    err = result.report.error
    assert (err.step, err.backends) == (189, ("torch",)) and "scratch" in err.stayed
    assert result.status == "WARN"
    assert "torch's float32 overflow is rounding this workload amplifies" in result.summary


def test_the_reference_overflowing_alone_where_float64_diverges_on_both_sides_is_a_caution():
    """Index 4333 (iris 4-61-5-9-3 leaky_relu, float64, SGD lr 0.295 momentum 0.9, batch
    4): torch's float32 drift run and one witness reach NaN at step 183, scratch and the
    float64 arbiter stay finite; in float64 torch and scratch reach NaN together at step
    41 (the arbiter, started from the float32 weights, took another path)."""
    result = _drift(4333)
    err = result.report.error
    assert (err.step, err.backends) == (183, ("torch",)) and "scratch" in err.stayed
    assert result.status == "WARN"
    assert "non-finite loss together in float64 (step 41)" in result.summary
    assert _status(4333, "drift") == {"scratch-torch": "WARN", "simple-torch": "WARN"}


def _drift(index: int):
    """The scratch-torch drift result of calibration configuration ``index`` (seed 0)."""
    from harness.calibrate import configs as C
    from harness.calibrate.run import check_config
    from harness.checks import run_drift

    cfg = C.draw_config(0, index)
    data = C.dataset_of(cfg)
    spec, opt = C.specs_of(cfg, data)
    return run_drift(check_config(C.PAIRS["scratch-torch"], spec, opt,
                                  batch_size=min(cfg["batch_size"], len(data.y)),
                                  epochs=cfg.get("epochs", C.EPOCHS)), data)


def _judged(error, first=None, report64=None):
    """fail_judged_in_float64 on a float32 FAIL stopped by ``error``; ``report64`` the
    float64 rerun's report."""
    from harness.checks.float64_rule import fail_judged_in_float64
    from harness.checks.result import CheckResult, Verdict

    report = NS(error=error, reference="torch", candidate="mine",
                             first_divergence=first, amplified_step=None, arbiter=True,
                             dtype="float32")
    result = CheckResult("drift", [Verdict("drift", "t", "FAIL", "stopped", 0.0)], report)
    reruns = []
    fail_judged_in_float64(result, report, lambda: reruns.append(1) or report64)
    return result, reruns


def test_the_reference_overflowing_alone_is_excused_only_where_float64_follows_it():
    clean = NS(first_divergence=None, error=None, reference="torch")
    alone = NumericalError("x", step=5, backends=("torch",), stayed=("mine",))
    result, reruns = _judged(alone, report64=clean)
    assert result.status == "WARN" and reruns == [1]
    parted = NS(first_divergence=NS(step=40), error=None, reference="torch")
    result, _ = _judged(alone, report64=parted)
    assert result.status == "FAIL" and "in float64 parts at" in result.notes[-1]
    assert result.fields["training_float64_step"] == 40
    stopped = NS(first_divergence=None, error=NumericalError("float64 overflow", step=9),
                 reference="torch", diverged_together=False)
    result, _ = _judged(alone, report64=stopped)
    assert result.status == "FAIL" and "stops too: float64 overflow" in result.notes[-1]
    together = NS(**{**vars(stopped), "diverged_together": True})
    result, _ = _judged(alone, report64=together)
    assert result.status == "WARN"
    assert "both sides reach a non-finite loss together in float64 (step 9)" in result.summary
    # never rerun: the candidate overflowed, grew, parted before, or was not trained on
    for error, first in [
            (NumericalError("x", step=5, backends=("mine",), stayed=("torch",)), None),
            (NumericalError("x", step=5, backends=("torch",), stayed=("mine",),
                            grew={"mine": (7, 1e5)}), None),
            (alone, NS(step=3, difference=0.5)),
            (NumericalError("x", step=5, backends=("torch",)), None)]:
        result, reruns = _judged(error, first, clean)
        assert result.status == "FAIL" and reruns == [], error.backends


def test_a_cv_two_predictions_off_where_the_furthest_of_four_witnesses_is_one_off_is_a_caution():
    """Index 5557 (synthetic 23-3-8-6 tanh, float64, SGD lr 0.264 momentum 0.9, batch 4,
    chance-level accuracy): the simple class matches torch on 118 of 120 predictions, the
    furthest of four witnesses on 119; both below 100% show the workload's spread."""
    assert _status(5557, "cv") == {"scratch-torch": "PASS", "simple-torch": "WARN"}
    row = next(r for r in _rows(5557) if r["check"] == "cv" and r["pair"] == "simple-torch")
    assert "correct runs disagree as much" in row["summary"]


def test_a_cv_below_the_minimum_where_four_witnesses_match_exactly_still_fails():
    from harness.checks.run import _cv_against_witness

    # the furthest witness at 100%: one prediction of slack, so two off is a FAIL
    assert _cv_against_witness(118 / 120, 1.0, 120, "s", "torch", 4)[0] == "FAIL"
    assert _cv_against_witness(118 / 120, 119 / 120, 120, "s", "torch", 4)[0] == "WARN"
    assert _cv_against_witness(110 / 120, 119 / 120, 120, "s", "torch", 4)[0] == "FAIL"

"""Findings from outside reviews: a built-in backend judges wherever one is given, gradient
noise is not excused as kinks, and cross-validation judges by default and excuses only
what a witness shows (the rest of the file)."""

from __future__ import annotations

import subprocess
import sys

from harness.cli.common import reference_first


def test_a_builtin_backend_moves_to_the_front(capsys):
    assert reference_first(("mynet:Net", "torch")) == ("torch", "mynet:Net")
    assert reference_first(("a:A", "b:B", "scratch", "torch")) == ("scratch", "a:A", "b:B",
                                                                    "torch")
    err = capsys.readouterr().err
    assert err.splitlines()[0] == ("note: torch is the reference, not mynet:Net: a built-in "
                                   "backend judges wherever one is given")


def test_the_order_of_builtins_and_a_single_name_stay(capsys):
    assert reference_first(("torch", "scratch")) == ("torch", "scratch")
    assert reference_first(("scratch", "mynet:Net")) == ("scratch", "mynet:Net")
    assert reference_first(("mynet:Net",)) == ("mynet:Net",)
    assert capsys.readouterr().err == ""


def test_plugins_only_warn_that_the_first_judges(capsys):
    assert reference_first(("a:A", "b:B")) == ("a:A", "b:B")
    assert capsys.readouterr().err.startswith("warning: a:A is the reference: no built-in")


def test_the_command_line_compares_a_plugin_listed_first_against_the_builtin():
    result = subprocess.run(
        [sys.executable, "-m", "harness", "check", "--backends",
         "tests.gallery.nielsen:BookNetwork,torch", "--dataset", "iris", "--dims", "4,8,3",
         "--activation", "sigmoid", "--loss", "bce", "--loss-outputs", "sum", "--optimizer",
         "sgd", "--lr", "0.5", "--weight-decay", "0"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "equivalence: tests.gallery.nielsen:BookNetwork against torch" in result.stdout
    assert "note: torch is the reference" in result.stderr


def test_gradient_noise_is_not_excused_as_kinks():
    """Noise of 1e-6 on every call: the entries it moves fail; none is skipped as a kink
    (a kink needs a gradient the model gives again at the same parameters)."""
    from harness.checks import CheckConfig, run_checks
    from harness.data.datasets import load_dataset
    from harness.model.specs import ModelSpec

    for seed in range(6):
        config = CheckConfig(("tests.gallery.noisy:NoisyGradients",),
                             ModelSpec((4, 8, 3), seed=seed), gradcheck_samples=32,
                             gradcheck_max_entries=8)
        result = run_checks(config, load_dataset("iris"), ("gradcheck",)).results[0]
        assert result.status == "FAIL", (seed, result.summary)
        assert result.fields["gradcheck_skipped"] == 0, (seed, result.summary)


def test_cv_judges_by_default():
    """Without --min-agreement, cv used to judge nothing (exit 0 for a network that never
    trains at 51% agreement); now 0.99 by default, as report."""
    result = subprocess.run(
        [sys.executable, "-m", "harness", "cv", "--dataset", "iris", "--epochs", "3",
         "--folds", "3", "--optimizer", "sgd", "--lr", "0.1", "--weight-decay", "0",
         "--dims", "4,8,3", "--backends", "scratch,tests.gallery.noisy:NeverTrains"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "below the 99% required" in result.stdout


def test_cv_warns_only_when_the_candidate_disagrees_about_as_often_as_a_witness():
    from harness.checks.run import _cv_against_witness, cv_witness_allowance

    # the reviewer's case: a witness matched on 98.67% of 150 predictions
    allowed = cv_witness_allowance(0.9867, 150)
    assert 0.05 < allowed < 0.08
    assert _cv_against_witness(0.98, 0.9867, 150, "s", "scratch")[0] == "WARN"
    assert _cv_against_witness(1 - allowed + 1e-9, 0.9867, 150, "s", "scratch")[0] == "WARN"
    # a network without its output bias (36.7%), relu' = 1 (73.3%), one that never trains (5%)
    for agreement in (0.367, 0.733, 0.05):
        status, summary = _cv_against_witness(agreement, 0.9867, 150, "s", "scratch")
        assert status == "FAIL" and "not a rounding spread" in summary
    # the most amplifying workload of the tests: correct runs at 38.9%, the witness 50.9%
    assert _cv_against_witness(0.389, 0.5086, 1797, "s", "torch")[0] == "WARN"


def test_both_losses_non_finite_at_one_step_is_said_and_no_false_alarm():
    """Calibration's configuration 2990 of seed 0 (mse summed over the outputs, SGD lr 0.45,
    float32): every correct pair diverges to inf at step 9 together: a numerical failure
    (FAIL) that says so, counted with the cautions by the calibration."""
    from harness.calibrate import configs as C
    from harness.calibrate import run as R
    from harness.checks import run_training

    rows = [r for r in R.config_rows(0, 2990) if r["check"] == "training"]
    assert [r["status"] for r in rows] == ["WARN", "WARN"]
    cfg = C.draw_config(0, 2990)
    data = C.dataset_of(cfg)
    spec, opt = C.specs_of(cfg, data)
    result = run_training(R.check_config(("torch", "scratch"), spec, opt, batch_size=8), data)
    assert result.status == "FAIL"
    assert "both diverged together, the workload and not the candidate" in result.summary


def test_a_candidate_alone_going_non_finite_still_fails():
    from harness.training.trajectory import Divergence, TrajectoryReport
    from harness.errors import NumericalError

    report = TrajectoryReport.__new__(TrajectoryReport)
    report.reference, report.candidate = "torch", "mine"
    report.error = NumericalError("x", step=4, backend="mine", backends=("mine",))
    report.first_divergence = None
    assert not report.diverged_together
    report.error = NumericalError("x", step=4, backends=("torch", "mine"))
    report.first_divergence = Divergence(2, 1, "loss", 1.0, 0.1)
    assert not report.diverged_together  # they had parted before


def test_an_adam_step_after_clipping_excuses_noise_on_the_clipped_gradient():
    """Calibration's configuration 9607 of seed 0: Adam (beta1 0) with weight decay and
    clip_grad_norm 0.1 on inputs scaled by 2e-3: where the clipped gradient and the decay
    cancel, rounding decides the step."""
    from harness.calibrate import run as R

    rows = [r for r in R.config_rows(0, 9607) if r["check"] == "equivalence"]
    assert [r["status"] for r in rows] == ["PASS", "PASS"], [r["summary"] for r in rows]


def _run(*argv, timeout=120):
    return subprocess.run([sys.executable, "-m", "harness", *argv], capture_output=True,
                          text=True, timeout=timeout)


def test_a_plugin_that_hangs_in_training_is_a_finding_with_its_line():
    result = _run("train", "--backends", "tests.gallery.hangs:SpinsAtStep3,scratch",
                  "--dataset", "iris", "--dims", "4,8,3", "--epochs", "2", "--timeout", "2")
    assert result.returncode == 1, result.stderr
    out = result.stdout + result.stderr
    assert "tests.gallery.hangs:SpinsAtStep3.train_step" in out
    assert "did not return within 2 s" in out and "hangs.py:" in out
    assert "Traceback" not in out


def test_a_plugin_asleep_in_a_check_is_a_finding():
    result = _run("check", "--backends", "scratch,tests.gallery.hangs:SleepsInGradients",
                  "--dataset", "iris", "--dims", "4,8,3", "--timeout", "1")
    assert result.returncode == 1, result.stderr
    out = result.stdout + result.stderr
    assert "SleepsInGradients.loss_and_grads" in out and "did not return within 1 s" in out


def test_the_time_limit_interrupts_a_worker_thread_too():
    import threading

    import pytest

    from harness.runtime.deadline import CallTimedOut, call_limit, current_limit, time_limit

    caught = []

    def work():
        try:
            with time_limit(0.2):
                while True:
                    pass
        except CallTimedOut as exc:
            caught.append(str(exc))

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(10)
    assert not worker.is_alive() and caught == ["did not return within 0.2 s (the --timeout limit)"]
    with call_limit(3.0):
        assert current_limit() == 3.0
    assert current_limit() is None
    with time_limit(5.0):  # a call that returns in time is not disturbed, nor later code
        pass
    import time

    time.sleep(0.05)
    with pytest.raises(CallTimedOut):
        with time_limit(0.1):
            time.sleep(5)


def test_a_timeout_that_is_not_a_positive_number_is_refused():
    result = _run("check", "--dataset", "iris", "--dims", "4,8,3", "--timeout", "0")
    assert result.returncode == 2
    assert "expected a positive number of seconds, got '0'" in result.stderr

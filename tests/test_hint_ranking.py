"""Hints verified by a rerun, ranked by what they explain; the convention search's one
complete passing command; one set of optimizer defaults; ``--accept``."""

from __future__ import annotations

import shlex

import pytest

from harness.cli import build_parser, main

H = "tests.hint_cases"
IRIS = ["--dataset", "iris", "--dims", "4,8,3"]


def check(capsys, *argv):
    code = main(["check", *IRIS, *argv])
    return code, capsys.readouterr().out


def causes(out: str) -> list[str]:
    lines = out.splitlines()
    if "likely causes:" not in lines:
        return []
    rest = lines[lines.index("likely causes:") + 1:]
    return [line[4:] for line in rest if line.startswith("  - ")]


def test_one_set_of_defaults_for_the_command_line_and_the_python_api():
    from harness.model.specs import OPTIMIZER_DEFAULTS, OptimizerSpec

    args = build_parser().parse_args(["check"])
    spec = OptimizerSpec()
    assert (args.optimizer, args.lr, args.weight_decay) == (spec.name, spec.lr,
                                                            spec.weight_decay)
    assert OPTIMIZER_DEFAULTS == {"name": "adam", "lr": 1e-3, "weight_decay": 1e-4}


def test_plain_sgd_code_run_with_no_flags_gets_one_complete_command_that_passes(capsys):
    code, out = check(capsys, "--backends", f"scratch,{H}:PlainSGD")
    assert code == 1
    first = causes(out)[0]
    assert "this command passes" in first
    command = first.split("(rerun for real): ", 1)[1]
    assert command == (f"nn-harness check --backends scratch,{H}:PlainSGD --dataset iris "
                       f"--dims 4,8,3 --optimizer sgd --lr 0.1 --weight-decay 0")
    assert "none of sgd" not in out  # the generic line adds nothing to a passing command
    code, out = check(capsys, *shlex.split(command)[2:])
    assert code == 0, out


def test_code_reading_its_lr_gets_the_given_lr_in_the_passing_command(capsys):
    code, out = check(capsys, "--backends", f"scratch,{H}:ReadsItsLr", "--lr", "0.05")
    assert code == 1
    command = causes(out)[0].split("(rerun for real): ", 1)[1]
    assert "--optimizer sgd --lr 0.05 --weight-decay 0" in command
    assert check(capsys, *shlex.split(command)[2:])[0] == 0


def test_decay_after_the_update_is_named_a_wrong_decay_never_fixed_by_switching_it_off(capsys):
    code, out = check(capsys, "--backends", f"scratch,{H}:DecayAfterUpdate", "--optimizer",
                      "sgd", "--lr", "0.1", "--weight-decay", "0.01")
    assert code == 1
    (line,) = causes(out)
    assert line.startswith("your step equals the reference without weight decay")
    assert "your decay has no effect or a wrong one" in line and "not the fix" in line
    assert "this command passes" not in out


@pytest.mark.parametrize("cls", ["NesterovLookahead", "NesterovAsPlainMomentum"])
def test_wrong_nesterov_forms_get_no_learning_rate_that_only_makes_up_for_them(capsys, cls):
    code, out = check(capsys, "--backends", f"scratch,{H}:{cls}", "--optimizer", "sgd",
                      "--lr", "0.1", "--momentum", "0.9", "--nesterov", "--weight-decay", "0")
    assert code == 1
    assert "as with lr" not in out and "`--lr" not in out and "--lr 0.0" not in out


@pytest.mark.parametrize("cls, lr, wrong", [
    ("AdamOffByMillionth", "1", "matches adamw"),
    ("AdamWithoutEps", "0.001", "--weight-decay-on weights"),
    ("AdamOffBy1e4", "0.001", "--lr 0.001"),
])
def test_small_adam_errors_get_no_setting_that_does_not_make_them_agree(capsys, cls, lr,
                                                                          wrong):
    code, out = check(capsys, "--backends", f"scratch,{H}:{cls}", "--lr", lr)
    assert code == 1
    assert wrong not in out and "1 times" not in out and "this command passes" not in out


def test_the_fail_summary_is_printed_once(capsys):
    code, out = check(capsys, "--backends", f"scratch,{H}:AdamOffBy1e4")
    assert code == 1
    summary = [line for line in out.splitlines() if line.startswith("FAIL: ")]
    assert len(summary) == 1, out


SGD = ["--optimizer", "sgd", "--lr", "0.01", "--weight-decay", "0"]


def test_a_bias_gradient_summed_over_every_axis_is_named(capsys):
    code, out = check(capsys, "--backends", f"scratch,{H}:BiasSummedOverAllAxes", *SGD)
    assert code == 1
    assert causes(out)[0].startswith("bias gradient summed over every axis")
    assert "db = dz.sum(axis=0), not np.sum(dz)" in out


def test_another_loss_with_gradients_summed_over_the_batch_is_named_mixed(capsys):
    code, out = check(capsys, "--backends", f"scratch,{H}:SumLossMeanGrads", *SGD)
    assert code == 1
    line = next(c for c in causes(out) if c.startswith("mixed conventions"))
    assert "summed over the batch (150 = N times the reference's)" in line


def _confident_config(**kw):
    from harness.checks import CheckConfig
    from harness.model.registry import make_backend
    from harness.model.specs import ModelSpec, OptimizerSpec

    spec, opt = ModelSpec((4, 8, 3)), OptimizerSpec("sgd", lr=0.01, weight_decay=0.0)
    params = make_backend("scratch", spec, opt).get_params()
    params["W1"], params["b1"] = params["W1"] * 60, params["b1"] * 60  # p_y near 0 and 1
    return CheckConfig(("scratch", f"{H}:ClippedLoss"), spec, opt, init_params=params, **kw)


def test_accept_reproduces_a_clipped_loss_on_the_reference_side_and_says_so():
    from harness.checks import run_equivalence
    from harness.data.datasets import load_dataset

    data = load_dataset("iris")
    plain = run_equivalence(_confident_config(), data)
    assert not plain.passed
    differ = {r.quantity for r in plain.report.rows if not r.passed}
    assert {"loss", "train_step loss"} <= differ  # the losses, never the gradients
    assert all("loss" in q or q.startswith("stress:") for q in differ), differ
    accepted = run_equivalence(_confident_config(accept=("loss-clip-eps",)), data)
    assert accepted.passed, accepted.text()
    assert any(line.startswith("accepted: loss-clip-eps") for line in accepted.header)
    assert "accepted: loss-clip-eps" in accepted.text()


def test_accept_refuses_an_unknown_name_with_the_choices(capsys):
    code = main(["check", *IRIS, "--accept", "loss-clip"])
    err = capsys.readouterr().err
    assert code == 2 and "one of loss-clip-eps; got 'loss-clip'" in err


def test_the_summed_loss_hint_in_train_quotes_the_batch_size_in_use(capsys):
    code = main(["train", *IRIS, "--backends", "scratch,tests.gallery.summed:Net",
                 "--optimizer", "sgd", "--lr", "0.01", "--weight-decay", "0", "--epochs", "1",
                 "--batch-size", "16", "--quiet"])
    out = capsys.readouterr().out
    assert code == 1
    line = next(c for c in causes(out) if c.startswith("summed loss instead of the mean"))
    assert "the batch size N = 16)" in line and "N = 150" not in out
    command = line.split("(rerun for real): ", 1)[1]
    assert "--loss-reduction sum" in command and "--batch-size 16" in command
    assert main(shlex.split(command)[1:] + ["--quiet"]) == 0


def test_the_overflow_probe_is_a_cause_only_where_the_failure_is_not_finite():
    import numpy as np

    from harness.checks import CheckConfig
    from harness.diagnose import Evidence, hints
    from harness.diagnose.verified import verify_and_rank
    from harness.model.specs import ModelSpec

    cand = "tests.gallery.more:NaiveSoftmax"
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 4)), np.arange(20) % 3
    config = CheckConfig(("scratch", cand), ModelSpec((4, 8, 3)))
    ev = Evidence.build(config, "scratch", cand, x, y)
    line = hints.overflow_at_scale(ev)
    assert line is not None
    shown, notes, _, _ = verify_and_rank(ev, [line], failure="4 of 15 quantities differ")
    assert shown == [] and notes == [f"not the cause of this failure, but a latent bug: {line}"]
    shown, notes, _, _ = verify_and_rank(ev, [line], failure="the training loss is nan at step 3")
    assert shown == [line] and notes == []

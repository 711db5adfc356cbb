"""The gallery of wrong hand-written networks through `nn-harness check`.

For each: the verdict, the exit code, the part the localisation names and the hint;
a correct network gets no hint at all.
"""

from __future__ import annotations

import pytest

from harness.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ADAM = ["--optimizer", "adam", "--lr", "1e-3", "--weight-decay", "1e-4"]
SGD = ["--optimizer", "sgd", "--lr", "0.1", "--weight-decay", "0.01"]


def check(capsys, net, *extra, dims="4,8,3"):
    code = main(["check", "--dataset", "iris", "--dims", dims,
                 "--backends", f"torch,tests.gallery.{net}", *extra])
    return code, capsys.readouterr().out


def hints_of(out: str) -> list[str]:
    """The lines under "likely causes:"."""
    lines = out.splitlines()
    if "likely causes:" not in lines:
        return []
    start = lines.index("likely causes:") + 1
    return [line[4:] for line in lines[start:] if line.startswith("  - ")]


@pytest.mark.parametrize("net, extra", [
    ("base:Net", ADAM),
    ("base:Net", SGD),
    ("base:Net", ["--activation", "gelu", "--optimizer", "adamw", "--weight-decay", "0.1"]),
    ("base:Net", ["--activation", "sigmoid", "--dtype", "float32", *SGD]),
    ("prints:Net", ADAM),
])
def test_a_correct_network_passes_with_no_hint(capsys, net, extra):
    code, out = check(capsys, net, *extra)
    assert code == 0, out
    assert "likely causes:" not in out and "localised:" not in out
    assert "PASS: all 28 quantities agree" in out


# (net, flags, first failing quantity, text of the first hint, text of the localisation)
CASES = [
    ("maximum:Net", ADAM, None,
     "forward returns shape (3,) for a batch of 150 rows", "the forward pass's shape"),
    ("summed:Net", ADAM, "loss",
     "summed loss instead of the mean: your loss and every gradient are 150 times (the batch "
     "size N = 150)", "localised: the loss (at logits (1, 0, -1), label 0, 4 rows"),
    ("l2:Net", ADAM, "loss",
     "an L2 penalty in your loss (weights only)", None),
    ("l2:WithBiases", ADAM, "loss",
     "an L2 penalty in your loss (weights and biases)", "localised: the loss"),
    ("probs:Net", ADAM, "logits",
     "forward returns probabilities, not logits", "localised: the output layer's forward"),
    ("clipped:EpsilonInLog", ADAM, "loss",
     "only the loss differs", "localised: the loss"),
    ("activations:GeluTanh", ["--activation", "gelu", *ADAM], "logits",
     "gelu in its tanh approximation",
     "localised: the hidden activation's forward (gelu(-1): yours -0.1588, reference -0.1587"),
    ("activations:SigmoidPrime", ["--activation", "sigmoid", *ADAM], "grads['W0']",
     "the sigmoid's derivative computed from z, z·(1 - z)",
     "localised: the hidden activation's derivative (sigmoid'(-2): yours -6, reference 0.105"),
    ("lazy_adam:Net", ADAM, "params after step['W0']",
     "your step matches a hand-written Adam without bias correction", None),
    ("more:BiasSummed", ADAM, "grads['b0']",
     "bias gradients summed over the batch instead of averaged", "localised: the output bias's"),
    ("more:FlippedSign", ADAM, "grads['W0']", "flipped sign: every gradient", None),
    ("more:TransposedGrad", ADAM, None, "transposed weights: your gradient of W0 has shape (8, 4)",
     None),
    # `--optimizer sgd` alone leaves the decay 1e-4 on and fails: the one complete command
    ("more:PlainSGD", ADAM, "params after step['W0']",
     "this command passes (rerun for real): nn-harness check --backends "
     "torch,tests.gallery.more:PlainSGD --dataset iris --dims 4,8,3 --optimizer sgd "
     "--lr 0.001 --weight-decay 0", None),
    ("more:DecayWeightsOnly", SGD, "params after step['b0']",
     "your step matches sgd with weight decay on weights only", None),
    ("more:Float32Dot", ADAM, "logits", "float32 arithmetic in a float64 run", None),
]


def test_a_float64_only_network_asked_for_float32_is_stopped_with_one_line(capsys):
    """Not a mismatch to explain but an unsupported request: exit 2 before any check,
    with the line that says so (the preflight)."""
    code = main(["check", "--dataset", "iris", "--dims", "4,8,3", "--dtype", "float32",
                 "--backends", "torch,tests.gallery.float64_only:Net", *ADAM])
    err = capsys.readouterr().err
    assert code == 2
    assert "computes in float64 when float32 was asked" in err
    assert "it does not support --dtype float32" in err


@pytest.mark.parametrize("net, extra, first, hint, localised", CASES,
                         ids=[c[0] for c in CASES])
def test_a_wrong_network_fails_with_its_hint(capsys, net, extra, first, hint, localised):
    code, out = check(capsys, net, *extra)
    assert code == 1
    assert "FAIL" in out
    if first is not None:
        assert f"first: {first}" in out
    hints = hints_of(out)
    assert len(hints) == 1, out  # the one hypothesis that holds, and no other
    assert hints[0].startswith(hint) or hint in hints[0], hints
    if localised is not None:
        assert localised in out


def test_the_hints_name_the_flags_that_align_the_reference(capsys):
    _, out = check(capsys, "summed:Net", *ADAM)
    assert "`--loss-reduction sum`" in out
    _, out = check(capsys, "l2:Net", *ADAM)
    assert "`--weight-decay-in loss` `--weight-decay-on weights`" in out
    _, out = check(capsys, "l2:WithBiases", *ADAM)
    assert "`--weight-decay-in loss`" in out and "--weight-decay-on" not in out
    _, out = check(capsys, "more:DecayWeightsOnly", *SGD)
    assert "`--weight-decay-on weights`" in out
    _, out = check(capsys, "more:PlainSGD", *ADAM)
    assert "--optimizer sgd --lr 0.001 --weight-decay 0" in out and "`--optimizer" not in out


@pytest.mark.parametrize("net, flags", [
    ("summed:Net", ["--loss-reduction", "sum"]),
    ("l2:Net", ["--weight-decay-in", "loss", "--weight-decay-on", "weights"]),
    ("l2:WithBiases", ["--weight-decay-in", "loss"]),
])
def test_a_network_in_another_convention_passes_once_the_flag_is_given(capsys, net, flags):
    """The flag the hint names makes the reference follow the network's convention: the
    same network then passes, with no hint, in every subcommand that compares."""
    code, out = check(capsys, net, *ADAM, *flags)
    assert code == 0, out
    assert "likely causes:" not in out and "PASS: all 28 quantities agree" in out
    code = main(["train", "--dataset", "iris", "--dims", "4,8,3", "--epochs", "2", "--quiet",
                 "--backends", f"torch,tests.gallery.{net}", *ADAM, *flags])
    out = capsys.readouterr().out
    assert code == 0 and "likely causes:" not in out, out


def test_decay_on_weights_only_passes_once_the_flag_is_given(capsys):
    code, out = check(capsys, "more:DecayWeightsOnly", *SGD, "--weight-decay-on", "weights")
    assert code == 0 and "likely causes:" not in out, out


def test_a_network_that_raises_is_a_finding_without_a_guess(capsys):
    code, out = check(capsys, "raises:Net", *ADAM)
    assert code == 1
    assert "raises:Net.forward raised AssertionError: expected one sample" in out
    assert "raises.py:" in out
    assert hints_of(out) == [] and "localised:" not in out


def test_a_clip_that_never_bites_at_the_checks_weights_passes(capsys):
    """Clipping at 1e-3 changes nothing at the initial weights: the check passes; the
    hypothesis still finds it with confident predictions (tests/test_diagnose.py)."""
    code, out = check(capsys, "clipped:Net", *ADAM)
    assert code == 0 and hints_of(out) == []


def test_json_carries_hints_and_localisation(capsys):
    import json

    code = main(["check", "--dataset", "iris", "--dims", "4,8,3", "--json",
                 "--backends", "torch,tests.gallery.summed:Net", *ADAM])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["hints"][0].startswith("summed loss instead of the mean")
    assert out["fields"]["equivalence_localised"].startswith("localised: the loss")


RMSPROP = ["--optimizer", "rmsprop", "--lr", "0.01"]
ADAGRAD = ["--optimizer", "adagrad", "--lr", "0.1", "--lr-decay", "0.1",
           "--initial-accumulator", "0.5"]
STEP = ["--optimizer", "sgd", "--lr", "0.1", "--lr-schedule", "step", "--step-size", "2",
        "--gamma", "0.5"]


def train(capsys, net, *extra):
    code = main(["train", "--dataset", "iris", "--dims", "4,8,3", "--epochs", "3",
                 "--backends", f"torch,tests.gallery.recipes:{net}", *extra])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("net, extra", [("RMSprop", RMSPROP), ("Adagrad", ADAGRAD),
                                        ("StepSchedule", STEP)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_correct_rmsprop_adagrad_or_schedule_trains_alike(capsys, net, extra, dtype):
    code, out = train(capsys, net, *extra, "--dtype", dtype)
    assert code == 0 and "likely causes:" not in out, out


# (net, flags, text of the hint)
RECIPE_BUGS = [
    ("RMSpropEpsInsideRoot", RMSPROP, "your step matches rmsprop with eps inside the square root"),
    ("AdagradZeroStart", ADAGRAD,
     "your step matches adagrad with its sum of squares starting at 0, not at "
     "initial_accumulator_value 0.5"),
    ("AdagradNoRateDecay", ADAGRAD,
     "step 2 differs by a factor 1.1 in its rate: your steps match adagrad without its "
     "lr_decay"),
    ("StepScheduleEarly", STEP,
     "step 2 differs by a factor 0.5 in its rate: your steps match the step schedule stepped "
     "one step early"),
]


@pytest.mark.parametrize("net, extra, hint", RECIPE_BUGS, ids=[c[0] for c in RECIPE_BUGS])
def test_a_wrong_rmsprop_adagrad_or_schedule_fails_in_training(capsys, net, extra, hint):
    code, out = train(capsys, net, *extra)
    assert code == 1 and "FAIL: first divergence at step" in out, out
    assert [h for h in hints_of(out) if hint in h], out
    # the rate decay and the schedule act from the second step on
    if net in ("AdagradNoRateDecay", "StepScheduleEarly"):
        assert "first divergence at step 2 " in out, out


def test_a_network_without_the_asked_optimizer_is_refused(capsys):
    code = main(["check", "--dataset", "iris", "--dims", "4,8,3", "--backends",
                 "torch,tests.gallery.base:Net", *RMSPROP])
    assert code == 2
    assert "could not build `tests.gallery.base:Net`: ValueError: this network has no " \
           "rmsprop" in capsys.readouterr().err


EXPONENTIAL = ["--optimizer", "sgd", "--lr", "0.1", "--weight-decay", "0", "--lr-schedule", "exponential",
               "--gamma", "0.5", "--batch-size", "30"]  # iris: 120 training rows, 4 batches


def test_a_schedule_stepped_per_epoch_is_named_and_its_flags_pass(capsys):
    code, out = train(capsys, "ExponentialPerEpoch", *EXPONENTIAL)
    assert code == 1, out
    assert [h for h in hints_of(out) if h.startswith(
        "the exponential schedule moved once per epoch: your rate changes once every 4 "
        "steps") and "`--lr-schedule step --step-size 4 --gamma 0.5`" in h], out
    code, out = train(capsys, "ExponentialPerEpoch", *EXPONENTIAL[:-4], "--lr-schedule",
                      "step", "--step-size", "4", "--gamma", "0.5", "--batch-size", "30")
    assert code == 0, out

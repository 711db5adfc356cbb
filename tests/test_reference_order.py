"""A built-in backend is the reference wherever one is given; a plug-in that judges says so."""

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

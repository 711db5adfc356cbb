"""Layer networks through the harness: the spec, the masks, and every check on them."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from harness.compare.equivalence import check_equivalence
from harness.errors import ConfigError
from harness.gradients.finite_diff import gradcheck
from harness.model.masks import HandedMasks, find_masks, held_masks
from harness.model.registry import make_backend
from harness.model.specs import ModelSpec
from harness.training.side_by_side import compare_training

BN_DROPOUT = "linear(32),batchnorm,relu,dropout(0.5),linear(10)"
DEEP = "linear(32),batchnorm,relu,dropout(0.3),linear(16),layernorm,tanh,linear(10)"


def _batch(n=40, features=20, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)), rng.integers(0, classes, n)


def _spec(layers=BN_DROPOUT, dtype="float64", **kw):
    return ModelSpec(layers=layers, input_shape=20, dtype=dtype, **kw)


# ---------------------------------------------------------------- the specification
def test_layers_spec_infers_widths_from_the_data():
    spec = ModelSpec(layers=BN_DROPOUT)
    assert spec.dims is None and spec.network is None
    fitted = spec.fit(20, 10)
    assert fitted.dims == (20, 32, 10)
    assert fitted.network.param_shapes == {"W0": (20, 32), "b0": (32,), "gamma0": (32,),
                                           "beta0": (32,), "W1": (32, 10), "b1": (10,)}
    assert fitted.network.buffer_shapes == {"running_mean0": (32,), "running_var0": (32,)}
    assert fitted.is_layered and fitted.has_dropout and fitted.has_batchnorm
    assert replace(fitted, dtype="float32").dims == (20, 32, 10)


@pytest.mark.parametrize("layers, fragment", [
    ("linear(32),relu,linear(3)", "number of classes (10)"),
    ("linear(32),dropout(1.5),linear(10)", "drop probability p must be in [0, 1)"),
    ("linear(32),swish,linear(10)", "unknown layer 'swish'"),
])
def test_a_spec_that_cannot_work_is_refused_with_the_rule(layers, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[")):
        ModelSpec(layers=layers).fit(20, 10)


def test_dims_and_layers_together_are_refused():
    with pytest.raises(ConfigError, match="not both"):
        ModelSpec((20, 32, 10), layers="linear(32),relu,linear(10)")
    with pytest.raises(ConfigError, match="needs its input width"):
        make_backend("scratch", ModelSpec(layers=BN_DROPOUT))


def test_a_plain_mlp_written_as_layers_is_the_dims_mlp_bit_for_bit():
    by_layers = ModelSpec(layers="linear(32),tanh,linear(10)", input_shape=20)
    by_dims = ModelSpec((20, 32, 10), activation="tanh")
    assert not by_layers.is_layered and by_layers.activation == "tanh"
    for name in ("scratch", "torch"):
        a, b = make_backend(name, by_layers), make_backend(name, by_dims)
        assert type(a) is type(b)
        for key, value in a.get_params().items():
            np.testing.assert_array_equal(value, b.get_params()[key])


def test_the_layer_networks_start_as_the_mlp_for_the_same_seed():
    spec = ModelSpec(layers="linear(32),linear(10)", input_shape=20, seed=3)
    mlp_spec = ModelSpec((20, 32, 10), seed=3)
    for name in ("scratch", "torch"):
        layered, mlp = make_backend(name, spec), make_backend(name, mlp_spec)
        assert type(layered) is not type(mlp)
        for key in ("W0", "b0", "W1", "b1"):
            np.testing.assert_array_equal(layered.get_params()[key], mlp.get_params()[key])


# ---------------------------------------------------------------- the masks
def test_two_backends_get_the_same_masks_and_a_look_leaves_the_sequence():
    spec = _spec()
    a, b = make_backend("scratch", spec), make_backend("torch", spec)
    assert isinstance(a, HandedMasks) and isinstance(b, HandedMasks)
    first = a.draw(5)
    with b.hold():
        held = b.draw(5)
        assert b.draw(5) is held  # one set of masks while held
    np.testing.assert_array_equal(first[0], held[0])
    np.testing.assert_array_equal(b.draw(5)[0], first[0])  # the look left b where a was
    np.testing.assert_array_equal(a.draw(5)[0], b.draw(5)[0])
    assert first[0].shape == (5, 32) and set(np.unique(first[0])) <= {0.0, 1.0}


def test_the_drop_rate_of_the_masks_is_p():
    masks = HandedMasks(object(), [(200, 0.3)], seed=1)
    share = np.mean([1.0 - masks.draw(50)[0].mean() for _ in range(40)])
    assert abs(share - 0.3) < 0.01


def test_without_handed_masks_the_training_passes_part():
    """The reason for the masks: each backend's own generator draws other masks."""
    spec = _spec()
    x, y = _batch()
    a = find_masks(make_backend("scratch", spec)).inner
    b = find_masks(make_backend("torch", spec)).inner
    b.set_params(a.get_params())
    assert abs(a.loss_and_grads(x, y)[0] - b.loss_and_grads(x, y)[0]) > 1e-6


# ---------------------------------------------------------------- equivalence
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layers", [BN_DROPOUT, DEEP])
def test_the_built_in_layer_networks_agree(dtype, layers):
    x, y = _batch()
    spec = _spec(layers, dtype)
    arbiter = make_backend("torch", replace(spec, dtype="float64")) if dtype == "float32" \
        else None
    report = check_equivalence(make_backend("torch", spec), make_backend("scratch", spec),
                               x, y, arbiter=arbiter)
    assert report.passed, str(report)
    quantities = [r.quantity for r in report.rows]
    assert "buffers after step['running_var0']" in quantities
    assert "logits after step (evaluation)" in quantities


def test_a_biased_running_variance_fails_at_the_buffer_with_its_layer():
    x, y = _batch()
    report = check_equivalence(make_backend("torch", _spec()),
                               make_backend("scratch", _spec(bn_running_var="biased")), x, y)
    assert not report.passed
    failed = [r.quantity for r in report.rows if not r.passed]
    assert failed[0] == "buffers after step['running_var0']"
    assert report.divergence["message"].startswith("layer 1 (batchnorm): running_var0 differs")
    # the biased running variance is smaller: 0.1 of the batch's is (N - 1) / N of torch's
    row = next(r for r in report.rows if r.quantity == failed[0])
    assert 1e-4 < row.max_rel_err < 0.01


def test_the_cs231n_momentum_is_torch_momentum_inverted():
    x, y = _batch()
    torch_default = make_backend("torch", _spec())
    cs231n = make_backend("scratch", _spec(bn_momentum=0.9, bn_momentum_convention="cs231n"))
    assert check_equivalence(torch_default, cs231n, x, y).passed
    wrong = make_backend("scratch", _spec(bn_momentum=0.9))
    report = check_equivalence(make_backend("torch", _spec()), wrong, x, y)
    assert not report.passed and "running_mean0" in report.first_failure.quantity


def test_another_eps_is_localised_to_the_batchnorm_output():
    x, y = _batch()
    report = check_equivalence(make_backend("torch", _spec()),
                               make_backend("scratch", _spec(norm_eps=1e-2)), x, y)
    assert not report.passed
    assert report.divergence["layer"] == 1
    assert "layer 1 (batchnorm), forward: its output (out1)" in report.divergence["message"]


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_the_gradient_check_holds_the_masks_and_restores_the_buffers(backend):
    x, y = _batch()
    model = make_backend(backend, _spec(DEEP))
    buffers = model.get_buffers()
    report = gradcheck(model, x, y, max_entries=30)
    assert report.passed, str(report)
    assert report.kink_detection == "one-sided differences"
    for key, value in model.get_buffers().items():
        np.testing.assert_array_equal(value, buffers[key])


def test_the_gradient_check_fails_a_wrong_layer_norm_gradient(monkeypatch):
    from scratch.layers import layernorm

    x, y = _batch()
    model = make_backend("scratch", _spec(DEEP))
    original = layernorm.LayerNorm.backward

    def missing_gamma(self, dout):  # the classic slip: dx without the scale gamma
        return original(self, dout / self.params[self.gamma])

    monkeypatch.setattr(layernorm.LayerNorm, "backward", missing_gamma)
    model.set_params({k: v * (1.5 if k.startswith("gamma") else 1.0)
                      for k, v in model.get_params().items()})
    report = gradcheck(model, x, y, max_entries=30)
    assert not report.passed


# ---------------------------------------------------------------- training
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_trajectories_of_the_layer_networks_agree_buffers_included(dtype):
    x, y = _batch(96)
    spec = _spec(dtype=dtype)
    arbiter = make_backend("torch", replace(spec, dtype="float64")) if dtype == "float32" \
        else None
    report = compare_training(make_backend("torch", spec), make_backend("scratch", spec), x, y,
                              epochs=3, batch_size=32, arbiter=arbiter,
                              witnesses=[make_backend("torch", spec)])
    assert report.passed, str(report)


def test_a_trajectory_fails_a_biased_running_variance():
    x, y = _batch(96)
    report = compare_training(make_backend("torch", _spec()),
                              make_backend("scratch", _spec(bn_running_var="biased")), x, y,
                              epochs=2, batch_size=32)
    assert not report.passed
    assert report.first_divergence.quantity == "params"
    assert "running_var0" in report.first_divergence.where


def test_held_masks_finds_the_masks_inside_wrappers():
    from harness.training.witness import Witness

    model = make_backend("scratch", _spec())
    witness = Witness(model, seed=1)
    assert find_masks(witness) is model
    with held_masks(witness):
        assert model._held is not None
    assert model._held is None


# ---------------------------------------------------------------- the command line
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, timeout=600)


def test_cli_check_and_gradcheck_take_layers():
    layers = "linear(16),batchnorm,relu,dropout(0.5),linear(3)"
    for command in ("check", "gradcheck"):
        result = _cli(command, "--layers", layers, "--dataset", "iris", "--dtype", "float32")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "layers linear(16),batchnorm,relu,dropout(0.5),linear(3)" in result.stdout


@pytest.mark.parametrize("args, fragment", [
    (["--layers", "linear(16),relu,linear(4)"], "number of classes (3)"),
    (["--layers", "linear(16),relu,linear(3)", "--dims", "4,16,3"], "not both"),
    (["--layers", "linear(16),mish,linear(3)"], "unknown layer 'mish'"),
    (["--layers", "linear(16),batchnorm,linear(3)", "--bn-running-var", "sample"],
     "`--bn-running-var` must be one of unbiased, biased"),
])
def test_cli_refuses_bad_layers_in_one_line(args, fragment):
    result = _cli("check", "--dataset", "iris", *args)
    assert result.returncode == 2
    assert fragment in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bench_grid_of_a_layer_network():
    from harness.bench.config import BenchConfig, layer_grid

    grid = layer_grid(BN_DROPOUT, 64, (64, 1797))
    assert grid == (((64, 32, 10), 64), ((64, 32, 10), 1797))
    config = BenchConfig(grid=grid, layers=BN_DROPOUT)
    assert config.model_spec((64, 32, 10), "float32").is_layered
    with pytest.raises(ConfigError, match="not those of the layers"):
        BenchConfig(grid=(((64, 16, 10), 64),), layers=BN_DROPOUT)


def test_a_sweep_grid_takes_layer_lists():
    from harness.sweep import plan_from_dict

    plan = plan_from_dict({"grid": {"dataset": ["iris"], "dtype": ["float32", "float64"],
                                    "layers": ["linear(8),batchnorm,relu,linear(3)",
                                               "linear( 8 ), layernorm, tanh, linear(3)"]}})
    configs = plan.configs
    assert [c["layers"] for c in configs][:2] == ["linear(8),batchnorm,relu,linear(3)"] * 2
    assert {c["layers"] for c in configs} == {"linear(8),batchnorm,relu,linear(3)",
                                              "linear(8),layernorm,tanh,linear(3)"}
    assert all(c["dims"] == "4-8-3" for c in configs)
    assert len({c["config_hash"] for c in configs}) == 4
    mlp = plan_from_dict({"grid": {"dataset": ["iris"]}}).configs[0]
    assert mlp["layers"] == "none"
    with pytest.raises(ConfigError, match="does not fit dataset 'iris'"):
        plan_from_dict({"grid": {"dataset": ["iris"], "layers": ["linear(8),relu,linear(10)"]}})
    with pytest.raises(ConfigError, match="`grid.layers` and `grid.activation` both given"):
        plan_from_dict({"grid": {"layers": ["linear(8),relu,linear(10)"],
                                 "activation": ["tanh"]}})


class _SequentialPlugin:
    """The scratch layer network as a user's class, in a convention given by a subclass."""

    nnh_capabilities = {"layers": ["batchnorm", "dropout"]}
    running_var = "unbiased"

    def __new__(cls, spec, optimizer):
        from scratch.optimizers import SGD
        from scratch.sequential import Sequential

        return Sequential(spec.network.plain(), spec.dtype, spec.seed, SGD(lr=optimizer.lr),
                          running_var=cls.running_var)


class _BiasedPlugin(_SequentialPlugin):
    running_var = "biased"


def test_conformance_checks_the_declared_layers_and_skips_the_others():
    from harness.testing import checks_for

    checks = {c.id: c for c in checks_for(_SequentialPlugin)}
    assert checks["layer-layernorm"].skip.startswith("_SequentialPlugin does not declare "
                                                     "layer 'layernorm'")
    assert checks["layer-batchnorm"].run(_SequentialPlugin).passed
    assert checks["layer-dropout"].run(_SequentialPlugin).passed
    failed = checks_for(_BiasedPlugin)[[c.id for c in checks_for(_BiasedPlugin)]
                                       .index("layer-batchnorm")].run(_BiasedPlugin)
    assert not failed.passed and "running_var0" in failed.summary
    assert all(c.skip is None for c in checks_for("scratch") if c.name == "layer")


# ---------------------------------------------------------------- classes with their own masks
OWN = "linear(16),relu,dropout(0.3),linear(3)"


def _own_config(candidate, dtype="float64"):
    from harness.checks import CheckConfig
    from harness.model.specs import OptimizerSpec

    spec = ModelSpec(layers=OWN, input_shape=4, dtype=dtype)
    return CheckConfig(("torch", f"tests.gallery.own_masks:{candidate}"), spec,
                       OptimizerSpec(name="sgd", lr=0.1, weight_decay=0.0), epochs=2)


def test_a_class_with_its_own_masks_is_not_checked_in_training_never_passed():
    from harness.checks import NOT_CHECKED, run_checks
    from harness.data.datasets import load_dataset

    run = run_checks(_own_config("GlobalRandomDropout"), load_dataset("iris"),
                     ("equivalence", "gradcheck", "training", "drift", "cv"))
    status = {r.check: r.status for r in run.results}
    assert status == {"equivalence": NOT_CHECKED, "gradcheck": "PASS", "training": NOT_CHECKED,
                      "drift": NOT_CHECKED, "cv": NOT_CHECKED}
    equivalence = run.results[0]
    assert "no set_dropout_masks" in equivalence.summary
    assert not equivalence.hints  # no cause is guessed from passes that cannot compare
    quantities = [r.quantity for r in equivalence.report.rows]
    assert quantities[-2:] == ["logits", "training loss, mean of 64 passes with fresh masks"]
    assert not run.passed


@pytest.mark.parametrize("candidate, first", [
    ("NotInvertedDropout", "logits"),
    ("KeepAsDropOwn", "training loss, mean of 64 passes with fresh masks"),
])
def test_a_wrong_dropout_with_its_own_masks_still_fails(candidate, first):
    from harness.checks import run_checks
    from harness.data.datasets import load_dataset

    result = run_checks(_own_config(candidate), load_dataset("iris")).results[0]
    assert result.status == "FAIL"
    assert result.report.first_failure.quantity == first


def test_a_class_with_a_generator_of_its_own_gets_no_gradient_pass():
    from harness.checks import run_checks
    from harness.data.datasets import load_dataset

    result = run_checks(_own_config("OwnGeneratorDropout"), load_dataset("iris"),
                        ("gradcheck",)).results[0]
    assert result.status != "PASS"


# ---------------------------------------------------------------- the book's network
BOOK_FLAGS = ["--activation", "sigmoid", "--optimizer", "sgd", "--lr", "0.5",
              "--weight-decay", "0.001", "--weight-decay-in", "loss", "--weight-decay-on",
              "weights", "--dims", "4,8,3"]
BOOK_LOSS = ["--loss", "bce", "--loss-outputs", "sum"]


def test_the_books_network_passes_in_its_convention():
    for command, extra in (("check", []), ("train", ["--epochs", "3"])):
        result = _cli(command, "--backends", "torch,tests.gallery.nielsen:BookNetwork",
                      "--dataset", "iris", *BOOK_FLAGS, *BOOK_LOSS, *extra)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_books_network_gets_its_loss_named_without_the_loss_flags():
    result = _cli("check", "--backends", "torch,tests.gallery.nielsen:BookNetwork",
                  "--dataset", "iris", *BOOK_FLAGS)
    assert result.returncode == 1
    assert ("your loss is the binary cross-entropy of sigmoid outputs (one-hot targets), "
            "summed over the outputs and averaged over the batch") in result.stdout
    assert "with `--loss bce --loss-outputs sum` the reference agrees" in result.stdout
    assert "log-sum-exp" not in result.stdout


def test_a_cost_that_is_not_a_known_loss_of_the_logits_gets_no_loss_named():
    result = _cli("check", "--backends", "torch,tests.gallery.nielsen:BookQuadratic",
                  "--dataset", "iris", *BOOK_FLAGS, "--loss", "mse", "--mse-half",
                  "--loss-outputs", "sum")
    assert result.returncode == 1
    assert "your loss is" not in result.stdout


@pytest.mark.parametrize("loss, flags", [("bce", {}), ("bce", {"loss_outputs": "sum"}),
                                         ("mse", {}), ("mse", {"mse_half": True})])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_new_losses_agree_between_the_backends_over_60_steps(loss, flags, dtype):
    from harness.model.specs import OptimizerSpec

    x, y = _batch(60, features=8, classes=4)
    spec = ModelSpec((8, 16, 4), dtype=dtype, loss=loss, **flags)
    opt = OptimizerSpec(name="adam", lr=1e-2, weight_decay=0.0)
    arbiter = make_backend("torch", replace(spec, dtype="float64"), opt) \
        if dtype == "float32" else None
    report = compare_training(make_backend("torch", spec, opt), make_backend("scratch", spec, opt),
                              x, y, epochs=6, batch_size=6, arbiter=arbiter,
                              witnesses=[make_backend("torch", spec, opt)])
    assert report.passed and report.steps == 60, str(report)
    if dtype == "float64":
        assert report.max_param_diff < 1e-13


def test_a_sweep_grid_takes_losses_in_the_combinations_that_apply():
    from harness.sweep import plan_from_dict

    plan = plan_from_dict({"grid": {"dataset": ["iris"], "loss": ["cross_entropy", "bce", "mse"],
                                    "loss_outputs": ["mean", "sum"], "mse_half": [False, True]}})
    combos = [(c["loss"], c["loss_outputs"], c["mse_half"]) for c in plan.configs]
    assert combos == [("cross_entropy", "mean", False), ("bce", "mean", False),
                      ("bce", "sum", False), ("mse", "mean", False), ("mse", "mean", True),
                      ("mse", "sum", False), ("mse", "sum", True)]
    default = plan_from_dict({"grid": {"dataset": ["iris"]}}).configs[0]
    assert plan.configs[0]["config_hash"] == default["config_hash"]  # old keys resume
    with pytest.raises(ConfigError, match="`grid.mse_half` applies to the mse loss"):
        plan_from_dict({"grid": {"loss": ["bce"], "mse_half": [True]}})


def test_the_testing_assertions_take_layers():
    from harness.testing import assert_equivalent, assert_gradients_match, assert_trains_alike
    from harness.testing.asserts import HarnessAssertionError

    x, y = _batch(48, features=6, classes=3)
    layers = "linear(8),batchnorm,relu,dropout(0.25),linear(3)"
    assert assert_equivalent("torch", "scratch", x, y, layers=layers).passed
    assert assert_gradients_match("scratch", x, y, layers=layers, max_entries=10).passed
    assert assert_trains_alike("torch", "scratch", x, y, epochs=2, layers=layers).passed
    with pytest.raises(HarnessAssertionError, match="running_var0"):
        assert_equivalent("torch", _BiasedPlugin, x, y, layers="linear(8),batchnorm,relu,"
                                                               "linear(3)")


def test_bench_layers_flags_build_the_grid():
    from harness.cli import build_parser
    from harness.cli.bench import build_config

    args = build_parser().parse_args(["bench", "--layers", BN_DROPOUT, "--features", "20",
                                      "--batch-sizes", "8,16"])
    config = build_config(args)
    assert config.grid == (((20, 32, 10), 8), ((20, 32, 10), 16))
    assert config.layers == BN_DROPOUT
    with pytest.raises(ConfigError, match="not both"):
        build_config(build_parser().parse_args(["bench", "--layers", BN_DROPOUT, "--dims",
                                                "20,32,10"]))
    with pytest.raises(ConfigError, match="`--features` goes with --layers"):
        build_config(build_parser().parse_args(["bench", "--features", "20"]))

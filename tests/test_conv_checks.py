"""Every check on a convolutional network over images (N, C, H, W): check (with the
localisation per layer), gradcheck (max pool's ties), autograd, train, cv, report,
sweep, conformance and harness.testing, between the built-in backends, on small data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.cli import main
from harness.data.datasets import load_dataset, standardize
from harness.gradients.finite_diff import gradcheck
from harness.model.registry import make_backend
from harness.model.specs import ModelSpec, OptimizerSpec
from scratch.layers.conv2d_fast import Conv2d, conv2d_forward
from scratch.sequential import Sequential

CONV = "conv2d(8,3,padding=1),relu,maxpool2d(2),flatten,linear(10)"
N_ROWS = 120


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory):
    """The first 120 rows of a seeded shuffle of the digits, as an .npz file (rows)."""
    data = load_dataset("digits")
    order = np.random.default_rng(0).permutation(len(data))[:N_ROWS]
    path = tmp_path_factory.mktemp("conv") / "digits120.npz"
    np.savez(path, X=data.X[order], y=data.y[order])
    return str(path)


def _images(n=N_ROWS):
    data = load_dataset("digits").as_images((1, 8, 8))
    (X,) = standardize(data.X[:n])
    return X, data.y[:n]


# ------------------------------------------------------------------ the CLI, both dtypes
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("command, extra", [
    ("check", []),
    ("gradcheck", ["--backend", "scratch"]),
    ("gradcheck", ["--backend", "torch"]),
    ("train", ["--epochs", "2", "--quiet"]),
    ("cv", ["--epochs", "2", "--folds", "2", "--quiet"]),
])
def test_every_command_passes_between_the_builtin_backends(command, extra, dtype,
                                                           digits_file, capsys):
    code = main([command, "--data", digits_file, "--layers", CONV, "--input-shape", "1,8,8",
                 "--dtype", dtype, "--json", *extra])
    out = capsys.readouterr().out
    assert code == 0, out[-2000:]
    doc = json.loads(out)
    assert '"input_shape": [1, 8, 8]' in json.dumps(doc)  # the spec is recorded


def test_check_names_the_image_layout_and_compares_the_conv_weights(digits_file, capsys):
    assert main(["check", "--data", digits_file, "--layers", CONV,
                 "--input-shape", "1,8,8"]) == 0
    out = capsys.readouterr().out
    assert "(N, C, H, W) = (N, 1, 8, 8) inputs" in out
    assert "grads['W0']                  (8, 1, 3, 3)" in out
    assert "PASS: all 15 quantities agree" in out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_report_passes_on_images(dtype, digits_file, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--data", digits_file, "--layers", CONV, "--input-shape", "1,8,8",
                 "--dtype", dtype, "--epochs", "2", "--folds", "2", "--no-drift",
                 "--out", str(out), "--quiet"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["data"]["input_shape"] == [1, 8, 8]
    md = (out / "report.md").read_text()
    assert "as images (N, C, H, W) of 1x8x8, standardised per channel" in md


# ------------------------------------------------------------------ localisation
class _FlippedConv(Conv2d):
    """A true convolution: the kernel flipped, as in the textbook definition."""

    def forward(self, x, train=True):
        w = np.ascontiguousarray(self.params[self.w][:, :, ::-1, ::-1])
        out, self.cache = conv2d_forward(x, w, self.params[self.b], self.stride, self.padding)
        return out

    def _flip(self):
        self.grads[self.w] = np.ascontiguousarray(self.grads[self.w][:, :, ::-1, ::-1])

    def backward(self, dout):
        dx = super().backward(dout)
        self._flip()
        return dx

    def param_grads(self, dout):
        super().param_grads(dout)
        self._flip()


class FlippedKernel(Sequential):
    """The scratch conv network, its convolutions flipped (consistent gradients)."""

    nnh_capabilities = {"layers": ["conv2d", "maxpool2d"]}

    def __init__(self, spec, optimizer):
        from scratch.optimizers import SGD

        super().__init__(spec.network.plain(), spec.dtype, spec.seed, SGD(lr=optimizer.lr))

    def _conv(self, kw):
        layer = super()._conv(kw)
        flipped = _FlippedConv(self.params, kw["index"], kw["stride"], kw["padding"])
        flipped.w, flipped.b = layer.w, layer.b
        return flipped


def _config(candidate, dtype="float64"):
    from harness.checks import CheckConfig

    spec = ModelSpec(layers=CONV, input_shape=(1, 8, 8), dtype=dtype)
    return CheckConfig(("torch", candidate), spec, OptimizerSpec(name="sgd", lr=0.1),
                       epochs=1, check_samples=60)


def test_a_flipped_kernel_is_localised_to_layer_0_conv2d():
    from harness.checks import run_checks

    data = load_dataset("digits").as_images((1, 8, 8))
    result = run_checks(_config("tests.test_conv_checks:FlippedKernel"), data,
                        ["equivalence"]).results[0]
    assert not result.passed
    where = str(result.fields["equivalence_divergence"])
    assert "at layer 0 (conv2d(8, 3, padding=1)), forward: its output (out0)" in where


def test_the_flipped_kernel_still_has_consistent_gradients():
    """A true convolution is a different function, not a wrong gradient: gradcheck passes."""
    spec = ModelSpec(layers=CONV, input_shape=(1, 8, 8))
    x, y = _images(40)
    report = gradcheck(FlippedKernel(spec, OptimizerSpec(name="sgd")), x, y, max_entries=20)
    assert report.passed, report


# ------------------------------------------------------------------ max pool's ties
TIE = "conv2d(1,1),maxpool2d(2),flatten,linear(2)"


def _tied_model(backend="scratch"):
    """A 1x1 convolution over two channels with equal weights: in every window the two
    pixels (1, 0) and (0, 1) tie, and a perturbation of either weight breaks the tie."""
    spec = ModelSpec(layers=TIE, input_shape=(2, 2, 2))
    model = make_backend(backend, spec, OptimizerSpec())
    params = model.get_params()
    params["W0"][:] = 0.5
    params["b0"][:] = 0.0
    model.set_params(params)
    x = np.zeros((3, 2, 2, 2))
    x[:, 0, 0, 0] = 1
    x[:, 1, 0, 1] = 1
    x[:, :, 1, :] = -1
    x *= np.array([1.0, 2.0, 0.5])[:, None, None, None]
    return model, x, np.array([0, 1, 0])


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_a_tie_in_a_max_pool_window_is_a_kink_not_a_failure(backend):
    model, x, y = _tied_model(backend)
    before = model.get_params()
    report = gradcheck(model, x, y)
    w0 = next(p for p in report.params if p.name == "W0")
    assert w0.kinks == 2 and w0.failed == 0  # both weights sit on the tie
    assert all(p.failed == 0 for p in report.params)
    for name, value in model.get_params().items():  # parameters restored
        np.testing.assert_array_equal(value, before[name])


def test_the_tie_rule_reads_the_windows_not_only_the_loss(monkeypatch):
    """With the loss-based tests switched off, the window winners alone find the tie."""
    import harness.gradients.finite_diff as fd

    monkeypatch.setattr(fd, "one_sided_kink", lambda *a, **k: False)
    monkeypatch.setattr(fd, "bends_around", lambda *a, **k: False)
    model, x, y = _tied_model()
    w0 = next(p for p in gradcheck(model, x, y).params if p.name == "W0")
    assert w0.kinks == 2 and w0.failed == 0


def test_pool_winners_and_their_changes():
    from harness.gradients.kinks import pool_layers, pool_winners, winner_changes
    from harness.model.layer_spec import layer_list

    model, x, y = _tied_model()
    pools = pool_layers(layer_list(model))
    assert [i for i, _ in pools] == [1]
    at = pool_winners(model, x, y, pools)
    assert at[0].shape == (3, 1, 1, 1) and np.all(at[0] == 0)  # a tie: the first entry
    params = model.get_params()
    params["W0"][0, 1] += 1e-6  # channel 1's pixel, entry 1 of the window, now wins
    model.set_params(params)
    moved = pool_winners(model, x, y, pools)
    assert np.all(moved[0] == 1) and winner_changes(moved, at)
    assert not winner_changes(at, at)


def test_a_conv_network_without_relu_still_watches_its_max_pool():
    model, x, y = _tied_model()
    assert "one-sided" in gradcheck(model, x, y).kink_detection


# ------------------------------------------------------------------ autograd and copies
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_autograd_on_torch_modules_agrees(backend, dtype):
    from harness.gradients.autograd import compare_with_autograd

    x, y = _images(30)
    for layers in (CONV, "conv2d(4,3,stride=2,padding=1),batchnorm,relu,avgpool2d(2),"
                         "flatten,linear(10)"):
        model = make_backend(backend, ModelSpec(layers=layers, input_shape=(1, 8, 8),
                                                dtype=dtype), OptimizerSpec())
        assert compare_with_autograd(model, x, y).passed


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_float32_conv_networks_are_gradchecked_through_a_float64_copy(backend):
    model = make_backend(backend, ModelSpec(layers=CONV, input_shape=(1, 8, 8),
                                            dtype="float32"), OptimizerSpec())
    x, y = _images(30)
    report = gradcheck(model, x, y, max_entries=30)
    assert report.passed and report.checked_dtype == "float64" and "copy" in report.precision
    assert model.get_params()["W0"].dtype == np.float32


# ------------------------------------------------------------------ the Python API
def test_harness_testing_assertions_take_images_and_a_conv_list():
    from harness.testing import assert_equivalent, assert_gradients_match, assert_trains_alike

    x, y = _images(40)
    assert_equivalent("torch", "scratch", x, y, layers=CONV)
    assert_gradients_match("scratch", x, y, layers=CONV)
    assert_trains_alike("torch", "scratch", x, y, layers=CONV, epochs=1, batch_size=16)
    with pytest.raises(Exception, match=r"FAIL"):
        assert_equivalent("torch", FlippedKernel, x, y, layers=CONV, optimizer="sgd")


def test_run_checks_takes_a_conv_spec_and_image_data():
    from harness.checks import CheckConfig, run_checks

    spec = ModelSpec(layers=CONV, input_shape=(1, 8, 8), dtype="float32")
    config = CheckConfig(("scratch", "torch"), spec, OptimizerSpec(), epochs=1,
                         check_samples=60, train_samples=60, gradcheck_max_entries=10)
    data = load_dataset("digits").as_images((1, 8, 8))
    run = run_checks(config, data, ["equivalence", "gradcheck", "training"])
    assert run.passed, run


def test_a_sweep_runs_a_conv_configuration():
    from harness.sweep.plan import plan_from_dict
    from harness.sweep.task import run_config

    plan = plan_from_dict({"grid": {"dataset": "digits", "layers": [CONV],
                                    "input_shape": [1, 8, 8], "dtype": "float32"},
                           "sweep": {"checks": ["equivalence", "gradcheck"],
                                     "check_samples": 32, "gradcheck_entries": 4}})
    row = run_config(plan.configs[0])
    assert row["status"] == "ok", row["error"]
    assert row["passed"] is True and row["input_shape"] == "1,8,8"


def test_conformance_of_the_builtin_backends_covers_the_conv_layers():
    from harness.testing import checks_for

    checks = {c.id: c for c in checks_for("scratch")}
    for layer in ("conv2d", "maxpool2d", "avgpool2d"):
        check = checks[f"layer-{layer}"]
        assert check.skip is None
        assert check.run("scratch", reference="torch").passed

"""harness.gradients.finite_diff: central differences against each model's own gradients; the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from harness import ModelSpec, make_backend
from harness.cli import main
from harness.errors import ConfigError, ProtocolError
from harness.gradients.finite_diff import GRADCHECK_DEFAULTS, gradcheck
from harness.gradients.gradcheck_report import GradcheckReport
from tests.broken_backends import GradTimesN, HookedMLP, Opaque

ACTIVATIONS = ["relu", "tanh", "sigmoid", "leaky_relu", "gelu"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def kinked_relu_model(batch, k=2):
    """A relu model whose pre-activation z0[0, k] is exactly 0 (x[0] = e_0, b0[k] = -W0[0, k])."""
    x, y = batch(n=7, d=3, c=2, seed=4)
    x[0] = [1.0, 0.0, 0.0]
    model = make_backend("scratch", ModelSpec((3, 4, 2), activation="relu", seed=5))
    params = model.get_params()
    params["b0"][k] = -params["W0"][0, k]
    model.set_params(params)
    assert model.intermediates(x, y)["z0"][0, k] == 0.0
    return model, x, y


@pytest.mark.parametrize("backend", ["scratch", "torch"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_correct_backends_pass_on_every_entry(backend, activation, batch):
    x, y = batch(n=12, d=4, c=3, seed=1)
    model = make_backend(backend, ModelSpec((4, 6, 5, 3), activation=activation, seed=2))
    report = gradcheck(model, x, y)
    assert isinstance(report, GradcheckReport) and report.passed, str(report)
    assert [p.checked for p in report.params] == [24, 6, 30, 5, 15, 3]
    assert all(p.failed == 0 and p.max_abs_err < 1e-8 for p in report.params)
    assert (report.eps, report.rtol, report.atol) == GRADCHECK_DEFAULTS["float64"]
    assert report.precision == "float64"


def test_report_table_text_and_dict(batch):
    x, y = batch(n=12, d=4, c=3, seed=1)
    report = gradcheck(make_backend("scratch", ModelSpec((4, 6, 3))), x, y, name="scratch")
    table = report.table
    assert list(table.columns) == ["parameter", "shape", "entries", "checked", "kinks_skipped",
                                   "failed", "max_abs_err", "max_rel_err", "worst_index",
                                   "verdict"]
    assert list(table["parameter"]) == ["W0", "b0", "W1", "b1"]
    assert list(table["verdict"]) == ["PASS"] * 4
    text = str(report)
    assert text.startswith("gradcheck: scratch (float64), 12 samples, eps=1e-06")
    assert "PASS: 51 of 51 checked entries agree (0 skipped at kinks)" in text
    out = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert out["passed"] is True and out["check"] == "gradcheck"
    assert [p["checked"] for p in out["params"]] == [24, 6, 18, 3]


def test_max_entries_checks_a_seeded_subset(batch):
    x, y = batch(n=12, d=4, c=3, seed=1)
    model = make_backend("scratch", ModelSpec((4, 16, 3), activation="tanh"))
    a = gradcheck(model, x, y, max_entries=5, seed=1)
    b = gradcheck(model, x, y, max_entries=5, seed=1)
    c = gradcheck(model, x, y, max_entries=5, seed=2)
    assert [(p.name, p.checked, p.size) for p in a.params] == [
        ("W0", 5, 64), ("b0", 5, 16), ("W1", 5, 48), ("b1", 3, 3)]
    assert [p.indices for p in a.params] == [p.indices for p in b.params]
    assert [p.indices for p in a.params] != [p.indices for p in c.params]
    assert a.params[0].indices == sorted(set(a.params[0].indices))
    assert "5/64" in str(a)


def test_the_model_is_left_as_it_was(batch):
    x, y = batch(n=12, d=4, c=3, seed=1)
    model = make_backend("scratch", ModelSpec((4, 6, 3)))
    before = model.get_params()
    gradcheck(model, x, y)
    gradcheck(GradTimesN(ModelSpec((4, 6, 6, 3))), x, y)
    after = model.get_params()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_a_kink_is_detected_from_pre_activations_and_skipped(batch):
    model, x, y = kinked_relu_model(batch)
    report = gradcheck(model, x, y)
    assert report.kink_detection == "pre-activations"
    assert report.passed, str(report)
    by_name = {p.name: p for p in report.params}
    assert by_name["W0"].kink_indices == [(0, 2)] and by_name["b0"].kink_indices == [(2,)]
    assert by_name["W1"].kinks == 0 and by_name["b1"].kinks == 0
    assert "(2 skipped at kinks)" in str(report)
    # without skipping, the central difference there mixes two slopes and would fail
    _, grads = model.loss_and_grads(x, y)
    eps = report.eps
    params = model.get_params()
    losses = []
    for sign in (1, -1):
        p = {k: v.copy() for k, v in params.items()}
        p["W0"][0, 2] += sign * eps
        model.set_params(p)
        losses.append(model.loss_and_grads(x, y)[0])
    model.set_params(params)
    numerical = (losses[0] - losses[1]) / (2 * eps)
    analytic = grads["W0"][0, 2]
    assert abs(analytic - numerical) > report.atol * report.scale + report.rtol * abs(numerical)


def test_without_pre_activations_kinks_come_from_one_sided_differences(batch):
    model, x, y = kinked_relu_model(batch)
    report = gradcheck(Opaque(model), x, y)
    assert report.kink_detection == "one-sided differences"
    assert report.passed, str(report)
    by_name = {p.name: p for p in report.params}
    assert by_name["W0"].kink_indices == [(0, 2)] and by_name["b0"].kink_indices == [(2,)]


def test_several_kinks_within_eps_are_recognised_without_pre_activations(batch):
    """Kinks at -0.004 and +0.006 around W0[0, 2] (eps 0.01): the one-sided differences
    agree too well for the single-kink signature; the model's gradient across the
    interval shows them. A wrong gradient at the same eps is still caught."""
    x, y = batch(n=7, d=3, c=2, seed=4)
    x[:3] = [1.0, 0.0, 0.0]
    spec = ModelSpec((3, 4, 2), activation="relu", seed=5)
    model = make_backend("scratch", spec)
    params = model.get_params()
    params["b0"][2] = -params["W0"][0, 2] + 0.004
    x[1, 1] = -0.01 / params["W0"][1, 2]
    model.set_params(params)
    assert np.allclose(model.intermediates(x, y)["z0"][:3, 2], [0.004, -0.006, 0.004])
    report = gradcheck(Opaque(model), x, y, eps=1e-2)
    # nothing fails; at this eps every b1 entry is skipped, so b1 is NOT CHECKED
    assert report.first_failure is None, str(report)
    assert report.status == ("PASS" if all(p.verified for p in report.params) else "NOT CHECKED")
    by_name = {p.name: p for p in report.params}
    assert (0, 2) in by_name["W0"].kink_indices and (2,) in by_name["b0"].kink_indices
    with_z = gradcheck(model, x, y, eps=1e-2)
    assert {p.name: p.kink_indices for p in with_z.params}["W0"] == [(0, 2)]
    broken = GradTimesN(spec)
    broken.set_params(params)
    report = gradcheck(Opaque(broken), x, y, eps=1e-2)
    assert [p.name for p in report.params if p.verdict == "FAIL"] == ["W1"]
    assert report.params[2].failed == report.params[2].checked == 8


def test_smooth_activations_need_no_kink_detection(batch):
    x, y = batch(n=5, d=3, c=2)
    report = gradcheck(make_backend("scratch", ModelSpec((3, 4, 2), activation="tanh")), x, y)
    assert report.kink_detection == "none needed (tanh is smooth)"


def test_kinks_do_not_hide_a_wrong_gradient_in_an_opaque_class(batch):
    x, y = batch(n=16, d=4, c=3, seed=2)
    spec = ModelSpec((4, 5, 5, 3), activation="relu", seed=1)
    report = gradcheck(Opaque(GradTimesN(spec)), x, y)
    assert report.kink_detection == "one-sided differences"
    assert [p.name for p in report.params if p.verdict == "FAIL"] == ["W1"]
    w1 = report.params[2]
    assert w1.failed > 0.8 * w1.checked and w1.kinks == 0
    # every entry checked is verified, failed or skipped, once: the counts add up
    assert w1.verified == w1.checked - w1.failed
    assert report.n_verified + report.n_failed + report.n_skipped == report.n_checked
    assert report.n_verified == sum(p.checked - p.failed - p.kinks for p in report.params)
    assert f"{report.n_verified:,} verified, {report.n_failed:,} failed" in report.counts_line
    assert "W1: " in str(report) and "analytic" in report.first_failure.message


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_a_float32_built_in_is_checked_through_a_float64_copy(backend, batch):
    x, y = batch(n=12, d=4, c=3, seed=1)
    model = make_backend(backend, ModelSpec((4, 6, 3), activation="leaky_relu",
                                            dtype="float32"))
    before = model.get_params()
    report = gradcheck(model, x, y)
    assert report.passed, str(report)
    assert report.precision.startswith("float64 copy of the built-in")
    assert (report.model_dtype, report.checked_dtype) == ("float32", "float64")
    assert report.eps == 1e-6
    after = model.get_params()
    assert all(after[k].dtype == np.float32 and np.array_equal(before[k], after[k])
               for k in before)


def test_a_float32_class_with_the_hook_uses_it(batch):
    x, y = batch(n=12, d=4, c=3, seed=1)
    report = gradcheck(HookedMLP(ModelSpec((4, 6, 3), dtype="float32")), x, y)
    assert report.precision == "float64 copy via the class's as_float64()" and report.passed


def test_a_float32_class_without_a_copy_runs_in_float32_with_its_own_tolerances(batch):
    x, y = batch(n=12, d=4, c=3, seed=1)
    spec = ModelSpec((4, 6, 6, 3), activation="tanh", dtype="float32")
    report = gradcheck(Opaque(make_backend("scratch", spec)), x, y)
    assert report.passed, str(report)
    assert report.checked_dtype == "float32" and "float32 tolerances" in report.precision
    assert (report.eps, report.rtol, report.atol) == GRADCHECK_DEFAULTS["float32"]
    broken = gradcheck(Opaque(GradTimesN(spec)), x, y)
    assert broken.checked_dtype == "float32"
    assert [p.name for p in broken.params if not p.passed] == ["W1"]


def test_a_hook_returning_the_wrong_model_is_refused(batch):
    x, y = batch(n=4, d=4, c=3)

    class BadHook(HookedMLP):
        def as_float64(self):
            return self  # still float32

    with pytest.raises(ProtocolError, match="as_float64\\(\\) of BadHook must return a "
                                            "float64 model"):
        gradcheck(BadHook(ModelSpec((4, 6, 3), dtype="float32")), x, y)


def test_a_user_class_given_as_module_class(batch):
    x, y = batch(n=12, d=4, c=3, seed=1)
    model = make_backend("tests.user_models:WrappedScratch", ModelSpec((4, 6, 3)))
    assert gradcheck(model, x, y).passed


def test_non_finite_gradients_fail_rather_than_raise(batch):
    x, y = batch(n=16, d=5, c=3, seed=7)
    model = make_backend("tests.broken_backends:NaiveSoftmax", ModelSpec((5, 8, 8, 8, 3)))
    report = gradcheck(model, x * 1e5, y, max_entries=3)
    assert not report.passed and all(p.max_abs_err == np.inf for p in report.params)
    json.dumps(report.to_dict(), allow_nan=False)


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(eps=0), ConfigError, "`eps` must be > 0, got 0"),
    (dict(eps=float("nan")), ConfigError, "`eps` must be > 0, got nan"),
    (dict(rtol=1e-3), ConfigError, "give both `rtol` and `atol` or neither"),
    (dict(rtol=-1, atol=0), ConfigError, "`rtol` must be a finite number >= 0, got -1"),
    (dict(max_entries=0), ConfigError, "`max_entries` must be a positive integer or None, got 0"),
    (dict(seed=-1), ConfigError, "`seed` must be an integer >= 0, got -1"),
])
def test_bad_arguments_are_refused(kwargs, exc, message, batch):
    x, y = batch(n=4, d=3, c=2)
    with pytest.raises(exc, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        gradcheck(make_backend("scratch", ModelSpec((3, 2))), x, y, **kwargs)


def test_bad_models_and_batches_are_refused(batch):
    x, y = batch(n=4, d=3, c=2)
    with pytest.raises(ProtocolError, match="does not implement the Classifier protocol"):
        gradcheck(object(), x, y)
    with pytest.raises(ConfigError, match="`x` has 3 features but dims\\[0\\] is 5"):
        gradcheck(make_backend("scratch", ModelSpec((5, 2))), x, y)


def test_checking_the_scratch_backend_loads_no_torch():
    code = ("import sys, numpy as np\n"
            "from harness import ModelSpec, make_backend, gradcheck\n"
            "m = make_backend('scratch', ModelSpec((4, 3, 2), dtype='float32'))\n"
            "assert gradcheck(m, np.ones((5, 4)), np.zeros(5, dtype=int)).passed\n"
            "print(sorted({k.split('.')[0] for k in sys.modules} & {'torch', 'pandas'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------- CLI
def test_cli_prints_the_table_and_exits_0(capsys):
    code = main(["gradcheck", "--backend", "scratch", "--dataset", "iris", "--dims", "4,8,3",
                 "--activation", "tanh"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "data: iris (150 samples, standardised; 128 used), dims (4, 8, 3), tanh" in out
    assert "W0         (4, 8)            32/32" in out
    assert "PASS: 67 of 67 checked entries agree" in out


def test_cli_exits_1_on_a_broken_backend_and_names_the_parameter(capsys):
    code = main(["gradcheck", "--backend", "tests.broken_backends:TransposedWeightGrad",
                 "--dataset", "iris", "--dims", "4,6,6,3", "--max-entries", "10"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL: 1 of 6 parameters differ (W1); first: W1" in out


def test_cli_json_for_float32_torch(capsys):
    code = main(["gradcheck", "--backend", "torch", "--dataset", "wine", "--dims", "13,5,3",
                 "--dtype", "float32", "--samples", "20", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["passed"] is True
    assert result["model_dtype"] == "float32" and result["checked_dtype"] == "float64"
    assert result["n_samples"] == 20 and result["config"]["backend"] == "torch"
    assert [p["parameter"] for p in result["params"]] == ["W0", "b0", "W1", "b1"]


@pytest.mark.parametrize("args, message", [
    (["--fd-eps", "0"], "`--fd-eps` must be a finite number > 0, got 0"),
    (["--samples", "0"], "`--samples` must be >= 1, got 0"),
    (["--max-entries", "0"], "`--max-entries` must be >= 1, got 0"),
    (["--backend", "jax"], "unknown backend 'jax'"),
    (["--rtol", "1e-3"], "give both `--rtol` and `--atol` or neither"),
    (["--dims", "4,8,2"], "`--dims` must end with the number of classes of iris (3)"),
])
def test_cli_bad_input_exits_2_with_one_line(args, message, capsys):
    code = main(["gradcheck", "--dataset", "iris", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


class _FortranParams:
    """A correct model whose get_params hands out Fortran-ordered (column-major) arrays."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get_params(self):
        return {k: np.asfortranarray(v) for k, v in self.inner.get_params().items()}


def test_parameters_handed_out_in_fortran_order_are_still_perturbed(batch):
    # the entry written for a finite difference must reach the model, whatever the
    # memory order of the arrays get_params returns (a reshape of a Fortran array is a
    # copy: writes into it would measure a zero difference, and a wrong gradient pass)
    x, y = batch(n=12, d=4, c=3, seed=1)
    model = _FortranParams(make_backend("scratch", ModelSpec((4, 6, 3), activation="tanh",
                                                              seed=2)))
    report = gradcheck(model, x, y)
    assert report.passed, str(report)
    broken = _FortranParams(make_backend("scratch", ModelSpec((4, 6, 3), activation="tanh",
                                                               seed=2)))
    real = broken.inner.loss_and_grads

    def doubled(x, y):
        loss, grads = real(x, y)
        return loss, {k: 2 * v for k, v in grads.items()}

    broken.loss_and_grads = doubled
    assert not gradcheck(broken, x, y).passed

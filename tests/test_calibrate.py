"""The calibration: correct configurations pass, injected bugs are caught by the right
check, and the files hold the rows they should (a few configurations and bugs only)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from harness.calibrate import run as R
from harness.calibrate.catalogue import CATALOGUE, perturbed_backend
from harness.calibrate.configs import CHECKS, PAIRS, draw_config
from harness.calibrate.tables import calibrate

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BUGS = {b.key: b for b in CATALOGUE}
IRIS = ("iris", (8, 8))


def _rows(bug_key, dtype="float64"):
    rows = R.detections([BUGS[bug_key]], cases=[IRIS], dtypes=(dtype,))
    return {r["check"]: r for r in rows}


def test_configurations_are_seeded_and_varied():
    assert draw_config(3, 7) == draw_config(3, 7)
    drawn = [draw_config(0, i) for i in range(200)]
    assert {c["activation"] for c in drawn} == {"relu", "tanh", "sigmoid", "leaky_relu", "gelu"}
    assert {c["optimizer"] for c in drawn} == {"sgd", "adam", "adamw"}
    assert {c["dtype"] for c in drawn} == {"float32", "float64"}
    assert {len(c["hidden"]) for c in drawn} == {1, 2, 3}
    assert all(1 <= w <= 64 for c in drawn for w in c["hidden"])
    assert any(c["nesterov"] for c in drawn)


def test_simple_backend_matches_torch_on_every_check():
    rows = R.config_rows(0, 1)
    assert len(rows) == len(PAIRS) * len(CHECKS)
    assert all(r["status"] == "PASS" for r in rows), [r["summary"] for r in rows]


def test_gradient_bug_caught_by_one_step_and_gradcheck():
    rows = _rows("relu_no_mask")
    assert rows["equivalence"]["caught"] and rows["gradcheck"]["caught"]


def test_dampening_invisible_in_one_step_caught_by_trajectory():
    rows = _rows("momentum_dampening", "float32")
    assert not rows["equivalence"]["caught"]  # torch starts the buffer undamped
    assert not rows["gradcheck"]["caught"]  # the gradients are right
    assert rows["training"]["caught"]


def test_control_is_not_caught():
    rows = _rows("relu_mask_at_zero (control)")
    assert not any(r["caught"] for r in rows.values())


def test_one_entry_error_caught_in_float64_and_resolution_brackets_the_tolerance():
    # 1e-6 of one entry: above float64's rtol 1e-7
    assert _rows("one_entry_1e-6")["equivalence"]["caught"]
    res = R.resolution("float64", steps=6)
    assert res["caught_at_hi"] and not res["caught_at_lo"]
    assert res["largest_missed"] < res["smallest_caught"]
    assert res["largest_missed"] <= 1.5 * res["predicted_by_tolerance"]
    assert res["smallest_caught"] >= res["predicted_by_tolerance"] / 1.5


def test_perturbed_backend_is_a_plugin_name():
    from harness.model.registry import make_backend
    from harness.model.specs import ModelSpec, OptimizerSpec

    name = perturbed_backend(1e-3)
    assert name == perturbed_backend(1e-3)
    spec = ModelSpec((4, 5, 5, 3), activation="tanh")
    model = make_backend(name, spec, OptimizerSpec())
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    exact = make_backend("harness.calibrate.simple:SimpleMLP", spec, OptimizerSpec())
    g1, g0 = model.loss_and_grads(x, y)[1], exact.loss_and_grads(x, y)[1]
    ratio = g1["W1"][g0["W1"] != 0] / g0["W1"][g0["W1"] != 0]
    assert np.count_nonzero(ratio != 1) == 1
    assert np.isclose(ratio[ratio != 1][0], 1 + 1e-3)


def test_calibrate_writes_one_row_per_run_and_the_command(tmp_path):
    bugs = [BUGS["nesterov_ignored"], BUGS["relu_mask_at_zero (control)"]]
    result = calibrate(2, 5, quick=True, bugs=bugs, command="nn-harness calibrate test")
    files = result.write(tmp_path)
    assert set(files) == {"false_alarms.csv", "detection.csv", "resolution.csv",
                          "summary.json"}
    fa = pd.read_csv(tmp_path / "false_alarms.csv")
    assert len(fa) == 2 * len(PAIRS) * len(CHECKS)
    assert set(fa["check"]) == set(CHECKS) and set(fa["pair"]) == set(PAIRS)
    det = pd.read_csv(tmp_path / "detection.csv")
    assert len(det) == len(bugs) * 2 * len(CHECKS)  # one case, two dtypes
    nesterov = det[det["bug"] == "nesterov_ignored"].set_index(["dtype", "check"])["caught"]
    assert nesterov[("float64", "equivalence")] and nesterov[("float32", "equivalence")]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["seed"] == 5 and summary["command"] == "nn-harness calibrate test"
    assert summary["targets"]["no_false_alarms"]["met"]
    assert summary["targets"]["every_bug_caught"]["met"]
    assert result.passed
    assert "False alarms" in result.text() and "nesterov_ignored" in result.text()


def test_cli_bad_input_and_help(capsys):
    from harness.cli import main

    assert main(["calibrate", "--configs", "-1"]) == 2
    assert "`--configs` must be an integer >= 0" in capsys.readouterr().err


def test_a_warn_is_counted_and_listed_but_is_no_false_alarm():
    from harness.calibrate.tables import Calibration

    base = {"pair": "scratch-torch", "dtype": "float32", "summary": "s"}
    rows = pd.DataFrame([
        {**base, "index": 0, "check": "training", "status": "PASS"},
        {**base, "index": 1, "check": "training", "status": "WARN",
         "summary": "within tolerance; but this run amplifies rounding"},
        {**base, "index": 2, "check": "training", "status": "NOT CHECKED"},
    ])
    cal = Calibration(rows, pd.DataFrame(), [], {"seed": 0, "configs": 3,
                                                 "command": "nn-harness calibrate"})
    table = cal.false_alarm_table().iloc[0]
    assert (table["runs"], table["false_alarms"], table["not_checked"], table["warned"]) == (
        3, 0, 1, 1)
    targets = cal.targets()["no_false_alarms"]
    # NOT CHECKED on correct code misses the target; a WARN does not, but is listed
    assert [a["index"] for a in targets["false_alarms"]] == [2]
    assert [a["index"] for a in targets["warned"]] == [1]
    assert "warned: configuration 1 scratch-torch training float32: within tolerance; but " \
           "this run amplifies rounding" in cal.text()

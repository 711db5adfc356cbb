"""The several-step equivalence check on the float32 configurations of ``nn-harness
calibrate --configs 2000 --seed 0`` it once failed although both sides are correct, and
the step bugs it must still catch.

Each of those configurations is an Adam or AdamW pair where an entry's update at a step
moves by the gradient's rounding amplified (the first moment nearly cancels at step 2,
or ``|g|`` is near ``eps`` at step 1): the step rule's gradient-noise term
(:mod:`harness.compare.steps`) allows it.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.calibrate import configs as C
from harness.calibrate.entries import CATALOGUE
from harness.calibrate.run import CASES, _cases_of, _run, bug_config, check_config
from harness.compare.steps import NOISE_CAP, gradient_noise, step_bounds


def _equivalence(index: int, pair: str):
    cfg = C.draw_config(0, index)
    data = C.dataset_of(cfg)
    spec, opt = C.specs_of(cfg, data)
    batch = min(cfg["batch_size"], min(len(data.y), C.TRAIN_SAMPLES))
    backends = C.PAIRS[pair]
    config = check_config(backends, spec, opt, batch_size=batch,
                          epochs=cfg.get("epochs", C.EPOCHS))
    names = None if pair == "scratch-torch" else (backends[1],)
    return cfg, _run("equivalence", config, data, names)


@pytest.mark.parametrize("index, pair", [
    (673, "simple-torch"),    # adamw: W0 after step 2, 4.6e-8 against 3.2e-8
    (1028, "scratch-torch"),  # adam + L2 decay + exponential schedule: W0 after step 2
    (1028, "simple-torch"),
    (1793, "scratch-torch"),  # adam + cosine: b0 after step 2
    (1157, "simple-torch"),   # adamw, eps 1e-4: W3 after step 1
])
def test_correct_float32_adam_pair_is_not_a_false_alarm(index, pair):
    cfg, result = _equivalence(index, pair)
    assert cfg["dtype"] == "float32" and cfg["optimizer"] in ("adam", "adamw")
    assert result.status in ("PASS", "WARN"), result.summary


def _bug(key):
    return next(b for b in CATALOGUE if b.key == key)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_bug_exact_at_step_1_still_fails_after_step_2(dtype):
    bug = _bug("adam_bias_correction_frozen")
    for dataset, hidden in _cases_of(bug, CASES):
        config, data = bug_config(bug, dataset, hidden, dtype, 0, threads=1)
        result = _run("equivalence", config, data, (bug.backend,))
        assert result.status == "FAIL", (dataset, result.summary)
        assert "agree after step 1, part after step 2" in result.summary, result.summary


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_schedule_bug_under_adam_still_fails(dtype):
    bug = _bug("schedule_one_step_early@exponential")
    dataset, hidden = _cases_of(bug, CASES)[0]
    config, data = bug_config(bug, dataset, hidden, dtype, 0, threads=1)
    assert _run("equivalence", config, data, (bug.backend,)).status == "FAIL"


def test_noise_term_is_capped_and_uses_the_gradient_the_optimizer_sees():
    g_arb = {"W": np.array([1e-3, 0.0, 2e-5])}
    g_ref = {"W": np.array([1e-3 + 1e-9, 1e-9, 2e-5 + 1e-9])}
    rho = gradient_noise(g_ref, g_arb)["W"]
    assert rho[1] == np.inf and rho[2] > rho[0]
    # an L2 decay that dominates the gradient makes its rounding relatively small
    with_decay = gradient_noise(g_ref, g_arb, {"W": np.array([1.0, 1.0, 1.0])}, 0.1)["W"]
    assert np.all(with_decay < 1e-6)
    before = np.zeros(3)
    arb = np.array([1e-3, 1e-3, 1e-3])  # every entry a full step of 1e-3
    wrong = arb * 1.01  # 1% of a step off everywhere: beyond the capped term
    bounds = step_bounds(wrong, arb, arb, before, 1, rho)
    assert not bounds.close.any()
    # the capped term (8 x 1e-3 of the step) plus the rounding units of the entry
    assert float(bounds.bound.max()) <= 8 * NOISE_CAP * 1e-3 + 1e-8

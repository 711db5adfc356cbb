"""Equivalence tests of your own network: copy this file to your tests/ folder.

Replace ``mynet`` / ``MyMLP`` with your module and class (constructed as
``MyMLP(spec, optimizer)``, implementing the ``Classifier`` protocol), then run, from
the folder that holds ``mynet.py``::

    python -m pytest tests/test_mynet.py

(``python -m pytest`` puts the current folder on the import path, so ``mynet``
imports; plain ``pytest`` puts only this file's own folder there, which is enough
when ``mynet.py`` sits beside it.) Every case that fails prints the harness's report:
the comparison table, the counts, the first layer where the two implementations part,
the likely causes.
"""

import pytest

from harness.testing import (
    assert_equivalent, assert_gradients_match, assert_trains_alike, parametrize_with_checks,
)
from mynet import MyMLP


# 1. The conformance suite: one case per check (contract, dtypes, forward, loss and
#    gradients against torch, optimizer steps, a trajectory, determinism), ids such as
#    "MyMLP-gradients-tanh-float64"; checks outside MyMLP.nnh_capabilities are skipped.
@parametrize_with_checks([MyMLP])
def test_conformance(network, check):
    check(network)


# 2. Your own equivalence tests, on bundled data, with the plugin's fixtures.
@pytest.mark.nnh(backend="mynet:MyMLP")
def test_equivalent_on_iris(nnh_reference, nnh_candidate, nnh_data):
    X, y = nnh_data("iris", n_samples=24)
    assert_equivalent(nnh_reference, nnh_candidate, X, y, dims=(4, 6, 3), activation="tanh")


# The candidate named on the command line: pytest --nnh-backend mynet:MyMLP
# (skipped, with the reason, when none is named).
def test_command_line_backend_builds(nnh_candidate, nnh_data):
    X, y = nnh_data("wine", n_samples=20)
    model = nnh_candidate(dims=(13, 8, 3), dtype="float32")
    assert model.forward(X).shape == (20, 3)


def test_gradients_match_finite_differences(nnh_data):
    X, y = nnh_data("iris", n_samples=12)
    assert_gradients_match(MyMLP, X, y, dims=(4, 6, 3), activation="tanh")


def test_trains_like_torch(nnh_data):
    X, y = nnh_data("iris", n_samples=24)
    assert_trains_alike("torch", MyMLP, X, y, epochs=2, batch_size=8, dims=(4, 6, 3),
                        optimizer={"name": "adam", "lr": 0.01})

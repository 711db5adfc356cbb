"""Equivalence tests for your own test suite: assertions, a conformance suite, a plugin.

* :func:`assert_equivalent`, :func:`assert_gradients_match`, :func:`assert_trains_alike`:
  assertions in the style of ``numpy.testing``; a failure raises an ``AssertionError``
  whose message is the harness's report (table, counts, localisation, likely causes).
* :func:`parametrize_with_checks` and :func:`check_network`: the conformance suite of
  a ``Classifier`` class, one pytest case per check (like scikit-learn's
  ``parametrize_with_checks``); ``nn-harness conformance mymod:MyMLP`` runs the same.
* :mod:`harness.testing.plugin`: a pytest plugin with ``--nnh-backend`` and the fixtures
  ``nnh_reference``, ``nnh_candidate`` and ``nnh_data``.

Importing this package does not import torch.
"""

from __future__ import annotations

from harness.testing.asserts import (
    HarnessAssertionError, assert_equivalent, assert_gradients_match, assert_trains_alike,
)
from harness.testing.conformance import (
    DEFAULT_CAPABILITIES, ConformanceCheck, ConformanceRun, Outcome, capabilities_of,
    check_network, checks_for, parametrize_with_checks,
)

__all__ = [
    "HarnessAssertionError", "assert_equivalent", "assert_gradients_match",
    "assert_trains_alike", "DEFAULT_CAPABILITIES", "ConformanceCheck", "ConformanceRun",
    "Outcome", "capabilities_of", "check_network", "checks_for", "parametrize_with_checks",
]

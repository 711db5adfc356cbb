"""A stand-in for your own network: the project's scratch MLP behind a user-style class.

Your ``mynet.py`` holds your own ``MyMLP``; it only has to be constructed as
``MyMLP(spec, optimizer)`` and implement the ``Classifier`` protocol. This one wraps
the built-in scratch backend, so that ``test_mynet_template.py`` runs green as it is.
"""

from __future__ import annotations

from scratch import MLP
from scratch.optimizers import make_optimizer


class MyMLP(MLP):
    """``MyMLP(spec, optimizer)``: a Classifier, with what it supports declared."""

    #: what the conformance suite checks; anything else is skipped with the reason
    nnh_capabilities = {
        "activations": ["relu", "tanh"],
        "dtypes": ["float64", "float32"],
        "optimizers": ["sgd", "adam"],
    }

    def __init__(self, spec, optimizer):
        self.spec = spec
        super().__init__(spec.dims, spec.activation, spec.dtype, spec.seed,
                         optimizer=make_optimizer(**optimizer.to_dict()))

"""User-style classes plugged in as "tests.user_models:ClassName"."""

from __future__ import annotations

from scratch import MLP
from scratch.optimizers import make_optimizer


class WrappedScratch(MLP):
    """A user's own class: constructed as ClassName(spec, optimizer), like any plug-in."""

    def __init__(self, spec, optimizer):
        self.spec = spec
        self.optimizer_spec = optimizer
        super().__init__(spec.dims, spec.activation, spec.dtype, spec.seed,
                         optimizer=make_optimizer(**optimizer.to_dict()))


class NotAClassifier:
    """Has dims but no methods: must be refused with a clear message."""

    def __init__(self, spec, optimizer):
        self.dims = spec.dims

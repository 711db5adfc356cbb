"""Plug-ins that hang: one in a Python loop from its third training step, one asleep in
its gradients. ``--timeout`` must turn each into a FAIL naming the method and the line."""

from __future__ import annotations

import time

from scratch import MLP
from scratch.optimizers import make_optimizer


class _Base(MLP):
    def __init__(self, spec, optimizer):
        super().__init__(spec.dims, spec.activation, spec.dtype, spec.seed,
                         optimizer=make_optimizer(**optimizer.to_dict()))
        self.steps = 0


class SpinsAtStep3(_Base):
    """train_step loops for ever from its third call."""

    def train_step(self, x, y):
        self.steps += 1
        while self.steps >= 3:
            self.steps += 0  # spins here
        return super().train_step(x, y)


class SleepsInGradients(_Base):
    """loss_and_grads sleeps for an hour."""

    def loss_and_grads(self, x, y):
        time.sleep(3600)
        return super().loss_and_grads(x, y)

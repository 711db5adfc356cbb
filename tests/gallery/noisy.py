"""A relu MLP whose gradients carry fresh N(0, 1e-6) noise on every call: a wrong gradient
that a kink test must not excuse (its gradient is not even reproducible). It shows no
intermediates, so kinks are told by one-sided differences."""

from __future__ import annotations

import numpy as np

from scratch.optimizers import SGD
from scratch.reference import ReferenceMLP


class NoisyGradients:
    def __init__(self, spec, optimizer):
        self._net = ReferenceMLP(spec.dims, spec.activation, spec.dtype, spec.seed,
                                 SGD(lr=optimizer.lr))
        self.dims, self.activation = self._net.dims, spec.activation
        self._noise = np.random.default_rng(12345)

    def forward(self, x):
        return self._net.forward(x)

    def loss_and_grads(self, x, y):
        loss, grads = self._net.loss_and_grads(x, y)
        return loss, {k: g + self._noise.normal(0.0, 1e-6, g.shape) for k, g in grads.items()}

    def get_params(self):
        return self._net.get_params()

    def set_params(self, params):
        self._net.set_params(params)

    def train_step(self, x, y):
        loss, grads = self.loss_and_grads(x, y)
        self._net.optimizer.step(self._net.params, grads)
        return loss


class NeverTrains(NoisyGradients):
    """Right gradients, and a train_step that never updates: on a workload where correct
    runs part, it must still not be excused as rounding."""

    def loss_and_grads(self, x, y):
        return self._net.loss_and_grads(x, y)

    def train_step(self, x, y):
        return self.loss_and_grads(x, y)[0]

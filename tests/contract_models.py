"""Plug-ins that break one rule of the Classifier contract each ("tests.contract_models:Name")."""

from __future__ import annotations

import dataclasses

import numpy as np

from tests.user_models import WrappedScratch


class OneDLogits(WrappedScratch):
    """relu written as ``np.max(z, 0)``: a reduction over the batch, logits of shape (C,)."""

    def forward(self, x):
        a = np.asarray(x, dtype=self.dtype)
        n_layers = len(self.dims) - 1
        for i in range(n_layers):
            z = a @ self.params[f"W{i}"] + self.params[f"b{i}"]
            a = z if i == n_layers - 1 else np.max(z, 0)
        return a


class NoneLoss(WrappedScratch):
    """loss_and_grads not finished: returns None."""

    def loss_and_grads(self, x, y):
        super().loss_and_grads(x, y)


class ListGrads(WrappedScratch):
    """The gradients as a list, not a dict by name."""

    def loss_and_grads(self, x, y):
        loss, grads = super().loss_and_grads(x, y)
        return loss, list(grads.values())


class MissingGrad(WrappedScratch):
    """No gradient for the last bias."""

    def loss_and_grads(self, x, y):
        loss, grads = super().loss_and_grads(x, y)
        grads.pop(sorted(grads)[0])
        return loss, grads


class VectorLoss(WrappedScratch):
    """The per-sample losses instead of their mean."""

    def loss_and_grads(self, x, y):
        loss, grads = super().loss_and_grads(x, y)
        return np.full(len(y), loss), grads


class AliasingParams(WrappedScratch):
    """get_params hands out the model's own arrays."""

    def get_params(self):
        return self.params


class AliasingSetParams(WrappedScratch):
    """set_params keeps the caller's arrays."""

    def set_params(self, params):
        self.params = {k: v for k, v in params.items()}


class Float64Only(WrappedScratch):
    """Computes in float64 whatever dtype it is asked for."""

    def __init__(self, spec, optimizer):
        super().__init__(dataclasses.replace(spec, dtype="float64"), optimizer)


class Float64Logits(WrappedScratch):
    """float32 parameters, but the logits up-cast to float64."""

    def forward(self, x):
        return super().forward(x).astype(np.float64)


class LossAfterStep(WrappedScratch):
    """train_step returns the loss after its update."""

    def train_step(self, x, y):
        super().train_step(x, y)
        return self.loss_and_grads(x, y)[0]


class RaisesInStep(WrappedScratch):
    """train_step raises (after the gradients compared)."""

    def train_step(self, x, y):
        raise RuntimeError("optimizer state not initialised")


class RaisesOnFullBatch(WrappedScratch):
    """Keeps the contract on a few rows, but train_step raises on a batch of more than 8."""

    def train_step(self, x, y):
        if len(x) > 8:
            raise RuntimeError("batch too large for the preallocated buffer")
        return super().train_step(x, y)

"""Dropout networks that draw their own masks (no ``set_dropout_masks``), as course code
does: from NumPy's global generator (cs231n's ``np.random.rand(*x.shape) < p``), or from a
generator of their own. ``linear(H),relu,dropout(P),linear(C)``, plain SGD, float64."""

from __future__ import annotations

import numpy as np


class GlobalRandomDropout:
    """Correct inverted dropout, masks from NumPy's global generator."""

    def __init__(self, spec, optimizer):
        self.dims, self.lr = spec.dims, optimizer.lr
        self.p_drop = next(kw["p"] for name, kw in spec.network.plain() if name == "dropout")
        d, h, c = spec.dims
        u = np.random.default_rng(spec.seed).uniform
        self.p = {"W0": u(-d**-.5, d**-.5, (d, h)), "b0": u(-d**-.5, d**-.5, h),
                  "W1": u(-h**-.5, h**-.5, (h, c)), "b1": u(-h**-.5, h**-.5, c)}

    def _mask(self, shape):
        return (np.random.rand(*shape) >= self.p_drop) / (1 - self.p_drop)

    def _test_scale(self):
        return 1.0

    def _forward(self, x, train):
        a = np.maximum(x @ self.p["W0"] + self.p["b0"], 0)
        mask = self._mask(a.shape) if train else np.full_like(a, self._test_scale())
        h = a * mask
        return h @ self.p["W1"] + self.p["b1"], (a, mask, h)

    def forward(self, x):
        return self._forward(x, train=False)[0]

    def loss_and_grads(self, x, y):
        z, (a, mask, h) = self._forward(x, train=True)
        n, rows = len(y), np.arange(len(y))
        logp = z - z.max(1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(1, keepdims=True))
        dz = np.exp(logp)
        dz[rows, y] -= 1
        dz /= n
        dz0 = dz @ self.p["W1"].T * mask * (a > 0)
        grads = {"W0": x.T @ dz0, "b0": dz0.sum(0), "W1": h.T @ dz, "b1": dz.sum(0)}
        return float(-logp[rows, y].mean()), grads

    def get_params(self):
        return {k: v.copy() for k, v in self.p.items()}

    def set_params(self, params):
        self.p = {k: np.array(params[k], float) for k in self.p}

    def train_step(self, x, y):
        loss, grads = self.loss_and_grads(x, y)
        self.p = {k: v - self.lr * grads[k] for k, v in self.p.items()}
        return loss


class NotInvertedDropout(GlobalRandomDropout):
    """The bug: kept units not scaled in training, the output scaled by 1 - p at test time."""

    def _mask(self, shape):
        return (np.random.rand(*shape) >= self.p_drop) * 1.0

    def _test_scale(self):
        return 1.0 - self.p_drop


class KeepAsDropOwn(GlobalRandomDropout):
    """The bug: p used as the keep probability (drops 1 - p), scaled by 1/p."""

    def _mask(self, shape):
        return (np.random.rand(*shape) < self.p_drop) / self.p_drop


class OwnGeneratorDropout(GlobalRandomDropout):
    """Correct, but its masks come from a generator of its own: no reseeding holds them."""

    def __init__(self, spec, optimizer):
        super().__init__(spec, optimizer)
        self.rng = np.random.default_rng(spec.seed + 1)

    def _mask(self, shape):
        return (self.rng.random(shape) >= self.p_drop) / (1 - self.p_drop)

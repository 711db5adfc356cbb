"""A correct MLP written apart from every backend: its own softmax, its own reductions.

Softmax cross-entropy for a relu (or tanh) network and SGD with momentum and weight
decay, every formula exact in real arithmetic but rounded in another order than scratch or
torch: the log-sum-exp is shifted by the row's mean logit and then by the largest shifted
one, its terms added smallest first; the batch mean and the bias gradient are sums over a
reversed, pairwise order; the matmuls are taken transposed. It rounds as a second,
independent implementation does, so a trajectory verdict must never FAIL it.
"""

from __future__ import annotations

import math

import numpy as np


def _pairwise_sum(a: np.ndarray) -> np.ndarray:
    """Sum over axis 0, rows reversed, added in pairs: ``sum_i a[i]``."""
    a = a[::-1]
    while len(a) > 1:
        half = len(a) // 2
        head = a[:half] + a[half:2 * half]
        a = np.concatenate([head, a[2 * half:]]) if len(a) % 2 else head
    return a[0]


class IndependentNet:
    """Correct relu/tanh MLP with softmax cross-entropy and SGD (momentum, weight decay)."""

    def __init__(self, spec, optimizer):
        if optimizer.name != "sgd" or optimizer.nesterov:
            raise ValueError("this network has plain sgd only (momentum and weight decay)")
        if spec.activation not in ("relu", "tanh"):
            raise ValueError("this network has relu and tanh only")
        self.dims = tuple(spec.dims)
        self.dtype = np.dtype(spec.dtype)
        self.activation = spec.activation
        self.opt = optimizer
        rng = np.random.default_rng(spec.seed)
        self.params = {}
        for i in range(len(self.dims) - 1):
            bound = 1.0 / math.sqrt(self.dims[i])
            shape = (self.dims[i], self.dims[i + 1])
            self.params[f"W{i}"] = rng.uniform(-bound, bound, shape).astype(self.dtype)
            self.params[f"b{i}"] = rng.uniform(-bound, bound, shape[1]).astype(self.dtype)
        self.velocity: dict[str, np.ndarray] = {}
        self.t = 0

    # forward: z = (W^T a^T)^T + b, the matmul taken transposed
    def _forward(self, x):
        a = np.asarray(x, dtype=self.dtype)
        acts, zs = [a], []
        last = len(self.dims) - 2
        for i in range(last + 1):
            z = (self.params[f"W{i}"].T @ a.T).T + self.params[f"b{i}"]
            zs.append(z)
            if i < last:
                a = np.maximum(z, 0) if self.activation == "relu" else np.tanh(z)
                acts.append(a)
        return zs, acts

    def forward(self, x):
        return self._forward(x)[0][-1]

    # log p = z - c - log sum exp(z - c), c = mean(z) + max(z - mean(z))
    def _log_softmax(self, z):
        centred = z - z.mean(axis=1, keepdims=True)
        shifted = centred - centred.max(axis=1, keepdims=True)
        terms = np.sort(np.exp(shifted), axis=1)  # smallest first
        total = np.zeros(len(z), dtype=z.dtype)
        for j in range(z.shape[1]):
            total = total + terms[:, j]
        return shifted - np.log(total)[:, None]

    def loss_and_grads(self, x, y):
        y = np.asarray(y)
        zs, acts = self._forward(x)
        logp = self._log_softmax(zs[-1])
        rows = np.arange(len(y))
        n = len(y)
        loss = -_pairwise_sum(logp[rows, y]) / n
        dz = np.exp(logp)  # dL/dz = (softmax - onehot) / n
        dz[rows, y] -= 1
        dz = self.through_output(dz / n)
        grads = {}
        for i in reversed(range(len(zs))):
            grads[f"W{i}"] = (dz.T @ acts[i]).T
            grads[f"b{i}"] = _pairwise_sum(dz)
            if i > 0:
                da = (self.params[f"W{i}"] @ dz.T).T
                a = acts[i]
                dz = da * ((zs[i - 1] > 0).astype(self.dtype) if self.activation == "relu"
                           else 1 - a * a)
        return float(loss), {k: grads[k] for k in self.params}

    def through_output(self, dz):
        """The gradient at the last layer's pre-activations from that at the logits."""
        return dz

    def get_params(self):
        return {k: v.copy() for k, v in self.params.items()}

    def set_params(self, params):
        for k, v in self.params.items():
            if np.shape(params[k]) != v.shape:
                raise ValueError(f"{k} must have shape {v.shape}")
        self.params = {k: np.array(params[k], dtype=self.dtype) for k in self.params}

    # v = mu v + (g + wd p); p = p - lr v   (torch's SGD, dampening 0)
    def train_step(self, x, y):
        loss, grads = self.loss_and_grads(x, y)
        self.t += 1
        o = self.opt
        for k, p in self.params.items():
            g = grads[k] + o.weight_decay * p
            v = self.velocity.get(k)
            v = g.copy() if v is None or not o.momentum else o.momentum * v + g
            self.velocity[k] = v
            self.params[k] = self.update(k, p, v)
        return loss

    def update(self, key, p, v):
        """The parameter after the step, from the velocity."""
        return p - self.opt.lr * v

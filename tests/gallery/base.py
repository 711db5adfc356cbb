"""A correct hand-written MLP, in the style of a course assignment.

Every gallery entry is this network with one thing done wrong. Constructed as
``Net(spec, optimizer)``, like any plug-in; NumPy only.
"""

from __future__ import annotations

import math

import numpy as np

_erf = np.vectorize(math.erf)


class Net:
    """Fully connected net, softmax cross-entropy, forward and backward by hand."""

    #: the update rules written below; another optimizer is refused when built
    OPTIMIZERS = ("sgd", "adam", "adamw")

    def __init__(self, spec, optimizer):
        if optimizer.name not in self.OPTIMIZERS:
            raise ValueError(f"this network has no {optimizer.name} (it has "
                             f"{', '.join(self.OPTIMIZERS)})")
        self.dims = tuple(spec.dims)
        self.dtype = np.dtype(spec.dtype)
        self.activation_name = spec.activation
        self.opt = optimizer
        rng = np.random.default_rng(spec.seed)
        self.params = {}
        for i in range(len(self.dims) - 1):
            bound = 1.0 / math.sqrt(self.dims[i])
            self.params[f"W{i}"] = rng.uniform(-bound, bound, (self.dims[i], self.dims[i + 1])
                                               ).astype(self.dtype)
            self.params[f"b{i}"] = rng.uniform(-bound, bound, self.dims[i + 1]).astype(self.dtype)
        self.t = 0
        self.state = {}

    # ----------------------------------------------------------- activation
    def activation(self, z):
        name = self.activation_name
        if name == "relu":
            return np.maximum(z, 0)
        if name == "leaky_relu":
            return np.where(z > 0, z, 0.01 * z)
        if name == "tanh":
            return np.tanh(z)
        if name == "sigmoid":
            return 1 / (1 + np.exp(-z))
        return 0.5 * z * (1 + _erf(z / math.sqrt(2)))  # gelu, exact

    def activation_grad(self, z, a):
        name = self.activation_name
        if name == "relu":
            return (z > 0).astype(z.dtype)
        if name == "leaky_relu":
            return np.where(z > 0, 1.0, 0.01).astype(z.dtype)
        if name == "tanh":
            return 1 - a ** 2
        if name == "sigmoid":
            return a * (1 - a)
        cdf = 0.5 * (1 + _erf(z / math.sqrt(2)))
        return cdf + z * np.exp(-z ** 2 / 2) / math.sqrt(2 * math.pi)

    # ----------------------------------------------------------- forward
    def _forward(self, x):
        a = np.asarray(x, dtype=self.dtype)
        acts, zs = [a], []
        n_layers = len(self.dims) - 1
        for i in range(n_layers):
            z = a @ self.params[f"W{i}"] + self.params[f"b{i}"]
            zs.append(z)
            if i < n_layers - 1:
                a = self.activation(z)
                acts.append(a)
        return zs, acts

    def output(self, logits):
        """What forward returns, from the scores of the last layer."""
        return logits

    def forward(self, x):
        zs, _ = self._forward(x)
        return self.output(zs[-1])

    # ----------------------------------------------------------- loss
    def softmax(self, z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def loss(self, logits, y):
        m = logits.max(axis=1, keepdims=True)
        logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
        return -logp[np.arange(len(y)), y].mean()

    def dlogits(self, logits, y):
        d = self.softmax(logits)
        d[np.arange(len(y)), y] -= 1
        return d / len(y)

    def penalty(self):
        """Extra loss term and its gradient (none here)."""
        return 0.0, {}

    # ----------------------------------------------------------- backward
    def backward(self, zs, acts, dz):
        grads = {}
        for i in reversed(range(len(zs))):
            grads[f"W{i}"] = acts[i].T @ dz
            grads[f"b{i}"] = self.bias_grad(dz)
            if i > 0:
                da = dz @ self.params[f"W{i}"].T
                dz = da * self.activation_grad(zs[i - 1], acts[i])
        return grads

    def bias_grad(self, dz):
        return dz.sum(axis=0)

    def loss_and_grads(self, x, y):
        y = np.asarray(y)
        zs, acts = self._forward(x)
        loss = self.loss(zs[-1], y)
        grads = self.backward(zs, acts, self.dlogits(zs[-1], y))
        extra, extra_grads = self.penalty()
        for k, g in extra_grads.items():
            grads[k] = grads[k] + g
        return float(loss + extra), {k: grads[k] for k in self.params}

    # ----------------------------------------------------------- parameters
    def get_params(self):
        return {k: v.copy() for k, v in self.params.items()}

    def set_params(self, params):
        for k in self.params:
            if k not in params:
                raise ValueError(f"missing parameter {k}")
            if np.shape(params[k]) != self.params[k].shape:
                raise ValueError(f"{k} must have shape {self.params[k].shape}")
        self.params = {k: np.array(params[k], dtype=self.dtype) for k in self.params}

    # ----------------------------------------------------------- optimizer
    def train_step(self, x, y):
        loss, grads = self.loss_and_grads(x, y)
        self.t += 1
        for k in self.params:
            self.params[k] = self.update(k, self.params[k], grads[k])
        return loss

    def decays(self, key):
        return True

    def update(self, key, p, g):
        o = self.opt
        wd = o.weight_decay if self.decays(key) else 0.0
        if o.name == "sgd":
            g = g + wd * p
            if o.momentum:
                buf = self.state.get(key)
                buf = g.copy() if buf is None else o.momentum * buf + g
                self.state[key] = buf
                g = g + o.momentum * buf if o.nesterov else buf
            return p - o.lr * g
        if o.name == "adamw":
            p = p * (1 - o.lr * wd)
        else:
            g = g + wd * p
        return p - o.lr * self.adam_direction(key, g)

    def adam_direction(self, key, g):
        b1, b2 = self.opt.betas
        m, v = self.state.get(key, (np.zeros_like(g), np.zeros_like(g)))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        self.state[key] = (m, v)
        m_hat = m / (1 - b1 ** self.t)
        v_hat = v / (1 - b2 ** self.t)
        return m_hat / (np.sqrt(v_hat) + self.opt.eps)

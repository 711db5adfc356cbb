"""Hand-written networks outside the built-in backends, each with one convention or bug
that a hint has to name (or must not misname): plain SGD code run under other settings,
wrong weight decay, wrong Nesterov forms, small errors in Adam, a bias gradient summed
over every axis, a loss clipped at eps. Plug in as ``"tests.hint_cases:ClassName"``."""

from __future__ import annotations

import numpy as np


class PlainSGD:
    """A one-hidden-layer relu MLP, mean cross-entropy, plain SGD at its own lr 0.1 (it
    reads nothing from the optimizer)."""

    lr = 0.1

    def __init__(self, spec, optimizer):
        self.spec, self.opt, self.dims = spec, optimizer, tuple(spec.dims)
        rng = np.random.default_rng(spec.seed)
        d = spec.dims
        self.p = {}
        for i in range(len(d) - 1):
            bound = d[i] ** -0.5
            self.p[f"W{i}"] = rng.uniform(-bound, bound, (d[i], d[i + 1]))
            self.p[f"b{i}"] = rng.uniform(-bound, bound, d[i + 1])

    def _layers(self):
        return len(self.spec.dims) - 1

    def forward(self, x):
        a = x
        for i in range(self._layers()):
            z = a @ self.p[f"W{i}"] + self.p[f"b{i}"]
            a = np.maximum(z, 0) if i < self._layers() - 1 else z
        return a

    def loss_value(self, z, y):
        logp = z - z.max(1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean())

    def loss_and_grads(self, x, y):
        acts, a = [x], x
        for i in range(self._layers()):
            z = a @ self.p[f"W{i}"] + self.p[f"b{i}"]
            a = np.maximum(z, 0) if i < self._layers() - 1 else z
            acts.append(a)
        z = acts[-1]
        dz = np.exp(z - z.max(1, keepdims=True))
        dz /= dz.sum(1, keepdims=True)
        dz[np.arange(len(y)), y] -= 1
        dz /= len(y)
        grads = {}
        for i in reversed(range(self._layers())):
            grads[f"W{i}"] = acts[i].T @ dz
            grads[f"b{i}"] = self.bias_grad(dz)
            if i:
                dz = (dz @ self.p[f"W{i}"].T) * (acts[i] > 0)
        return self.loss_value(z, y), grads

    def bias_grad(self, dz):
        return dz.sum(0)

    def get_params(self):
        return {k: v.copy() for k, v in self.p.items()}

    def set_params(self, params):
        self.p = {k: np.array(params[k], dtype=np.float64) for k in self.p}

    def train_step(self, x, y):
        loss, grads = self.loss_and_grads(x, y)
        self.update(grads)
        return loss

    def update(self, grads):
        for k in self.p:
            self.p[k] = self.p[k] - self.lr * grads[k]


class ReadsItsLr(PlainSGD):
    """Plain SGD at the optimizer's lr, no decay, whatever the optimizer's name."""

    def update(self, grads):
        for k in self.p:
            self.p[k] = self.p[k] - self.opt.lr * grads[k]


class DecayAfterUpdate(PlainSGD):
    """SGD whose weight decay is applied after the gradient step, to the new parameters."""

    def update(self, grads):
        o = self.opt
        for k in self.p:
            new = self.p[k] - o.lr * grads[k]
            self.p[k] = new - o.lr * o.weight_decay * new


class _Moments(PlainSGD):
    """Adam at the optimizer's settings; subclasses break one thing."""

    def __init__(self, spec, optimizer):
        super().__init__(spec, optimizer)
        self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.t = 0

    def set_params(self, params):
        super().set_params(params)

    def step_of(self, m_hat, v_hat, eps):
        return m_hat / (np.sqrt(v_hat) + eps)

    def update(self, grads):
        o = self.opt
        b1, b2 = o.betas
        self.t += 1
        for k in self.p:
            g = grads[k] + o.weight_decay * self.p[k]
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            m_hat = self.m[k] / (1 - b1 ** self.t)
            v_hat = self.v[k] / (1 - b2 ** self.t)
            self.p[k] = self.p[k] - self.scale * o.lr * self.step_of(m_hat, v_hat, o.eps)

    scale = 1.0


class AdamWithoutEps(_Moments):
    """Adam with no eps in its denominator."""

    def step_of(self, m_hat, v_hat, eps):
        return m_hat / np.sqrt(v_hat)


class AdamOffByMillionth(_Moments):
    """Adam whose step is 1 + 1e-6 times torch's."""

    scale = 1 + 1e-6


class AdamOffBy1e4(_Moments):
    """Adam whose step is 1 + 1e-4 times torch's."""

    scale = 1 + 1e-4


class _Momentum(PlainSGD):
    def __init__(self, spec, optimizer):
        super().__init__(spec, optimizer)
        self.buf = {}


class NesterovLookahead(_Momentum):
    """Nesterov written as v = mu v - lr g; p += -mu v_prev + (1 + mu) v (another form)."""

    def update(self, grads):
        o = self.opt
        for k in self.p:
            prev = self.buf.get(k, np.zeros_like(self.p[k]))
            v = o.momentum * prev - o.lr * grads[k]
            self.buf[k] = v
            self.p[k] = self.p[k] - o.momentum * prev + (1 + o.momentum) * v * 0.9


class NesterovAsPlainMomentum(_Momentum):
    """Nesterov asked, but the step is plain momentum scaled by 1/(1 + mu)."""

    def update(self, grads):
        o = self.opt
        for k in self.p:
            buf = o.momentum * self.buf.get(k, 0) + grads[k]
            self.buf[k] = buf
            self.p[k] = self.p[k] - o.lr * buf / (1 + o.momentum) * (1 + o.momentum * 0.5)


class BiasSummedOverAllAxes(ReadsItsLr):
    """db = np.sum(dz): every entry is the sum of the reference's entries."""

    def bias_grad(self, dz):
        return np.full(dz.shape[1], np.sum(dz))


class SumLossMeanGrads(ReadsItsLr):
    """Mixed conventions: a loss of another function (the summed squared error of the
    softmax) with gradients of the mean cross-entropy summed over the batch."""

    def loss_value(self, z, y):
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        onehot = np.eye(z.shape[1])[y]
        return float(((p - onehot) ** 2).sum())

    def loss_and_grads(self, x, y):
        loss, grads = super().loss_and_grads(x, y)
        return loss, {k: g * len(y) for k, g in grads.items()}


class ClippedLoss(ReadsItsLr):
    """The loss reported as -mean(log(clip(p, 1e-7, 1 - 1e-7))) (the gradient unclipped)."""

    def loss_value(self, z, y):
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1 - 1e-7))))

"""A plain NumPy MLP, written the way a course writes it: the independent second opinion.

:class:`SimpleMLP` implements the ``Classifier`` protocol from the textbook formulas,
with none of the scratch backend's buffers or in-place tricks, and the optimizers of
torch.optim's documentation (:class:`SimpleSGD`, :class:`SimpleAdam`,
:class:`SimpleRMSprop`, :class:`SimpleAdagrad`), torch.optim.lr_scheduler's rates in
their closed forms (:func:`scheduled_lr`) and torch.nn.utils' gradient clipping
(:func:`clip_by_global_norm`, :func:`clip_by_value`). It serves two
purposes in the calibration: a second correct implementation to compare with torch
(a false alarm there is a false alarm of the harness, not a quirk of one backend), and
the base class of every injected bug in :mod:`harness.calibrate.catalogue`, which
overrides one small method each.

Notation, for a batch of N rows::

    z_i = a_i @ W_i + b_i,   a_{i+1} = f(z_i),   a_0 = x
    loss = mean_n (logsumexp(z_{L-1}[n]) - z_{L-1}[n, y_n])
    dz_{L-1} = (softmax(z_{L-1}) - onehot(y)) / N
    dW_i = a_i^T @ dz_i,   db_i = sum over rows of dz_i
    dz_{i-1} = (dz_i @ W_i^T) * f'(z_{i-1})
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy.special import erf

from harness.model.specs import LEAKY_RELU_SLOPE


# ------------------------------------------------------------------ activations
def activation(name: str, z: np.ndarray) -> np.ndarray:
    """f(z) for the hidden activation ``name``, in z's dtype."""
    if name == "relu":
        return np.maximum(z, 0)
    if name == "leaky_relu":
        return np.where(z > 0, z, z * z.dtype.type(LEAKY_RELU_SLOPE))
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        with np.errstate(over="ignore"):
            return 1 / (1 + np.exp(-z))
    if name == "gelu":  # exact erf form, torch's default
        return z * (1 + erf(z / np.sqrt(z.dtype.type(2)))) / 2
    raise ValueError(f"unknown activation {name!r}")


def activation_grad(name: str, z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """f'(z), given z and a = f(z)."""
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "leaky_relu":
        return np.where(z > 0, 1, LEAKY_RELU_SLOPE).astype(z.dtype)
    if name == "tanh":
        return 1 - a * a
    if name == "sigmoid":
        return a * (1 - a)
    if name == "gelu":  # Phi(z) + z phi(z)
        cdf = (1 + erf(z / np.sqrt(z.dtype.type(2)))) / 2
        pdf = np.exp(-z * z / 2) / np.sqrt(z.dtype.type(2 * math.pi))
        return cdf + z * pdf
    raise ValueError(f"unknown activation {name!r}")


# ------------------------------------------------------------------ optimizers
class SimpleSGD:
    """torch.optim.SGD: ``g += wd p``; momentum buffer (``b = g`` at the first step,
    then ``b = m b + (1 - dampening) g``); Nesterov ``g += m b`` else ``g = b``;
    ``p -= lr g``."""

    dampening = 0.0

    def __init__(self, spec):
        self.spec = spec
        self.lr = spec.lr  # the current rate: a schedule moves it
        self.buf: dict[str, np.ndarray] = {}

    def decay(self, name: str) -> bool:
        """Whether weight decay applies to parameter ``name`` (every one, as torch)."""
        return True

    def step(self, params: dict, grads: dict) -> None:
        o = self.spec
        for name, p in params.items():
            g = grads[name].copy()
            if o.weight_decay and self.decay(name):
                g = g + o.weight_decay * p
            if o.momentum:
                if name not in self.buf:
                    self.buf[name] = g.copy()
                else:
                    self.buf[name] = o.momentum * self.buf[name] + (1 - self.dampening) * g
                b = self.buf[name]
                g = g + o.momentum * b if self.nesterov() else b
            params[name] = (p - self.lr * g).astype(p.dtype)

    def nesterov(self) -> bool:
        return self.spec.nesterov


class SimpleAdam:
    """torch.optim.Adam (L2 weight decay in the gradient) and, with ``decoupled``,
    AdamW (``p *= 1 - lr wd`` first). ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 -
    b2^t)``, ``p -= lr m_hat / (sqrt(v_hat) + eps)``."""

    def __init__(self, spec):
        self.spec = spec
        self.lr = spec.lr
        self.decoupled = spec.name == "adamw"
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}
        self.t: dict[str, int] = {}

    def decay(self, name: str) -> bool:
        return True

    def betas(self) -> tuple[float, float]:
        return self.spec.betas

    def denominator(self, v_hat: np.ndarray) -> np.ndarray:
        return np.sqrt(v_hat) + self.spec.eps

    def bias_corrections(self, t: int) -> tuple[float, float]:
        b1, b2 = self.betas()
        return 1 - b1 ** t, 1 - b2 ** t

    def update(self, name: str, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        """One parameter's update; returns the new value."""
        o = self.spec
        b1, b2 = self.betas()
        if o.weight_decay and self.decay(name):
            if self.decoupled:
                p = p * (1 - self.lr * o.weight_decay)
            else:
                g = g + o.weight_decay * p
        t = self.t[name] = self.t.get(name, 0) + 1
        m = self.m.get(name, np.zeros_like(p))
        v = self.v.get(name, np.zeros_like(p))
        m = self.m[name] = b1 * m + (1 - b1) * g
        v = self.v[name] = b2 * v + (1 - b2) * g * g
        c1, c2 = self.bias_corrections(t)
        return p - self.lr * (m / c1) / self.denominator(v / c2)

    def step(self, params: dict, grads: dict) -> None:
        for name, p in params.items():
            params[name] = self.update(name, p, grads[name]).astype(p.dtype)


class SimpleRMSprop:
    """torch.optim.RMSprop: ``g += wd p``; ``v = alpha v + (1 - alpha) g^2`` (v_0 = 0);
    centered, ``m = alpha m + (1 - alpha) g`` and ``d = sqrt(v - m^2) + eps``, else
    ``d = sqrt(v) + eps``; with momentum ``b = momentum b + g / d`` (b_0 = 0) and
    ``p -= lr b``, else ``p -= lr g / d``."""

    def __init__(self, spec):
        self.spec = spec
        self.lr = spec.lr
        self.v: dict[str, np.ndarray] = {}
        self.m: dict[str, np.ndarray] = {}
        self.b: dict[str, np.ndarray] = {}

    def decay(self, name: str) -> bool:
        return True

    def square_average(self, name: str, g: np.ndarray) -> np.ndarray:
        """The running average of g^2 after this step (it starts at 0)."""
        a = self.spec.alpha
        return a * self.v.get(name, np.zeros_like(g)) + (1 - a) * g * g

    def denominator(self, v: np.ndarray, m: np.ndarray | None) -> np.ndarray:
        centred = v if m is None else v - m * m
        return np.sqrt(centred) + self.spec.eps

    def update(self, name: str, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        o = self.spec
        if o.weight_decay and self.decay(name):
            g = g + o.weight_decay * p
        v = self.v[name] = self.square_average(name, g)
        m = None
        if o.centered:
            m = self.m[name] = o.alpha * self.m.get(name, np.zeros_like(g)) + (1 - o.alpha) * g
        d = self.denominator(v, m)
        if o.momentum:
            b = self.b[name] = o.momentum * self.b.get(name, np.zeros_like(g)) + g / d
            return p - self.lr * b
        return p - self.lr * g / d

    def step(self, params: dict, grads: dict) -> None:
        for name, p in params.items():
            params[name] = self.update(name, p, grads[name]).astype(p.dtype)


class SimpleAdagrad:
    """torch.optim.Adagrad: ``g += wd p``; ``s = s + g^2`` (s_0 =
    initial_accumulator_value); at step t, ``lr_t = lr / (1 + (t - 1) lr_decay)`` and
    ``p -= lr_t g / (sqrt(s) + eps)``."""

    def __init__(self, spec):
        self.spec = spec
        self.lr = spec.lr
        self.s: dict[str, np.ndarray] = {}
        self.t: dict[str, int] = {}

    def decay(self, name: str) -> bool:
        return True

    def rate(self, t: int) -> float:
        """lr_t of step t (1-based), the rate decayed by lr_decay."""
        return self.lr / (1 + (t - 1) * self.spec.lr_decay)

    def accumulate(self, name: str, g: np.ndarray) -> np.ndarray:
        """The sum of squares after this step."""
        start = np.full_like(g, self.spec.initial_accumulator_value)
        return self.s.get(name, start) + g * g

    def update(self, name: str, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        o = self.spec
        if o.weight_decay and self.decay(name):
            g = g + o.weight_decay * p
        t = self.t[name] = self.t.get(name, 0) + 1
        s = self.s[name] = self.accumulate(name, g)
        return p - self.rate(t) * g / (np.sqrt(s) + o.eps)

    def step(self, params: dict, grads: dict) -> None:
        for name, p in params.items():
            params[name] = self.update(name, p, grads[name]).astype(p.dtype)


# ------------------------------------------------------------------ schedules, clipping
def scheduled_lr(spec, t: int) -> float:
    """lr(t), the rate after t scheduler steps (lr(0) = lr), in closed form.

    step: lr gamma^(t // step_size); exponential: lr gamma^t; inverse_time:
    lr / (1 + decay t); cosine: eta_min + (lr - eta_min) (1 + cos(pi t / t_max)) / 2.
    """
    s, lr = spec.lr_schedule, spec.lr
    if s == "step":
        return lr * spec.gamma ** (t // spec.step_size)
    if s == "exponential":
        return lr * spec.gamma ** t
    if s == "inverse_time":
        return lr / (1 + spec.decay * t)
    if s == "cosine":
        return spec.eta_min + (lr - spec.eta_min) * (1 + math.cos(math.pi * t / spec.t_max)) / 2
    return lr


def clip_by_global_norm(grads: dict, max_norm: float) -> dict:
    """torch.nn.utils.clip_grad_norm_: every gradient times min(1, max_norm / (norm +
    1e-6)), with norm = sqrt(sum over all parameters of sum g^2), one factor for all."""
    norm = math.sqrt(sum(float(np.sum(np.asarray(g, np.float64) ** 2)) for g in grads.values()))
    factor = min(1.0, max_norm / (norm + 1e-6))
    return {k: (g * factor).astype(g.dtype) for k, g in grads.items()}


def clip_by_value(grads: dict, clip_value: float) -> dict:
    """torch.nn.utils.clip_grad_value_: every entry into [-clip_value, clip_value]."""
    return {k: np.clip(g, -clip_value, clip_value) for k, g in grads.items()}


# ------------------------------------------------------------------ the model
class SimpleMLP:
    """A textbook NumPy MLP implementing the ``Classifier`` protocol.

    Constructed as ``SimpleMLP(spec, optimizer)`` (a :class:`harness.ModelSpec` and
    :class:`harness.OptimizerSpec`), so that ``harness.calibrate.simple:SimpleMLP``
    names it as a plug-in backend. Initialised like ``nn.Linear`` (uniform in
    +-1/sqrt(fan_in)) from ``spec.seed``; every array in ``spec.dtype``.
    """

    def __init__(self, spec, optimizer):
        self.spec = spec
        self.optimizer_spec = optimizer
        self.dims = tuple(spec.dims)
        self.activation = spec.activation
        self.dtype = np.dtype(spec.dtype)
        rng = np.random.default_rng(spec.seed)
        self.params: dict[str, np.ndarray] = {}
        for i, (d_in, d_out) in enumerate(zip(self.dims[:-1], self.dims[1:])):
            bound = 1 / math.sqrt(d_in)
            self.params[f"W{i}"] = rng.uniform(-bound, bound, (d_in, d_out)).astype(self.dtype)
            self.params[f"b{i}"] = rng.uniform(-bound, bound, d_out).astype(self.dtype)
        self.optimizer = self.make_optimizer(optimizer)
        self.steps = 0  # optimizer steps taken (torch's scheduler.last_epoch)

    #: the optimizer class for each name this model supports
    OPTIMIZERS = {"sgd": "SGD", "adam": "ADAM", "adamw": "ADAM", "rmsprop": "RMSPROP",
                  "adagrad": "ADAGRAD"}
    SGD: type = SimpleSGD
    ADAM: type = SimpleAdam
    RMSPROP: type = SimpleRMSprop
    ADAGRAD: type = SimpleAdagrad

    def make_optimizer(self, optimizer):
        cls = self.OPTIMIZERS.get(optimizer.name)
        if cls is None:
            raise ValueError(f"{type(self).__name__} supports the optimizers "
                             f"{', '.join(self.OPTIMIZERS)}, got {optimizer.name!r}")
        return getattr(self, cls)(optimizer)

    @property
    def n_layers(self) -> int:
        return len(self.dims) - 1

    # ------------------------------------------------------------ parameters
    def get_params(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.params.items()}

    def set_params(self, params: dict) -> None:
        missing = set(self.params) - set(params)
        extra = set(params) - set(self.params)
        if missing or extra:
            raise ValueError(f"parameters missing {sorted(missing)}, unexpected {sorted(extra)}")
        new = {}
        for name, old in self.params.items():
            value = np.asarray(params[name])
            if value.shape != old.shape:
                raise ValueError(f"parameter {name} must have shape {old.shape}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"parameter {name} has non-finite values")
            new[name] = value.astype(self.dtype, copy=True)
        self.params = new

    def as_float64(self):
        """An independent float64 copy of this model (same class, same parameters)."""
        copy = type(self)(replace(self.spec, dtype="float64"), self.optimizer_spec)
        copy.set_params(self.params)
        return copy

    # ------------------------------------------------------------ pieces a bug overrides
    def act(self, z: np.ndarray) -> np.ndarray:
        return activation(self.activation, z)

    def act_grad(self, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        return activation_grad(self.activation, z, a)

    def log_softmax(self, z: np.ndarray) -> np.ndarray:
        shifted = z - z.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def loss_of(self, logp: np.ndarray, y: np.ndarray) -> float:
        return float(-logp[np.arange(len(y)), y].mean())

    def output_grad(self, logp: np.ndarray, y: np.ndarray) -> np.ndarray:
        dz = np.exp(logp)
        dz[np.arange(len(y)), y] -= 1
        return dz / len(y)

    def weight_grad(self, i: int, a: np.ndarray, dz: np.ndarray) -> np.ndarray:
        return a.T @ dz

    def bias_grad(self, i: int, dz: np.ndarray) -> np.ndarray:
        return dz.sum(axis=0)

    def hidden_grad(self, i: int, da: np.ndarray, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        """dz of hidden layer i from dL/da_{i+1}."""
        return da * self.act_grad(z, a)

    def finish_grads(self, grads: dict) -> dict:
        return grads

    def rate(self, t: int) -> float:
        """The rate of optimizer step t (1-based): lr(t - 1), the scheduler stepping after
        the optimizer."""
        return scheduled_lr(self.optimizer_spec, t - 1)

    def clip(self, grads: dict) -> dict:
        """The gradients the optimizer steps with: clipped by value, then by global norm,
        where the optimizer spec says so (torch: between backward and step)."""
        o = self.optimizer_spec
        if o.clip_grad_value is not None:
            grads = clip_by_value(grads, o.clip_grad_value)
        if o.clip_grad_norm is not None:
            grads = clip_by_global_norm(grads, o.clip_grad_norm)
        return grads

    def apply_step(self, params: dict, grads: dict) -> None:
        """Clip, then step ``params`` (a dict updated in place)."""
        self.optimizer.step(params, self.clip(grads))

    # ------------------------------------------------------------ the protocol
    def _forward(self, x: np.ndarray):
        x = np.asarray(x, dtype=self.dtype)
        zs, acts = [], [x]
        for i in range(self.n_layers):
            z = acts[-1] @ self.params[f"W{i}"] + self.params[f"b{i}"]
            zs.append(z)
            if i < self.n_layers - 1:
                acts.append(self.act(z))
        return zs, acts

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._forward(x)[0][-1]

    def targets(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The one-hot rows of the class indices ``y``, in the logits' dtype."""
        return np.eye(z.shape[1], dtype=z.dtype)[y]

    def elementwise_loss(self, z: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """bce: log(1 + e^z) - z t and its derivative sigmoid(z) - t; mse: k (z - t)^2 and
        2 k (z - t), with k = 1/2 for the quadratic cost."""
        if self.spec.loss == "bce":
            return np.logaddexp(0, z) - z * t, 1 / (1 + np.exp(-z)) - t
        k = 0.5 if self.spec.mse_half else 1.0
        return k * (z - t) ** 2, 2 * k * (z - t)

    def other_loss(self, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """The loss bce or mse of the spec, reduced over the outputs and the batch as it
        says (``loss_outputs``, ``loss_reduction``), and its gradient by the logits."""
        per, grad = self.elementwise_loss(z, self.targets(z, y))
        n, c = z.shape
        scale = ((n if self.spec.loss_reduction == "mean" else 1)
                 * (c if self.spec.loss_outputs == "mean" else 1))
        return float(per.sum() / scale), grad / scale

    def output_loss(self, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """The loss of the logits and its gradient (softmax cross-entropy by default)."""
        if getattr(self.spec, "loss", "cross_entropy") != "cross_entropy":
            return self.other_loss(z, y)
        logp = self.log_softmax(z)
        return self.loss_of(logp, y), self.output_grad(logp, y)

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
        y = np.asarray(y)
        zs, acts = self._forward(x)
        loss, dz = self.output_loss(zs[-1], y)
        dz = dz.astype(self.dtype)
        grads = {}
        for i in reversed(range(self.n_layers)):
            grads[f"W{i}"] = self.weight_grad(i, acts[i], dz).astype(self.dtype)
            grads[f"b{i}"] = self.bias_grad(i, dz).astype(self.dtype)
            if i > 0:
                dz = self.hidden_grad(i - 1, dz @ self.params[f"W{i}"].T, zs[i - 1], acts[i])
        grads = self.finish_grads({k: grads[k] for k in self.params})
        return loss, grads

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss, grads = self.loss_and_grads(x, y)
        self.steps += 1
        self.optimizer.lr = self.rate(self.steps)
        params = dict(self.params)
        self.apply_step(params, grads)
        self.params = params
        return loss

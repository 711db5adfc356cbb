"""A from-scratch NumPy MLP trained with plain SGD, written the way course code is.

Plug it into the harness by name (run from this folder, or put it on PYTHONPATH)::

    nn-harness check --backends torch,mynet_sgd:MyMLP --dataset iris \
        --optimizer sgd --lr 0.1 --weight-decay 0

The harness constructs it as ``MyMLP(spec, optimizer)``: ``spec`` says the layer
widths, the hidden activation, the dtype, the seed and how the loss reduces over a
batch; ``optimizer`` the optimizer and its settings. This class does only what it
implements (relu or tanh, plain SGD, weight decay added to the gradient as
``torch.optim.SGD`` does) and refuses anything else in its constructor, which the
harness reports as "could not build" (exit code 2) instead of comparing something else.
"""

import numpy as np


class MyMLP:
    """Softmax cross-entropy MLP: ``z = a @ W + b``, parameters W0, b0, W1, b1, ..."""

    def __init__(self, spec, optimizer):
        if optimizer.name != "sgd" or optimizer.momentum != 0 or optimizer.nesterov:
            raise ValueError(f"MyMLP trains with plain SGD only (--optimizer sgd, no "
                             f"momentum), got {optimizer.name}")
        if optimizer.weight_decay and (optimizer.weight_decay_in != "optimizer"
                                       or optimizer.weight_decay_on != "all"):
            raise ValueError("MyMLP adds weight decay to every gradient in the update only")
        if spec.activation not in ("relu", "tanh"):
            raise ValueError(f"MyMLP implements relu and tanh, got {spec.activation}")
        self.dims = tuple(spec.dims)
        self.activation = spec.activation
        self.dtype = np.dtype(spec.dtype)
        self.reduction = spec.loss_reduction
        self.lr = optimizer.lr
        self.weight_decay = optimizer.weight_decay
        rng = np.random.default_rng(spec.seed)
        self.params = {}
        for i in range(len(self.dims) - 1):
            fan_in, fan_out = self.dims[i], self.dims[i + 1]
            w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
            self.params[f"W{i}"] = w.astype(self.dtype)
            self.params[f"b{i}"] = np.zeros(fan_out, dtype=self.dtype)

    # ------------------------------------------------------------ the maths
    def _act(self, z):
        return np.maximum(z, 0) if self.activation == "relu" else np.tanh(z)

    def _act_grad(self, z, a):
        return (z > 0).astype(z.dtype) if self.activation == "relu" else 1 - a * a

    def _forward(self, x):
        """Logits and, per hidden layer, (pre-activation, activation)."""
        a = np.asarray(x, dtype=self.dtype)
        cache = [(None, a)]
        n_layers = len(self.dims) - 1
        for i in range(n_layers):
            z = a @ self.params[f"W{i}"] + self.params[f"b{i}"]
            if i == n_layers - 1:
                return z, cache
            a = self._act(z)
            cache.append((z, a))

    def forward(self, x):
        logits, _ = self._forward(x)
        return logits

    def loss_and_grads(self, x, y):
        logits, cache = self._forward(x)
        n = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        losses = -log_p[np.arange(n), y]
        scale = 1.0 / n if self.reduction == "mean" else 1.0
        loss = float(losses.sum() * scale)
        dz = np.exp(log_p)
        dz[np.arange(n), y] -= 1
        dz *= self.dtype.type(scale)
        grads = {}
        for i in reversed(range(len(self.dims) - 1)):
            z_prev, a_prev = cache[i]
            grads[f"W{i}"] = a_prev.T @ dz
            grads[f"b{i}"] = dz.sum(axis=0)
            if i > 0:
                dz = (dz @ self.params[f"W{i}"].T) * self._act_grad(z_prev, a_prev)
        return loss, {k: grads[k] for k in self.params}

    def train_step(self, x, y):
        loss, grads = self.loss_and_grads(x, y)
        for k, g in grads.items():
            if self.weight_decay:
                g = g + self.weight_decay * self.params[k]
            self.params[k] = self.params[k] - self.lr * g
        return loss  # the loss before the update

    # ------------------------------------------------------------ parameters
    def get_params(self):
        return {k: v.copy() for k, v in self.params.items()}

    def set_params(self, params):
        for k, v in params.items():
            if k not in self.params or np.shape(v) != self.params[k].shape:
                raise ValueError(f"{k}: expected shape {self.params.get(k, np.empty(0)).shape}, "
                                 f"got {np.shape(v)}")
            self.params[k] = np.array(v, dtype=self.dtype)  # a copy

"""Deliberately broken backends: each one carries one classic backpropagation bug.

Every class implements the ``Classifier`` protocol and (but for
:class:`GradsWithoutIntermediates`) the ``intermediates`` extension, and plugs in as
``"tests.broken_backends:ClassName"`` (constructed as ``ClassName(spec, optimizer)``).
:class:`Opaque` at the end is not broken: it wraps any model behind the bare protocol.
They share :class:`HookedMLP`, a correct MLP
whose forward and backward passes are spelled out step by step with one overridable
method per step, so that each bug is a few lines and shows up the same way in
``forward``, ``loss_and_grads``, ``intermediates`` and ``train_step``.

The bugs assume the architectures the tests use: layer 1 is square for
:class:`TransposedWeightGrad`, layers 1 and 2 have the same shape for
:class:`SwappedLayerGrads`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from harness.model.specs import ModelSpec, OptimizerSpec
from scratch import MLP
from scratch.activations import ACTIVATIONS, erf
from scratch.losses import log_softmax
from scratch.optimizers import make_optimizer

#: the layer the single-layer bugs break (instances may set ``broken_layer``)
BROKEN_LAYER = 1


class HookedMLP(MLP):
    """A correct MLP, written out one overridable step at a time (the control)."""

    def __init__(self, spec: ModelSpec, optimizer: OptimizerSpec | None = None):
        optimizer = optimizer if optimizer is not None else OptimizerSpec("sgd", lr=0.01, weight_decay=0.0)
        super().__init__(spec.dims, spec.activation, spec.dtype, spec.seed,
                         optimizer=make_optimizer(**optimizer.to_dict()))
        self.spec = spec
        self.optimizer_spec = optimizer
        self.activation = spec.activation
        self.broken_layer = BROKEN_LAYER

    # ---------------------------------------------------------------- the steps
    def act(self, i: int, z: np.ndarray) -> np.ndarray:
        """Hidden activation of layer i."""
        return ACTIVATIONS[self.activation][0](z)

    def act_grad(self, i: int, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        """d a_i / d z_i, element-wise."""
        return ACTIVATIONS[self.activation][1](z, a)

    def linear(self, i: int, a: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a @ W + b

    def probabilities(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(softmax, log-softmax) of the logits, row-wise."""
        logp = log_softmax(logits)
        return np.exp(logp), logp

    def weight_grad(self, i: int, a: np.ndarray, dz: np.ndarray) -> np.ndarray:
        return a.T @ dz

    def bias_grad(self, i: int, dz: np.ndarray) -> np.ndarray:
        return dz.sum(axis=0)

    def backprop(self, i: int, dz: np.ndarray, W: np.ndarray, z_below: np.ndarray,
                 a_below: np.ndarray) -> np.ndarray:
        """dL/dz_{i-1} from dL/dz_i."""
        return (dz @ W.T) * self.act_grad(i - 1, z_below, a_below)

    def finish(self, grads: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """Last look at the parameter gradients."""
        return grads

    # ---------------------------------------------------------------- the pass
    def _pass(self, x, y=None):
        params = self.get_params()
        n_layers = len(self.dims) - 1
        acts, zs = [np.asarray(x, dtype=params["W0"].dtype)], []
        for i in range(n_layers):
            z = self.linear(i, acts[-1], params[f"W{i}"], params[f"b{i}"])
            zs.append(z)
            if i < n_layers - 1:
                acts.append(self.act(i, z))
        if y is None:
            return zs[-1]
        y = np.asarray(y)
        n = len(y)
        rows = np.arange(n)
        probs, logp = self.probabilities(zs[-1])
        loss = float(-logp[rows, y].mean())
        dz = probs.copy()
        dz[rows, y] -= 1
        dz /= n
        dzs: list[np.ndarray] = [None] * n_layers  # type: ignore[list-item]
        grads: dict[str, np.ndarray] = {}
        for i in reversed(range(n_layers)):
            dzs[i] = dz
            grads[f"W{i}"] = self.weight_grad(i, acts[i], dz)
            grads[f"b{i}"] = self.bias_grad(i, dz)
            if i > 0:
                dz = self.backprop(i, dz, params[f"W{i}"], zs[i - 1], acts[i])
        grads = self.finish(grads, n)
        return loss, zs, acts, dzs, {k: grads[k] for k in params}

    # ------------------------------------------------------------ the protocol
    def forward(self, x):
        return self._pass(x)

    def loss_and_grads(self, x, y):
        loss, _, _, _, grads = self._pass(x, y)
        return loss, grads

    def intermediates(self, x, y):
        _, zs, acts, dzs, grads = self._pass(x, y)
        n_layers = len(zs)
        out = {}
        for i in range(n_layers):
            out[f"z{i}"] = zs[i]
            if i < n_layers - 1:
                out[f"a{i}"] = acts[i + 1]
        for i in reversed(range(n_layers)):
            out[f"dz{i}"] = dzs[i]
            out[f"dW{i}"] = grads[f"W{i}"]
            out[f"db{i}"] = grads[f"b{i}"]
        return out

    def train_step(self, x, y):
        # the optimizer updates the live parameters (``self.params``) in place, as in
        # scratch.MLP; NaN gradients give NaN parameters, as in any real backend
        loss, grads = self.loss_and_grads(x, y)
        self.optimizer.step(self.params, grads)
        return loss

    def as_float64(self):
        """The optional hook gradcheck uses: the same model, parameters up-cast to float64."""
        copy = type(self)(replace(self.spec, dtype="float64"), self.optimizer_spec)
        copy.broken_layer = self.broken_layer
        copy.set_params(self.get_params())
        return copy


# ------------------------------------------------- wrong activation derivatives
class WrongReluGrad(HookedMLP):
    """relu'(z) computed as relu(z) itself instead of the 0/1 step."""

    def act_grad(self, i, z, a):
        return a


class WrongTanhGrad(HookedMLP):
    """tanh'(z) computed as 1 - z**2 (the pre-activation squared, not the activation)."""

    def act_grad(self, i, z, a):
        return 1 - z * z


class WrongSigmoidGrad(HookedMLP):
    """sigmoid'(z) computed as z (1 - z) instead of a (1 - a)."""

    def act_grad(self, i, z, a):
        return z * (1 - z)


class WrongLeakyReluGrad(HookedMLP):
    """leaky_relu'(z) without the leak: 0 instead of 0.01 for z <= 0."""

    def act_grad(self, i, z, a):
        return (z > 0).astype(z.dtype)


class WrongGeluGrad(HookedMLP):
    """gelu'(z) computed as Phi(z) alone, forgetting the z * phi(z) term."""

    def act_grad(self, i, z, a):
        return (0.5 * (1 + erf(z / np.sqrt(2)))).astype(z.dtype)


#: activation name -> the class with the wrong derivative of it
WRONG_DERIVATIVES = {
    "relu": WrongReluGrad,
    "tanh": WrongTanhGrad,
    "sigmoid": WrongSigmoidGrad,
    "leaky_relu": WrongLeakyReluGrad,
    "gelu": WrongGeluGrad,
}


# ------------------------------------------------------------ single-layer bugs
class GradTimesN(HookedMLP):
    """Layer 1's weight gradient is summed over the batch, not averaged: N times too large."""

    def finish(self, grads, n):
        k = self.broken_layer
        grads[f"W{k}"] = grads[f"W{k}"] * n
        return grads


class TransposedWeightGrad(HookedMLP):
    """Layer 1's weight gradient is dz^T a instead of a^T dz (needs a square layer 1)."""

    def weight_grad(self, i, a, dz):
        g = a.T @ dz
        return g.T if i == self.broken_layer else g


class SwappedLayerGrads(HookedMLP):
    """The gradients of layers 1 and 2 (same shape) are returned under each other's names."""

    def finish(self, grads, n):
        for p in ("W", "b"):
            grads[f"{p}1"], grads[f"{p}2"] = grads[f"{p}2"], grads[f"{p}1"]
        return grads


class MissingMask(HookedMLP):
    """The backward step into layer 1 forgets to multiply by the activation's derivative."""

    def backprop(self, i, dz, W, z_below, a_below):
        if i - 1 == self.broken_layer:
            return dz @ W.T
        return super().backprop(i, dz, W, z_below, a_below)


class NaiveSoftmax(HookedMLP):
    """softmax as exp(z) / sum exp(z), without subtracting the row maximum.

    Right for small logits; on large ones exp overflows to inf and the loss and
    gradients become NaN.
    """

    def probabilities(self, logits):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            e = np.exp(logits)
            p = e / e.sum(axis=1, keepdims=True)
            return p, np.log(p)


class MissingBias(HookedMLP):
    """A forward bug: layer 1 never adds its bias (yet reports a gradient for it)."""

    def linear(self, i, a, W, b):
        return a @ W if i == self.broken_layer else a @ W + b


class GradsWithoutIntermediates(GradTimesN):
    """GradTimesN without the intermediates extension: only the parameter-level verdict."""

    intermediates = None  # type: ignore[assignment]  # blocks the protocol member


class Opaque:
    """Not broken: a user's class that exposes the protocol and nothing else.

    Wraps another model; no ``intermediates``, no ``activation``, no ``as_float64``,
    so checks see it the way they see the most minimal plug-in.
    """

    def __init__(self, inner):
        self.inner = inner
        self.dims = inner.dims

    def forward(self, x):
        return self.inner.forward(x)

    def loss_and_grads(self, x, y):
        return self.inner.loss_and_grads(x, y)

    def get_params(self):
        return self.inner.get_params()

    def set_params(self, params):
        self.inner.set_params(params)

    def train_step(self, x, y):
        return self.inner.train_step(x, y)

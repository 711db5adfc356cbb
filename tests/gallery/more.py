"""Smaller mistakes, one class each."""

import numpy as np

from tests.gallery.base import Net as _Base


class BiasSummed(_Base):
    """db summed over an un-averaged dz: N times too large."""

    def bias_grad(self, dz):
        return dz.sum(axis=0) * self._n

    def loss_and_grads(self, x, y):
        self._n = len(y)
        return super().loss_and_grads(x, y)


class FlippedSign(_Base):
    """dlogits as onehot - softmax."""

    def dlogits(self, logits, y):
        return -super().dlogits(logits, y)


class TransposedGrad(_Base):
    """dW computed as dz.T @ a: shape (out, in)."""

    def backward(self, zs, acts, dz):
        grads = super().backward(zs, acts, dz)
        return {k: (g.T if k.startswith("W") else g) for k, g in grads.items()}


class LogProbs(_Base):
    """forward returns log-probabilities."""

    def output(self, logits):
        m = logits.max(axis=1, keepdims=True)
        return logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))


class NaiveSoftmax(_Base):
    """log(softmax(z)) with exp(z) unshifted: overflows for large logits."""

    def softmax(self, z):
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def loss(self, logits, y):
        p = self.softmax(logits)
        return -np.mean(np.log(p[np.arange(len(y)), y]))


class PlainSGD(_Base):
    """Ignores the optimizer it is given: always SGD with the given lr, no decay."""

    def update(self, key, p, g):
        return p - self.opt.lr * g


class DecayWeightsOnly(_Base):
    """Weight decay in the optimizer, but not on biases."""

    def decays(self, key):
        return key.startswith("W")


class Float32Dot(_Base):
    """float64 arrays, but the products computed in float32."""

    def _forward(self, x):
        a = np.asarray(x, dtype=self.dtype)
        acts, zs = [a], []
        n_layers = len(self.dims) - 1
        for i in range(n_layers):
            z = (a.astype(np.float32) @ self.params[f"W{i}"].astype(np.float32)).astype(
                self.dtype) + self.params[f"b{i}"]
            zs.append(z)
            if i < n_layers - 1:
                a = self.activation(z)
                acts.append(a)
        return zs, acts

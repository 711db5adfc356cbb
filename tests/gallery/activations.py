"""Activation mistakes: gelu in its tanh approximation (forward and derivative), and the
sigmoid's derivative computed from z instead of from sigmoid(z)."""

import math

import numpy as np

from tests.gallery.base import Net as _Base

_C = math.sqrt(2 / math.pi)


class GeluTanh(_Base):
    def activation(self, z):
        return 0.5 * z * (1 + np.tanh(_C * (z + 0.044715 * z ** 3)))

    def activation_grad(self, z, a):
        u = _C * (z + 0.044715 * z ** 3)
        th = np.tanh(u)
        return 0.5 * (1 + th) + 0.5 * z * (1 - th ** 2) * _C * (1 + 3 * 0.044715 * z ** 2)


class SigmoidPrime(_Base):
    def activation_grad(self, z, a):
        return z * (1 - z)  # should be a * (1 - a)

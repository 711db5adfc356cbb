"""An element-wise activation as a layer, around :mod:`scratch.activations`."""

from __future__ import annotations

import numpy as np

from scratch.activations import ACTIVATIONS, LEAKY_SLOPE


class Activation:
    """a = f(z) element-wise, for f one of ``scratch.activations.ACTIVATIONS``.

    Parameters
    ----------
    name : str
        ``relu``, ``tanh``, ``sigmoid``, ``leaky_relu`` or ``gelu``.
    slope : float
        The negative slope of ``leaky_relu`` (ignored by the others).
    """

    def __init__(self, name: str, slope: float = LEAKY_SLOPE):
        if name not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, "
                             f"got {name!r}")
        self.name = name
        self.slope = float(slope)
        self.grads: dict[str, np.ndarray] = {}
        self.z = self.a = None

    def _f(self, z: np.ndarray) -> np.ndarray:
        if self.name == "leaky_relu":  # z where z > 0, else slope * z
            return np.where(z > 0, z, z * z.dtype.type(self.slope))
        return ACTIVATIONS[self.name][0](z)

    def _f_grad(self, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        if self.name == "leaky_relu":  # 1 where z > 0, else slope (the left slope at 0)
            return np.where(z > 0, z.dtype.type(1), z.dtype.type(self.slope))
        return ACTIVATIONS[self.name][1](z, a)

    def forward(self, z: np.ndarray, train: bool = True) -> np.ndarray:
        """(N, D) -> (N, D)."""
        self.z, self.a = z, self._f(z)
        return self.a

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dz = dout * f'(z), (N, D) -> (N, D)."""
        return dout * self._f_grad(self.z, self.a)

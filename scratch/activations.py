"""Hidden-layer activations, each forward function beside its derivative.

Every derivative takes the pre-activation ``z`` and the activation ``a = f(z)``
(both of shape (N, d)) and returns ``da/dz`` element-wise, shape (N, d); some use
``z``, some reuse ``a`` to save work.  The derivative at a kink (``z == 0`` for
relu and leaky_relu) is the one torch uses: the left-hand slope.

Every function keeps the dtype of ``z`` (float32 stays float32). At the end,
:func:`activate_inplace` applies an activation in place for the fast model.
"""

from __future__ import annotations

import math

import numpy as np

LEAKY_SLOPE = 0.01


def relu(z: np.ndarray) -> np.ndarray:
    """max(z, 0), element-wise."""
    return np.maximum(z, 0)


def relu_grad(z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """1 where z > 0, else 0."""
    return (z > 0).astype(z.dtype)


def leaky_relu(z: np.ndarray) -> np.ndarray:
    """z where z > 0, else 0.01 z."""
    return np.where(z > 0, z, z * z.dtype.type(LEAKY_SLOPE))


def leaky_relu_grad(z: np.ndarray, a: np.ndarray) -> np.ndarray:
    """1 where z > 0, else 0.01."""
    return np.where(z > 0, z.dtype.type(1), z.dtype.type(LEAKY_SLOPE))


def tanh(z: np.ndarray) -> np.ndarray:
    return np.tanh(z)


def tanh_grad(z: np.ndarray, a: np.ndarray) -> np.ndarray:
    # d tanh(z) / dz = 1 - tanh(z)^2
    return 1 - a * a


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), computed as exp(-log(1 + exp(-z))) so it never overflows."""
    return np.exp(-np.logaddexp(0, -z))


def sigmoid_grad(z: np.ndarray, a: np.ndarray) -> np.ndarray:
    # d sigma(z) / dz = sigma(z) (1 - sigma(z))
    return a * (1 - a)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function to float64 precision, with NumPy alone.

    For |x| <= 3 the series erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (2n+1)!!
    (all terms positive: no cancellation); beyond, erfc from its continued fraction
    erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))).

    Parameters
    ----------
    x : ndarray of any shape

    Returns
    -------
    ndarray of float64, same shape
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    small = np.abs(x) <= 3.0

    xs = x[small]
    term = xs.copy()
    total = xs.copy()
    x2 = xs * xs
    for n in range(1, 200):  # converges in at most ~60 terms for |x| <= 3
        term *= 2 * x2 / (2 * n + 1)
        total += term
        if not np.any(np.abs(term) > 1e-17 * np.abs(total)):
            break
    out[small] = 2 / math.sqrt(math.pi) * np.exp(-x2) * total

    xl = np.abs(x[~small])
    fraction = xl.copy()
    for k in range(60, 0, -1):  # evaluated from the tail; 60 terms suffice for x > 3
        fraction = xl + (k / 2) / fraction
    erfc = np.exp(-xl * xl) / (math.sqrt(math.pi) * fraction)
    out[~small] = np.sign(x[~small]) * (1 - erfc)
    return out


_SQRT_HALF = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def gelu(z: np.ndarray) -> np.ndarray:
    """z * Phi(z), with Phi the standard normal CDF (torch's exact erf form)."""
    phi_cdf = 0.5 * (1 + erf(z * _SQRT_HALF))
    return (z * phi_cdf).astype(z.dtype, copy=False)


def gelu_grad(z: np.ndarray, a: np.ndarray) -> np.ndarray:
    # d/dz [z Phi(z)] = Phi(z) + z phi(z), with phi the standard normal density
    phi_cdf = 0.5 * (1 + erf(z * _SQRT_HALF))
    density = _INV_SQRT_2PI * np.exp(-0.5 * np.square(z, dtype=np.float64))
    return (phi_cdf + z * density).astype(z.dtype, copy=False)


#: name -> (forward, derivative); the one list of activations the project knows.
ACTIVATIONS = {
    "relu": (relu, relu_grad),
    "tanh": (tanh, tanh_grad),
    "sigmoid": (sigmoid, sigmoid_grad),
    "leaky_relu": (leaky_relu, leaky_relu_grad),
    "gelu": (gelu, gelu_grad),
}


# ------------------------------------------------------------ in place, for scratch.model
def relu_inplace(z: np.ndarray, zeros: np.ndarray, mask: np.ndarray | None = None
                 ) -> np.ndarray | None:
    """Overwrite ``z`` with max(z, 0); with ``mask``, fill it with relu'(z) = (z > 0).

    Parameters
    ----------
    z : ndarray of shape (N, d)
        Pre-activations; overwritten with the activations.
    zeros : ndarray of z's dtype, all zero, of shape (N, d) or 0-d
        A preallocated zero: on small arrays NumPy's ufuncs run about twice as fast
        against a full zero array as against the Python scalar 0; on big ones a 0-d
        zero is as fast and costs no memory.
    mask : bool ndarray of shape (N, d), optional
        Receives z > 0, the derivative the backward pass multiplies by.

    Returns
    -------
    mask (or None without one)
    """
    if mask is not None:
        np.greater(z, zeros, out=mask)
    np.maximum(z, zeros, out=z)
    return mask


def activate_inplace(name: str, z: np.ndarray, zeros: np.ndarray | None = None,
                     mask: np.ndarray | None = None, need_deriv: bool = True
                     ) -> np.ndarray | None:
    """Overwrite ``z`` (N, d) with a = f(z) and return f'(z), for dz = dL/da * f'(z).

    relu works in place in the caller's buffers (``zeros``, ``mask``: see
    :func:`relu_inplace`); the other activations call the functions above, which
    allocate. Returns None when ``need_deriv`` is False (a forward pass only).
    """
    if name == "relu":
        return relu_inplace(z, zeros, mask if need_deriv else None)
    f, f_grad = ACTIVATIONS[name]
    a = f(z)
    deriv = f_grad(z, a) if need_deriv else None
    np.copyto(z, a)
    return deriv

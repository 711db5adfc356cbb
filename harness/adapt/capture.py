"""The gradient of code that updates its own weights inside ``backward``.

Much published code has no gradient to hand out: each layer's ``backward(grad,
learning_rate)`` steps its weights at once (``w -= learning_rate * dw``). The gradient
the harness asks for is then read off one such update: snapshot the parameters, run the
code's pass with a learning rate of 2**30, read ``g = (before - after) / 2**30``, put
the snapshot back. The rate is a power of two, so ``lr * g`` is exact and the one
rounding left is that of ``p - lr * g``: relative to g, the dtype's epsilon (a rate of 1
would leave an error of eps * |p| / |g|, large for a small gradient).

It needs the plain update ``p -= lr * g`` (no momentum, no decay, no clipping in the
code's step): a pass that does more is not a gradient read this way.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: the learning rate the capture runs the code's update with: a power of two
CAPTURE_LR = 2.0 ** 30


def captured_gradients(binding, root, run: Callable[[float], object],
                       lr: float = CAPTURE_LR) -> tuple[object, dict[str, np.ndarray]]:
    """Run ``run(lr)`` (the code's training pass, updating in place with the rate it is
    given) and return ``(what run returned, gradients)``; the parameters are as before.

    Parameters
    ----------
    binding : Binding
        The code's parameters (:func:`harness.adapt.binding.bind`).
    root : object
        What the binding's paths start from (the adapter).
    run : callable
        ``run(lr)``: one forward and backward pass of the code, stepping with ``lr``.
    """
    before = binding.get(root)
    result = run(lr)
    after = binding.get(root)
    binding.put(root, before)
    return result, {k: (before[k] - after[k]) / before[k].dtype.type(lr) for k in before}

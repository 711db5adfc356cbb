"""Plain SGD with momentum and torch's weight decay, on canonical arrays.

The update of ``torch.optim.SGD`` with dampening 0 and no Nesterov, for one step::

    d = g + weight_decay * p          # torch's decay, on every parameter or the weights
    buf = d (first step), momentum * buf + d (later ones)
    p = p - lr * buf                  # p - lr * d without momentum

It is the default :meth:`harness.adapt.Adapter.step`: code with no optimizer of its own
gets it through the binding, in the canonical names.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

import numpy as np

from harness.errors import ConfigError


def decays(optimizer, name: str) -> bool:
    """Whether ``optimizer``'s weight decay acts on the canonical parameter ``name``:
    every parameter (``weight_decay_on="all"``) or the weights ``W{k}`` only."""
    return optimizer.weight_decay_on == "all" or name.startswith("W")


def decay_of(optimizer) -> float:
    """The weight decay the optimizer adds to the gradients: ``weight_decay`` when it acts
    in the optimizer (torch's), 0 when it is a term of the loss."""
    return float(optimizer.weight_decay) if optimizer.weight_decay_in == "optimizer" else 0.0


def decayed(optimizer, params: Mapping[str, np.ndarray],
            grads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``g + weight_decay * p`` for each parameter the decay acts on, ``g`` for the others."""
    wd = decay_of(optimizer)
    return {k: (grads[k] + wd * params[k]) if wd and decays(optimizer, k) else grads[k]
            for k in params}


def sgd_step(optimizer, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray],
             buffers: MutableMapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One step of torch.optim.SGD (dampening 0, no Nesterov) on canonical arrays.

    Parameters
    ----------
    optimizer : OptimizerSpec
        ``lr``, ``momentum``, ``weight_decay``, ``weight_decay_in``, ``weight_decay_on``.
    params, grads : mapping of str to ndarray
        Canonical parameters and their gradients, the same names and shapes.
    buffers : mutable mapping of str to ndarray
        The momentum buffers, updated in place: empty before the first step, where each
        buffer starts as that step's (decayed) gradient, as torch's does.

    Returns
    -------
    dict of str to ndarray
        The new parameters (fresh arrays; ``params`` is left as it was).

    Raises
    ------
    ConfigError
        Nesterov momentum, which this step does not take.
    """
    if optimizer.nesterov:
        raise ConfigError("this step is plain sgd with momentum: not nesterov")
    momentum, out = float(optimizer.momentum), {}
    for k, d in decayed(optimizer, params, grads).items():
        if momentum:
            d = buffers[k] = np.array(d, copy=True) if k not in buffers else \
                momentum * buffers[k] + d
        out[k] = params[k] - optimizer.lr * d
    return out

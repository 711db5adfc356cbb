"""The one place where the canonical layout meets nn.Linear's.

Canonical: ``W{i}`` of shape (d_i, d_{i+1}), z = a @ W + b.
nn.Linear: ``weight`` of shape (d_{i+1}, d_i), z = a @ weight.T + bias.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def linear_to_canonical(layers: list[nn.Linear] | nn.ModuleList, *, grad: bool = False
                        ) -> dict[str, np.ndarray]:
    """Parameters (or, with ``grad=True``, their ``.grad``) as canonical NumPy copies."""
    out: dict[str, np.ndarray] = {}
    for i, layer in enumerate(layers):
        w, b = (layer.weight.grad, layer.bias.grad) if grad else (layer.weight, layer.bias)
        if w is None or b is None:
            w = torch.zeros_like(layer.weight) if w is None else w
            b = torch.zeros_like(layer.bias) if b is None else b
        out[f"W{i}"] = w.detach().T.cpu().numpy().copy()
        out[f"b{i}"] = b.detach().cpu().numpy().copy()
    return out


def canonical_to_linear(params: dict[str, np.ndarray], layers: list[nn.Linear] | nn.ModuleList
                        ) -> None:
    """Copy canonical ``params`` into the layers' weights and biases, in place."""
    with torch.no_grad():
        for i, layer in enumerate(layers):
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(params[f"W{i}"].T)))
            layer.bias.copy_(torch.from_numpy(np.ascontiguousarray(params[f"b{i}"])))


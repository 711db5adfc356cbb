"""The activation names and constants that the model specification and the layer grammar
share (one home, imported by both)."""

from __future__ import annotations

#: the hidden activations every built-in backend implements (each keeps its own table
#: under these names; tests/test_layering.py checks that they agree)
ACTIVATION_NAMES: tuple[str, ...] = ("relu", "tanh", "sigmoid", "leaky_relu", "gelu")
#: the negative slope of ``leaky_relu``, the same in every backend
LEAKY_RELU_SLOPE: float = 0.01

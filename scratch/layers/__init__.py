"""Layers of a network, one short module per concept, each forward beside its backward.

Every layer is a small object with ``forward(x, train)`` and ``backward(dout)``:
``forward`` keeps in the object what ``backward`` needs (its cache), ``backward``
returns dL/dx and leaves the gradients of the layer's parameters in ``self.grads``
(canonical names, e.g. ``{"W0": ..., "b0": ...}``). A layer with parameters reads them
from the network's dictionary ``params`` under its canonical names, so an optimizer
that updates that dictionary updates the layer. ``train`` is True for a training pass
(batch statistics, dropout on) and False for evaluation.

Modules: :mod:`scratch.layers.linear`, :mod:`scratch.layers.activation`,
:mod:`scratch.layers.batchnorm`, :mod:`scratch.layers.layernorm`,
:mod:`scratch.layers.dropout`; :mod:`scratch.sequential` stacks them.
"""

from scratch.layers.activation import Activation
from scratch.layers.batchnorm import BatchNorm
from scratch.layers.dropout import Dropout
from scratch.layers.layernorm import LayerNorm
from scratch.layers.linear import Linear

__all__ = ["Activation", "BatchNorm", "Dropout", "LayerNorm", "Linear"]

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
:mod:`scratch.layers.dropout`; for images :mod:`scratch.layers.conv2d` (the loops) and
:mod:`scratch.layers.conv2d_fast` (im2col), :mod:`scratch.layers.pool`,
:mod:`scratch.layers.flatten`; :mod:`scratch.sequential` stacks them.
"""

from scratch.layers.activation import Activation
from scratch.layers.batchnorm import BatchNorm
from scratch.layers.conv2d import Conv2dNaive
from scratch.layers.conv2d_fast import Conv2d
from scratch.layers.dropout import Dropout
from scratch.layers.flatten import Flatten
from scratch.layers.layernorm import LayerNorm
from scratch.layers.linear import Linear
from scratch.layers.pool import AvgPool2d, MaxPool2d

__all__ = ["Activation", "AvgPool2d", "BatchNorm", "Conv2d", "Conv2dNaive", "Dropout",
           "Flatten", "LayerNorm", "Linear", "MaxPool2d"]

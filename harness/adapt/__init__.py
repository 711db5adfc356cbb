"""Wrapping published code in the ``Classifier`` protocol in a few lines.

* :mod:`harness.adapt.paths`: where an array lives in the code (``layers[2].W``).
* :mod:`harness.adapt.binding`: canonical names bound to those places, with the
  protocol's checks (:func:`bind`, :class:`Binding`).
* :mod:`harness.adapt.inputs`: features x samples, one-hot labels, a loss where the code
  has none, per-sample results summed into the batch's.
* :mod:`harness.adapt.capture`: the gradient of code that steps inside ``backward``.
* :mod:`harness.adapt.settings`: optimizer settings under the code's own names.
* :mod:`harness.adapt.sgd`: torch's SGD with momentum and weight decay, the default step.
* :mod:`harness.adapt.base`: :class:`Adapter`, the protocol around all of it.
* :mod:`harness.adapt.layers`: networks of layer objects built from the spec's layer list
  (:func:`build_layers`, :func:`forward_layers`, :func:`backward_layers`,
  :class:`LayerObjects`).
* :mod:`harness.adapt.functions`: networks of cs231n-style function pairs with caches
  (:class:`LayerFunctions`, :class:`FunctionNet`, :class:`FunctionLayers`).

docs/adapt.md shows each on a published style of network.
"""

from harness.adapt.base import Adapter
from harness.adapt.binding import Binding, bind, initial_buffers, initial_params
from harness.adapt.capture import captured_gradients
from harness.adapt.functions import FunctionLayers, FunctionNet, LayerFunctions
from harness.adapt.inputs import as_columns, loss_and_dlogits, one_hot, per_sample
from harness.adapt.layers import (
    RETURNS,
    STORES,
    LayerCalls,
    LayerObjects,
    backward_layers,
    build_layers,
    forward_layers,
    layer_paths,
)
from harness.adapt.settings import code_settings
from harness.adapt.sgd import sgd_step

__all__ = ["RETURNS", "STORES", "Adapter", "Binding", "FunctionLayers", "FunctionNet",
           "LayerCalls", "LayerFunctions", "LayerObjects", "as_columns", "backward_layers",
           "bind", "build_layers", "captured_gradients", "code_settings", "forward_layers",
           "initial_buffers", "initial_params", "layer_paths", "loss_and_dlogits", "one_hot",
           "per_sample", "sgd_step"]

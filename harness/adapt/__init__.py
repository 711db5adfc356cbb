"""Wrapping published code in the ``Classifier`` protocol in a few lines.

* :mod:`harness.adapt.paths`: where an array lives in the code (``layers[2].W``).
* :mod:`harness.adapt.binding`: canonical names bound to those places, with the
  protocol's checks (:func:`bind`, :class:`Binding`).
* :mod:`harness.adapt.inputs`: features x samples, one-hot labels, a loss where the code
  has none, per-sample results summed into the batch's.
* :mod:`harness.adapt.capture`: the gradient of code that steps inside ``backward``.
* :mod:`harness.adapt.settings`: optimizer settings under the code's own names.
* :mod:`harness.adapt.base`: :class:`Adapter`, the protocol around all of it.

docs/adapt.md shows each on a published style of network.
"""

from harness.adapt.base import Adapter
from harness.adapt.binding import Binding, bind, initial_buffers, initial_params
from harness.adapt.capture import captured_gradients
from harness.adapt.inputs import as_columns, loss_and_dlogits, one_hot, per_sample
from harness.adapt.settings import code_settings

__all__ = ["Adapter", "Binding", "as_columns", "bind", "captured_gradients", "code_settings",
           "initial_buffers", "initial_params", "loss_and_dlogits", "one_hot", "per_sample"]

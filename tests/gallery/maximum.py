"""ReLU written with the reduction ``np.max(z, 0)`` instead of ``np.maximum(z, 0)``."""

import numpy as np

from tests.gallery.base import Net as _Base


class Net(_Base):
    def activation(self, z):
        return np.max(z, 0)  # the largest entry of each column, not max(z, 0) element-wise

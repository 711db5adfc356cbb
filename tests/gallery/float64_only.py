"""Ignores ``spec.dtype``: everything is float64, whatever was asked."""

import numpy as np

from tests.gallery.base import Net as _Base


class Net(_Base):
    def __init__(self, spec, optimizer):
        super().__init__(spec, optimizer)
        self.dtype = np.dtype("float64")
        self.params = {k: v.astype(np.float64) for k, v in self.params.items()}

"""Adam without bias correction (m and v used as they are, not divided by 1 - beta^t)."""

import numpy as np

from tests.gallery.base import Net as _Base


class Net(_Base):
    def adam_direction(self, key, g):
        b1, b2 = self.opt.betas
        m, v = self.state.get(key, (np.zeros_like(g), np.zeros_like(g)))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        self.state[key] = (m, v)
        return m / (np.sqrt(v) + self.opt.eps)

"""Raises in forward: a shape assertion that is wrong for any batch but one row."""

from tests.gallery.base import Net as _Base


class Net(_Base):
    def forward(self, x):
        assert x.shape[0] == 1, f"expected one sample, got {x.shape}"
        return super().forward(x)

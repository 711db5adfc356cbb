"""Prints while imported (a leftover debugging line); otherwise correct."""

from tests.gallery.base import Net as _Base

print("loading my network ...")


class Net(_Base):
    pass

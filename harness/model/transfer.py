"""Moving parameters between backends."""

from __future__ import annotations

from harness.errors import ConfigError
from harness.model.protocol import Classifier


def copy_params(src: Classifier, dst: Classifier) -> None:
    """Copy ``src``'s parameters into ``dst`` (canonical layout; ``dst`` casts to its dtype)."""
    if tuple(src.dims) != tuple(dst.dims):
        raise ConfigError(f"cannot copy parameters between dims {tuple(src.dims)} "
                          f"and {tuple(dst.dims)}")
    dst.set_params(src.get_params())

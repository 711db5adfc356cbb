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
    copy_buffers(src, dst)


def has_buffers(model) -> bool:
    """Whether ``model`` has the optional members ``get_buffers`` and ``set_buffers``."""
    return callable(getattr(model, "get_buffers", None)) and callable(
        getattr(model, "set_buffers", None))


def copy_buffers(src, dst) -> None:
    """Copy ``src``'s buffers (batch norm's running statistics) into ``dst`` when both have
    them; buffers are not parameters, but a comparison starts from the same ones."""
    if has_buffers(src) and has_buffers(dst):
        buffers = src.get_buffers()
        if buffers:
            dst.set_buffers(buffers)


def model_state(model) -> dict:
    """The parameters, then the buffers (``running_mean0``, ...), of ``model``."""
    state = dict(model.get_params())
    if has_buffers(model):
        state.update(model.get_buffers())
    return state

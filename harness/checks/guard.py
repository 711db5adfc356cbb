"""A plug-in backend behind a guard: its exceptions become findings, not crashes.

A user's class may raise anywhere (a NumPy reduction used for ``maximum``, a shape it
did not expect). Wrapped by :class:`Guarded`, every protocol method that raises
raises :class:`harness.errors.BackendRaised` instead, naming the backend and the
method, with the original exception attached (one that runs past ``--timeout`` is
interrupted where it is, see :mod:`harness.runtime.deadline`); the checks layer
turns that into a FAIL row with the innermost frame in the user's own file. Built-in backends are not
wrapped: the harness trusts them, and their exceptions are bugs to see whole.
"""

from __future__ import annotations

import os

from harness.errors import BackendRaised, HarnessError
from harness.model.contract import check_return
from harness.runtime.deadline import current_limit, time_limit

#: the methods a guard watches
GUARDED_METHODS = ("forward", "loss_and_grads", "get_params", "set_params", "train_step",
                   "intermediates", "as_float64")


class Guarded:
    """``model`` with every protocol method's exceptions turned into BackendRaised.

    Attributes other than the guarded methods are the model's own (read through).
    """

    def __init__(self, model, name: str):
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_name", name)

    @property
    def wrapped(self):
        """The model itself."""
        return self._model

    def __getattr__(self, attr):
        value = getattr(self._model, attr)
        if attr in GUARDED_METHODS and callable(value):
            name = self._name

            model = self._model

            def call(*args, **kwargs):
                try:
                    with time_limit(current_limit()):
                        result = value(*args, **kwargs)
                    # a value the contract does not allow is named here, before any maths
                    check_return(model, attr, result, args)
                    return result
                except HarnessError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any failure of the code under test
                    raise BackendRaised(name, attr, exc) from exc

            call.__name__ = attr
            return call
        return value

    def __setattr__(self, attr, value):
        setattr(self._model, attr, value)

    def __repr__(self) -> str:
        return f"Guarded({self._model!r})"


def unwrap(model):
    """The model behind a guard (or ``model`` itself)."""
    return model.wrapped if isinstance(model, Guarded) else model


def user_frame(exc: BaseException) -> tuple[str, str] | None:
    """``("file.py:LINE", source line)`` of the innermost frame of ``exc`` in user code.

    User code is anything outside the harness, the standard library and installed
    packages (see :mod:`harness.model.userframe`): a bad ``max(x, 0)`` points at the user's
    line, not at NumPy's reduction. None when there is no such frame.
    """
    from harness.model.userframe import user_frame as innermost

    if getattr(exc, "where", None):  # a contract violation: the method's own def line
        return exc.where, exc.source or ""
    frame = innermost(exc)
    if frame is None:
        return None
    return f"{os.path.basename(frame.filename)}:{frame.lineno}", (frame.line or "").strip()

"""Every exception the harness raises, in one place.

Library code raises these; only the CLI turns them into messages and exit codes:

* :class:`ConfigError` (and its subclasses) means bad input or usage: exit code 2.
* :class:`NumericalError` means a computation produced NaN or inf: exit code 1.

``ConfigError`` derives from :class:`ValueError` so that callers who catch
``ValueError`` (as the ``Classifier`` protocol promises for ``set_params``) keep working.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose."""


class ConfigError(HarnessError, ValueError):
    """Bad input or usage: an argument, a specification, a file or a data set."""


class ParamError(ConfigError):
    """A parameter dictionary does not fit the model (name, shape, dtype or value)."""


class WeightsError(ParamError):
    """A weights file cannot be used: unreadable, or its tensors do not fit the model."""


class DataError(ConfigError):
    """A data set cannot be used as given (missing column, NaN, a single class, ...)."""


class ProtocolError(ConfigError):
    """A user-supplied class cannot be imported or does not implement ``Classifier``."""


class BuildRefused(ProtocolError):
    """A user's class refused a configuration: its constructor raised for this spec or
    optimizer (a depth, an optimizer or a convention it does not implement).

    ``backend`` names the class; the conformance suite skips what it refuses, with
    the reason, where every other command treats it as bad input.
    """

    def __init__(self, message: str, *, backend: str | None = None):
        super().__init__(message)
        self.backend = backend


class NumericalError(HarnessError, ArithmeticError):
    """A loss or parameter became NaN or inf while running."""

    def __init__(self, message: str, *, step: int | None = None, backend: str | None = None,
                 backends: tuple = (), followed: dict | None = None,
                 grew: dict | None = None, stayed: tuple = ()):
        super().__init__(message)
        self.step = step
        self.backend = backend
        self.backends = tuple(backends) or ((backend,) if backend else ())
        #: the backends still finite at ``step`` that diverged when trained on alone:
        #: name -> (step, loss) (:mod:`harness.training.follow`)
        self.followed = dict(followed or {})
        #: the others whose loss grew a hundredfold but stayed finite: name -> (step, loss)
        self.grew = dict(grew or {})
        #: the backends and followers trained on alone that stayed finite to the run's end
        self.stayed = tuple(stayed)


class BackendRaised(HarnessError):
    """The code under test raised inside one of its protocol methods.

    Not bad input and not a harness bug: a finding about the backend. The checks
    layer turns it into a FAIL with the method, the exception and the innermost frame
    in the backend's own file. ``original`` is the exception the backend raised.
    """

    def __init__(self, backend: str, method: str, original: BaseException):
        super().__init__(f"{backend}.{method} raised {type(original).__name__}: {original}")
        self.backend = backend
        self.method = method
        self.original = original

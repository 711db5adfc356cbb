"""A time limit on one call into the code under test (``--timeout``).

A plug-in that hangs is a finding, not a stuck run: :func:`time_limit` interrupts a
call that runs past its limit by raising :class:`CallTimedOut` inside it, where it
was, so the guard (:mod:`harness.checks.guard`) reports it as the method that did not
return, with the line of the user's code it was at.

How the call is interrupted depends on the thread it runs in:

* the main thread: ``SIGALRM`` (``signal.setitimer``); its handler raises, which also
  ends a ``time.sleep`` or a blocking read;
* any other thread (a sweep's Dask worker): a watchdog timer raises the exception in
  the calling thread (``PyThreadState_SetAsyncExc``), which takes effect at the next
  Python instruction; a call blocked inside one C function that never returns to
  Python is interrupted only when it does.

The limit in force is set for a block of work with :func:`call_limit` (the command
line's ``--timeout``) and read by :func:`current_limit`; nested limits do not re-arm.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import threading
from collections.abc import Iterator

_STATE = threading.local()
_DEFAULT: list[float | None] = [None]  # process-wide, for threads that set none


class CallTimedOut(Exception):
    """A call into the code under test did not return within its time limit."""


def current_limit() -> float | None:
    """Seconds one call may take in this thread (None: no limit)."""
    return getattr(_STATE, "limit", _DEFAULT[0])


@contextlib.contextmanager
def call_limit(seconds: float | None, *, process_wide: bool = True) -> Iterator[None]:
    """Calls guarded inside the block may take at most ``seconds`` each.

    ``process_wide`` also sets it for threads that set no limit of their own (the
    command line: its worker threads inherit the limit), restored on exit.
    """
    before, before_default = getattr(_STATE, "limit", None), _DEFAULT[0]
    _STATE.limit = seconds
    if process_wide:
        _DEFAULT[0] = seconds
    try:
        yield
    finally:
        _STATE.limit = before
        if before is None:
            del _STATE.limit
        _DEFAULT[0] = before_default


def _message(seconds: float) -> str:
    return f"did not return within {seconds:g} s (the --timeout limit)"


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def ring(signum, frame):
        raise CallTimedOut(_message(seconds))

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    tid = threading.get_ident()
    lock, state = threading.Lock(), {"done": False}
    # the exception is raised by class, without arguments: its message comes with it
    exc = type("CallTimedOut", (CallTimedOut,),
               {"__init__": lambda self: CallTimedOut.__init__(self, _message(seconds))})

    def ring():
        with lock:
            if not state["done"]:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid),
                                                           ctypes.py_object(exc))

    timer = threading.Timer(seconds, ring)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["done"] = True
        timer.cancel()


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CallTimedOut` inside the block once it has run ``seconds``;
    no limit for None, nor inside a block that is already limited."""
    if seconds is None or getattr(_STATE, "armed", False):
        yield
        return
    _STATE.armed = True
    try:
        main = threading.current_thread() is threading.main_thread()
        with (_alarm if main and hasattr(signal, "setitimer") else _watchdog)(seconds):
            yield
    finally:
        _STATE.armed = False

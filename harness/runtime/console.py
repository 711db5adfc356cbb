"""Everything written to stderr while a command runs: progress bars and lines, and
catching what native code writes to stderr meanwhile.

:func:`progress` draws a tqdm bar (train, cv, sweep); :func:`to_stderr` prints a
progress line (the report's default ``log``); the benchmark (:mod:`harness.bench`)
silences torch's profiler with :func:`quiet_profiler`; the report wraps its benchmark
stage in :func:`native_stderr`.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys


def progress(iterable=None, *, total: int | None = None, desc: str = "",
             quiet: bool = False, leave: bool = False):
    """A tqdm bar on stderr, disabled when ``quiet`` or stderr is not a terminal."""
    from tqdm.auto import tqdm

    disable = quiet or not sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, disable=disable, leave=leave,
                file=sys.stderr, dynamic_ncols=True)


def to_stderr(message: str) -> None:
    """Print one progress line to stderr (the default ``log`` of a report)."""
    print(message, file=sys.stderr, flush=True)


#: lines torch's profiler (the benchmark's memory measurement) writes to stderr
PROFILER_NOISE = re.compile(r"^(USDT:|\[W\d+ .*(CPUAllocator|profiler)|.*profiler_st(art|op))")


@contextlib.contextmanager
def native_stderr(log=None):
    """Catch what native code writes to stderr (fd 2) within the block.

    torch's profiler, which the benchmark uses to measure memory, prints a few lines
    of its own on every measurement. They are dropped; anything else is passed on to
    ``log`` afterwards (``None``: back to stderr). Yields a ``log`` that still
    reaches the real stderr.
    """
    if log is None:
        log = to_stderr
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no fd 2 (an embedding without stderr)
        yield log
        return
    import tempfile

    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        real = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")

        try:
            direct = log is to_stderr and sys.stderr.fileno() == 2
        except (AttributeError, OSError, ValueError):  # stderr replaced (captured)
            direct = False

        def through(message: str) -> None:
            if direct:
                real.write(message + "\n")
                real.flush()
            else:
                log(message)
        try:
            yield through
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            real.close()
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines():
                if line.strip() and not PROFILER_NOISE.match(line):
                    log(line)


@contextlib.contextmanager
def quiet_profiler():
    """Drop torch profiler noise written to stderr within the block; pass the rest on.

    What is not profiler noise is written back to stderr when the block ends.
    """
    with native_stderr(None):
        yield

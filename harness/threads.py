"""One thread count for NumPy's BLAS (threadpoolctl) and for torch, within a block.

The benchmark measured why this matters: on the small matrices of these networks,
extra threads add synchronisation, and on a busy machine torch with two threads can
take many times longer per step than with one. Every subcommand that computes takes
``--threads N`` (default: every core this process may use, as the benchmark does).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator

from harness.errors import ConfigError


def default_threads() -> int:
    """Cores this process may run on (all of them, unless restricted)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def validate_threads(threads) -> int | None:
    """``threads`` as an int >= 1, or None (the default); a ConfigError otherwise."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"`--threads` must be an integer >= 1, got {threads!r}")
    return threads


def _needs_torch(backends: Iterable[str] | None) -> bool:
    if "torch" in sys.modules or backends is None:
        return True
    # the built-in torch backend, or a user's class (which may use torch)
    return any(name != "scratch" for name in backends)


@contextlib.contextmanager
def limit_threads(threads: int | None = None, *,
                  backends: Iterable[str] | None = None) -> Iterator[int]:
    """Within the block, NumPy's BLAS and torch use ``threads`` threads (default: all cores).

    torch is set (and imported) only when ``backends`` may use it (any but
    ``scratch``) or it is loaded already; ``backends=None`` means it may. Yields the
    thread count; the previous settings come back on leaving.
    """
    import threadpoolctl

    n = validate_threads(threads) or default_threads()
    torch = None
    if _needs_torch(backends):
        import torch
    old = torch.get_num_threads() if torch is not None else None
    with threadpoolctl.threadpool_limits(limits=n):
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield n
        finally:
            if torch is not None:
                torch.set_num_threads(old)

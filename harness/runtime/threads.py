"""One thread count for NumPy's BLAS (threadpoolctl) and for torch, within a block.

The benchmark measured why this matters: on the small matrices of these networks,
extra threads add synchronisation, and on a busy machine torch with two threads can
take many times longer per step than with one. Every subcommand that computes takes
``--threads N``; without it the count follows the workload (:func:`default_threads`):
one thread when every matrix product is small, every usable core otherwise.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Sequence

from harness.runtime.values import check_int


#: largest matrix product, d_i * d_{i+1} * rows (multiply-adds), that one thread does
#: faster than several; measured with `nn-harness train` and `cv` (see README, --threads)
SMALL_WORKLOAD = 1 << 24


def usable_cores() -> int:
    """Cores this process may run on (all of them, unless restricted)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def largest_product(dims: Sequence[int], rows: int) -> int:
    """Multiply-adds of the largest layer's product: ``max_i d_i * d_{i+1} * rows``."""
    dims = [int(d) for d in dims]
    return max((a * b for a, b in zip(dims[:-1], dims[1:])), default=0) * int(rows)


def default_threads(dims: Sequence[int] | None = None, batch_size: int | None = None) -> int:
    """The thread count a command uses when ``--threads`` is not given.

    Parameters
    ----------
    dims : sequence of int, optional
        Layer widths ``(d_0, ..., d_L)`` of the network the workload trains or checks.
    batch_size : int, optional
        Rows of a matrix product: the batch size when training, the samples when a
        check multiplies the whole set at once.

    Returns
    -------
    int
        1 when the largest layer product ``d_i * d_{i+1} * batch_size`` is below
        :data:`SMALL_WORKLOAD` (2**24, about 16.8 million multiply-adds: 512-512-10
        at batch 64; the default 64-32-10 at batch 64 is 131 thousand), where thread
        start-up and synchronisation cost more than a second core saves, and a busy
        machine makes several threads far slower; else every usable core. Without
        ``dims`` or ``batch_size``, every usable core.
    """
    if dims is None or batch_size is None:
        return usable_cores()
    return 1 if largest_product(dims, batch_size) < SMALL_WORKLOAD else usable_cores()


def validate_threads(threads) -> int | None:
    """``threads`` as an int >= 1, or None (the default); a ConfigError otherwise."""
    if threads is None:
        return None
    return check_int("--threads", threads, 1, one_rule=True)


def _needs_torch(backends: Iterable[str] | None) -> bool:
    if "torch" in sys.modules or backends is None:
        return True
    # the built-in torch backend, or a user's class (which may use torch)
    return any(name != "scratch" for name in backends)


@contextlib.contextmanager
def limit_threads(threads: int | None = None, *,
                  backends: Iterable[str] | None = None) -> Iterator[int]:
    """Within the block, NumPy's BLAS and torch use ``threads`` threads (default: all cores;
    see :func:`default_threads` for the count that fits a workload).

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

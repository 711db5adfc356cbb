"""Progress bars (tqdm) that stay quiet when stderr is not a terminal."""

from __future__ import annotations

import sys


def progress(iterable=None, *, total: int | None = None, desc: str = "",
             quiet: bool = False, leave: bool = False):
    """A tqdm bar on stderr, disabled when ``quiet`` or stderr is not a terminal."""
    from tqdm.auto import tqdm

    disable = quiet or not sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, disable=disable, leave=leave,
                file=sys.stderr, dynamic_ncols=True)

"""What the subcommands write: refusing an output that cannot be written before any
work, the staged output folder, and JSON on a stdout that plug-ins cannot pollute."""

from __future__ import annotations

import contextlib
import json
import sys

from harness.errors import ConfigError

#: the real standard output while a --json command runs with sys.stdout sent to stderr
#: (see :func:`json_stdout`); None otherwise
_json_out = None


def check_writable(out, flag: str = "--out") -> None:
    """Refuse (ConfigError, exit 2) an ``out`` that cannot be written, before any work.

    Results go into a temporary file or folder beside ``out``, so the nearest existing
    folder above it must take a new folder: one is made there and removed at once.
    The message names ``out`` as the user wrote it (never the probe).
    """
    import os
    import tempfile
    from pathlib import Path

    if out is None:
        return
    path = Path(out)
    probe = next((p for p in path.parents if p.exists() or p.is_symlink()), Path("."))
    if not probe.is_dir():
        raise ConfigError(f"`{flag}` {str(out)!r}: {str(probe)!r} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".nn-harness-probe-", dir=probe))
    except OSError as exc:
        raise ConfigError(f"`{flag}` {str(out)!r} cannot be written: {str(probe)!r} does "
                          f"not take new files ({exc.strerror or exc})") from None


def output_folder(out, *, force: bool, keep_partial: bool, what: str = "run"):
    """Context: the staged folder of ``out`` (see harness.data.atomic.staged_dir), or None without it."""
    import contextlib

    if out is None:
        return contextlib.nullcontext(None)
    from harness.data.atomic import staged_dir

    return staged_dir(out, force=force, keep_partial=keep_partial, what=what)


@contextlib.contextmanager
def json_stdout(enabled: bool):
    """Context: with ``enabled``, whatever is printed (by a user's plug-in module, on
    import or in any method) goes to stderr, and :func:`print_json` alone writes to the
    real stdout, so that --json output stays one valid JSON document."""
    global _json_out
    if not enabled:
        yield
        return
    saved, _json_out = _json_out, sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _json_out = saved


def print_json(obj) -> None:
    from harness.runtime.values import jsonable

    out = _json_out if _json_out is not None else sys.stdout
    json.dump(jsonable(obj), out, indent=2)
    out.write("\n")
    out.flush()

"""Writing results so that nothing is ever half-written: temporary file, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from harness.errors import ConfigError


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    from harness.cli.common import _json_default

    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def check_output_dir(out: str | os.PathLike, *, force: bool = False) -> Path:
    """Refuse (ConfigError) an existing non-empty ``out`` unless ``force``; nothing is touched."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"`--out` {str(out)!r} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"`--out` {str(out)!r} already exists and is not empty; "
                          f"choose another folder or pass --force to replace it")
    parent = out.resolve().parent
    if parent.exists() and not os.access(parent, os.W_OK):
        raise ConfigError(f"`--out` {str(out)!r}: cannot write in {str(parent)!r}")
    return out


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; move it into place only on success.

    On an exception (Ctrl-C included) the temporary folder is kept, renamed to
    ``<out>.partial`` so what was written is not lost, and ``out`` is untouched.
    """
    out = check_output_dir(out, force=force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        partial = out.with_name(out.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
        if any(tmp.iterdir()):
            os.replace(tmp, partial)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)

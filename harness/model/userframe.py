"""Where in a user's own code an exception was raised: the innermost frame of their file.

Used to turn an exception raised by a plug-in (on import, in its constructor or in a
method) into a one-line message that points at the user's line, not at the harness's,
the standard library's or NumPy's.
"""

from __future__ import annotations

import os
import sysconfig
import traceback
from pathlib import Path

#: nn-harness's own packages: frames in them are never the user's
PROJECT_PACKAGES: tuple[str, ...] = ("scratch", "harness", "torch_impl")
_ROOT = Path(__file__).resolve().parents[2]


def _library_dirs() -> tuple[str, ...]:
    """Folders whose files are not the user's: nn-harness's packages, the standard
    library and the installed packages (site-packages)."""
    dirs = [str(_ROOT / name) for name in PROJECT_PACKAGES]
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            dirs.append(str(Path(paths[key]).resolve()))
    return tuple(dict.fromkeys(dirs))


def is_user_file(filename: str) -> bool:
    """Whether ``filename`` (of a traceback frame) is the user's own source file."""
    if not filename or filename.startswith("<"):  # <frozen ...>, <string>, <stdin>
        return False
    path = str(Path(filename).resolve())
    return not any(path == d or path.startswith(d + os.sep) for d in _library_dirs())


def user_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of ``exc``'s traceback that lies in the user's own file, or None."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if is_user_file(frame.filename):
            return frame
    return None


def describe_frame(frame: traceback.FrameSummary) -> str:
    """``mynet.py:12: `raise ValueError("...")` `` (the path relative to the current folder
    when it lies under it)."""
    path = Path(frame.filename)
    try:
        shown = str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        shown = str(path)
    line = (frame.line or "").strip()
    return f"{shown}:{frame.lineno}" + (f": `{line}`" if line else "")


def describe_exception(exc: BaseException) -> str:
    """``ValueError: message (at mynet.py:12: `raise ValueError(...)`)``; without the
    ``(at ...)`` part when no frame of the traceback is the user's."""
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}".rstrip(": ")
    frame = user_frame(exc)
    return text if frame is None else f"{text} (at {describe_frame(frame)})"

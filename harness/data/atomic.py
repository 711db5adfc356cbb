"""Writing results so that nothing is ever half-written: temporary file or folder, then rename.

* :func:`atomic_write_text`, :func:`atomic_write_bytes`, :func:`atomic_write_json`
  write one file through a temporary file in the same folder and a rename; a file
  that exists is replaced whole, or (``replace=False``) kept and the write refused.
* :func:`staged_dir` builds a whole output folder in a temporary folder beside it
  and moves it into place only when complete. What happens to an unfinished folder
  (an exception, Ctrl-C) is the caller's choice: dropped (``keep_partial=False``, a
  report: all or nothing) or kept as ``<out>.partial`` (``keep_partial=True``,
  training and cross-validation: what was computed is not lost); the path is put
  on the exception (:func:`partial_path_of`), and the command line prints it.
  While it runs, ``.<out>.lock`` beside ``out`` claims the folder: a second run for
  the same ``out`` is refused when it starts, not when it is done (a lock whose
  process is gone is taken over).

Files and folders get the permissions any new file gets (0666 and 0777 less the
umask), not the private 0600 and 0700 of ``tempfile``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.runtime.values import jsonable

#: the attribute :func:`staged_dir` sets on an exception when it kept a partial folder
PARTIAL_ATTR = "partial_path"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _normal_mode(path: str | os.PathLike, *, folder: bool) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would have given it."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


# ---------------------------------------------------------------- renames
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _renameat2():
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # not glibc >= 2.28, or not Linux
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _renameat2()


def rename_noreplace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Rename ``src`` to ``dst``; raise FileExistsError if ``dst`` exists, never replace it.

    Atomic where the system has ``renameat2(RENAME_NOREPLACE)`` (Linux). Elsewhere a
    file is linked then unlinked (also atomic), and a folder is renamed after a
    check, which ``rename`` itself backs up for a folder with anything in it (only an
    empty folder made in between the check and the rename could be replaced).
    """
    src, dst = os.fspath(src), os.fspath(dst)
    if _RENAMEAT2 is not None:
        if _RENAMEAT2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst),
                      _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, os.strerror(err), dst)
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), src)
        # the file system cannot do it atomically: fall through
    if os.path.isdir(src):
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
        try:
            os.rename(src, dst)
        except OSError as exc:  # ENOTEMPTY / EEXIST: a folder with something in it
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst) from None
            raise
        return
    os.link(src, dst)  # FileExistsError when taken
    os.unlink(src)


# ---------------------------------------------------------------- files
def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, replace: bool = True) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder.

    ``replace=False`` refuses (FileExistsError) a ``path`` that exists, even one
    created while writing; nothing is left behind either way.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _normal_mode(tmp, folder=False)
        if replace:
            os.replace(tmp, path)
        else:
            rename_noreplace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, replace: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder."""
    return atomic_write_bytes(path, text.encode("utf-8"), replace=replace)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (through :func:`harness.runtime.values.jsonable`) to ``path``."""
    return atomic_write_text(path, json.dumps(jsonable(obj), indent=2) + "\n")


# ---------------------------------------------------------------- folders
def check_output_dir(out: str | os.PathLike, *, force: bool = False) -> Path:
    """Refuse (ConfigError) an existing non-empty ``out`` unless ``force``; nothing is touched."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"`--out` {str(out)!r} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"`--out` {str(out)!r} already exists and is not empty; "
                          f"choose another folder or pass --force to replace it")
    for probe in out.parents:  # the nearest existing folder above, as the user wrote it
        if probe.exists() or probe.is_symlink():
            break
    else:  # pragma: no cover - "." always exists
        probe = Path(".")
    if not probe.is_dir():
        raise ConfigError(f"`--out` {str(out)!r}: {str(probe)!r} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"`--out` {str(out)!r}: cannot write in {str(probe)!r}")
    return out


def partial_path(out: str | os.PathLike) -> Path:
    """Where :func:`staged_dir` keeps an unfinished ``out``: ``<out>.partial``."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def partial_path_of(exc: BaseException) -> Path | None:
    """The partial folder :func:`staged_dir` kept when ``exc`` went through it, if any."""
    return getattr(exc, PARTIAL_ATTR, None)


def _swap_in(src: Path, dst: Path) -> None:
    """Put folder ``src`` at ``dst``, replacing what is there (moved aside first)."""
    old = None
    if dst.exists() or dst.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".old", dir=dst.parent))
        os.rmdir(old)
        os.rename(dst, old)
    try:
        rename_noreplace(src, dst)
    except BaseException:
        if old is not None and not dst.exists():
            os.rename(old, dst)  # put it back as it was
            old = None
        raise
    finally:
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()


def _move_into_place(tmp: Path, out: Path, *, force: bool, what: str) -> None:
    if force:
        try:
            _swap_in(tmp, out)
        except FileExistsError:  # made between moving the old one aside and renaming
            raise ConfigError(f"`--out` {str(out)!r} was created by someone else while "
                              f"this {what} was being moved there; it is kept") from None
        return
    if out.is_dir() and not out.is_symlink():
        try:
            os.rmdir(out)  # an empty folder (allowed at the start); fails if filled since
        except OSError:
            pass
    try:
        rename_noreplace(tmp, out)
    except FileExistsError:
        raise ConfigError(f"`--out` {str(out)!r} was created by someone else while this "
                          f"{what} ran; it is kept, and this {what} is not moved there") from None


def lock_path(out: str | os.PathLike) -> Path:
    """The file that claims ``out`` while a run writes it: ``.<out>.lock`` beside it."""
    out = Path(out)
    return out.with_name(f".{out.name}.lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _holder(lock: Path) -> int | None:
    """The pid written in ``lock`` if that process still runs; None for a stale lock."""
    try:
        pid = int(lock.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid != os.getpid() and _alive(pid) else None


@contextlib.contextmanager
def claimed(out: str | os.PathLike, *, what: str = "run") -> Iterator[None]:
    """Hold ``out``'s lock file for the duration; refuse (ConfigError) at once if another
    live process holds it. A stale lock (its process gone) is replaced."""
    lock = lock_path(out)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            pid = _holder(lock)
            if pid is not None:
                raise ConfigError(f"`--out` {str(out)!r} is being written by another run "
                                  f"(process {pid}); wait for it or choose another folder"
                                  ) from None
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {what}\n")
        break
    else:  # pragma: no cover - lost two races in a row
        raise ConfigError(f"`--out` {str(out)!r}: could not claim it ({lock} keeps appearing)")
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike, *, force: bool = False, keep_partial: bool = False,
               what: str = "run") -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; move it into place only on success.

    Parameters
    ----------
    out : path
        The folder to write. A non-empty one is refused (ConfigError) unless
        ``force``, before anything is written.
    force : bool
        Replace an existing ``out`` (only once the new one is complete).
    keep_partial : bool
        On an exception (Ctrl-C included) keep what was written as ``<out>.partial``
        (replacing an earlier partial folder of the same ``out`` only when there is
        something to replace it with) and record its path on the exception
        (:func:`partial_path_of`). False: drop it; nothing is left behind.
    what : str
        What is being written, for messages ("report", "run").

    The final move never replaces a folder someone else filled meanwhile: without
    ``force`` that is a ConfigError, and ``out`` is kept as they left it.
    """
    out = check_output_dir(out, force=force)
    made = [p for p in reversed(out.parents) if not p.exists()]  # folders made for it
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with claimed(out, what=what), _staged(out, force, keep_partial, what) as tmp:
            yield tmp
    except BaseException as exc:
        if partial_path_of(exc) is None:
            for folder in reversed(made):  # nothing kept: no empty folders left either
                with contextlib.suppress(OSError):
                    folder.rmdir()
        raise


@contextlib.contextmanager
def _staged(out: Path, force: bool, keep_partial: bool, what: str) -> Iterator[Path]:
    """The temporary folder of :func:`staged_dir`, moved into place on success."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _normal_mode(tmp, folder=True)
        yield tmp
        _move_into_place(tmp, out, force=force, what=what)
    except BaseException as exc:
        if keep_partial and tmp.is_dir() and any(tmp.iterdir()):
            kept = partial_path(out)
            try:
                _swap_in(tmp, kept)
            except OSError:  # cannot rename it: the temporary folder itself holds them
                kept = tmp
            setattr(exc, PARTIAL_ATTR, kept)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        raise

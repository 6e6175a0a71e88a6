"""Durable files: written in full under a temporary name, synced, then renamed into place."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path


def fsync_file(path: str | os.PathLike) -> None:
    """Force a written file's bytes to disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


TEMP_MARK = "pixelcnn-partial"  # in every temporary name: no user's file carries it


class NotWritableError(OSError, ValueError):
    """A path that cannot or must not be written: refused before any work is done."""


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write through ``write(temp_path)`` and rename, so readers never see half a file.

    Any failure (a full disk inside a library that raises its own error type too) removes
    the temporary and raises OSError naming ``path``; the old file stays as it was."""
    path = Path(path)
    handle, temp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{TEMP_MARK}-", suffix=".tmp"
    )
    os.close(handle)
    try:
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp's 0600 would hide a shared run's files
        write(temp)
        fsync_file(temp)
        os.replace(temp, path)
    except BaseException as error:
        Path(temp).unlink(missing_ok=True)
        if isinstance(error, Exception) and not isinstance(error, OSError):
            raise OSError(f"cannot write {path}: {' '.join(str(error).split())}") from error
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: put it straight back
    os.umask(mask)
    return mask


def is_stale_temporary(path: Path, names: Iterable[str]) -> bool:
    """Whether ``path`` is a temporary that :func:`atomic_write` left for one of ``names``
    (a killed writer): by its name, which only this library gives."""
    return path.is_file() and any(
        path.name.startswith(f".{name}.{TEMP_MARK}-") and path.name.endswith(".tmp")
        for name in names
    )


def remove_stale_temporaries(directory: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Delete the temporaries that :func:`atomic_write` left for files called ``names`` in
    ``directory`` when its process was killed mid-write (never anything else); returns
    what it deleted."""
    stale = [p for p in Path(directory).glob(".*.tmp") if is_stale_temporary(p, names)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def check_writable(path: str | os.PathLike) -> None:
    """Refuse, before any work is done, a file path that could not be written: it names a
    directory, an ancestor is a file, or the nearest existing directory is read-only."""
    path = Path(path)
    if path.is_dir():
        raise NotWritableError(f"cannot write {path}: it is a directory")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise NotWritableError(f"cannot write {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK):
        raise NotWritableError(f"cannot write {path}: {parent} is not writable")

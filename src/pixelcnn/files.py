"""Files the library touches, made safe against what a hostile directory can hold.

Writes: written in full under a temporary name, synced, then renamed into place, inside a
directory reached without following any symbolic link below the one the user named, so a
link planted at a file's name or at a folder on the way never redirects a write. Reads:
only regular files are opened (a FIFO would block forever, a device never end).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

try:  # POSIX; elsewhere directories go unlocked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


TEMP_MARK = "pixelcnn-partial"  # in every temporary name: no user's file carries it


class NotWritableError(OSError, ValueError):
    """A path that cannot or must not be written: refused before any work is done."""


class NotRegularFileError(OSError, ValueError):
    """A path to read that is not a regular file (a FIFO, a device, a directory)."""


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """``path`` opened for binary reading, refused in one line unless it is a regular file.

    Opened non-blocking first, so a FIFO with no writer is seen for what it is instead of
    blocking ``open`` forever; the check is made on the opened file itself (``fstat``), so
    nothing can be swapped in between. A missing file stays a FileNotFoundError."""
    fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(f"{os.fspath(path)} is {_kind(mode)}, not a regular file")
        if _NONBLOCK:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """The whole of the regular file ``path``, refused in one line when it holds more than
    ``limit`` bytes (a small file the library expects, such as a JSON config, that someone
    made huge) instead of filling memory."""
    with open_regular(path) as stream:
        size = os.fstat(stream.fileno()).st_size
        data = stream.read(limit + 1) if size <= limit else b""
    if size > limit or len(data) > limit:
        raise ValueError(
            f"{os.fspath(path)} holds {max(size, len(data))} bytes, more than a {what} "
            f"ever needs ({limit}); refused"
        )
    return data


def open_appending(path: str | os.PathLike) -> BinaryIO:
    """``path`` opened to append (created if missing), never through a symbolic link at its
    name: a log this library keeps is never somebody else's file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o666)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise NotWritableError(
                f"cannot write {os.fspath(path)}: it is a symbolic link; nothing is written "
                "through it"
            ) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotWritableError(f"cannot write {os.fspath(path)}: not a regular file")
        return os.fdopen(fd, "ab")
    except BaseException:
        os.close(fd)
        raise


def check_regular(path: str | os.PathLike) -> Path:
    """Refuse a ``path`` to be read that exists and is not a regular file (for readers that
    must be given a name: they open it right after). Returns it as a Path."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return Path(path)
    if not stat.S_ISREG(mode):
        raise NotRegularFileError(f"{os.fspath(path)} is {_kind(mode)}, not a regular file")
    return Path(path)


def open_directory(root: str | os.PathLike, parts: Sequence[str] = (), create: bool = False):
    """A file descriptor of the directory ``root / parts...``, reached without following a
    symbolic link at any of ``parts`` (``root``, which the user named, may be one). With
    ``create``, missing folders are made. Anything on the way that is a link or not a
    directory is refused with NotWritableError, so nothing is written outside ``root``."""
    fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        reached = Path(root)
        for part in parts:
            if part in ("", ".", "..") or "/" in part or os.sep in part:
                raise NotWritableError(f"cannot write under {root}: {part!r} is not a folder name")
            reached = reached / part
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
            try:
                inner = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    raise NotWritableError(
                        f"cannot write under {reached}: it is a symbolic link or not a "
                        f"directory; nothing is written through it"
                    ) from None
                raise
            os.close(fd)
            fd = inner
        return fd
    except BaseException:
        os.close(fd)
        raise


def fd_path(directory_fd: int, directory: Path, name: str) -> str:
    """A path naming ``name`` in the directory open as ``directory_fd``: through the
    descriptor itself where the system offers it (Linux's /proc), so a folder swapped for
    a link after it was opened cannot redirect the write."""
    through = f"/proc/self/fd/{directory_fd}"
    return f"{through}/{name}" if os.path.isdir(through) else os.fspath(directory / name)


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[str], None],
    inside: str | os.PathLike | None = None,
) -> None:
    """Write through ``write(temp_path)`` and rename, so readers never see half a file.

    ``inside``: a directory the user named that ``path`` lies in; every folder between it
    and ``path`` is made if missing and must be a real directory (never a symbolic link).
    Without it, ``path``'s own folder is used as it is. The temporary is created anew
    (never through a link) and renamed over ``path``, so a link at ``path`` is replaced,
    not written through. Any failure (a full disk inside a library that raises its own
    error type too) removes the temporary and raises OSError naming ``path``; the old file
    stays as it was."""
    path = Path(path)
    if inside is None:
        root, parts = path.parent, ()
    else:
        root, parts = Path(inside), path.parent.relative_to(inside).parts
    try:
        directory = open_directory(root, parts, create=inside is not None)
    except NotWritableError:
        raise
    except OSError as error:
        raise OSError(f"cannot write {path}: {error.strerror or error}") from None
    temp = f".{path.name}.{TEMP_MARK}-{secrets.token_hex(4)}.tmp"
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
        # 0o666 less the umask, as every other file a user's program writes
        handle = os.open(temp, flags, 0o666, dir_fd=directory)
        os.close(handle)
        try:
            write(fd_path(directory, path.parent, temp))
            descriptor = os.open(temp, os.O_RDONLY | _NOFOLLOW | _CLOEXEC, dir_fd=directory)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.replace(temp, path.name, src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=directory)
            raise
    except BaseException as error:
        if isinstance(error, OSError) and not isinstance(error, NotWritableError):
            reason = error.strerror or " ".join(str(error).split())
            named = OSError(f"cannot write {path}: {reason}")  # one argument: str() is the text
            named.errno = error.errno
            raise named from error
        if isinstance(error, Exception) and not isinstance(error, OSError):
            raise OSError(f"cannot write {path}: {' '.join(str(error).split())}") from error
        raise
    finally:
        os.close(directory)


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


def nearest_existing(path: str | os.PathLike) -> Path:
    """The nearest folder above ``path`` that exists (or a file in the way): where a write
    to ``path`` starts, making the folders below it (see ``atomic_write``'s ``inside``)."""
    parent = Path(path).parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def check_writable(path: str | os.PathLike) -> None:
    """Refuse, before any work is done, a file path that could not be written: it names a
    directory, an ancestor is a file, or the nearest existing directory is read-only."""
    path = Path(path)
    if path.is_dir():
        raise NotWritableError(f"cannot write {path}: it is a directory")
    parent = nearest_existing(path)
    if not parent.is_dir():
        raise NotWritableError(f"cannot write {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK):
        raise NotWritableError(f"cannot write {path}: {parent} is not writable")


class DirectoryLock:
    """An exclusive OS lock on a directory (``flock`` on the directory itself: no file to
    leave behind, and the kernel releases it when the holder dies, even by SIGKILL). A
    second writer of the same directory fails at once with one line: ``busy(directory)``.
    ``train`` locks its run directory with it, ``prepare-data`` its ``--out``."""

    def __init__(self, busy: Callable[[Path], str]) -> None:
        self.busy = busy
        self.fd: int | None = None

    def acquire(self, directory: Path) -> None:
        if self.fd is not None or fcntl is None:
            return
        fd = os.open(directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise FileExistsError(self.busy(Path(directory))) from None
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the lock
            self.fd = None

"""Fetching dataset files: mirrors, MD5 verification and atomic placement in a cache."""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from pixelcnn.files import atomic_write, open_regular

__all__ = ["DownloadError", "default_cache_dir", "download_file", "file_md5"]

_TIMEOUT_S = 30
_CHUNK_BYTES = 1 << 20
_USER_AGENT = "pixelcnn-data/0.1 (+https://pypi.org/project/pixelcnn)"


class DownloadError(RuntimeError):
    """No mirror produced the file with the expected checksum."""


def default_cache_dir() -> Path:
    """Where downloaded datasets live.

    ``$PIXELCNN_DATA`` if set, else ``$XDG_CACHE_HOME/pixelcnn``, else ``~/.cache/pixelcnn``.
    """
    explicit = os.environ.get("PIXELCNN_DATA")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "pixelcnn"


def file_digest(path: str | Path, digest) -> str:
    """Hex ``digest`` (a new hashlib object) of a file, read in chunks so large files do not
    fill memory (a FIFO or a device at ``path`` is refused in one line, never read without
    end)."""
    with open_regular(path) as stream:
        for chunk in iter(lambda: stream.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_md5(path: str | Path) -> str:
    """Hex MD5 of a file (what mirrors publish)."""
    return file_digest(path, hashlib.md5(usedforsecurity=False))


class _WrongChecksum(ValueError):
    """A mirror served other bytes than the published checksum."""


def _one_line(exc: BaseException) -> str:
    """An exception as a short single line, for error messages that list several causes."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _fetch(url: str, temp_path: Path, label: str, progress: bool) -> str:
    """Stream ``url`` into ``temp_path``; return the MD5 of what was written."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    digest = hashlib.md5(usedforsecurity=False)
    with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        show = progress and sys.stderr.isatty()
        with (
            open(temp_path, "wb") as out,
            tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=label,
                disable=not show,
            ) as bar,
        ):
            for chunk in iter(lambda: response.read(_CHUNK_BYTES), b""):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    return digest.hexdigest()


def download_file(
    urls: Sequence[str], destination: str | Path, md5: str | None, progress: bool = True
) -> Path:
    """Download ``destination`` from the first mirror in ``urls`` that yields the right MD5.

    Each URL is the full address of the file. Data is streamed into a temporary file next to
    ``destination`` and renamed into place only once its checksum matches, so an interrupted
    or corrupted download never leaves a partial file under the final name. An existing
    ``destination`` with the right MD5 is returned untouched; one with a wrong MD5 is
    replaced. ``md5=None`` skips verification (only for files without a published sum).

    Raises ``DownloadError`` naming the file, every URL tried and why each failed.
    """
    destination = Path(destination)
    if destination.is_file() and (md5 is None or file_md5(destination) == md5.lower()):
        return destination
    if not urls:
        raise DownloadError(f"cannot download {destination.name}: no URLs given")
    destination.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:

        def fetch(temp: str, url: str = url) -> None:
            got = _fetch(url, Path(temp), destination.name, progress)
            if md5 is not None and got != md5.lower():
                raise _WrongChecksum(f"MD5 {got} != expected {md5.lower()}")

        try:  # streamed into a temporary renamed into place only once its checksum matches
            atomic_write(destination, fetch)
            return destination
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # URLError/HTTPError (404, DNS, refused), timeouts and disk errors are all OSError;
            # ValueError covers malformed URLs. Any of them means: try the next mirror.
            # (atomic_write names the destination; the cause says what went wrong)
            failures.append(f"{url}: {_one_line(exc.__cause__ or exc)}")
    raise DownloadError(
        f"could not download {destination.name} to {destination.parent}: " + "; ".join(failures)
    )

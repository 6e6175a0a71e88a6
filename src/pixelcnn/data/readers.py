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
import math
import pickle
import struct
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image

from pixelcnn.files import open_regular

from .limits import DataFormatError, check_allocation

__all__ = [
    "DataFormatError",
    "IMAGE_SUFFIXES",
    "MAX_CLASSES",
    "checked_labels",
    "gunzip_file",
    "image_folder_files",
    "read_cifar10",
    "read_idx",
    "read_idx_images",
    "read_image_file",
    "read_image_files",
    "read_image_folder",
    "read_npz",
    "read_npz_class_names",
    "resize_images",
]

# Labels index class embeddings, so a label of 10^9 would make a model with 10^9 classes.
MAX_CLASSES = 100_000


# --------------------------------------------------------------------------------------------
# Streams and checks shared by every reader
# --------------------------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK_BYTES = 1 << 20


def _reason(exc: BaseException) -> str:
    """``exc``'s message on one line: some (tarfile's, for one) span several lines."""
    return " ".join(str(exc).split())


@contextmanager
def _stream_errors(path: Path) -> Iterator[None]:
    """Turn the failures of reading a (compressed) stream into a one-line DataFormatError.

    Open the file before entering, so that a missing file stays a FileNotFoundError.
    """
    try:
        yield
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise DataFormatError(f"{path}: corrupt gzip stream ({_reason(exc)})") from exc
    except EOFError as exc:
        raise DataFormatError(f"{path}: truncated gzip stream ({_reason(exc)})") from exc
    except tarfile.TarError as exc:
        raise DataFormatError(f"{path}: corrupt tar archive ({_reason(exc)})") from exc
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read ({_reason(exc)})") from exc


class _GzipReader(gzip.GzipFile):
    """A gunzipping stream over a file it owns: closing it closes the file too."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__(fileobj=raw, mode="rb")
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def _gunzipping(path: Path) -> _GzipReader:
    """The gzip file ``path`` opened for reading (only a regular file: never a FIFO)."""
    raw = open_regular(path)
    try:
        return _GzipReader(raw)
    except BaseException:
        raw.close()
        raise


def _open_maybe_gzipped(path: Path) -> IO[bytes]:
    """``path`` opened for binary reading, through a gunzipping stream if it is gzip.

    Gzip is detected by its magic bytes rather than the file name, because mirrors and
    distributions disagree on whether the ``.gz`` suffix is kept after decompression.
    Only a regular file is opened (a FIFO would block, a device never end).
    """
    raw = open_regular(path)
    try:
        gzipped = raw.read(len(_GZIP_MAGIC)) == _GZIP_MAGIC
        raw.seek(0)
        return _GzipReader(raw) if gzipped else raw
    except BaseException:
        raw.close()
        raise


def gunzip_file(path: str | Path, cost_per_byte: int = 1) -> bytes:
    """The decompressed contents of the gzip file ``path``.

    Inflated in chunks so that a gzip bomb is refused (``check_allocation``) before it fills
    memory; ``cost_per_byte`` is the memory the caller needs per decompressed byte (parsing
    text into arrays takes several). Corrupt or truncated streams raise ``DataFormatError``.
    """
    path = Path(path)
    chunks, total = [], 0
    with _gunzipping(path) as stream, _stream_errors(path):
        while chunk := stream.read(_CHUNK_BYTES):
            total += len(chunk)
            check_allocation(total * cost_per_byte, f"{path}: decompressing it")
            chunks.append(chunk)
    return b"".join(chunks)


def _read_into(stream: IO[bytes], out: np.ndarray) -> int:
    """Fill the bytes of the flat ``uint8`` array ``out`` from ``stream``.

    Returns how many bytes were read: fewer than ``out.size`` only when the stream ended.
    Reading into a preallocated array keeps the peak memory at one copy of the payload.
    """
    view = memoryview(out)
    filled = 0
    while filled < len(view):
        count = stream.readinto(view[filled:])
        if not count:
            break
        filled += count
    return filled


def _native(raw: np.ndarray, dtype: np.dtype, shape: tuple[int, ...], order: str) -> np.ndarray:
    """Flat ``uint8`` bytes ``raw`` viewed as ``dtype [shape]`` in native byte order.

    Byte-swapped in place rather than converted, so no second copy of the array is made.
    """
    array = raw.view(dtype)
    if not dtype.isnative:
        array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return array.reshape(shape, order=order)


def checked_labels(labels: np.ndarray, source: object) -> np.ndarray:
    """``labels`` as ``int64``, refusing non-integer dtypes (float, bool) and values outside
    ``0..MAX_CLASSES - 1``; ``source`` names the file in the one-line error."""
    if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.integer):
        raise DataFormatError(f"{source}: labels must be integers, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= MAX_CLASSES):
        raise DataFormatError(
            f"{source}: labels must lie in 0..{MAX_CLASSES - 1}, "
            f"got min {labels.min()}, max {labels.max()}"
        )
    return labels.astype(np.int64, copy=False)


def _refuse_zero_extent(images: np.ndarray, source: object) -> np.ndarray:
    """``images [N, C, H, W]`` unchanged, unless an image has no pixels (H or W is 0)."""
    if images.shape[2] == 0 or images.shape[3] == 0:
        raise DataFormatError(
            f"{source}: images are {images.shape[2]}x{images.shape[3]} pixels (HxW); "
            "an image needs at least one row and one column"
        )
    return images


# --------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------------

# IDX type code -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "IDX file format").
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_idx_header(stream: IO[bytes], path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """The element dtype and dimensions from an IDX header, leaving ``stream`` at the payload."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise DataFormatError(f"{path}: not an IDX file (bad magic number)")
    type_code, ndim = magic[2], magic[3]
    if type_code not in _IDX_DTYPES:
        raise DataFormatError(f"{path}: unknown IDX element type 0x{type_code:02x}")
    raw_dims = stream.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataFormatError(f"{path}: IDX header truncated ({4 + len(raw_dims)} bytes)")
    return _IDX_DTYPES[type_code], tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))


def _idx_size_mismatch(path: Path, dims: tuple[int, ...], expected: int, held: str) -> Exception:
    return DataFormatError(
        f"{path}: IDX size mismatch, header says {dims} ({expected} bytes) but the file holds "
        f"{held}"
    )


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a native-endian array of its stored shape.

    The file is streamed: the header is read first, the payload size it declares is checked
    against available memory (and, for plain files, against the file size) before anything
    is allocated, and exactly that many bytes are read, so a gzip bomb is refused without
    being inflated. Raises ``DataFormatError`` if the header is not IDX, the payload size
    disagrees with the dimensions (a truncated download, trailing data), or the gzip stream
    is corrupt.
    """
    path = Path(path)
    stream = _open_maybe_gzipped(path)
    with stream, _stream_errors(path):
        dtype, dims = _read_idx_header(stream, path)
        header_size, nbytes = 4 + 4 * len(dims), math.prod(dims) * dtype.itemsize
        expected = header_size + nbytes
        if not isinstance(stream, gzip.GzipFile):  # a plain file's size is known up front
            file_size = path.stat().st_size
            if file_size != expected:
                raise _idx_size_mismatch(path, dims, expected, f"{file_size} bytes")
        check_allocation(nbytes, f"{path}: IDX array of shape {dims}")
        raw = np.empty(nbytes, dtype=np.uint8)
        filled = _read_into(stream, raw)
        if filled < nbytes:
            raise _idx_size_mismatch(path, dims, expected, f"{header_size + filled} bytes")
        # One more byte tells a bomb (small header, huge payload) without inflating the rest.
        if stream.read(1):
            raise _idx_size_mismatch(path, dims, expected, "more (data after the payload)")
    return _native(raw, dtype, dims, "C")


def read_idx_images(
    images_path: str | Path, labels_path: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an IDX image file ``[N, H, W]`` and optional IDX label file ``[N]``.

    Returns images ``uint8 [N, 1, H, W]`` and labels ``int64 [N]`` (or ``None``); labels must
    be integers in ``0..MAX_CLASSES - 1``.
    """
    images = read_idx(images_path)
    if images.ndim != 3:
        raise DataFormatError(f"{images_path}: expected IDX images [N, H, W], got {images.shape}")
    images = _refuse_zero_extent(as_uint8(images, images_path)[:, None, :, :], images_path)
    if labels_path is None:
        return images, None
    labels = read_idx(labels_path)
    if labels.ndim != 1:
        raise DataFormatError(f"{labels_path}: expected IDX labels [N], got {labels.shape}")
    if len(labels) != len(images):
        raise DataFormatError(
            f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}"
        )
    return images, checked_labels(labels, labels_path)


def as_uint8(array: np.ndarray, source: object) -> np.ndarray:
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
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
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
        raise DataFormatError(f"{source}: not a CIFAR-10 batch pickle ({_reason(exc)})") from exc
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
    if labels.shape != (len(data),):
        raise DataFormatError(f"{source}: 'labels' must be {len(data)} integers")
    labels = checked_labels(labels, source)
    # Each row is the R plane, then G, then B, each 32x32 in raster order: exactly CHW.
    images = as_uint8(data, source).reshape(-1, 3, 32, 32)
    return np.ascontiguousarray(images), labels


@contextmanager
def _cifar_member_opener(path: Path) -> Iterator[Callable[[str], IO[bytes]]]:
    """Yield ``open(batch_name) -> binary stream`` for a CIFAR archive or folder.

    ``path`` may be the ``.tar.gz`` archive, the extracted ``cifar-10-batches-py`` folder,
    or a folder containing either one.
    """
    if path.is_dir():
        # exists(), not is_file(): a FIFO or a device there is refused when opened
        if (path / "test_batch").exists() or (path / "data_batch_1").exists():
            yield lambda name: open_regular(path / name)
            return
        if (path / _CIFAR_FOLDER).is_dir():
            with _cifar_member_opener(path / _CIFAR_FOLDER) as opener:
                yield opener
            return
        if (path / CIFAR10_ARCHIVE).exists():
            path = path / CIFAR10_ARCHIVE
        else:
            raise FileNotFoundError(
                f"no CIFAR-10 data in {path}: expected {CIFAR10_ARCHIVE} or {_CIFAR_FOLDER}/"
            )
    if not path.exists():
        raise FileNotFoundError(f"no CIFAR-10 data at {path}")
    raw = open_regular(path)  # a FIFO or a device: refused in one line, never read
    try:
        # Not a `with`: only the open itself is guarded; the archive is closed just below.
        archive = tarfile.open(fileobj=raw, mode="r:*")  # noqa: SIM115
    except (tarfile.TarError, OSError, EOFError) as exc:
        raw.close()
        raise DataFormatError(f"{path}: not a readable tar archive ({_reason(exc)})") from exc
    with raw, archive:
        with _stream_errors(path):
            # Index by base name so any top-level folder name inside the archive works.
            members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
            # Listing stops at the end-of-archive block; reading on to the end of the stream
            # makes gzip check its CRC, so a flipped bit that still inflates cannot give
            # wrong pixels silently.
            while archive.fileobj.read(_CHUNK_BYTES):
                pass

        def open_member(name: str) -> IO[bytes]:
            if name not in members:
                raise DataFormatError(f"{path}: archive has no member {name}")
            # A member's size comes from its tar header; the caller reads it whole.
            check_allocation(members[name].size, f"{path}: member {name}")
            return archive.extractfile(members[name])

        yield open_member


def _read_cifar_batch(
    open_member: Callable[[str], IO[bytes]], name: str, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Batch ``name`` of the archive or folder ``path``: (images ``uint8 [n, 3, 32, 32]``,
    labels ``int64 [n]``)."""
    try:
        stream = open_member(name)
    except FileNotFoundError as exc:
        raise DataFormatError(f"{path}: CIFAR-10 batch {name} is missing") from exc
    with stream, _stream_errors(path):
        # Read fully first: tar streams are slow to unpickle from byte by byte.
        payload = stream.read()
    return _unpickle_batch(io.BytesIO(payload), f"{path}:{name}")


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
    with _cifar_member_opener(path) as open_member:
        parts = [_read_cifar_batch(open_member, name, path) for name in CIFAR10_SPLIT_FILES[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels


# --------------------------------------------------------------------------------------------
# npz (keras-style x_train / y_train / x_test / y_test)
# --------------------------------------------------------------------------------------------


def to_nchw(images: np.ndarray, source: object) -> np.ndarray:
    """Bring an image array to ``[N, C, H, W]``.

    Layout rule: 3-D arrays are ``[N, H, W]`` (grey). 4-D arrays are channels-last
    ``[N, H, W, C]`` when the last dimension is 1 or 3 (preferred when both readings are
    possible, as for ``[N, 3, 32, 3]``), else channels-first ``[N, C, H, W]`` when the second
    dimension is 1 or 3; anything else is refused, as are images with no rows or columns.
    """
    if images.ndim == 3:
        nchw = images[:, None, :, :]
    elif images.ndim == 4 and images.shape[-1] in (1, 3):
        nchw = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    elif images.ndim == 4 and images.shape[1] in (1, 3):
        nchw = np.ascontiguousarray(images)
    else:
        raise DataFormatError(
            f"{source}: images must be [N,H,W], [N,H,W,C] or [N,C,H,W] with C in (1, 3), "
            f"got shape {images.shape}"
        )
    return _refuse_zero_extent(nchw, source)


_NPY_MAGIC = b"\x93NUMPY"
# Errors zipfile and numpy raise for a damaged archive or member: not a zip, bad CRC, a
# corrupt deflate stream, an unsupported compression method or encryption, a bad header.
_NPZ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


@contextmanager
def npz_errors(source: object, what: str) -> Iterator[None]:
    """Re-raise a damaged archive's errors as ``DataFormatError("{source}: {what} (...)")``."""
    try:
        yield
    except (DataFormatError, FileNotFoundError):
        raise
    except _NPZ_ERRORS as exc:
        raise DataFormatError(f"{source}: {what} ({_reason(exc)})") from exc


def read_npy_header(member: IO[bytes], source: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` from a ``.npy`` header, leaving ``member`` after it."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(member)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(member)
    raise DataFormatError(f"{source}: unsupported .npy format version {version}")


def _check_npy_size(shape: tuple[int, ...], dtype: np.dtype, stored: int, source: str) -> int:
    """The payload size the header declares, after refusing one that the member does not
    hold or that cannot fit in memory (the header is just a few bytes anyone can edit)."""
    if dtype.hasobject:
        raise DataFormatError(f"{source}: object arrays need pickle to load, which is refused")
    if dtype.itemsize == 0:
        raise DataFormatError(f"{source}: elements of dtype {dtype} hold no data")
    count = math.prod(shape)
    declared = count * dtype.itemsize
    if declared != stored:
        raise DataFormatError(
            f"{source}: truncated or corrupt, the header declares {shape} {dtype} "
            f"({declared} bytes) but the member stores {stored} bytes"
        )
    # Room too for the uint8 copies read_npz may make (dtype conversion, [N, C, H, W] layout).
    check_allocation(declared + 2 * count, f"{source} (shape {shape}, dtype {dtype})")
    return declared


def read_npz_member(archive: zipfile.ZipFile, member_name: str, source: str) -> np.ndarray:
    """One ``.npy`` member of an open npz, its header checked before its data is allocated."""
    with npz_errors(source, "not a readable .npy member"), archive.open(member_name) as member:
        shape, fortran_order, dtype = read_npy_header(member, source)
        stored = archive.getinfo(member_name).file_size - member.tell()
        nbytes = _check_npy_size(shape, dtype, stored, source)
        raw = np.empty(nbytes, dtype=np.uint8)
        if _read_into(member, raw) < nbytes:
            raise DataFormatError(f"{source}: truncated, fewer than {nbytes} bytes of data")
        member.read(1)  # reaching the end makes zipfile verify the member's CRC
    return _native(raw, dtype, shape, "F" if fortran_order else "C")


def read_npz_arrays(path: Path, keys: tuple[str, ...]) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays named ``keys`` that the npz at ``path`` holds, and the names of all it holds.

    The zip is read directly rather than through ``np.load`` so that each member's header can
    be checked before its data is read.
    """
    stream = open_regular(path)  # a FIFO or a device: refused in one line, never read
    with stream, npz_errors(path, "not a readable npz archive"):
        if stream.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
            raise DataFormatError(f"{path}: a single .npy array, not an npz archive")
        stream.seek(0)
        with zipfile.ZipFile(stream) as archive:
            members = {name.removesuffix(".npy"): name for name in archive.namelist()}
            arrays = {
                key: read_npz_member(archive, members[key], f"{path}:{key}")
                for key in keys
                if key in members
            }
    return arrays, list(members)


def read_npz(path: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``x_<split>`` (and ``y_<split>`` if present) from an ``.npz`` archive.

    Images may be ``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]`` (see ``to_nchw`` for the
    rule) and must be uint8 or integers in 0..255. Returns images ``uint8 [N, C, H, W]`` and
    labels ``int64 [N]`` (integers in ``0..MAX_CLASSES - 1``) or ``None``. Each member's header
    is checked against the bytes it stores and the memory available before it is loaded, and
    pickled object arrays are never loaded.
    """
    path = Path(path)
    x_key, y_key = f"x_{split}", f"y_{split}"
    arrays, keys = read_npz_arrays(path, (x_key, y_key))
    if x_key not in arrays:
        hint = ""
        if "data" in keys and "labels" in keys:
            hint = (
                " (a downsampled-ImageNet batch? pass the folder holding its "
                "train_data_batch_*.npz and val_data.npz)"
            )
        raise DataFormatError(f"{path}: no array {x_key!r}; arrays present: {keys}{hint}")
    images = to_nchw(as_uint8(arrays[x_key], f"{path}:{x_key}"), f"{path}:{x_key}")
    labels = arrays.get(y_key)
    if labels is None:
        return images, None
    labels = labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels
    if labels.shape != (len(images),):
        raise DataFormatError(
            f"{path}:{y_key}: expected {len(images)} integer labels, "
            f"got dtype {labels.dtype} shape {labels.shape}"
        )
    return images, checked_labels(labels, f"{path}:{y_key}")


def downsampled_imagenet_side(shape: tuple[int, ...], source: str) -> int:
    """The side s of a downsampled-ImageNet ``data`` array of ``shape`` [n, 3 * s * s]."""
    side = math.isqrt(shape[1] // 3) if len(shape) == 2 else 0
    if len(shape) != 2 or side < 1 or shape[1] != 3 * side * side:
        raise DataFormatError(
            f"{source}: expected rows of 3 x side x side pixels, got shape {shape}"
        )
    return side


def downsampled_imagenet_labels(labels: np.ndarray, count: int, source: str) -> np.ndarray:
    """A batch's ``labels`` (1..1000, one per image) as 0-based int64 [count]."""
    labels = labels.reshape(-1)
    if len(labels) != count:
        raise DataFormatError(f"{source}: {len(labels)} labels for {count} images")
    labels = checked_labels(labels, source)
    if labels.size and labels.min() < 1:
        raise DataFormatError(f"{source}: labels count from 1, got {labels.min()}")
    return labels - 1


def _downsampled_imagenet_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: ``data`` uint8 [n, 3 * s * s] (R, G, B planes, rows in order) and
    ``labels`` 1..1000 -> images uint8 [n, 3, s, s] and 0-based int64 labels [n]."""
    arrays, keys = read_npz_arrays(path, ("data", "labels"))
    if "data" not in arrays or "labels" not in arrays:
        raise DataFormatError(f"{path}: expected arrays 'data' and 'labels', found {keys}")
    data = arrays["data"]
    side = downsampled_imagenet_side(data.shape, f"{path}:data")
    labels = downsampled_imagenet_labels(arrays["labels"], len(data), f"{path}:labels")
    images = as_uint8(data, f"{path}:data").reshape(len(data), 3, side, side)
    return images, labels


def read_downsampled_imagenet(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """The downsampled ImageNet npz batches (Chrabaszcz et al. 2017: ``train_data_batch_*``,
    ``val_data``; 32x32 or 64x64) at ``paths``, in that order, as one set: images uint8
    [N, 3, s, s] and 0-based labels int64 [N]. Every batch must have the same side."""
    batches = [_downsampled_imagenet_batch(Path(path)) for path in paths]
    sides = {images.shape[2] for images, _ in batches}
    if len(sides) > 1:
        raise DataFormatError(f"{paths[0].parent}: batches of different sizes {sorted(sides)}")
    if len(batches) == 1:
        return batches[0]
    total = sum(images.nbytes + labels.nbytes for images, labels in batches)
    check_allocation(total, f"{paths[0].parent}: joining {len(batches)} batches")
    return (
        np.concatenate([images for images, _ in batches]),
        np.concatenate([labels for _, labels in batches]),
    )


def read_npz_class_names(path: str | Path) -> list[str] | None:
    """The ``class_names`` string array ``[K]`` stored in an npz, or ``None`` if absent."""
    path = Path(path)
    names = read_npz_arrays(path, ("class_names",))[0].get("class_names")
    if names is None or names.dtype.kind not in "US" or names.ndim != 1:
        return None
    return [str(n) for n in names]


# --------------------------------------------------------------------------------------------
# Image files and folders of them
# --------------------------------------------------------------------------------------------

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"})
_GREY_MODES = frozenset({"1", "L", "LA", "La", "F"})
# What Pillow's decoders raise on malformed files besides OSError: several plugins parse
# headers with struct/indexing and let those errors escape.
_PILLOW_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    TypeError,
)


def _image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name for a deterministic order.
    A FIFO or a device with an image's name is listed too, to be refused when it is read
    rather than skipped in silence."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and p.exists() and not p.is_dir()
    )


def _is_grey(mode: str) -> bool:
    """Whether Pillow images of ``mode`` are read as one channel (see ``_pixels``)."""
    return mode.startswith("I") or mode in _GREY_MODES


def _single_frame(image: Image.Image, path: Path) -> None:
    """Refuse an animation or a multi-page file (APNG, GIF, WebP, TIFF): reading its first
    frame alone would lose the others in silence."""
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        raise DataFormatError(
            f"{path}: has {frames} frames (an animation or a multi-page file); only "
            "single-frame images are read, the other frames would be lost"
        )


def image_file_header(path: Path) -> tuple[int, int, int]:
    """``(C, H, W)`` that :func:`read_image_file` would return for the file at ``path``,
    from its header alone (nothing decoded): to check a folder before reading it."""
    with open_regular(path) as stream:  # a FIFO or a device: refused, never read
        try:
            with Image.open(stream) as image:
                _single_frame(image, path)
                return (1 if _is_grey(image.mode) else 3), image.height, image.width
        except DataFormatError:
            raise
        except (*_PILLOW_ERRORS, Image.DecompressionBombError) as exc:
            raise DataFormatError(f"{path}: cannot decode image ({_reason(exc)})") from exc


def _pixels(image: Image.Image) -> np.ndarray:
    """A loaded Pillow image as ``uint8 [H, W]`` (grey) or ``[H, W, 3]`` (colour)."""
    if image.mode.startswith("I"):
        # 16-bit (or 32-bit) grey, e.g. 16-bit PNG: keep the high byte, which is the exact
        # 8-bit value for files that were widened from 8 bits (v * 257). (Pillow already
        # reads 16-bit RGB(A) PNGs as 8-bit RGB(A) holding the high bytes.)
        wide = np.asarray(image).astype(np.int64)
        return np.clip(wide >> 8, 0, 255).astype(np.uint8)
    if _is_grey(image.mode):
        return np.asarray(image.convert("L"))
    return np.asarray(image.convert("RGB"))  # palette, RGBA (alpha dropped), CMYK, ...


def _decode_image(path: Path) -> np.ndarray:
    """Decode one file to ``uint8 [H, W]`` (grey) or ``[H, W, 3]`` (colour)."""
    stream = open_regular(path)  # a FIFO or a device: refused, never read
    try:
        with stream, warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                _single_frame(image, path)
                bands = len(image.getbands())
                check_allocation(image.width * image.height * bands, f"{path}: decoding it")
                image.load()
                return _pixels(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataFormatError(
            f"{path}: refused as a possible decompression bomb ({_reason(exc)})"
        ) from exc
    except DataFormatError:
        raise
    except _PILLOW_ERRORS as exc:
        raise DataFormatError(f"{path}: cannot decode image ({_reason(exc)})") from exc


def _with_channels(pixels: np.ndarray, channels: int | None) -> np.ndarray:
    """``uint8 [H, W]`` or ``[H, W, 3]`` pixels as ``[C, H, W]`` with ``C = channels``
    (``None``: 1 for grey, 3 for colour)."""
    if pixels.ndim == 2:
        grey = pixels[None]
        return np.repeat(grey, 3, axis=0) if channels == 3 else grey
    if channels == 1:
        # Pillow's "L" conversion (ITU-R 601-2 luma), the same formula as everywhere else.
        return np.asarray(Image.fromarray(pixels).convert("L"))[None]
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def read_image_file(path: str | Path, channels: int | None = None) -> np.ndarray:
    """Decode one picture file (PNG, JPEG, BMP, WebP, GIF, TIFF, ...) to ``uint8 [C, H, W]``.

    ``channels=None`` keeps the file's own: 1 for grey (also 16/32-bit grey, reduced to its
    high byte, and grey+alpha), 3 for colour (palette and RGBA too, alpha dropped).
    ``channels=1`` turns colour into grey with Pillow's "L" formula; ``channels=3`` repeats
    grey. Decompression bombs, files of several frames (animations, multi-page TIFFs) and
    files Pillow cannot read raise ``DataFormatError``; a FIFO or a device,
    ``NotRegularFileError``.
    """
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise ValueError(f"channels must be None, 1 or 3, got {channels!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file {path} does not exist")
    return np.array(_with_channels(_decode_image(path), channels))  # owned and writable


_EXACT_MODES = frozenset({"1", "L", "P", "RGB", "RGBA", "LA", "PA"})
# Formats whose sample depth is checked below; any other Pillow can open (a PPM, a JPEG 2000,
# ... under an image suffix) is refused rather than trusted to hold 8-bit samples.
_CHECKED_FORMATS = frozenset({"PNG", "BMP", "GIF", "TIFF", "WEBP", "JPEG", "MPO"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# TIFF tags: BitsPerSample, SampleFormat (1: unsigned integers, the default)
_TIFF_BITS, _TIFF_SAMPLE_FORMAT = 258, 339
_BMP_BITFIELDS = (3, 6)  # BI_BITFIELDS, BI_ALPHABITFIELDS
_BYTE_MASKS = frozenset({0, 0xFF, 0xFF00, 0xFF0000, 0xFF000000})


def _deep_samples(image: Image.Image, head: bytes) -> str | None:
    """What in the file's own header says its samples are not 8-bit integers that Pillow
    reads as they are (``head``: the file's first bytes); Pillow's mode does not tell:
    it reads a 16-bit RGB PNG or TIFF as "RGB", keeping the high bytes only."""
    if image.format not in _CHECKED_FORMATS:
        return (
            f"it is a {image.format} file (PNG, JPEG, BMP, WebP, GIF and TIFF files are "
            "compressed, with their bit depth checked)"
        )
    if image.format == "PNG" and head.startswith(_PNG_SIGNATURE) and head[12:16] == b"IHDR":
        depth = head[24]  # IHDR: width, height, then the bit depth of every sample
        if depth > 8:
            return f"it has {depth}-bit samples (8-bit ones are kept exactly)"
    if image.format == "TIFF":
        tags = image.tag_v2
        bits = tags.get(_TIFF_BITS, (1,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        formats = tags.get(_TIFF_SAMPLE_FORMAT, (1,))
        formats = formats if isinstance(formats, tuple) else (formats,)
        if max(bits) > 8 or any(f != 1 for f in formats):
            kind = "integer" if all(f == 1 for f in formats) else "float or signed"
            return f"it has {max(bits)}-bit {kind} samples (8-bit unsigned ones are kept exactly)"
    if image.format == "BMP" and head[:2] == b"BM" and len(head) >= 34:
        info_size, bits = struct.unpack_from("<I", head, 14)[0], 0
        if info_size == 12:  # OS/2 core header: width, height (16-bit each), planes, bits
            bits = struct.unpack_from("<H", head, 24)[0]
        elif info_size >= 40:  # width, height (32-bit each), planes, bits, compression
            bits, compression = struct.unpack_from("<HI", head, 28)
            if compression in _BMP_BITFIELDS:  # the masks follow the 40 bytes
                masks = struct.unpack_from("<4I", head.ljust(70, b"\0"), 54)
                if not set(masks) <= _BYTE_MASKS:
                    return "its pixels pack channels of other than 8 bits (bit fields)"
        if bits == 16:
            return "it has 16-bit pixels (5 or 6 bits a channel, widened when read)"
    if image.format in ("JPEG", "MPO") and getattr(image, "bits", 8) != 8:
        return f"it has {image.bits}-bit samples (8-bit ones are kept exactly)"
    return None


def lossy_reading(path: str | Path) -> str | None:
    """What :func:`read_image_file` would lose of the file at ``path`` (a bit depth over 8,
    found in the file's own header; a transparency that is not fully opaque; another
    colour model; a format whose depth is not checked), or None when its ``uint8`` pixels
    are all there is. Several frames are refused (DataFormatError). For lossless
    compression."""
    path = Path(path)
    with open_regular(path) as stream:  # a FIFO or a device: refused, never read
        head = stream.read(128)
        stream.seek(0)
        try:
            with Image.open(stream) as image:
                _single_frame(image, path)
                deep = _deep_samples(image, head)
                if deep:
                    return deep
                if image.mode not in _EXACT_MODES:
                    return f"it is a {image.mode} image (8-bit grey or RGB pixels are kept exactly)"
                bands = image.getbands()
                transparency = "A" in bands or "transparency" in image.info
                if transparency:
                    check_allocation(4 * image.width * image.height, f"{path}: decoding it")
                    if image.convert("RGBA").getextrema()[3][0] < 255:
                        return "it has transparent pixels (the alpha channel would be dropped)"
        except DataFormatError:
            raise
        except (*_PILLOW_ERRORS, Image.DecompressionBombError) as exc:
            raise DataFormatError(f"{path}: cannot decode image ({_reason(exc)})") from exc
    return None


def read_image_files(paths: list[Path]) -> np.ndarray:
    """Decode and stack files into ``uint8 [N, C, H, W]``; all must share one size."""
    decoded = [read_image_file(p) for p in paths]
    height, width = decoded[0].shape[1:]
    for path, array in zip(paths, decoded, strict=True):
        if array.shape[1:] != (height, width):
            raise DataFormatError(
                f"{path}: image is {array.shape[2]}x{array.shape[1]} (WxH) but the first image "
                f"{paths[0].name} is {width}x{height}; resize the folder to one size first"
            )
    # A mixed folder: promote grey images to RGB by repeating the single channel.
    channels = max(a.shape[0] for a in decoded)
    check_allocation(
        len(decoded) * channels * height * width,
        f"{paths[0].parent}: {len(decoded)} images of {channels}x{height}x{width}",
    )
    return np.stack([a if len(a) == channels else np.repeat(a, channels, axis=0) for a in decoded])


def read_image_folder(
    path: str | Path,
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Read a folder of same-sized images (PNG, JPEG, BMP, WebP, GIF, TIFF).

    If the folder has subfolders holding images, each subfolder is a class: labels are the
    indices of the sorted subfolder names, which are returned as ``class_names``. Otherwise
    the images directly inside are read unlabelled. Each file is decoded by
    ``read_image_file``: grey images give ``C = 1``, colour images ``C = 3`` (alpha dropped);
    a folder mixing both is read as RGB. The order is :func:`image_folder_files`'s.

    Returns images ``uint8 [N, C, H, W]``, labels ``int64 [N]`` or ``None``, class names or
    ``None``.
    """
    files, labels, class_names = image_folder_files(path)
    return read_image_files(files), labels, class_names


def image_folder_files(
    path: str | Path,
) -> tuple[list[Path], np.ndarray | None, list[str] | None]:
    """The image files of a folder in reading order (by class subfolder, then name), with
    their labels and the class names (both None without class subfolders)."""
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
        return loose, None, None
    if len(class_dirs) > MAX_CLASSES:
        raise DataFormatError(
            f"{path}: {len(class_dirs)} class subfolders, more than {MAX_CLASSES}"
        )
    files, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        class_files = _image_files(class_dir)
        files += class_files
        labels += [label] * len(class_files)
    return files, np.asarray(labels, dtype=np.int64), [d.name for d in class_dirs]


# --------------------------------------------------------------------------------------------
# Resizing
# --------------------------------------------------------------------------------------------


def _is_count(value: object) -> bool:
    """Whether ``value`` is a Python or numpy integer (``bool`` is not a size)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def output_size(size: object) -> tuple[int, int]:
    """``size`` (an integer or a pair ``(H, W)`` of them, each >= 1) as ``(H, W)``."""
    pair = (size, size) if _is_count(size) else size
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(map(_is_count, pair))):
        raise ValueError(f"size must be an integer or a pair (height, width), got {size!r}")
    if min(pair) < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return int(pair[0]), int(pair[1])


_RESIZE_WORKING_PLANES = 3


def resize_images(images: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize ``uint8 [N, C, H, W]`` images to ``[N, C, size, size]`` (or ``size = (H, W)``).

    Uses Pillow's BOX filter when shrinking (an exact average of source pixels, so no
    aliasing) and BILINEAR when enlarging. Each channel is resized on its own as a grey
    image, which is exact for any ``C``. A ``size`` whose output cannot fit in memory is
    refused with ``DataFormatError`` before anything is allocated.
    """
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 [N, C, H, W] images, got {images.dtype} {images.shape}")
    out_h, out_w = output_size(size)
    n, c, h, w = images.shape
    if (out_h, out_w) == (h, w):
        return images.copy()
    # The output, plus the planes Pillow and numpy hold while one plane is being resized.
    nbytes = (n * c + _RESIZE_WORKING_PLANES) * out_h * out_w
    check_allocation(nbytes, f"resizing {n} images to size {out_h}x{out_w}")
    shrinking = out_h <= h and out_w <= w
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    out = np.empty((n, c, out_h, out_w), dtype=np.uint8)
    for i in range(n):
        for ch in range(c):
            plane = Image.fromarray(np.ascontiguousarray(images[i, ch]))  # 2-D uint8 -> "L"
            out[i, ch] = np.asarray(plane.resize((out_w, out_h), resample=resample))
    return out

"""Bad data inputs end in one clear line naming the file, never a MemoryError, a zlib.error,
a TypeError or a hang: memory limits, corrupt streams, labels, empty splits, image decoding."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelcnn import limits as limits_module
from pixelcnn.data import (
    MAX_CLASSES,
    DataFormatError,
    ImageDataset,
    available_memory_bytes,
    check_allocation,
    load_dataset,
    read_cifar10,
    read_idx,
    read_idx_images,
    read_image_file,
    read_image_folder,
    read_npz,
    resize_images,
)

RNG = np.random.default_rng(1)
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


# --------------------------------------------------------------------------------------------
# Writers of real (and deliberately broken) file formats
# --------------------------------------------------------------------------------------------

_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}


def idx_header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + np.asarray(dims, dtype=">u4").tobytes()


def idx_bytes(array: np.ndarray) -> bytes:
    payload = array.astype(array.dtype.newbyteorder(">")).tobytes()
    return idx_header(_IDX_CODES[array.dtype], array.shape) + payload


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def flip(data: bytes, at: float = 0.5, count: int = 8) -> bytes:
    """``data`` with ``count`` bytes from the fraction ``at`` of its length XOR-ed."""
    out = bytearray(data)
    start = int(len(out) * at)
    out[start : start + count] = bytes(b ^ 0x55 for b in out[start : start + count])
    return bytes(out)


def zlib_broken_gzip(data: bytes) -> bytes:
    """Gzip of compressible ``data`` whose deflate stream is invalid (zlib.error, not just
    a CRC mismatch): the block-type bits of the first block are set to the reserved 11."""
    packed = bytearray(gzip.compress(data))
    packed[10] |= 0b110  # the byte after the 10-byte gzip header starts the first block
    return bytes(packed)


def npy_member(header_dims: tuple[int, ...], dtype: str = "|u1", payload: bytes = b"") -> bytes:
    """A ``.npy`` file whose header declares ``header_dims`` but that stores ``payload``."""
    buffer = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": header_dims}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + payload


def write_npz_member(path: Path, name: str, member: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name + ".npy", member)
    return path


def png_bytes(width: int, height: int, depth: int, colour_type: int, rows: bytes) -> bytes:
    """A minimal PNG; ``rows`` is the filtered scanline data (filter byte + pixels each)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def cifar_pickle(n: int, labels: list) -> bytes:
    data = RNG.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    return pickle.dumps({b"data": data, b"labels": labels, b"batch_label": b"fake"})


def write_cifar_tar(path: Path, batch: bytes, level: int = 9) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=level) as archive:
        for name in CIFAR_BATCHES:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(batch)
            archive.addfile(info, io.BytesIO(batch))
    return path


def write_idx_split(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> Path:
    write(folder / f"{prefix}-images-idx3-ubyte.gz", gzip.compress(idx_bytes(images)))
    write(folder / f"{prefix}-labels-idx1-ubyte.gz", gzip.compress(idx_bytes(labels)))
    return folder


def small_memory(monkeypatch, nbytes: int = 1000) -> None:
    monkeypatch.setattr(limits_module, "available_memory_bytes", lambda: nbytes)


# --------------------------------------------------------------------------------------------
# Every bad input: (id, write the file and read it, message fragment, file named)
# --------------------------------------------------------------------------------------------


def _npz_declaring_1e14(t, m):
    return read_npz(write_npz_member(t / "huge.npz", "x_train", npy_member((10**14,))))


def _npz_honest_but_too_big(t, m):
    np.savez(t / "big.npz", x_train=np.zeros((4, 28, 28), np.uint8))
    small_memory(m)
    return read_npz(t / "big.npz")


def _npz_object_dtype(t, m):
    member = npy_member((2,), dtype="|O", payload=pickle.dumps([1, 2]))
    return read_npz(write_npz_member(t / "obj.npz", "x_train", member))


def _npz_corrupt_deflate(t, m):
    np.savez_compressed(t / "bad.npz", x_train=RNG.integers(0, 256, (40, 8, 8), dtype=np.uint8))
    write(t / "bad.npz", flip((t / "bad.npz").read_bytes()))
    return read_npz(t / "bad.npz")


def _npz_cut_short(t, m):
    np.savez(t / "cut.npz", x_train=np.zeros((40, 8, 8), np.uint8))
    write(t / "cut.npz", (t / "cut.npz").read_bytes()[:500])
    return read_npz(t / "cut.npz")


def _idx_gzip_zlib_error(t, m):
    data = idx_bytes(np.zeros((20, 28, 28), np.uint8))
    return read_idx(write(t / "zlib.idx.gz", zlib_broken_gzip(data)))


def _idx_gzip_crc_error(t, m):
    data = idx_bytes(RNG.integers(0, 256, (20, 28, 28), dtype=np.uint8))
    return read_idx(write(t / "crc.idx.gz", flip(gzip.compress(data))))


def _idx_gzip_cut_short(t, m):
    packed = gzip.compress(idx_bytes(RNG.integers(0, 256, (20, 28, 28), dtype=np.uint8)))
    return read_idx(write(t / "cut.idx.gz", packed[: len(packed) // 2]))


def _idx_trailing_data(t, m):
    return read_idx(write(t / "long.idx", idx_bytes(np.zeros((2, 3, 3), np.uint8)) + b"x"))


def _idx_gzip_header_beyond_memory(t, m):
    header = idx_header(0x08, (1000, 100_000, 100_000))  # 10 TB, with no payload at all
    return read_idx(write(t / "vast.idx.gz", gzip.compress(header)))


def _idx_float_labels(t, m):
    write(t / "img.idx", idx_bytes(np.zeros((2, 3, 3), np.uint8)))
    write(t / "flab.idx", idx_bytes(np.array([0.0, 1.0], np.float32)))
    return read_idx_images(t / "img.idx", t / "flab.idx")


def _idx_labels_too_large(t, m):
    write(t / "img.idx", idx_bytes(np.zeros((2, 3, 3), np.uint8)))
    write(t / "biglab.idx", idx_bytes(np.array([0, MAX_CLASSES], np.int32)))
    return read_idx_images(t / "img.idx", t / "biglab.idx")


def _idx_zero_images(t, m):
    folder = write_idx_split(
        t / "mn", "t10k", np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8)
    )
    return load_dataset("mnist", "test", root=folder, download=False)


def _idx_zero_width(t, m):
    return read_idx_images(write(t / "thin.idx", idx_bytes(np.zeros((3, 28, 0), np.uint8))))


def _npz_negative_labels(t, m):
    np.savez(t / "neg.npz", x_train=np.zeros((2, 4, 4), np.uint8), y_train=np.array([0, -1]))
    return read_npz(t / "neg.npz")


def _npz_bool_labels(t, m):
    np.savez(t / "bool.npz", x_train=np.zeros((2, 4, 4), np.uint8), y_train=np.array([1, 0], bool))
    return read_npz(t / "bool.npz")


def _npz_float_labels(t, m):
    np.savez(t / "flt.npz", x_train=np.zeros((2, 4, 4), np.uint8), y_train=np.array([0.0, 1.0]))
    return read_npz(t / "flt.npz")


def _npz_zero_images(t, m):
    arrays = {"x_train": np.zeros((3, 28, 28), np.uint8), "x_test": np.zeros((0, 28, 28), np.uint8)}
    np.savez(t / "empty.npz", **arrays)
    return load_dataset(t / "empty.npz", "test")


def _npz_zero_height(t, m):
    np.savez(t / "flat.npz", x_train=np.zeros((5, 0, 28), np.uint8))
    return load_dataset(t / "flat.npz", "train")


def _folder_empty_test_split(t, m):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(write(t / "pics" / "train" / "a.png", b""))
    (t / "pics" / "test").mkdir()
    return load_dataset(t / "pics", "test")


def _cifar_negative_label(t, m):
    write(t / "cifar" / "test_batch", cifar_pickle(2, [3, -1]))
    return read_cifar10(t / "cifar", "test")


def _cifar_corrupt_tar_gz(t, m):
    # Stored (level 0) deflate blocks: the flipped bytes inflate fine into wrong pixels, and
    # only the gzip CRC at the end of the stream can tell.
    path = write_cifar_tar(t / "cifar-10-python.tar.gz", cifar_pickle(3, [1, 2, 3]), level=0)
    write(path, flip(path.read_bytes()))
    return read_cifar10(path, "test")


def _cifar_zlib_broken_tar_gz(t, m):
    path = write_cifar_tar(t / "cifar-10-python.tar.gz", cifar_pickle(3, [1, 2, 3]))
    raw = gzip.decompress(path.read_bytes())
    write(path, zlib_broken_gzip(raw))
    return read_cifar10(path, "test")


def _mnist5k_corrupt_gzip(t, m):
    csv = b"\n".join(b",".join([b"0"] * 784 + [b"1"]) for _ in range(20)) + b"\n"
    return load_dataset("mnist5k", root=write(t / "mnist_5k.csv.gz", zlib_broken_gzip(csv)))


def _image_not_an_image(t, m):
    return read_image_file(write(t / "junk.png", b"\x89PNG\r\n\x1a\n not really"))


def _image_truncated(t, m):
    return read_image_file(write(t / "short.png", png_bytes(10, 10, 8, 0, b"\x00" * 50)))


def _image_decompression_bomb(t, m):
    return read_image_file(write(t / "bomb.png", png_bytes(100_000, 100_000, 8, 0, b"\x00")))


def _image_missing(t, m):
    return read_image_file(t / "absent.png")


def _folder_with_broken_image(t, m):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(write(t / "f" / "a.png", b""))
    write(t / "f" / "b.png", b"not a png")
    return read_image_folder(t / "f")


def _resize_beyond_memory(t, m):
    # 100 images of 100000x100000 are a petabyte: beyond any machine, refused before allocating.
    return resize_images(np.zeros((100, 1, 4, 4), np.uint8), 100_000)


def _resize_bool_size(t, m):
    return resize_images(np.zeros((2, 1, 4, 4), np.uint8), True)


def _resize_float_size(t, m):
    return resize_images(np.zeros((2, 1, 4, 4), np.uint8), 2.5)


def _resize_zero_size(t, m):
    return resize_images(np.zeros((2, 1, 4, 4), np.uint8), (0, 4))


def _check_allocation_direct(t, m):
    return check_allocation(10**18, "plan.bin: the array")


BAD_INPUTS = [
    ("npz declares 1e14 elements", _npz_declaring_1e14, "truncated or corrupt", "huge.npz"),
    ("npz beyond memory", _npz_honest_but_too_big, "would need", "big.npz"),
    ("npz object dtype", _npz_object_dtype, "pickle", "obj.npz"),
    ("npz corrupt deflate", _npz_corrupt_deflate, "not a readable", "bad.npz"),
    ("npz cut short", _npz_cut_short, "not a readable npz", "cut.npz"),
    ("idx zlib error", _idx_gzip_zlib_error, "corrupt gzip stream", "zlib.idx.gz"),
    ("idx crc error", _idx_gzip_crc_error, "corrupt gzip stream", "crc.idx.gz"),
    ("idx gzip cut short", _idx_gzip_cut_short, "truncated gzip stream", "cut.idx.gz"),
    ("idx trailing data", _idx_trailing_data, "size mismatch", "long.idx"),
    ("idx header beyond memory", _idx_gzip_header_beyond_memory, "would need", "vast.idx.gz"),
    ("idx float labels", _idx_float_labels, "labels must be integers", "flab.idx"),
    ("idx label 100000", _idx_labels_too_large, "labels must lie in 0..99999", "biglab.idx"),
    ("idx zero images", _idx_zero_images, "the test split has no images", "t10k-images"),
    ("idx zero width", _idx_zero_width, "at least one row and one column", "thin.idx"),
    ("npz negative label", _npz_negative_labels, "labels must lie in 0..99999", "neg.npz"),
    ("npz bool labels", _npz_bool_labels, "labels must be integers, got dtype bool", "bool.npz"),
    ("npz float labels", _npz_float_labels, "labels must be integers", "flt.npz"),
    ("npz zero images", _npz_zero_images, "the test split has no images", "empty.npz"),
    ("npz zero height", _npz_zero_height, "at least one row", "flat.npz"),
    ("folder empty test/", _folder_empty_test_split, "the test split has no images", "pics"),
    ("cifar negative label", _cifar_negative_label, "labels must lie in 0..99999", "test_batch"),
    ("cifar corrupt tar.gz", _cifar_corrupt_tar_gz, "corrupt gzip stream", "cifar-10-python"),
    ("cifar zlib error", _cifar_zlib_broken_tar_gz, "cifar-10-python", "cifar-10-python"),
    ("mnist5k corrupt gzip", _mnist5k_corrupt_gzip, "corrupt gzip stream", "mnist_5k.csv.gz"),
    ("not an image", _image_not_an_image, "cannot decode image", "junk.png"),
    ("truncated png", _image_truncated, "cannot decode image", "short.png"),
    ("decompression bomb", _image_decompression_bomb, "decompression bomb", "bomb.png"),
    ("missing image", _image_missing, "does not exist", "absent.png"),
    ("folder with a broken image", _folder_with_broken_image, "cannot decode", "b.png"),
    ("resize 100000", _resize_beyond_memory, "would need", "100000x100000"),
    ("resize bool size", _resize_bool_size, "size must be an integer", "True"),
    ("resize float size", _resize_float_size, "size must be an integer", "2.5"),
    ("resize zero size", _resize_zero_size, "size must be positive", "(0, 4)"),
    ("check_allocation", _check_allocation_direct, "would need", "plan.bin"),
]


@pytest.mark.parametrize(
    ("make_and_read", "fragment", "names"),
    [pytest.param(f, frag, name, id=i) for i, f, frag, name in BAD_INPUTS],
)
def test_bad_input_gives_one_clear_line(tmp_path, monkeypatch, make_and_read, fragment, names):
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        make_and_read(tmp_path, monkeypatch)
    message = str(info.value)
    assert "\n" not in message, message
    assert fragment in message and names in message, message
    if isinstance(info.value, ValueError) and "size must" not in message:
        assert isinstance(info.value, DataFormatError), type(info.value)


# --------------------------------------------------------------------------------------------
# Memory: bombs are refused quickly and without inflating them
# --------------------------------------------------------------------------------------------


def gzip_bomb(header: bytes, zero_megabytes: int) -> bytes:
    """Gzip of ``header`` followed by many zeros, built incrementally so the test stays small."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    zeros = bytes(1 << 20)
    parts = [packer.compress(header)]
    parts += [packer.compress(zeros) for _ in range(zero_megabytes)]
    return b"".join([*parts, packer.flush()])


def test_idx_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    header = idx_header(0x08, (10, 28, 28))  # declares 7840 bytes; 200 MB follow
    path = write(tmp_path / "bomb.idx.gz", gzip_bomb(header + bytes(7840), 200))
    assert path.stat().st_size < 1_000_000
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DataFormatError, match=r"bomb\.idx\.gz.*size mismatch"):
            read_idx(path)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0 and peak < 20_000_000, (elapsed, peak)


def test_npz_header_declaring_1e14_elements_is_refused_quickly(tmp_path):
    path = write_npz_member(tmp_path / "huge.npz", "x_train", npy_member((10**14,), "<i8"))
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError, match=r"huge\.npz:x_train.*800000000000000 bytes"):
            read_npz(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000, peak


def test_check_allocation_message_and_memory_probe(monkeypatch):
    assert isinstance(available_memory_bytes(), int) and available_memory_bytes() > 0
    monkeypatch.setattr(limits_module, "available_memory_bytes", lambda: 20_400_000_000)
    check_allocation(20_400_000_000, "fits")
    with pytest.raises(DataFormatError) as info:
        check_allocation(93_100_000_000, "x_train of data.npz")
    expected = "x_train of data.npz would need 93.1 GB of memory, more than the 20.4 GB available"
    assert str(info.value) == expected


def test_memory_probe_falls_back_when_proc_is_unreadable(monkeypatch):
    monkeypatch.setattr(limits_module, "_meminfo_available", lambda: None)
    assert limits_module.available_memory_bytes() > 0
    monkeypatch.setattr(limits_module, "_physical_memory", lambda: None)
    assert limits_module.available_memory_bytes() > 10**11  # unknown: assume a big machine


# --------------------------------------------------------------------------------------------
# One image reader for every command
# --------------------------------------------------------------------------------------------


def test_16_bit_grey_png_keeps_the_high_byte(tmp_path):
    wide = np.array([[0, 257, 0x1234], [0xFFFF, 0x80FF, 0x7F00]], dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    assert Image.open(tmp_path / "wide.png").mode.startswith("I")
    got = read_image_file(tmp_path / "wide.png")
    assert got.dtype == np.uint8 and got.shape == (1, 2, 3)
    assert np.array_equal(got[0], wide >> 8)
    # The folder reader decodes the same way (one decoding path).
    assert np.array_equal(read_image_folder(tmp_path)[0][0], got)


def test_16_bit_rgb_png_keeps_the_high_bytes(tmp_path):
    wide = np.array([[[0x1234, 0xABCD, 0xFF01], [0x0102, 0x8000, 0x7FFF]]], dtype=">u2")
    rows = b"".join(b"\x00" + row.tobytes() for row in wide)
    write(tmp_path / "rgb16.png", png_bytes(2, 1, 16, 2, rows))
    got = read_image_file(tmp_path / "rgb16.png")
    assert got.shape == (3, 1, 2) and np.array_equal(
        got, (wide >> 8).astype(np.uint8).transpose(2, 0, 1)
    )


def test_channels_conversion(tmp_path):
    rgb = RNG.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    grey = RNG.integers(0, 256, size=(5, 4), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(np.dstack([rgb, np.full((5, 4), 9, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray(np.dstack([grey, grey])).save(tmp_path / "la.png")  # LA mode
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")

    assert np.array_equal(read_image_file(tmp_path / "rgb.png"), rgb.transpose(2, 0, 1))
    luma = np.asarray(Image.fromarray(rgb).convert("L"))
    assert np.array_equal(read_image_file(tmp_path / "rgb.png", channels=1), luma[None])
    assert np.array_equal(read_image_file(tmp_path / "grey.png"), grey[None])
    assert np.array_equal(read_image_file(tmp_path / "grey.png", channels=3), np.stack([grey] * 3))
    assert np.array_equal(read_image_file(tmp_path / "grey.png", channels=1), grey[None])
    assert np.array_equal(read_image_file(tmp_path / "rgba.png"), rgb.transpose(2, 0, 1))
    assert np.array_equal(read_image_file(tmp_path / "la.png"), grey[None])
    palette = read_image_file(tmp_path / "p.png")
    expected = np.asarray(Image.open(tmp_path / "p.png").convert("RGB")).transpose(2, 0, 1)
    assert palette.shape == (3, 5, 4) and np.array_equal(palette, expected)
    for bad in (2, 0, True):
        with pytest.raises(ValueError, match="channels"):
            read_image_file(tmp_path / "rgb.png", channels=bad)


# --------------------------------------------------------------------------------------------
# Valid files still load, and identically
# --------------------------------------------------------------------------------------------


def test_resize_accepts_numpy_integers_and_pairs():
    images = RNG.integers(0, 256, size=(2, 3, 8, 8), dtype=np.uint8)
    assert np.array_equal(resize_images(images, np.int64(4)), resize_images(images, 4))
    assert resize_images(images, (np.int32(6), 5)).shape == (2, 3, 6, 5)
    assert resize_images(images, [4, 4]).shape == (2, 3, 4, 4)


def test_valid_npz_layouts_load_exactly(tmp_path):
    images = RNG.integers(0, 256, size=(6, 3, 5, 4), dtype=np.uint8)
    labels = np.arange(6, dtype=np.int16)
    # Fortran order, big-endian integers and compression all go through the header check.
    np.savez_compressed(
        tmp_path / "ok.npz",
        x_train=np.asfortranarray(images.transpose(0, 2, 3, 1).astype(">i4")),
        y_train=labels.reshape(6, 1),
        x_test=images[:2],
        class_names=np.array([f"c{i}" for i in range(6)]),
    )
    got_images, got_labels = read_npz(tmp_path / "ok.npz")
    assert np.array_equal(got_images, images) and got_images.dtype == np.uint8
    assert got_labels.dtype == np.int64 and np.array_equal(got_labels, labels)
    train = load_dataset(tmp_path / "ok.npz")
    assert train.class_names == [f"c{i}" for i in range(6)]
    assert np.array_equal(load_dataset(tmp_path / "ok.npz", "test").images, images[:2])


@pytest.mark.parametrize("gz", [True, False])
def test_valid_idx_loads_exactly(tmp_path, gz):
    values = np.array([[1, -2, 70000], [3, 4, -5]], dtype=np.int32)
    data = idx_bytes(values)
    got = read_idx(write(tmp_path / "v.idx", gzip.compress(data) if gz else data))
    assert got.dtype == np.int32 and got.dtype.isnative and np.array_equal(got, values)
    images = RNG.integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, MAX_CLASSES - 1, 3], dtype=np.int32)
    write_idx_split(tmp_path / "mn", "t10k", images, labels)
    test = load_dataset("mnist", "test", root=tmp_path / "mn", download=False)
    assert np.array_equal(test.images[:, 0], images) and np.array_equal(test.labels, labels)


def test_valid_cifar_tar_and_folder_load_exactly(tmp_path):
    batch = cifar_pickle(3, [0, 5, 9])
    path = write_cifar_tar(tmp_path / "cifar-10-python.tar.gz", batch)
    write(tmp_path / "cifar" / "test_batch", batch)
    from_tar, from_folder = read_cifar10(path, "test"), read_cifar10(tmp_path / "cifar", "test")
    data = pickle.loads(batch)[b"data"].reshape(-1, 3, 32, 32)
    for images, labels in (from_tar, from_folder):
        assert np.array_equal(images, data) and labels.tolist() == [0, 5, 9]


def test_image_dataset_refuses_bad_labels_built_in_code():
    images = np.zeros((2, 1, 3, 3), np.uint8)
    with pytest.raises(ValueError, match="integers"):
        ImageDataset(images, np.array([0.0, 1.0]), "mine", "train")
    with pytest.raises(ValueError, match="0..99999"):
        ImageDataset(images, np.array([0, -3]), "mine", "train")
    with pytest.raises(ValueError, match="1x1"):
        ImageDataset(np.zeros((2, 1, 0, 3), np.uint8), None, "mine", "train")
    assert (
        ImageDataset(images, np.array([0, 1], np.int32), "mine", "train").labels.dtype == np.int64
    )

"""Lossless means lossless for every kind of file the codec takes: each bit depth, colour
model, alpha and format Pillow opens under an image suffix either is refused in one line,
or compresses and decompresses to the pixels an INDEPENDENT decoder reads from the original
(pypng for PNG, tifffile for TIFF, imagecodecs' libjpeg/libwebp/giflib/BMP decoders for
the rest), never to what Pillow alone makes of it. Files of several frames are refused by
every reader, not cut to their first frame."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imagecodecs
import numpy as np
import png  # pypng
import pytest
import tifffile
from helpers import perturb
from PIL import Image

import pixelcnn
from pixelcnn.cli import main
from pixelcnn.data import load_dataset
from pixelcnn.data.readers import DataFormatError, read_image_file

SIDE = 4
RNG = np.random.default_rng(7)
GREY = RNG.integers(0, 256, (SIDE, SIDE), dtype=np.uint8)
RGB = RNG.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Saved 256-level models of 4x4 images: {1: grey, 3: RGB}."""
    root = tmp_path_factory.mktemp("exact")
    grey = perturb(pixelcnn.create("gated", (1, SIDE, SIDE), 256, preset="tiny"), 0.3)
    rgb = perturb(pixelcnn.create("gated", (3, SIDE, SIDE), 256, preset="tiny"), 0.3, seed=1)
    return {1: grey.save(root / "grey"), 3: rgb.save(root / "rgb")}


# ------------------------------------------------------------------ writers of each kind
def write_png(path: Path, rows: np.ndarray, **info) -> Path:
    """A PNG written by pypng (so the bit depth, palette and tRNS are exactly as asked):
    ``rows`` [H, W * planes] of samples."""
    with open(path, "wb") as stream:
        png.Writer(SIDE, SIDE, **info).write(stream, rows.tolist())
    return path


def grey_bits(bits: int) -> Callable[[Path], Path]:
    return lambda p: write_png(
        p / "g.png", RNG.integers(0, 2**bits, (SIDE, SIDE)), greyscale=True, bitdepth=bits
    )


def planes(count: int, bits: int, alpha: bool, opaque: bool = True) -> Callable[[Path], Path]:
    """A PNG of ``count`` planes (grey, grey+alpha, RGB, RGBA) at ``bits`` per sample."""

    def make(path: Path) -> Path:
        top = 2**bits - 1
        samples = RNG.integers(0, top + 1, (SIDE, SIDE, count))
        if alpha:
            samples[..., -1] = top
            if not opaque:
                samples[0, 0, -1] = 0
        return write_png(
            path / "p.png",
            samples.reshape(SIDE, SIDE * count),
            greyscale=count <= 2,
            alpha=alpha,
            bitdepth=bits,
        )

    return make


def palette(bits: int, transparent_used: bool | None) -> Callable[[Path], Path]:
    """A palette PNG; ``transparent_used``: None for no tRNS, else whether the entry that
    tRNS makes transparent is one the pixels use."""

    def make(path: Path) -> Path:
        entries = [tuple(int(v) for v in RNG.integers(0, 256, 3)) for _ in range(2**bits)]
        indices = RNG.integers(1, 2**bits, (SIDE, SIDE))
        if transparent_used is not None:
            entries = [(*entries[0], 0), *[(*e, 255) for e in entries[1:]]]
            if transparent_used:
                indices[1, 2] = 0
        return write_png(path / "pal.png", indices, palette=entries, bitdepth=bits)

    return make


def grey_trns(present: bool) -> Callable[[Path], Path]:
    """8-bit grey with a tRNS colour that the pixels hold or do not."""

    def make(path: Path) -> Path:
        samples = GREY.copy()
        key = int(samples[0, 0]) if present else int(np.setdiff1d(np.arange(256), samples)[0])
        return write_png(path / "t.png", samples, greyscale=True, bitdepth=8, transparent=key)

    return make


def rgb_trns(path: Path) -> Path:
    return write_png(
        path / "t.png",
        RGB.reshape(SIDE, SIDE * 3),
        greyscale=False,
        bitdepth=8,
        transparent=tuple(int(v) for v in RGB[1, 1]),
    )


def pillow(name: str, make_image: Callable[[], Image.Image], **save) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        make_image().save(path / name, **save)
        return path / name

    return make


def tiff(array: np.ndarray, **write) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        tifffile.imwrite(path / "t.tif", array, **write)
        return path / "t.tif"

    return make


def bmp16(path: Path) -> Path:
    """A 16-bit (5-5-5) BMP, which Pillow widens to 8 bits a channel when it reads it."""
    row = struct.pack("<4H", *RNG.integers(0, 2**15, SIDE).tolist())  # 8 bytes: no padding
    pixels = row * SIDE
    info = struct.pack("<IiiHHIIiiII", 40, SIDE, SIDE, 1, 16, 0, len(pixels), 0, 0, 0, 0)
    head = struct.pack("<2sIHHI", b"BM", 14 + 40 + len(pixels), 0, 0, 14 + 40)
    (path / "d.bmp").write_bytes(head + info + pixels)
    return path / "d.bmp"


def ppm_named_png(path: Path) -> Path:
    Image.fromarray(RGB).save(path / "x.png", format="PPM")
    return path / "x.png"


# ------------------------------------------------------------------ independent decoders
def decode_png(path: Path) -> np.ndarray:
    """pypng's reading, palette and tRNS expanded, low depths scaled v * 255 / (2^b - 1)
    as the PNG specification says: [H, W, planes]."""
    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    array = np.array([list(r) for r in rows], dtype=np.int64).reshape(height, width, -1)
    bits = info["bitdepth"]
    assert bits <= 8
    return (array * 255 // (2**bits - 1)).astype(np.uint8)


def decode_with(function) -> Callable[[Path], np.ndarray]:
    return lambda path: np.asarray(function(path.read_bytes()))


DECODERS = {
    "png": decode_png,
    "tif": lambda p: tifffile.imread(p),
    "bmp": decode_with(imagecodecs.bmp_decode),
    "gif": decode_with(imagecodecs.gif_decode),
    "webp": decode_with(imagecodecs.webp_decode),
    "jpg": decode_with(imagecodecs.jpeg8_decode),
}


def as_image(array: np.ndarray, channels: int) -> np.ndarray:
    """An independent decoding [H, W] or [H, W, planes] as [C, H, W]: a fully opaque
    alpha plane dropped, a palette of greys (equal planes) read as grey."""
    array = array if array.ndim == 3 else array[..., None]
    if array.shape[-1] in (2, 4):
        assert (array[..., -1] == 255).all(), "an accepted file had transparent pixels"
        array = array[..., :-1]
    if channels == 1 and array.shape[-1] == 3:
        assert (array == array[..., :1]).all()
        array = array[..., :1]
    return np.moveaxis(array, -1, 0)


@dataclass
class Case:
    name: str
    make: Callable[[Path], Path]
    channels: int | None  # the model the file is read for; None: refused
    refusal: str = ""


CASES = [
    # PNG: every depth of grey, grey+alpha, RGB, RGBA and palette, tRNS
    *[Case(f"png grey {b}-bit", grey_bits(b), 1) for b in (1, 2, 4, 8)],
    Case("png grey 16-bit", grey_bits(16), None, "16-bit samples"),
    Case("png grey+alpha 8-bit opaque", planes(2, 8, True), 1),
    Case("png grey+alpha 8-bit transparent", planes(2, 8, True, False), None, "transparent"),
    Case("png grey+alpha 16-bit", planes(2, 16, True), None, "16-bit samples"),
    Case("png rgb 8-bit", planes(3, 8, False), 3),
    Case("png rgb 16-bit", planes(3, 16, False), None, "16-bit samples"),
    Case("png rgba 8-bit opaque", planes(4, 8, True), 3),
    Case("png rgba 8-bit transparent", planes(4, 8, True, False), None, "transparent"),
    Case("png rgba 16-bit", planes(4, 16, True), None, "16-bit samples"),
    *[Case(f"png palette {b}-bit", palette(b, None), 3) for b in (1, 2, 4, 8)],
    Case("png palette tRNS unused", palette(8, False), 3),
    Case("png palette tRNS used", palette(4, True), None, "transparent"),
    Case("png grey tRNS absent", grey_trns(False), 1),
    Case("png grey tRNS present", grey_trns(True), None, "transparent"),
    Case("png rgb tRNS present", rgb_trns, None, "transparent"),
    Case("ppm named .png", ppm_named_png, None, "PPM file"),
    # BMP
    Case("bmp rgb 24-bit", pillow("b.bmp", lambda: Image.fromarray(RGB)), 3),
    Case("bmp grey 8-bit", pillow("b.bmp", lambda: Image.fromarray(GREY)), 1),
    Case("bmp 1-bit", pillow("b.bmp", lambda: Image.fromarray(GREY).convert("1")), 1),
    Case("bmp 16-bit", bmp16, None, "16-bit pixels"),
    # GIF
    Case("gif palette", pillow("g.gif", lambda: Image.fromarray(RGB).quantize(16)), 3),
    Case(
        "gif transparent",
        pillow("g.gif", lambda: Image.fromarray(RGB).quantize(16), transparency=0),
        None,
        "transparent",
    ),
    # TIFF
    Case("tiff grey 8-bit", tiff(GREY), 1),
    Case("tiff rgb 8-bit", tiff(RGB, photometric="rgb"), 3),
    Case("tiff grey 16-bit", tiff(GREY.astype(np.uint16) * 257), None, "16-bit integer"),
    Case(
        "tiff rgb 16-bit",
        tiff(RGB.astype(np.uint16) * 257, photometric="rgb"),
        None,
        "16-bit integer",
    ),
    Case("tiff float", tiff(GREY.astype(np.float32) / 255), None, "32-bit float"),
    # WebP lossless
    Case("webp lossless rgb", pillow("w.webp", lambda: Image.fromarray(RGB), lossless=True), 3),
    Case(
        "webp lossless transparent",
        pillow(
            "w.webp",
            lambda: Image.fromarray(np.dstack([RGB, np.full_like(GREY, 9)])),
            lossless=True,
        ),
        None,
        "transparent",
    ),
    # JPEG: its pixels are what a decoder makes of it; lossless from there
    Case("jpeg grey", pillow("j.jpg", lambda: Image.fromarray(GREY)), 1),
    Case("jpeg rgb", pillow("j.jpg", lambda: Image.fromarray(RGB), quality=90), 3),
    Case("jpeg cmyk", pillow("j.jpg", lambda: Image.fromarray(RGB).convert("CMYK")), None, "CMYK"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_kind_of_file_is_refused_or_restored_exactly(models, tmp_path, capsys, case):
    source = tmp_path / "in"
    source.mkdir()
    file = case.make(source)
    blob = tmp_path / "c.pxc"
    model = models[case.channels or 3]
    code = main(["compress", str(model), str(file), "--out", str(blob), "--quiet"])
    err = capsys.readouterr().err.strip()
    if case.channels is None:
        assert code == 2 and case.refusal in err and len(err.splitlines()) == 1, err
        assert not blob.exists()
        return
    assert code == 0, err
    out = tmp_path / "out"
    assert main(["decompress", str(blob), "--run", str(model), "--out", str(out), "--quiet"]) == 0
    restored = as_image(decode_png(out / f"{file.stem}.png"), case.channels)
    original = as_image(DECODERS[file.suffix[1:]](file), case.channels)
    assert restored.shape == (case.channels, SIDE, SIDE)
    np.testing.assert_array_equal(restored, original)


# ------------------------------------------------------------------------- frames
def frames(count: int) -> list[Image.Image]:
    return [Image.fromarray(RGB // (k + 1)) for k in range(count)]


def animated(name: str, **save) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        first, *rest = frames(3)
        first.save(path / name, save_all=True, append_images=rest, **save)
        return path / name

    return make


MULTI_FRAME = [
    ("tiff 3 pages", animated("m.tif")),
    ("apng", animated("m.png")),
    ("gif", animated("m.gif")),
    ("webp animation", animated("m.webp", lossless=True)),
]


@pytest.mark.parametrize(("case", "make"), MULTI_FRAME, ids=[c[0] for c in MULTI_FRAME])
def test_several_frames_are_refused_by_every_reader(models, tmp_path, capsys, case, make):
    folder = tmp_path / "set" / "train"
    folder.mkdir(parents=True)
    file = make(folder)
    with Image.open(file) as image:
        assert image.n_frames == 3  # the file really holds three frames
    # the library's reader
    with pytest.raises(DataFormatError, match="has 3 frames"):
        read_image_file(file)
    # a folder read as a dataset
    with pytest.raises(DataFormatError, match="has 3 frames"):
        load_dataset(tmp_path / "set", "train")
    # compress
    blob = tmp_path / "c.pxc"
    assert main(["compress", str(models[3]), str(file), "--out", str(blob), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "has 3 frames" in err and len(err.splitlines()) == 1, err
    assert not blob.exists()
    # and the same file holding one frame is read
    Image.fromarray(RGB).save(file, format=Image.open(io.BytesIO(file.read_bytes())).format)
    assert read_image_file(file).shape == (3, SIDE, SIDE)

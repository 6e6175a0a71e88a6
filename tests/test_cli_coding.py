"""pixelcnn compress / decompress: real files in, the same pixels out under the same names;
every refusal one line, status 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import perturb
from PIL import Image

import pixelcnn
from pixelcnn.cli import main
from pixelcnn.coding import container, unpack


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved grey 8x8 model at 256 levels with random weights, and one for RGB."""
    root = tmp_path_factory.mktemp("coding")
    grey = perturb(pixelcnn.create("gated", (1, 8, 8), 256, preset="tiny"), 0.3)
    rgb = perturb(pixelcnn.create("pixelcnnpp", (3, 8, 8), 256, preset="tiny"), 0.3, seed=1)
    return grey.save(root / "grey"), rgb.save(root / "rgb")


def grey_folder(root: Path) -> Path:
    """Six 8x8 grey PNGs in two class subfolders."""
    generator = np.random.default_rng(0)
    for name in ["x/a.png", "x/b.png", "x/c.png", "x/d.png", "y/e.png", "y/f.png"]:
        (root / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        array = generator.integers(0, 256, (8, 8), dtype=np.uint8)
        Image.fromarray(array).save(root / "in" / name)
    return root / "in"


def test_a_folder_round_trips_under_its_names(saved, tmp_path):
    folder = grey_folder(tmp_path)
    blob = tmp_path / "digits.pxc"
    argv = ["compress", str(saved[0]), str(folder), "--out", str(blob), "--batch-size", "4"]
    assert main([*argv, "--quiet"]) == 0
    header, _ = unpack(blob.read_bytes())
    assert header.names == ["x/a.png", "x/b.png", "x/c.png", "x/d.png", "y/e.png", "y/f.png"]
    out = tmp_path / "restored"
    assert main(["decompress", str(blob), "--run", str(saved[0]), "--out", str(out)]) == 0
    for name in header.names:
        assert np.array_equal(pixels(out / name), pixels(folder / name)), name
    # again: its own earlier outputs are replaced without --overwrite
    assert main(["decompress", str(blob), "--run", str(saved[0]), "--out", str(out)]) == 0
    # one image alone
    alone = tmp_path / "alone"
    argv = ["decompress", str(blob), "--run", str(saved[0]), "--out", str(alone), "--index", "5"]
    assert main(argv) == 0
    assert sorted(tree(alone)) == ["y/f.png"]


def test_rgb_files_and_jpeg_pixels_round_trip(saved, tmp_path):
    generator = np.random.default_rng(1)
    files = []
    for name in ["x.png", "y.bmp", "z.jpg"]:
        array = generator.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(array).save(tmp_path / name)
        files.append(tmp_path / name)
    blob = tmp_path / "c.pxc"
    assert main(["compress", str(saved[1]), *map(str, files), "--out", str(blob), "--quiet"]) == 0
    out = tmp_path / "out"
    assert main(["decompress", str(blob), "--run", str(saved[1]), "--out", str(out)]) == 0
    for file in files:  # restored as PNG under the same stem, with the decoded pixels
        assert np.array_equal(pixels(out / (file.stem + ".png")), pixels(file))


def test_an_npz_round_trips_with_its_labels(saved, tmp_path):
    images = np.random.default_rng(2).integers(0, 256, (7, 1, 8, 8), dtype=np.uint8)
    labels = np.arange(7) % 3
    np.savez(tmp_path / "d.npz", x_test=images, y_test=labels)
    blob, out = tmp_path / "d.pxc", tmp_path / "r.npz"
    assert main(["compress", str(saved[0]), str(tmp_path / "d.npz"), "--out", str(blob)]) == 0
    assert main(["decompress", str(blob), "--run", str(saved[0]), "--out", str(out)]) == 0
    restored = np.load(out)
    assert np.array_equal(restored["x_test"], images)
    assert np.array_equal(restored["y_test"], labels)


@pytest.fixture
def made(saved, tmp_path):
    folder = grey_folder(tmp_path)
    blob = tmp_path / "f.pxc"
    assert main(["compress", str(saved[0]), str(folder), "--out", str(blob), "--quiet"]) == 0
    return blob


def _rgba(tmp: Path) -> str:
    array = np.full((8, 8, 4), 200, np.uint8)
    array[0, 0, 3] = 10
    Image.fromarray(array, "RGBA").save(tmp / "t.png")
    return str(tmp / "t.png")


def _sixteen_bit(tmp: Path) -> str:
    Image.fromarray(np.full((8, 8), 1000, np.uint16)).save(tmp / "deep.png")
    return str(tmp / "deep.png")


def _palette_with_transparency(tmp: Path) -> str:
    picture = Image.fromarray(np.zeros((8, 8), np.uint8)).convert("P")
    picture.save(tmp / "p.png", transparency=0)
    return str(tmp / "p.png")


def _big(tmp: Path) -> str:
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp / "big.png")
    return str(tmp / "big.png")


def _users(tmp: Path) -> str:
    (tmp / "mine.pxc").write_text("mine")
    return str(tmp / "mine.pxc")


def _empty_dir(tmp: Path) -> str:
    (tmp / "empty").mkdir()
    return str(tmp / "empty")


BAD_COMPRESS = [
    ("transparency", lambda t: [_rgba(t), "--out", str(t / "o.pxc")], "transparent"),
    (
        "palette alpha",
        lambda t: [_palette_with_transparency(t), "--out", str(t / "o.pxc")],
        "transparent",
    ),
    ("16-bit", lambda t: [_sixteen_bit(t), "--out", str(t / "o.pxc")], "16-bit samples"),
    ("wrong size", lambda t: [_big(t), "--out", str(t / "o.pxc")], "cannot resize"),
    ("missing file", lambda t: [str(t / "no.png"), "--out", str(t / "o.pxc")], "does not exist"),
    ("empty folder", lambda t: [_empty_dir(t), "--out", str(t / "o.pxc")], "no image"),
    ("user's file", lambda t: [_big(t), "--out", _users(t)], "--overwrite"),
    ("no such data", lambda t: ["nodata", "--out", str(t / "o.pxc")], "unknown dataset"),
]


@pytest.mark.parametrize(
    ("case", "argv", "message"), BAD_COMPRESS, ids=[c[0] for c in BAD_COMPRESS]
)
def test_bad_compress_input_is_one_line_and_writes_nothing(
    saved, tmp_path, capsys, case, argv, message
):
    extra = argv(tmp_path)
    before = tree(tmp_path)
    assert main(["compress", str(saved[0]), *extra, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert tree(tmp_path) == before


def _damaged(blob: Path, how: str) -> str:
    data = blob.read_bytes()
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "flipped":
        data = data[:-5] + bytes([data[-5] ^ 4]) + data[-4:]
    elif how == "unsafe name":
        header, streams = unpack(data)
        header.names = ["../escape.png", *header.names[1:]]
        data = container.pack(header, streams)
    target = blob.with_name(f"{how.replace(' ', '_')}.pxc")
    target.write_bytes(data)
    return str(target)


BAD_DECOMPRESS = [
    ("other model", lambda b, s: [str(b), "--run", str(s[1])], "another model"),
    ("truncated", lambda b, s: [_damaged(b, "truncated"), "--run", str(s[0])], "truncated"),
    ("flipped byte", lambda b, s: [_damaged(b, "flipped"), "--run", str(s[0])], "corrupt"),
    ("foreign file", lambda b, s: [_users(b.parent), "--run", str(s[0])], "not a pixelcnn"),
    ("unsafe name", lambda b, s: [_damaged(b, "unsafe name"), "--run", str(s[0])], "relative"),
    ("index", lambda b, s: [str(b), "--run", str(s[0]), "--index", "6"], "holds images 0..5"),
]


@pytest.mark.parametrize(
    ("case", "argv", "message"), BAD_DECOMPRESS, ids=[c[0] for c in BAD_DECOMPRESS]
)
def test_bad_decompress_input_is_one_line_and_writes_nothing(
    saved, made, tmp_path, capsys, case, argv, message
):
    extra = argv(made, saved)
    before = tree(tmp_path)
    assert main(["decompress", *extra, "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert tree(tmp_path) == before


def test_a_users_file_among_the_outputs_stops_decompression(saved, made, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "x").mkdir(parents=True)
    (out / "x" / "c.png").write_bytes(b"my own picture")
    before = tree(tmp_path)
    assert main(["decompress", str(made), "--run", str(saved[0]), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert tree(tmp_path) == before
    argv = ["decompress", str(made), "--run", str(saved[0]), "--out", str(out), "--overwrite"]
    assert main(argv) == 0 and (out / "x" / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_labels_condition_a_class_conditional_model(tmp_path):
    model = perturb(pixelcnn.create("gated", (1, 8, 8), 256, preset="tiny", num_classes=3))
    run = model.save(tmp_path / "cond")
    images = np.random.default_rng(3).integers(0, 256, (4, 1, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x_test=images, y_test=np.array([0, 2, 1, 2]))
    blob = tmp_path / "d.pxc"
    assert main(["compress", str(run), str(tmp_path / "d.npz"), "--out", str(blob)]) == 0
    assert unpack(blob.read_bytes())[0].labels == [0, 2, 1, 2]
    assert torch.equal(model.decompress(blob.read_bytes()), torch.from_numpy(images))

"""`pixelcnn complete`: completing the top rows of a picture with tiny saved models."""

import numpy as np
import pytest
import torch
from PIL import Image

import pixelcnn
from pixelcnn.cli import main

SHAPE = (8, 8)
PADDING = 2  # pixelcnn.pictures.image_grid's default
SCALE = 128 // max(SHAPE)  # save_image_grid enlarges 8x8 images 16x


def _save_model(directory, network, channels, **hyperparameters):
    torch.manual_seed(0)
    model = pixelcnn.create(network, (channels, *SHAPE), levels=4, preset="tiny", **hyperparameters)
    model.save(directory)  # what `pixelcnn sample RUN` loads: config.json + model.safetensors
    return directory


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "gray": _save_model(root / "gray", "gated", 1),
        "colour": _save_model(root / "colour", "pixelcnnpp", 3),
        "classes": _save_model(root / "classes", "gated", 1, num_classes=3),
    }


def _picture(path, channels, size=SHAPE, seed=0):
    """A random picture of ``size`` (H, W) with arbitrary values, saved as PNG."""
    values = np.random.default_rng(seed).integers(0, 256, (*size, channels), dtype=np.uint8)
    Image.fromarray(values[..., 0] if channels == 1 else values).save(path)
    return path


def _tiles(path, count, channels):
    """The ``count`` images [count, C, H, W] of a one-row grid written by save_image_grid."""
    picture = Image.open(path)
    height, width = SHAPE
    assert picture.size == (
        (count * (width + PADDING) + PADDING) * SCALE,
        (height + PADDING + PADDING) * SCALE,
    )
    canvas = np.asarray(picture.convert("RGB"))[::SCALE, ::SCALE]  # undo the enlargement
    tiles = []
    for index in range(count):
        left = PADDING + index * (width + PADDING)
        tile = canvas[PADDING : PADDING + height, left : left + width]  # [H, W, 3]
        if channels == 1:
            assert (tile == tile[..., :1]).all()  # grey pictures are drawn as equal R, G, B
            tile = tile[..., :1]
        tiles.append(np.moveaxis(tile, -1, 0))
    return np.stack(tiles)


def _complete(run, image, *extra):
    return main(["complete", str(run), "--image", str(image), "--quiet", *extra])


@pytest.mark.parametrize(("name", "channels"), [("gray", 1), ("colour", 3)])
def test_completions_keep_the_known_rows(runs, tmp_path, capsys, name, channels):
    run, rows, n = runs[name], 3, 3
    image = _picture(tmp_path / "in.png", channels)
    assert _complete(run, image, "--rows", str(rows), "--n", str(n)) == 0
    out = run / "completions.png"  # the default, next to samples.png
    assert capsys.readouterr().out.strip() == f"completions: {out}"
    tiles = _tiles(out, n + 2, channels)
    out.unlink()

    model = pixelcnn.load(run)
    snapped = np.array(Image.open(image).convert("L" if channels == 1 else "RGB"))
    snapped = model.quantize(
        torch.from_numpy(snapped.reshape(*SHAPE, channels)).permute(2, 0, 1)[None]
    )
    original, visible, completions = tiles[0], tiles[1], tiles[2:]
    assert np.array_equal(original, snapped[0].numpy())
    assert np.array_equal(visible[:, :rows], original[:, :rows])
    assert (visible[:, rows:] == 0).all()
    valid = model.quantizer.valid_values().numpy()
    for completion in completions:
        assert np.array_equal(completion[:, :rows], original[:, :rows])
        assert np.isin(completion, valid).all()
    assert not all(np.array_equal(c[:, rows:], original[:, rows:]) for c in completions)


def test_same_seed_same_grid_and_naive_equals_cached(runs, tmp_path):
    run, image = runs["colour"], _picture(tmp_path / "in.png", 3)
    grids = {}
    for key, extra in [
        ("first", []),
        ("again", []),
        ("naive", ["--method", "naive"]),
        ("other seed", ["--seed", "1"]),
    ]:
        out = tmp_path / f"{key}.png"
        argv = ["--rows", "4", "--n", "2", "--seed", "7", "--out", str(out), *extra]
        assert _complete(run, image, *argv) == 0
        grids[key] = _tiles(out, 4, 3)
    assert np.array_equal(grids["first"], grids["again"])
    assert np.array_equal(grids["first"], grids["naive"])
    assert not np.array_equal(grids["first"], grids["other seed"])


def test_all_rows_none_rows_columns_and_classes(runs, tmp_path, capsys):
    image = _picture(tmp_path / "in.png", 1)
    out = tmp_path / "grid.png"
    assert _complete(runs["gray"], image, "--rows", "8", "--n", "2", "--out", str(out)) == 0
    tiles = _tiles(out, 4, 1)
    assert all(np.array_equal(tile, tiles[0]) for tile in tiles[1:])  # nothing to draw
    assert _complete(runs["gray"], image, "--rows", "0", "--n", "2", "--out", str(out)) == 0
    assert (_tiles(out, 4, 1)[1] == 0).all()  # nothing visible

    argv = ["--rows", "2", "--n", "3", "--columns", "2", "--out", str(out)]
    assert _complete(runs["gray"], image, *argv) == 0
    # five tiles, two per row: three rows
    assert Image.open(out).size == ((2 * 10 + 2) * SCALE, (3 * 10 + 2) * SCALE)

    argv = ["--rows", "2", "--n", "2", "--class", "1", "--temperature", "0.5", "--out", str(out)]
    assert _complete(runs["classes"], image, *argv) == 0
    tiles = _tiles(out, 4, 1)
    assert all(np.array_equal(tile[:, :2], tiles[0][:, :2]) for tile in tiles[2:])
    capsys.readouterr()


@pytest.mark.parametrize(
    ("run", "argv", "message"),
    [
        ("gray", ["--image", "{small}", "--rows", "2"], "7x8 pixels (HxW) but the model takes 8x8"),
        ("gray", ["--image", "{image}", "--rows", "9"], "--rows must be in 0..8"),
        ("gray", ["--image", "{image}", "--rows", "-1"], "got -1"),
        ("gray", ["--image", "{tmp}/absent.png", "--rows", "2"], "absent.png does not exist"),
        ("gray", ["--image", "{text}", "--rows", "2"], "notes.png"),
        (
            "gray",
            ["--image", "{image}", "--rows", "2", "--n", "0"],
            "--n: the value must be at least 1",
        ),
        ("gray", ["--image", "{image}", "--rows", "2", "--columns", "0"], "--columns"),
        ("gray", ["--image", "{image}", "--rows", "2", "--class", "1"], "class-conditional"),
        ("classes", ["--image", "{image}", "--rows", "2"], "pass --class 0..2"),
        ("classes", ["--image", "{image}", "--rows", "2", "--class", "3"], "0..2, got 3"),
        ("tokens", ["--image", "{image}", "--rows", "2"], "image models only"),
        ("absent", ["--image", "{image}", "--rows", "2"], "no saved model"),
    ],
)
def test_errors_are_one_line_with_exit_status_2_and_write_nothing(
    runs, tmp_path, capsys, run, argv, message
):
    if run == "tokens":
        torch.manual_seed(0)
        pixelcnn.create("gated", SHAPE, levels=4, preset="tiny", data="tokens").save(tmp_path / run)
    run_dir = runs.get(run, tmp_path / run)
    files = {
        "{image}": _picture(tmp_path / "in.png", 1),
        "{small}": _picture(tmp_path / "small.png", 1, size=(7, 8)),
        "{text}": tmp_path / "notes.png",
        "{tmp}": tmp_path,
    }
    files["{text}"].write_text("not a picture\n")
    for key, path in files.items():
        argv = [a.replace(key, str(path)) for a in argv]
    out = tmp_path / "out.png"
    assert main(["complete", str(run_dir), *argv, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(("pixelcnn: error:", "pixelcnn complete: error:")), err
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()
    # and without --out, nothing in the run either
    assert main(["complete", str(run_dir), *argv, "--quiet"]) == 2
    assert not (run_dir / "completions.png").exists()

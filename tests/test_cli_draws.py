"""What the drawing commands (sample, complete) write, and what they refuse to: a model
whose weights overflow, and the grid a training drew."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import pixelcnn
from pixelcnn.cli import main
from pixelcnn.pictures import png_kind

TINY = ["--preset", "tiny", "--size", "8", "--levels", "4", "--batch-size", "8", "--quiet"]


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def overflowing(tmp_path_factory):
    """Saved tiny models with every weight x 3e37: they load (the weights are finite) but
    their outputs are inf and NaN, so every draw would be garbage."""
    root = tmp_path_factory.mktemp("overflowing")
    for network, channels in (("gated", 1), ("pixelcnn", 3), ("pixelsnail", 1)):
        torch.manual_seed(0)  # the same weights whatever ran before
        model = pixelcnn.create(network, (channels, 8, 8), levels=4, preset="tiny")
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.mul_(3e37)
            empty = torch.zeros(1, channels, 8, 8, dtype=torch.uint8)
            assert not torch.isfinite(model.log_prob(empty)).all()  # scoring refuses it too
        model.save(root / f"{network}-{channels}")
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(root / "grey.png")
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(root / "colour.png")
    return root


CASES = [
    (command, model, method)
    for command in ("sample", "complete")
    for model in ("gated-1", "pixelcnn-3", "pixelsnail-1")
    for method in ("cached", "naive")
]


@pytest.mark.parametrize(("command", "model", "method"), CASES, ids=["-".join(c) for c in CASES])
def test_drawing_from_an_overflowing_model_is_one_line_and_writes_nothing(
    overflowing, tmp_path, capsys, command, model, method
):
    out = tmp_path / "out.png"
    argv = [command, str(overflowing / model), "--method", method, "--out", str(out), "--quiet"]
    if command == "complete":
        picture = "grey.png" if model.endswith("-1") else "colour.png"
        argv += ["--image", str(overflowing / picture), "--rows", "3", "--n", "2"]
    else:
        argv += ["--n", "2"]
    before = _tree(overflowing)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pixelcnn: error: the model gives non-finite likelihood parameters")
    assert len(err.splitlines()) == 1, err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert _tree(overflowing) == before


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("draws") / "run"
    argv = ["train", "--out", str(run), "--steps", "3", "--eval-every", "3", *TINY]
    assert main([*argv, "--samples", "4"]) == 0
    return run


def test_sample_never_replaces_the_grid_training_drew(trained, capsys):
    grid = (trained / "samples.png").read_bytes()
    assert main(["sample", str(trained), "--n", "2", "--quiet"]) == 0
    out = trained / "sampled.png"  # its own default name
    assert capsys.readouterr().out.strip() == f"samples: {out}"
    assert png_kind(out) == "sampled"
    assert main(["sample", str(trained), "--n", "3", "--quiet"]) == 0  # its own: replaced
    assert (trained / "samples.png").read_bytes() == grid
    # named on purpose, the training's grid is still a file of the run: never replaced
    for extra in ([], ["--overwrite"]):
        argv = ["sample", str(trained), "--out", str(trained / "samples.png"), *extra]
        assert main([*argv, "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert "is a file of the run" in err and len(err.splitlines()) == 1
    assert (trained / "samples.png").read_bytes() == grid
    out.unlink()


def test_sample_replaces_its_earlier_grids_but_not_a_users_picture(trained, tmp_path, capsys):
    out = tmp_path / "grid.png"
    argv = ["sample", str(trained), "--n", "2", "--quiet", "--out"]
    assert main([*argv, str(out)]) == 0
    assert main([*argv, str(out)]) == 0  # an earlier output of sample is replaced
    Image.new("L", (4, 4)).save(tmp_path / "mine.png")
    assert main([*argv, str(tmp_path / "mine.png")]) == 2
    assert "pass --overwrite" in capsys.readouterr().err


def test_each_test_figure_says_how_many_images_it_is_the_mean_of(tmp_path, capsys):
    """The evaluations during training use --eval-images, the final one the whole split:
    each line says its count, and so does metrics.jsonl."""
    run = tmp_path / "run"
    argv = ["train", "--out", str(run), "--steps", "4", "--eval-every", "2", *TINY]
    assert main([*argv, "--eval-images", "30", "--samples", "0"]) == 0
    out = capsys.readouterr().out
    steps = [line for line in out.splitlines() if line.startswith("step ")]
    assert steps and all(line.endswith("(30 test images)") for line in steps), out
    final = next(line for line in out.splitlines() if line.startswith("test bits/dim:"))
    assert "(500 mnist5k test images" in final
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["test_images"] for r in records if "test_bpd" in r] == [30, 30]

"""Per-image scores and NLL heatmaps: rows that average to what eval says, maps that sum to
each image's nats, and refusals that write nothing."""

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pixelcnn
from pixelcnn.cli import main
from pixelcnn.pictures import png_kind
from pixelcnn.scoring import HEATMAP_KIND, most_surprising

TINY = ["--preset", "tiny", "--size", "8", "--levels", "4", "--batch-size", "8", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("scoring") / "run"
    assert main(["train", "--out", str(run), "--steps", "3", *TINY, "--samples", "0"]) == 0
    return run


@pytest.fixture
def run(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_rows_average_to_the_eval_figure_in_csv_and_jsonl(run, tmp_path, capsys):
    assert main(["eval", str(run), "--json", "--quiet", "--limit", "40"]) == 0
    expected = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    argv = ["score", str(run), "--limit", "40", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "s.csv")]) == 0
    assert main([*argv, "--out", str(tmp_path / "new" / "folder" / "s.jsonl")]) == 0
    from_csv = list(csv.DictReader((tmp_path / "s.csv").open()))
    lines = (tmp_path / "new" / "folder" / "s.jsonl").read_text().splitlines()
    from_jsonl = [json.loads(line) for line in lines]
    assert len(from_csv) == len(from_jsonl) == 40
    assert list(from_jsonl[0]) == ["index", "source", "label", "nats", "bits_per_dim"]
    for rows in (from_csv, from_jsonl):
        mean = sum(float(r["bits_per_dim"]) for r in rows) / len(rows)
        assert mean == pytest.approx(expected["bits_per_dim"], abs=1e-9)
        dims = 1 * 8 * 8
        for r in rows:  # each row's two numbers say the same thing
            assert float(r["bits_per_dim"]) == pytest.approx(
                float(r["nats"]) / (dims * math.log(2))
            )
    assert [int(r["label"]) for r in from_jsonl[:3]] == [0, 0, 0]  # mnist5k: sorted by digit


def test_nll_maps_sum_to_each_images_nats():
    for model in (
        pixelcnn.create("gated", (3, 4, 4), levels=4, preset="tiny"),
        pixelcnn.create("pixelcnnpp", (1, 4, 4), levels=4, preset="tiny"),
        pixelcnn.create("gated", (4, 4), levels=5, data="tokens", preset="tiny"),
    ):
        generator = torch.Generator().manual_seed(0)
        levels = torch.randint(0, model.levels, (3, *model.image_shape), generator=generator)
        data = model.encoding.from_levels(levels)
        with torch.no_grad():
            maps = model.nll_map(data)
            nats = -model.log_prob(data)
        assert maps.shape == (3, 4, 4)
        assert torch.allclose(maps.flatten(1).sum(1), nats, atol=1e-4)
        assert bool((maps > 0).all())


def test_heatmaps_of_the_least_likely_images_and_a_grid_of_the_extremes(run, tmp_path):
    out, pictures = tmp_path / "s.csv", tmp_path / "maps"
    argv = ["score", str(run), "--limit", "30", "--out", str(out), "--quiet"]
    assert main([*argv, "--heatmaps", str(pictures), "--top", "2"]) == 0
    rows = list(csv.DictReader(out.open()))
    worst = sorted(rows, key=lambda r: -float(r["nats"]))[:2]
    expected = {f"heatmap_{int(r['index']):06d}.png" for r in worst} | {"extremes.png"}
    assert {p.name for p in pictures.iterdir()} == expected
    assert all(png_kind(p) == HEATMAP_KIND for p in pictures.iterdir())
    # its own outputs are replaced on a second run; nothing else is needed
    assert main([*argv, "--heatmaps", str(pictures), "--top", "2"]) == 0


def test_image_folders_name_their_files(tmp_path, run):
    folder = tmp_path / "pictures"
    for split in ("train", "test"):
        (folder / split).mkdir(parents=True)
        for name in ("a.png", "b.png"):
            Image.new("L", (8, 8), 7 if name == "a.png" else 200).save(folder / split / name)
    argv = ["score", str(run), "--data", str(folder), "--out", str(tmp_path / "s.jsonl")]
    assert main([*argv, "--quiet"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["source"] for r in rows] == ["a.png", "b.png"] and "label" not in rows[0]


def test_most_surprising_orders_by_nats_and_keeps_ties_stable():
    assert most_surprising(np.array([1.0, 5.0, 3.0, 5.0]), 3) == [1, 3, 2]
    assert most_surprising(np.array([2.0, 1.0]), None) == [0, 1]


def _users_file(tmp: Path) -> Path:
    (tmp / "mine.csv").write_text("my own table\n")
    return tmp / "mine.csv"


BAD = [
    ("unknown extension", lambda t: ["--out", str(t / "s.txt")], "must end in .csv or .jsonl"),
    ("a user's file", lambda t: ["--out", str(_users_file(t))], "pass --overwrite"),
    (
        "wrong size",
        lambda t: ["--out", str(t / "s.csv"), "--data", "mnist5k", "--size", "6"],
        "use --size",
    ),
    (
        "heatmaps onto a file",
        lambda t: ["--out", str(t / "s.csv"), "--heatmaps", str(_users_file(t))],
        "not a directory",
    ),
    ("top 0", lambda t: ["--out", str(t / "s.csv"), "--top", "0"], "at least 1"),
    ("empty out", lambda t: ["--out", ""], "empty path"),
]


@pytest.mark.parametrize(("case", "argv", "message"), BAD, ids=[c[0] for c in BAD])
def test_bad_scoring_input_is_one_line_and_writes_nothing(
    run, tmp_path, capsys, case, argv, message
):
    extra = argv(tmp_path)
    before = tree(tmp_path)
    assert main(["score", str(run), "--limit", "4", "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert tree(tmp_path) == before

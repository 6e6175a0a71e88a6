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
from pixelcnn.scoring import HEATMAP_KIND, heatmap_title, is_score_file, most_surprising

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
    assert main([*argv, "--quiet"]) == 0  # a folder named to score: every file of it
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    names = ["train/a.png", "train/b.png", "test/a.png", "test/b.png"]
    assert [r["source"] for r in rows] == names and "label" not in rows[0]
    assert main([*argv, "--quiet", "--split", "test"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["source"] for r in rows] == ["a.png", "b.png"]


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


NEAR_MISSES = {  # tables of a user's that look like score tables, and are not one
    "extra column": "index,source,nats,bits_per_dim,my_notes\n0,0,1.0,0.1,keep\n",
    "label and extra column": "index,source,label,nats,bits_per_dim,my_notes\n0,0,3,1,0.1,x\n",
    "columns reordered": "source,index,nats,bits_per_dim\n0,0,1.0,0.1\n",
    "a note after the rows": "index,source,nats,bits_per_dim\n0,0,1.0,0.1\nmy note\n",
    "rows not numbered from 0": "index,source,nats,bits_per_dim\n7,a.png,1.0,0.1\n",
    "words where scores go": "index,source,nats,bits_per_dim\n0,a.png,high,low\n",
    "header only with a space": "index, source, nats, bits_per_dim\n",
}
NEAR_MISSES_JSONL = {
    "an extra key": '{"index": 0, "source": "0", "nats": 1.0, "bits_per_dim": 0.1, "mine": 1}\n',
    "a second line of another kind": (
        '{"index": 0, "source": "0", "nats": 1.0, "bits_per_dim": 0.1}\n{"note": "mine"}\n'
    ),
    "not json after a row": '{"index": 0, "source": "0", "nats": 1.0, "bits_per_dim": 0.1}\nx\n',
    "empty": "",
}
CASES = [(f"{name}.csv", text) for name, text in NEAR_MISSES.items()] + [
    (f"{name}.jsonl", text) for name, text in NEAR_MISSES_JSONL.items()
]


@pytest.mark.parametrize(("name", "text"), CASES, ids=[name for name, _ in CASES])
def test_a_table_that_only_looks_like_scores_is_kept_without_overwrite(
    run, tmp_path, capsys, name, text
):
    users = tmp_path / name.replace(" ", "_")
    users.write_text(text)
    argv = ["score", str(run), "--limit", "3", "--quiet", "--out", str(users)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "pass --overwrite" in err and len(err.splitlines()) == 1
    assert users.read_text() == text
    assert main([*argv, "--overwrite"]) == 0  # replaced when the user says so
    assert is_score_file(users)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_earlier_score_tables_are_replaced(run, tmp_path, suffix):
    """Tables score wrote, with and without labels and with file names that need quoting,
    are recognised and replaced without --overwrite."""
    folder = tmp_path / "pictures"
    folder.mkdir()
    for name in ("a, with comma.png", 'b "quoted".png', "c.png"):
        Image.new("L", (8, 8), 50).save(folder / name)
    out = tmp_path / f"s{suffix}"
    for data in (["--limit", "5"], ["--data", str(folder)], ["--limit", "2"]):
        assert main(["score", str(run), "--quiet", "--out", str(out), *data]) == 0
        assert is_score_file(out)
    assert len(out.read_text().splitlines()) == 2 + (suffix == ".csv")


def test_heatmaps_are_titled_by_label_then_index():
    assert heatmap_title(12, 3.1041, 7, ["t-shirt"] * 7 + ["sneaker"]) == (
        "label 7 (sneaker), image 12: 3.104 bits/dim"
    )
    digits = [str(d) for d in range(10)]  # a class name that is the label says nothing more
    assert heatmap_title(3, 1.0, 0, digits, "3") == "label 0, image 3: 1.000 bits/dim"
    assert heatmap_title(1, 2.0, None, None, "cat.png") == "image 1 (cat.png): 2.000 bits/dim"


def test_heatmap_pictures_carry_the_title(run, tmp_path, monkeypatch):
    from pixelcnn.cli import commands

    titles = []
    real = commands.heatmap_picture
    monkeypatch.setattr(
        commands, "heatmap_picture", lambda i, n, title: titles.append(title) or real(i, n, title)
    )
    argv = ["score", str(run), "--limit", "3", "--out", str(tmp_path / "s.csv"), "--quiet"]
    assert main([*argv, "--heatmaps", str(tmp_path / "maps")]) == 0
    assert len(titles) == 3 and all(t.startswith("label 0, image ") for t in titles), titles


def _folder_of_ten(root: Path) -> Path:
    folder = root / "digits"
    folder.mkdir()
    for k in range(10):
        Image.new("L", (8, 8), 20 * k).save(folder / f"{k:02d}.png")
    return folder


def test_score_reads_every_file_of_a_folder_and_says_which(run, tmp_path, capsys):
    folder = _folder_of_ten(tmp_path)
    argv = ["score", str(run), "--data", str(folder), "--quiet", "--out"]
    assert main([*argv, str(tmp_path / "all.jsonl")]) == 0
    out = capsys.readouterr().out
    assert f"(10 files of {folder} (every file, in reading order))" in out
    rows = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert [r["source"] for r in rows] == [f"{k:02d}.png" for k in range(10)]
    assert main([*argv, str(tmp_path / "test.jsonl"), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert f"(1 file of {folder}: its test split of 10 files" in out
    assert "--split all for every file" in out


def test_eval_says_which_split_and_takes_all(run, tmp_path, capsys):
    folder = _folder_of_ten(tmp_path)
    assert main(["eval", str(run), "--data", str(folder), "--quiet"]) == 0
    assert "its test split of 10 files" in capsys.readouterr().out  # eval: test by default
    assert main(["eval", str(run), "--data", str(folder), "--split", "all", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["images"] == 10 and result["split"] == "all"
    # a named dataset: its train split, then its test split
    assert main(["eval", str(run), "--split", "all", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["images"] == 5000
    argv = ["score", str(run), "--split", "all", "--limit", "3", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "s.csv")]) == 0
    assert "3 of 5000 mnist5k images (its train and test splits)" in capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert [r["source"] for r in rows] == ["train/0", "train/1", "train/2"]


def test_a_channel_mismatch_says_what_can_fix_it(run, tmp_path, capsys):
    colour = np.random.default_rng(0).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "colour.npz", x_train=colour, x_test=colour)
    argv = ["eval", str(run), "--data", str(tmp_path / "colour.npz"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "have 3 channels" in err and "takes 1" in err and len(err.splitlines()) == 1
    assert "--size changes only the height and width" in err
    assert "use grey images, or a model trained on RGB ones" in err
    assert "(use --size)" not in err


def test_no_score_output_replaces_a_file_of_the_data_it_reads(run, tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    for k in range(3):  # pictures named as the heatmaps would be
        Image.new("L", (8, 8), 60 * k).save(folder / f"heatmap_{k:06d}.png")
    (folder / "notes.csv").write_text("index,source,nats,bits_per_dim\n")
    before = tree(folder)
    base = ["score", str(run), "--data", str(folder), "--quiet", "--overwrite"]
    assert main([*base, "--out", str(tmp_path / "s.csv"), "--heatmaps", str(folder)]) == 2
    assert main([*base, "--out", str(folder / "notes.csv")]) == 2
    assert tree(folder) == before
    # a new file inside the folder is no input: written
    assert main([*base, "--out", str(folder / "scores.csv")]) == 0
    assert set(tree(folder)) == {*before, "scores.csv"}

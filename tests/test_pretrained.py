"""The shipped models (``pretrained:NAME``): every card checked against its model, and the
mechanism (cards, fingerprints, default outputs, the CLI) on a tiny zoo made here."""

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import load_benchmark

import pixelcnn
from pixelcnn import pretrained
from pixelcnn.cli import main
from pixelcnn.data import load_dataset
from pixelcnn.evaluate import evaluate

ZOO_LIMIT_BYTES = 20 * 10**6  # the bound on what the package ships


@pytest.mark.parametrize("name", pretrained.names())
def test_shipped_model_computes_what_its_card_says(name):
    card = pretrained.card(name)
    folder = pretrained.model_dir(name)
    assert card.name == name
    assert pretrained.weights_digest(folder) == card.sha256  # the fingerprint
    model = pixelcnn.load(f"pretrained:{name}")
    assert not model.training
    assert model.config.model == card.network and model.levels == card.levels
    assert sum(p.numel() for p in model.parameters()) == card.parameters
    assert bool(model.condition_spec) == card.conditional
    with np.load(folder / pretrained.CHECK_FILE) as check:
        images = torch.from_numpy(check["images"])
        labels = torch.from_numpy(check["labels"]) if "labels" in check else None
    assert len(images) == card.check["images"]
    scores = evaluate(model, images, condition=labels if card.conditional else None)
    assert scores.bits_per_dim == pytest.approx(card.check["bits_per_dim"], abs=1e-4)
    assert card.test_bits_per_dim > 0 and card.steps > 0 and card.train_minutes > 0


@pytest.mark.parametrize("name", pretrained.names())
def test_check_images_are_the_first_of_the_test_split(name):
    card = pretrained.card(name)
    try:
        test = load_dataset(card.data, "test")
    except (FileNotFoundError, ValueError) as error:  # e.g. Fashion-MNIST not installed
        pytest.skip(f"{card.data} is not on this machine: {error}")
    with np.load(pretrained.model_dir(name) / pretrained.CHECK_FILE) as check:
        model = pixelcnn.load(f"pretrained:{name}")
        first = model.quantize(torch.as_tensor(test.images[: len(check["images"])]))
        assert torch.equal(first, torch.from_numpy(check["images"]))
        assert len(test.images) == card.test_images


def test_the_zoo_is_small_enough_to_ship():
    total = sum(p.stat().st_size for p in pretrained.ZOO.rglob("*") if p.is_file())
    assert total < ZOO_LIMIT_BYTES


# The mechanism, on a zoo made here from a tiny run.

TINY = ["--preset", "tiny", "--size", "8", "--levels", "4", "--batch-size", "8", "--quiet"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("zoo") / "run"
    assert main(["train", "--out", str(run), "--steps", "4", "--eval-every", "0", *TINY]) == 0
    return run


@pytest.fixture
def tiny_zoo(tiny_run, tmp_path, monkeypatch):
    """A zoo holding one model, ``tiny``, carded by benchmarks/zoo_card.py."""
    monkeypatch.setattr(pretrained, "ZOO", tmp_path / "zoo")
    zoo_card = load_benchmark("zoo_card")
    argv = [str(tiny_run), "tiny", "--summary", "a test", "--command", "pixelcnn train ..."]
    card = zoo_card.main([*argv, "--check-images", "4"])
    return tmp_path / "zoo" / "tiny", card


def test_card_records_the_run(tiny_zoo, tiny_run):
    folder, card = tiny_zoo
    assert pretrained.names() == ["tiny"]
    loaded = pretrained.card("pretrained:tiny")
    assert asdict(loaded) == card
    assert card["steps"] == 4 and card["data"] == "mnist5k" and card["test_images"] == 500
    last = json.loads((tiny_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 4 and last["train_seconds"] > 0 and last["cpu_seconds"] > 0
    assert card["train_minutes"] == round(last["train_seconds"] / 60, 2)
    assert card["cpu_minutes"] == round(last["cpu_seconds"] / 60, 2)
    run_model, shipped = pixelcnn.load(tiny_run), pixelcnn.load("pretrained:tiny")
    images = torch.from_numpy(np.load(folder / pretrained.CHECK_FILE)["images"])
    assert torch.equal(run_model.log_prob(images), shipped.log_prob(images))
    assert evaluate(shipped, images).bits_per_dim == pytest.approx(card["check"]["bits_per_dim"])


def test_changed_weights_are_refused(tiny_zoo):
    folder, _ = tiny_zoo
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256 differs"):
        pixelcnn.load("pretrained:tiny")


def test_unknown_name_is_one_line_listing_the_zoo(tiny_zoo, capsys):
    with pytest.raises(ValueError, match=r"no pretrained model 'nope' \(there are: tiny"):
        pixelcnn.load("pretrained:nope")
    assert main(["sample", "pretrained:nope", "--n", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "there are: tiny" in err


def test_cli_lists_and_shows_cards(tiny_zoo, capsys):
    assert main(["pretrained"]) == 0
    listing = capsys.readouterr().out
    assert "pretrained:tiny" in listing and "mnist5k" in listing
    assert main(["pretrained", "tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == tiny_zoo[1]


def test_commands_take_a_pretrained_model_and_never_write_into_the_zoo(tiny_zoo, tmp_path, capsys):
    folder, card = tiny_zoo
    before = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["sample", "pretrained:tiny", "--n", "2", "--quiet"]) == 0
        assert Path("tiny-sampled.png").is_file()
        # eval finds the model's own data (its train_args.json) and prints the card's figure
        assert main(["eval", "pretrained:tiny", "--json", "--quiet"]) == 0
    finally:
        os.chdir(cwd)
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["bits_per_dim"] == pytest.approx(card["test_bits_per_dim"], abs=1e-4)
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == before

"""The OOD benchmark builds its sets as stated, runs end to end and writes results and docs."""

import json

import pytest
import torch
from helpers import load_benchmark


@pytest.fixture(scope="module")
def ood():
    return load_benchmark("ood")


def test_synthetic_sets_are_noise_one_colour_and_upside_down(ood):
    inside = torch.randint(0, 256, (5, 3, 6, 7), dtype=torch.uint8)
    noise = ood.synthetic_set("noise", inside, 400, seed=1)
    assert noise.shape == (400, 3, 6, 7) and noise.dtype == torch.uint8
    counts = torch.bincount(noise.flatten().long(), minlength=256)
    assert counts.min() > 0  # every level drawn: uniform over 0..255
    constant = ood.synthetic_set("constant", inside, 50, seed=1)
    assert constant.shape == (50, 3, 6, 7)
    flat = constant.flatten(2)
    assert (flat == flat[:, :, :1]).all()  # one colour per image
    assert len({tuple(c) for c in flat[:, :, 0].tolist()}) > 40  # a random one each
    flipped = ood.synthetic_set("vflip", inside, 3, seed=1)
    assert torch.equal(flipped, inside[:3].flip(2)) and not torch.equal(flipped, inside[:3])
    # the same seed gives the same set
    assert torch.equal(ood.synthetic_set("noise", inside, 400, seed=1), noise)
    with pytest.raises(ValueError, match="unknown"):
        ood.synthetic_set("stripes", inside, 3, seed=1)


def test_dataset_sets_take_the_in_distribution_size_and_channels(ood):
    inside = torch.zeros(4, 3, 12, 12, dtype=torch.uint8)
    digits = ood.ood_images("mnist5k", inside, limit=7, seed=0)
    assert digits.shape == (7, 3, 12, 12)  # resized, grey repeated into RGB
    assert torch.equal(digits[:, 0], digits[:, 2]) and digits.max() > 0


def test_quick_run_writes_every_method_for_every_set(ood, tmp_path):
    docs = tmp_path / "B.md"
    argv = ["--minutes", "0.005", "--size", "8", "--limit", "16", "--tasks", "mnist5k"]
    argv += ["--ood", "noise", "constant", "vflip", "--out", str(tmp_path / "o.json")]
    results = ood.main([*argv, "--update-docs", str(docs)])
    assert json.loads((tmp_path / "o.json").read_text()) == results
    (run,) = results["runs"]
    assert run["task"] == "mnist5k" and run["in_images"] == 16
    assert run["model"]["steps"] >= 1 and run["background"]["perturb"] == 0.2
    assert [p["ood"] for p in run["pairs"]] == ["noise", "constant", "vflip"]
    for pair in run["pairs"]:
        assert pair["ood_images"] == 16
        assert set(pair["metrics"]) == {c for c, _, _ in ood.COLUMNS}
        for metrics in pair["metrics"].values():
            assert set(metrics) == {"auroc", "auprc", "fpr_at_95_tpr"}
            assert all(0 <= v <= 1 for v in metrics.values())
    # noise is far from anything a model has seen: near 8 bits per sub-pixel
    assert run["pairs"][0]["ood_bits_per_dim"] > run["in_bits_per_dim"]
    assert run["scoring_images_per_s"] > 0
    text = docs.read_text()
    assert text.count("<!-- ood:start -->") == 1 and "| mnist5k | vflip |" in text

"""Out-of-distribution detection: metrics checked by hand, the three methods' scores, the
background model's perturbed training, and the ``ood`` command."""

import json
import math
import shutil

import numpy as np
import pytest
import torch

import pixelcnn
from pixelcnn.cli import main
from pixelcnn.ood import OOD_METHODS, compressed_bits, detection_metrics, scores
from pixelcnn.train import Trainer, TrainOptions
from pixelcnn.train.data import ResidentData, perturbed
from pixelcnn.train.distributed import SINGLE

TINY = ["--preset", "tiny", "--size", "8", "--levels", "4", "--batch-size", "8", "--quiet"]


@pytest.mark.parametrize(
    ("in_scores", "ood_scores", "expected"),
    [
        ([3, 4], [1, 2], (1.0, 1.0, 0.0)),  # perfectly separated
        # perfectly inverted, the likelihood trap: precision 1/3 and 2/4 at the positives
        ([1, 2], [3, 4], (0.0, (1 / 3 + 2 / 4) / 2, 1.0)),
        # ranked 4 ood, 3 in, 2 ood, 1 in: 1 of 4 (in, ood) pairs ordered right; precision
        # 1/2 at each positive; reaching 95% TPR takes every image, so FPR 1
        ([1, 3], [2, 4], (0.25, 0.5, 1.0)),
    ],
)
def test_detection_metrics_match_hand_computed_cases(in_scores, ood_scores, expected):
    metrics = detection_metrics(np.array(in_scores, float), np.array(ood_scores, float))
    got = (metrics["auroc"], metrics["auprc"], metrics["fpr_at_95_tpr"])
    assert got == pytest.approx(expected)


def test_each_method_scores_as_its_paper_says():
    nats = np.array([100.0, 50.0])
    background = np.array([90.0, 70.0])
    images = np.stack(
        [np.zeros((1, 8, 8), np.uint8), np.arange(64, dtype=np.uint8).reshape(1, 8, 8)]
    )
    assert np.array_equal(scores("likelihood", nats), -nats)
    assert np.array_equal(scores("ratio", nats, background_nats=background), background - nats)
    bits = compressed_bits(images)
    assert np.allclose(scores("complexity", nats, images), -nats / math.log(2) + bits)
    with pytest.raises(ValueError, match="background"):
        scores("ratio", nats)


def test_simple_images_compress_to_fewer_bits_with_either_codec():
    rng = np.random.default_rng(0)
    images = np.stack(
        [np.full((3, 16, 16), 90, np.uint8), rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)]
    )
    for compressor in ("png", "webp"):
        constant, noise = compressed_bits(images, compressor)
        assert 0 < constant < noise and noise > 8 * 3 * 16 * 16 * 0.9  # noise hardly compresses


def test_perturbation_changes_training_inputs_at_the_stated_rate_and_nothing_else():
    levels = torch.randint(0, 4, (400, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    changed = perturbed(levels, 0.2, 4, seed=1, step=3) != levels
    assert changed.float().mean().item() == pytest.approx(0.2 * (1 - 1 / 4), abs=0.01)
    assert torch.equal(perturbed(levels, 0.2, 4, 1, 3), perturbed(levels, 0.2, 4, 1, 3))
    assert not torch.equal(perturbed(levels, 0.2, 4, 1, 3), perturbed(levels, 0.2, 4, 1, 4))
    assert perturbed(levels, 0.0, 4, 1, 3) is levels
    # two processes each perturb their shard (every 2nd image) as one process would the whole
    whole = perturbed(levels, 0.2, 4, 1, 3)
    for rank in (0, 1):
        rows = torch.arange(len(levels))[rank::2]
        part = perturbed(levels[rows], 0.2, 4, 1, 3, rows=rows, total=len(levels))
        assert torch.equal(part, whole[rows])
    # through the training data: the same images and conditions, only the levels perturbed
    model = pixelcnn.create("gated", (1, 8, 8), levels=4, preset="tiny", num_classes=3)
    images = model.encoding.from_levels(levels)
    labels = torch.arange(400) % 3
    plain = ResidentData(model, images, labels, TrainOptions(batch_size=64), SINGLE)
    noisy = ResidentData(
        model, images, labels, TrainOptions(batch_size=64, perturb=0.3), plain.world
    )
    (a, condition_a), (b, condition_b) = plain.batch(5), noisy.batch(5)
    assert torch.equal(condition_a["class"], condition_b["class"])
    assert (a != b).float().mean().item() == pytest.approx(0.3 * 0.75, abs=0.03)


def test_weight_decay_reaches_the_optimizer():
    model = pixelcnn.create("gated", (1, 4, 4), levels=4, preset="tiny")
    trainer = Trainer(model, TrainOptions(weight_decay=0.01))
    assert trainer.parts.optimizer.param_groups[0]["weight_decay"] == 0.01


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny run, a perturbed background run, and constant images as the OOD set."""
    root = tmp_path_factory.mktemp("ood")
    common = ["--steps", "3", *TINY, "--samples", "0"]
    assert main(["train", "--out", str(root / "run"), *common]) == 0
    background = ["--perturb", "0.2", "--weight-decay", "0.0001"]
    assert main(["train", "--out", str(root / "background"), *common, *background]) == 0
    assert json.loads((root / "background" / "train_args.json").read_text())["perturb"] == 0.2
    constant = np.stack([np.full((28, 28), v, np.uint8) for v in range(0, 250, 5)])
    np.savez(root / "constant.npz", x_train=constant, x_test=constant)
    return root


def test_ood_reports_every_method_and_constant_images_are_caught_by_complexity(runs, capsys):
    argv = ["ood", str(runs / "run"), "--in-data", "mnist5k", "--ood-data"]
    argv += [str(runs / "constant.npz"), "--size", "8", "--limit", "40", "--json", "--quiet"]
    assert main([*argv, "--background", str(runs / "background")]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) >= {"likelihood", "complexity", "ratio"}
    assert result["in_images"] == 40 and result["ood_images"] == 40
    for metrics in (result[m] for m in ("likelihood", "complexity", "ratio")):
        assert all(0 <= v <= 1 for v in metrics.values())
    assert result["complexity"]["auroc"] > 0.9
    # the model against itself as background: every ratio is 0, so no better than chance
    assert main([*argv, "--method", "ratio", "--background", str(runs / "run")]) == 0
    same = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert same["ratio"]["auroc"] == pytest.approx(0.5)


BAD = [
    ("ratio without background", ["--method", "ratio"], "needs a background model"),
    ("wrong size", ["--size", "6"], "use --size"),
    ("unknown method", ["--method", "magic"], "invalid choice"),
    ("missing background run", ["--background", "{root}/absent"], "holds no saved model"),
]


@pytest.mark.parametrize(("case", "extra", "message"), BAD, ids=[c[0] for c in BAD])
def test_bad_ood_input_is_one_line(runs, tmp_path, capsys, case, extra, message):
    shutil.copytree(runs / "run", tmp_path / "run")
    argv = ["ood", str(tmp_path / "run"), "--in-data", "mnist5k", "--ood-data"]
    argv += [str(runs / "constant.npz"), "--limit", "4", "--quiet"]
    if case != "wrong size":
        argv += ["--size", "8"]
    extra = [e.replace("{root}", str(tmp_path)) for e in extra]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_each_model_scores_each_set_once_whatever_the_methods(runs, monkeypatch, capsys):
    from pixelcnn.cli import commands

    calls = []
    real = commands.evaluate
    monkeypatch.setattr(commands, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    argv = ["ood", str(runs / "run"), "--in-data", "mnist5k", "--ood-data"]
    argv += [str(runs / "constant.npz"), "--size", "8", "--limit", "8", "--json", "--quiet"]
    assert main([*argv, "--background", str(runs / "background")]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert {key for key, value in result.items() if isinstance(value, dict)} == set(OOD_METHODS)
    assert len(calls) == 4  # two models x two sets, not once per method


def _scored_sets(monkeypatch):
    """The image sets ``ood`` scores, in the order it scores them (each model, each set)."""
    from pixelcnn.cli import commands

    seen = []
    real = commands.evaluate

    def spy(model, images, *args, **kwargs):
        seen.append(images.clone())
        return real(model, images, *args, **kwargs)

    monkeypatch.setattr(commands, "evaluate", spy)
    return seen


def test_limit_takes_a_seeded_random_subset_and_says_so(runs, tmp_path, monkeypatch, capsys):
    """A set sorted by class (here: 50 dark images, then 50 bright ones, as mnist5k's test
    split is sorted by digit) must not be cut to its first class by --limit."""
    sorted_set = np.concatenate(
        [np.full((50, 8, 8), 0, np.uint8), np.full((50, 8, 8), 255, np.uint8)]
    )
    np.savez(tmp_path / "sorted.npz", x_train=sorted_set, x_test=sorted_set)
    seen = _scored_sets(monkeypatch)
    argv = ["ood", str(runs / "run"), "--in-data", str(tmp_path / "sorted.npz"), "--ood-data"]
    argv += [str(runs / "constant.npz"), "--size", "8", "--limit", "20", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    in_set = f"20 of 100 {tmp_path / 'sorted.npz'} test images, chosen at random (--seed 0)"
    assert f"in:  {in_set}" in out
    assert f"ood: 20 of 50 {runs / 'constant.npz'} test images, chosen at random" in out
    inside = seen[0]
    assert len(inside) == 20 and {0, 255} <= set(inside.unique().tolist())
    assert main([*argv, "--seed", "0"]) == 0 and torch.equal(seen[2], inside)  # reproducible
    assert main([*argv, "--seed", "1"]) == 0 and not torch.equal(seen[4], inside)
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["in_set"] == in_set
    assert result["in_images"] == 20 and result["split"] == "test"


def test_method_all_without_a_background_says_ratio_was_skipped(runs, capsys):
    argv = ["ood", str(runs / "run"), "--in-data", "mnist5k", "--ood-data"]
    argv += [str(runs / "constant.npz"), "--size", "8", "--limit", "8", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "likelihood" in out and "complexity" in out
    assert "ratio       skipped: it needs a background model: --background RUN" in out
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert "ratio" not in result and "background" in result["skipped"]["ratio"]
    assert captured.err.strip() == (
        "pixelcnn: note: ratio skipped: it needs a background model: --background RUN "
        "(trained with --perturb)"
    )


def test_grey_sets_for_a_colour_model_are_pointed_to_rgb(tmp_path, capsys):
    model = pixelcnn.create("gated", (3, 8, 8), levels=4, preset="tiny")
    model.save(tmp_path / "colour")
    argv = ["ood", str(tmp_path / "colour"), "--in-data", "mnist5k", "--ood-data", "mnist5k"]
    assert main([*argv, "--size", "8", "--limit", "4", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "have 1 channel" in err and "--rgb repeats grey images into RGB" in err
    assert main([*argv, "--size", "8", "--limit", "4", "--rgb", "--quiet"]) == 0

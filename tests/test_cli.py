"""The pixelcnn command end to end on a tiny configuration."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import pixelcnn
from pixelcnn.cli import main

TINY = ["--preset", "tiny", "--size", "8", "--levels", "4", "--batch-size", "8", "--quiet"]


def _train(run, *extra):
    return main(
        ["train", "--out", str(run), "--steps", "6", "--checkpoint-every", "3", *TINY, *extra]
    )


def test_train_sample_eval_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, "--samples", "4", "--eval-every", "3") == 0
    out = capsys.readouterr().out
    assert "test bits/dim:" in out and "nats/image:" in out
    for name in (
        "config.json",
        "model.safetensors",
        "metrics.jsonl",
        "training_curve.png",
        "samples.png",
        "train_args.json",
    ):
        assert (run / name).is_file(), name
    model = pixelcnn.load(run)
    assert model.image_shape == (1, 8, 8) and model.levels == 4

    assert main(["sample", str(run), "--n", "3", "--out", str(tmp_path / "s.png"), "--quiet"]) == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"

    assert main(["eval", str(run), "--json", "--limit", "20", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["images"] == 20 and result["split"] == "test" and 0 < result["bits_per_dim"] < 3


def test_size_takes_a_height_and_a_width(tmp_path, capsys):
    """--size H W trains on H x W images; eval resizes its data the same way from the run's
    stored arguments."""
    run = tmp_path / "run"
    argv = ["train", "--out", str(run), "--steps", "2", "--samples", "0", *TINY]
    assert main([*argv, "--size", "6", "10"]) == 0  # the last --size wins over TINY's
    assert pixelcnn.load(run).image_shape == (1, 6, 10)
    assert main(["eval", str(run), "--json", "--limit", "8", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["images"] == 8
    assert main(["eval", str(run), "--size", "6", "--limit", "8", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "[1, 6, 10]" in err and len(err.splitlines()) == 1  # the model's shape, named
    resume = ["train", "--out", str(run), "--steps", "3", "--resume", "--quiet", "--samples", "0"]
    assert main(resume) == 0  # the stored [6, 10] is read back as the size
    assert pixelcnn.load(run).image_shape == (1, 6, 10)


def test_existing_run_is_kept_unless_resume_or_force(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, "--samples", "0") == 0
    weights = (run / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert _train(run, "--samples", "0") == 2
    err = capsys.readouterr().err.strip()
    assert "already holds a run" in err and len(err.splitlines()) == 1
    assert (run / "model.safetensors").read_bytes() == weights

    # --force with a mistake in the other options fails before touching the old run
    assert _train(run, "--samples", "0", "--force", "--hp", "depth=2") == 2
    assert (run / "model.safetensors").read_bytes() == weights

    (run / "notes.txt").write_text("mine")
    assert _train(run, "--samples", "0", "--force") == 0
    assert (run / "notes.txt").read_text() == "mine"  # --force removes only run files

    assert (
        main(["train", "--out", str(run), "--steps", "9", "--resume", "--quiet", "--samples", "0"])
        == 0
    )
    assert "resumed from" in capsys.readouterr().out
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 9


def test_class_conditional_training_sampling_and_evaluation(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, "--conditional", "--samples", "20") == 0
    model = pixelcnn.load(run)
    assert model.condition_spec.num_classes == 10
    grid = tmp_path / "grid.png"
    assert main(["sample", str(run), "--per-class", "2", "--out", str(grid), "--quiet"]) == 0
    # 8x8 digits with 2 pixels of padding, the whole grid enlarged 16x: a row per class
    assert Image.open(grid).size == ((2 * 10 + 2) * 16, (10 * 10 + 2) * 16)
    assert main(["sample", str(run), "--class", "7", "--n", "3", "--quiet"]) == 0
    assert main(["eval", str(run), "--json", "--limit", "30", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["images"] == 30
    for argv, message in [
        (["sample", str(run), "--quiet"], "conditional"),
        (["sample", str(run), "--class", "10"], "0..9"),
        (
            ["train", "--out", str(tmp_path / "p"), *TINY, "--model", "pixelcnn", "--conditional"],
            "conditioning",
        ),
    ]:
        assert main(argv) == 2
        assert message in capsys.readouterr().err


def test_rgb_npz_data_trains_and_evaluates(tmp_path, capsys):
    generator = np.random.default_rng(0)
    x_train = generator.integers(0, 256, (40, 6, 6, 3), dtype=np.uint8)  # channels-last
    x_test = generator.integers(0, 256, (10, 6, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "colour.npz", x_train=x_train, x_test=x_test)
    run = tmp_path / "run"
    argv = ["train", "--out", str(run), "--data", str(tmp_path / "colour.npz"), "--steps", "3"]
    assert main([*argv, "--preset", "tiny", "--levels", "8", "--samples", "2", "--quiet"]) == 0
    assert pixelcnn.load(run).image_shape == (3, 6, 6)
    mixture = tmp_path / "mixture"
    argv = ["train", "--out", str(mixture), "--data", str(tmp_path / "colour.npz"), "--steps", "3"]
    argv += ["--preset", "tiny", "--likelihood", "logistic_mixture", "--samples", "2", "--quiet"]
    assert main([*argv, "--hp", "components=3"]) == 0
    saved = pixelcnn.load(mixture)
    assert saved.config.likelihood == "logistic_mixture" and saved.likelihood.components == 3
    assert main(["eval", str(run), "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["images"] == 10 and 2.5 < result["bits_per_dim"] < 3.5  # log2(8) = 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "{tmp}/absent"], "no saved model"),
        (["sample", "{tmp}/absent"], "no saved model"),
        (["train", "--out", "{tmp}/r", "--data", "{tmp}/missing.npz", *TINY], "missing.npz"),
        (["train", "--out", "{tmp}/r", *TINY, "--levels", "1"], "levels"),
        (["train", "--out", "{tmp}/r", "--hp", "depth=3", *TINY], "unknown hyperparameter"),
        (["train", "--out", "{tmp}/r", "--hp", "components=3", *TINY], "belongs to logistic"),
        (["train", "--out", "{tmp}/r", "--steps", "0", *TINY], "steps"),
        (["train", "--out", "{tmp}/r", "--resume", *TINY], "not a training run"),
    ],
)
def test_errors_are_one_line_with_exit_status_2(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(("pixelcnn: error:", f"pixelcnn {argv[0]}: error:")), err
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--levels", "many"],
        ["train", "--size", "4", "5", "6"],
        ["eval", "r", "--size", "0"],
        ["sample"],
        ["frobnicate"],
        ["eval", "r", "--split", "x"],
        ["complete", "r", "--rows", "2"],
        ["complete", "r", "--image", "x.png"],
        ["complete", "r", "--image", "x", "--rows", "2", "--method", "fast"],
    ],
)
def test_usage_errors_are_one_line_with_exit_status_2(capsys, argv):
    assert main(argv) == 2  # the status, returned: main never raises SystemExit
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err


def test_console_command_exits_2_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pixelcnn", "eval", str(tmp_path / "absent")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("pixelcnn: error:")


def test_version_is_the_installed_package_version(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"pixelcnn {version('pixelcnn')}"


HELP_DEFAULTS = {
    "train": ["--batch-size BATCH_SIZE images per step (default: 16 for pixelcnnpp, 32 for "
              "the others)", "--seed SEED", "(default: 0)",
              "--lr LR Adam learning rate (default: 0.002 for pixelcnnpp, 0.001 for the others)",
              "first STEPS (default: 100 for pixelcnnpp, 0 for the others)",
              "--checkpoint-every CHECKPOINT_EVERY steps between checkpoints (default: 500)"],
    "sample": ["--n N number of images (default: 16)", "(default: 1.0)", "RUN/sampled.png"],
    "complete": ["--n N number of completions (default: 8)", "(default: cached)"],
    "eval": ["--batch-size BATCH_SIZE images per pass (memory only) (default: 256)",
             "default: test"],
    "score": ["(default: fp32)", "--split {train,test,all}"],
    "ood": ["--compressor {png,webp} for complexity (default: png)", "(default: all)",
            "--seed SEED of the --limit choice (default: 0)"],
    "compress": ["(default: test)"],
    "receptive-field": ["(default: 7)"],
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(HELP_DEFAULTS))
def test_help_shows_the_defaults_and_no_empty_ones(command, capsys):
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for shown in HELP_DEFAULTS[command]:
        assert shown in text, shown
    for noise in ("default: None", "default: False", "default: True", "default: []"):
        assert noise not in text

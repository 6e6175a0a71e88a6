"""The catalogue of bad inputs: each gives a clear one-line error (the CLI: exit status 2),
and nothing is overwritten or half written."""

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import pixelcnn
from pixelcnn.cli import main
from pixelcnn.data import load_dataset
from pixelcnn.train import TrainOptions

TINY = ["--preset", "tiny", "--size", "8", "--levels", "4", "--batch-size", "8", "--quiet"]
MARKER = "pickle-code-ran"


class RunsCode:
    """Unpickling this object would create a marker file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def write_pickle(path: Path) -> None:
    path.write_bytes(pickle.dumps(RunsCode(path.parent / MARKER)))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny finished run (with checkpoints) to copy into each test."""
    run = tmp_path_factory.mktemp("source") / "run"
    argv = ["train", "--out", str(run), "--steps", "4", "--checkpoint-every", "2", *TINY]
    assert main([*argv, "--samples", "0"]) == 0
    return run


@pytest.fixture
def run(trained_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: to check that nothing changed."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def newest_checkpoint(run: Path) -> Path:
    return sorted((run / "checkpoints").iterdir())[-1]


# ----------------------------------------------------------------------------------- CLI
def corrupt_npz(tmp: Path, run: Path) -> list[str]:
    (tmp / "data.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    return ["train", "--out", str(tmp / "new"), "--data", str(tmp / "data.npz"), *TINY]


def truncated_checkpoint(tmp: Path, run: Path) -> list[str]:
    state = newest_checkpoint(run) / "state.safetensors"
    state.write_bytes(state.read_bytes()[:100])
    return ["train", "--out", str(run), "--resume", "--steps", "6", "--quiet"]


def corrupt_checkpoint_json(tmp: Path, run: Path) -> list[str]:
    (newest_checkpoint(run) / "state.json").write_text("{not json")
    return ["train", "--out", str(run), "--resume", "--steps", "6", "--quiet"]


def pickle_checkpoint(tmp: Path, run: Path) -> list[str]:
    write_pickle(newest_checkpoint(run) / "state.safetensors")
    return ["train", "--out", str(run), "--resume", "--steps", "6", "--quiet"]


def foreign_checkpoint(tmp: Path, run: Path) -> list[str]:
    state = newest_checkpoint(run) / "state.json"
    meta = json.loads(state.read_text())
    meta["model_config"]["model"] = "pixelcnn"  # another network's checkpoint
    state.write_text(json.dumps(meta))
    return ["train", "--out", str(run), "--resume", "--steps", "6", "--quiet"]


def pickle_model(tmp: Path, run: Path) -> list[str]:
    write_pickle(run / "model.safetensors")
    return ["sample", str(run), "--n", "1", "--out", str(tmp / "s.png"), "--quiet"]


def wrong_size_image(tmp: Path, run: Path) -> list[str]:
    from PIL import Image

    Image.new("L", (5, 9)).save(tmp / "five.png")
    return ["complete", str(run), "--image", str(tmp / "five.png"), "--rows", "2", "--quiet"]


CLI_CASES = [
    # (id, argv or a function (tmp, run) -> argv that may also break a file, message)
    ("run exists", lambda t, r: ["train", "--out", str(r), *TINY], "already holds a run"),
    (
        "out under a file",
        lambda t, r: ["train", "--out", str(r / "config.json" / "x"), *TINY],
        "not a directory",
    ),
    (
        "unknown model",
        lambda t, r: ["train", "--model", "pixelrnn", "--out", str(t / "n")],
        "invalid choice",
    ),
    (
        "unknown dataset",
        lambda t, r: ["train", "--data", "imagenet64", "--out", str(t / "n"), *TINY],
        "imagenet64",
    ),
    ("corrupt dataset file", corrupt_npz, "not a readable npz"),
    (
        "levels 1",
        lambda t, r: ["train", "--out", str(t / "n"), "--levels", "1", "--quiet"],
        "--levels: the value must be in 2..256",
    ),
    (
        "bad hyperparameter",
        lambda t, r: ["train", "--out", str(t / "n"), "--hp", "depth=2", *TINY],
        "depth",
    ),
    ("truncated checkpoint", truncated_checkpoint, "unreadable"),
    ("corrupt checkpoint", corrupt_checkpoint_json, "unreadable"),
    ("pickle checkpoint", pickle_checkpoint, "unreadable"),
    ("foreign checkpoint", foreign_checkpoint, "different model configuration"),
    ("pickle model", pickle_model, "not a readable safetensors"),
    (
        "no model in run",
        lambda t, r: ["sample", str(t), "--n", "1", "--quiet"],
        "holds no saved model",
    ),
    (
        "class on unconditional",
        lambda t, r: ["sample", str(r), "--class", "3", "--quiet"],
        "class-conditional",
    ),
    (
        "sample into a file's child",
        lambda t, r: ["sample", str(r), "--out", str(r / "config.json" / "s.png")],
        "not a directory",
    ),
    (
        "eval corrupt data",
        lambda t, r: (
            corrupt_npz(t, r)[:0] + ["eval", str(r), "--data", str(t / "data.npz"), "--quiet"]
        ),
        "not a readable npz",
    ),
    ("complete wrong size", wrong_size_image, "5 pixels"),
    (
        "complete rows",
        lambda t, r: ["complete", str(r), "--image", "x.png", "--rows", "99"],
        "--rows must be in 0..8",
    ),
]


if not torch.cuda.is_available():  # with a GPU, fp16 is allowed
    CLI_CASES.append(
        (
            "fp16 on a CPU",
            lambda t, r: ["train", "--out", str(r), "--force", "--precision", "fp16", *TINY],
            "fp16 training needs a GPU",
        )
    )


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_refuses_bad_input_with_one_line_and_status_2(case, run, tmp_path, capsys):
    _, make_argv, message = case
    argv = make_argv(tmp_path, run) if callable(make_argv) else make_argv
    before = snapshot(tmp_path)
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as usage:  # argparse's own errors (an unknown choice)
        status = usage.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert message in err, err
    assert len(err.splitlines()) == 1 or "usage:" in err, err
    assert "Traceback" not in err
    assert snapshot(tmp_path) == before  # nothing overwritten, nothing half written
    assert not list(tmp_path.rglob(MARKER))  # no pickle was ever loaded


# ----------------------------------------------------------------------------------- API
def model4():
    return pixelcnn.create("gated", (1, 4, 4), levels=4, preset="tiny")


def classes3():
    return pixelcnn.create("gated", (1, 4, 4), levels=4, preset="tiny", num_classes=3)


def images(dtype=torch.uint8, shape=(2, 1, 4, 4), value=0):
    return torch.full(shape, value, dtype=dtype)


def corrupt_config(tmp: Path):
    model4().save(tmp / "m")
    (tmp / "m" / "config.json").write_text('{"format": "pixelcnn-model", "version": 1')
    return pixelcnn.load(tmp / "m")


def pickle_weights(tmp: Path):
    model4().save(tmp / "m")
    write_pickle(tmp / "m" / "model.safetensors")
    return pixelcnn.load(tmp / "m")


def save_under_a_file(tmp: Path):
    (tmp / "file").write_text("x")
    return model4().save(tmp / "file" / "m")


API_CASES = [
    ("wrong shape", lambda t: model4().log_prob(images(shape=(2, 3, 4, 4))), "shape"),
    ("three dims", lambda t: model4().log_prob(images(shape=(1, 4, 4))), "4 dimensions"),
    ("float images", lambda t: model4().log_prob(images(dtype=torch.float32)), "uint8"),
    ("unrepresentable value", lambda t: model4().log_prob(images(value=7)), "levels of this model"),
    ("numpy int64", lambda t: model4().log_prob(np.zeros((1, 1, 4, 4), dtype=np.int64)), "uint8"),
    ("levels 1", lambda t: pixelcnn.create("gated", (1, 4, 4), levels=1), "levels"),
    ("levels 257", lambda t: pixelcnn.create("gated", (1, 4, 4), levels=257), "levels"),
    ("two channels", lambda t: pixelcnn.create("gated", (2, 4, 4)), "1 or 3 channels"),
    ("unknown model", lambda t: pixelcnn.create("pixelrnn", (1, 4, 4)), "pixelrnn"),
    ("unknown dataset", lambda t: load_dataset("imagenet64", "train"), "imagenet64"),
    (
        "corrupt dataset file",
        lambda t: load_dataset(str(_write(t / "d.npz", b"junk")), "train"),
        "npz",
    ),
    (
        "vector for a class model",
        lambda t: classes3().log_prob(images(), condition=torch.zeros(2, 5)),
        "class",
    ),
    (
        "class out of range",
        lambda t: classes3().log_prob(images(), condition=torch.tensor([0, 3])),
        "class",
    ),
    (
        "condition for an unconditional model",
        lambda t: model4().sample(1, condition=2),
        "condition",
    ),
    ("no condition for a conditional model", lambda t: classes3().sample(1), "condition"),
    ("sample zero", lambda t: model4().sample(0), "at least 1"),
    (
        "not a raster prefix",
        lambda t: model4().complete(images(), torch.eye(4, dtype=torch.bool)),
        "raster prefix",
    ),
    ("corrupt config", corrupt_config, "not valid JSON"),
    ("pickle weights", pickle_weights, "not a readable safetensors"),
    ("bad training options", lambda t: TrainOptions(steps=0).check(), "steps"),
]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_refuses_bad_input_with_a_one_line_value_error(case, tmp_path):
    _, call, message = case
    with pytest.raises(ValueError) as error:
        call(tmp_path)
    text = str(error.value)
    assert message in text and "\n" not in text, text
    assert not list(tmp_path.rglob(MARKER))


def test_an_unwritable_save_path_fails_before_writing_anything(tmp_path):
    with pytest.raises(OSError):
        save_under_a_file(tmp_path)
    assert snapshot(tmp_path) == {"file": b"x"}


def test_the_catalogue_is_at_least_fifteen_cases_each():
    assert len(CLI_CASES) >= 15 and len(API_CASES) >= 15

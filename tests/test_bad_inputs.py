"""The catalogue of bad inputs: each gives a clear one-line error (the CLI: exit status 2),
and nothing is overwritten or half written."""

import json
import math
import os
import pickle
import shutil
import stat
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


# ------------------------------------------------ the classes of issue 10, table-driven
def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        target, *keys = key.split("__")
        node = data
        for name in keys:
            node = node[target]
            target = name
        node[target] = value
    path.write_text(json.dumps(data))


def fresh(*extra: str):
    """A new tiny run in tmp/n with ``extra`` options."""
    return lambda t, r: ["train", "--out", str(t / "n"), *TINY, *extra]


def resume(run: Path, *extra: str) -> list[str]:
    return ["train", "--out", str(run), "--resume", "--steps", "6", "--quiet", *extra]


def broken_state(**changes):
    def make(tmp: Path, run: Path) -> list[str]:
        edit_json(newest_checkpoint(run) / "state.json", **changes)
        return resume(run)

    return make


def broken_args(**changes):
    def make(tmp: Path, run: Path) -> list[str]:
        edit_json(run / "train_args.json", **changes)
        return resume(run)

    return make


def broken_config(text_from: str, text_to: str):
    """A saved model whose config.json has ``text_from`` replaced (raw JSON, so 1e400
    stays a number the JSON reader turns into inf)."""

    def make(tmp: Path, run: Path) -> list[str]:
        path = run / "config.json"
        text = path.read_text()
        assert text_from in text, text
        path.write_text(text.replace(text_from, text_to))
        return ["sample", str(run), "--n", "1", "--out", str(tmp / "s.png"), "--quiet"]

    return make


def non_finite_weights(tmp: Path, run: Path) -> list[str]:
    from safetensors.torch import load_file, save_file

    tensors = load_file(run / "model.safetensors")
    first = sorted(k for k, v in tensors.items() if v.is_floating_point())[0]
    tensors[first].view(-1)[0] = math.nan
    save_file(tensors, run / "model.safetensors", {"format": "pixelcnn-model"})
    return ["eval", str(run), "--quiet"]


def npz_file(tmp: Path, name="data.npz", **arrays) -> Path:
    rng = np.random.default_rng(0)
    arrays.setdefault("x_train", rng.integers(0, 256, (20, 8, 8), dtype=np.uint8))
    arrays.setdefault("x_test", rng.integers(0, 256, (4, 8, 8), dtype=np.uint8))
    np.savez(tmp / name, **arrays)
    return tmp / name


def train_on(tmp: Path, *extra: str, **arrays) -> list[str]:
    data = npz_file(tmp, **arrays)
    return ["train", "--out", str(tmp / "new"), "--data", str(data), *TINY, *extra]


def huge_npz_header(tmp: Path, run: Path) -> list[str]:
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (10**14, 8, 8)}
    )
    with zipfile.ZipFile(tmp / "huge.npz", "w") as archive:
        archive.writestr("x_train.npy", header.getvalue() + b"\0" * 64)
        archive.writestr("x_test.npy", header.getvalue() + b"\0" * 64)
    return ["train", "--out", str(tmp / "new"), "--data", str(tmp / "huge.npz"), *TINY]


def corrupt_gzip_idx(tmp: Path, run: Path) -> list[str]:
    import gzip

    folder = tmp / "mnist"
    folder.mkdir()
    good = gzip.compress(bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28]) + bytes(1568))
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        (folder / name).write_bytes(good[:10] + b"\xff" * 40 + good[50:])  # a bad block type
    labels = gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 2, 0, 1]))
    for name in ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes(labels)
    return ["train", "--out", str(tmp / "new"), "--data", "mnist", "--data-dir", str(folder), *TINY]


def user_file_at(name: str, *argv: str):
    """A user's own file where a run would write ``name``: never replaced or deleted."""

    def make(tmp: Path, run: Path) -> list[str]:
        (tmp / "mine").mkdir()
        (tmp / "mine" / name).write_bytes(b"my own work")
        return ["train", "--out", str(tmp / "mine"), *TINY, *argv]

    return make


def user_image(tmp: Path) -> Path:
    from PIL import Image

    Image.new("L", (8, 8), 200).save(tmp / "in.png")
    return tmp / "in.png"


def special_file(tmp: Path) -> Path:
    """A node that is not a regular file: a character device when this user may make one
    (a copy of /dev/null), else a named pipe."""
    node = tmp / "node.png"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError):
        os.mkfifo(node)
    return node


def complete_into(out: str, *extra: str):
    def make(tmp: Path, run: Path) -> list[str]:
        image = user_image(tmp)
        target = {"input": image, "node": special_file(tmp)}.get(out, tmp / out)
        argv = ["complete", str(run), "--image", str(image), "--rows", "4", "--n", "1"]
        return [*argv, "--out", str(target), "--quiet", *extra]

    return make


def sample_into(make_target, *extra: str):
    def make(tmp: Path, run: Path) -> list[str]:
        return ["sample", str(run), "--n", "1", "--out", str(make_target(tmp, run)), *extra]

    return make


def link_to_file(tmp: Path, run: Path) -> Path:
    (tmp / "target.png").write_bytes(b"precious")
    (tmp / "link.png").symlink_to(tmp / "target.png")
    return tmp / "link.png"


def users_file(tmp: Path, run: Path) -> Path:
    (tmp / "notes.png").write_bytes(b"my notes")
    return tmp / "notes.png"


ISSUE_10_CLI_CASES = [
    # critical 1: non-finite numbers anywhere
    ("lr inf", fresh("--lr", "inf"), "finite"),
    ("lr 1e400", fresh("--lr", "1e400"), "finite"),
    (
        "grad-clip nan",
        fresh("--grad-clip", "nan"),
        "finite",
    ),
    ("ema nan", fresh("--ema", "nan"), "finite"),
    ("ema 1", fresh("--ema", "1"), "below 1"),
    ("temperature inf", lambda t, r: ["sample", str(r), "--temperature", "inf"], "finite"),
    ("non-finite weights refused on load", non_finite_weights, "NaN or infinite"),
    # critical 2: outputs that must not be replaced
    ("sample onto the model", sample_into(lambda t, r: r / "model.safetensors"), "never replaced"),
    (
        "sample onto the config, --overwrite",
        sample_into(lambda t, r: r / "config.json", "--overwrite"),
        "never replaced",
    ),
    (
        "sample onto the curve",
        sample_into(lambda t, r: r / "training_curve.png", "--overwrite"),
        "never replaced",
    ),
    ("sample onto a user's file", sample_into(users_file), "pass --overwrite"),
    ("sample onto a symlink", sample_into(link_to_file, "--overwrite"), "not a regular file"),
    (
        "sample onto a device node",
        sample_into(lambda t, r: special_file(t), "--overwrite"),
        "not a regular file",
    ),
    ("complete onto its input", complete_into("input"), "is the input"),
    ("complete onto its input, --overwrite", complete_into("input", "--overwrite"), "is the input"),
    ("complete onto a device node", complete_into("node"), "not a regular file"),
    # critical 3: files no run wrote
    ("a user's samples.png", user_file_at("samples.png"), "not written by pixelcnn"),
    (
        "a user's samples.png, --force",
        user_file_at("samples.png", "--force"),
        "not written by pixelcnn",
    ),
    (
        "a user's metrics.jsonl, --force",
        user_file_at("metrics.jsonl", "--force"),
        "not written by pixelcnn",
    ),
    (
        "a user's config.json, --force",
        user_file_at("config.json", "--force"),
        "not written by pixelcnn",
    ),
    # major: types, sizes and memory
    (
        "hp a string",
        fresh("--hp", "hidden_channels=abc"),
        "must be an integer",
    ),
    (
        "hp 1.5 layers",
        fresh("--hp", "layers=1.5"),
        "must be an integer",
    ),
    (
        "hp a list",
        fresh("--hp", "layers=[1]"),
        "must be an integer",
    ),
    (
        "hp true",
        fresh("--hp", "layers=true"),
        "must be an integer",
    ),
    (
        "hp 10^9 layers",
        fresh("--hp", "layers=1000000000"),
        "must be in 1..1000",
    ),
    (
        "hp a huge network",
        fresh("--hp", "layers=1000", "--hp", "hidden_channels=8192"),
        "of memory",
    ),
    ("config levels 1e400", broken_config('"levels": 4', '"levels": 1e400'), "levels"),
    ("config levels 4.7", broken_config('"levels": 4', '"levels": 4.7'), "must be an integer"),
    ("config levels true", broken_config('"levels": 4', '"levels": true'), "must be an integer"),
    (
        "config 10^9 layers",
        broken_config('"layers": 2', '"layers": 1000000000'),
        "must be in 1..1000",
    ),
    (
        "config channels a string",
        broken_config('"hidden_channels": 6', '"hidden_channels": "x"'),
        "must be an integer",
    ),
    ("state step -3", broken_state(step=-3), "at least 0"),
    ("state step a string", broken_state(step="7"), "must be an integer"),
    ("state config a number", broken_state(model_config=5), "model_config"),
    ("state order a string", broken_state(state__data_order__epoch="x"), "data_order/epoch"),
    ("state schedule edited", broken_state(step=2), "schedule stands at step"),
    ("state skeleton broken", broken_state(state={"__dict__": 5}), "malformed"),
    ("args lr a string", broken_args(lr="fast"), "train_args.json: lr"),
    ("args levels 4.7", broken_args(levels=4.7), "train_args.json: levels"),
    ("args lr inf", broken_args(lr=1e400), "train_args.json: lr"),
    ("args conditional yes", broken_args(conditional="yes"), "train_args.json: conditional"),
    ("args hp a string", broken_args(hp="layers=2"), "train_args.json: hp"),
    ("args model unknown", broken_args(model="pixelrnn"), "train_args.json: model"),
    ("npz declaring 10^14 images", huge_npz_header, "huge.npz"),
    ("corrupt gzip stream", corrupt_gzip_idx, "corrupt gzip stream"),
    (
        "size 100000",
        lambda t, r: ["train", "--out", str(t / "n"), *TINY[:2], "--size", "100000", "--quiet"],
        "of memory",
    ),
    # major: validate before the work
    (
        "zero training images",
        lambda t, r: train_on(t, x_train=np.zeros((0, 8, 8), np.uint8)),
        "no images",
    ),
    (
        "zero test images",
        lambda t, r: train_on(t, x_test=np.zeros((0, 8, 8), np.uint8)),
        "no images",
    ),
    (
        "samples -1",
        fresh("--samples", "-1"),
        "at least 0",
    ),
    (
        "test labels beyond the classes",
        lambda t, r: train_on(
            t, "--conditional", y_train=np.arange(20) % 3, y_test=np.array([0, 1, 2, 5])
        ),
        "test labels reach 5",
    ),
    (
        "labels of 10^9",
        lambda t, r: train_on(
            t, "--conditional", y_train=np.full(20, 10**9), y_test=np.zeros(4, np.int64)
        ),
        "0..99999",
    ),
    # major: a resume that would ignore options
    ("resume with another lr", lambda t, r: resume(r, "--lr", "0.5"), "--lr 0.5"),
    ("resume with other levels", lambda t, r: resume(r, "--levels", "8"), "--levels 8"),
    ("resume with another model", lambda t, r: resume(r, "--model", "pixelcnn"), "--model"),
    ("resume with other data", lambda t, r: resume(r, "--data", "cifar10"), "--data"),
    ("resume shorter", lambda t, r: resume(r)[:-3] + ["--steps", "2", "--quiet"], "only grows"),
    # minor: empty paths, numbers of the wrong kind, zero or negative counts
    ("empty --out", lambda t, r: ["train", "--out", "", *TINY], "empty path"),
    ("empty --data", lambda t, r: ["train", "--out", str(t / "n"), "--data", ""], "empty path"),
    ("empty run", lambda t, r: ["sample", ""], "empty path"),
    ("levels 4.7", lambda t, r: ["train", "--out", str(t / "n"), "--levels", "4.7"], "integer"),
    (
        "batch size 0",
        lambda t, r: ["train", "--out", str(t / "n"), "--batch-size", "0"],
        "at least 1",
    ),
    (
        "eval every -1",
        lambda t, r: ["train", "--out", str(t / "n"), "--eval-every", "-1"],
        "at least 0",
    ),
    ("sample n 0", lambda t, r: ["sample", str(r), "--n", "0"], "at least 1"),
    ("eval limit 0", lambda t, r: ["eval", str(r), "--limit", "0"], "at least 1"),
    (
        "receptive-field size 0",
        lambda t, r: ["receptive-field", "--size", "0", "--out", str(t / "f")],
        "at least 1",
    ),
]
CLI_CASES += ISSUE_10_CLI_CASES


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

ISSUE_10_API_CASES = [
    ("lr inf", lambda t: TrainOptions(learning_rate=math.inf).check(), "finite"),
    ("grad clip nan", lambda t: TrainOptions(grad_clip=math.nan).check(), "finite"),
    ("ema nan", lambda t: TrainOptions(ema_decay=math.nan).check(), "finite"),
    ("backoff inf", lambda t: TrainOptions(lr_backoff=math.inf).check(), "finite"),
    ("steps 4.7", lambda t: TrainOptions(steps=4.7).check(), "integer"),
    ("batch size True", lambda t: TrainOptions(batch_size=True).check(), "integer"),
    ("levels 4.7", lambda t: pixelcnn.create("gated", (1, 4, 4), levels=4.7), "integer"),
    ("levels True", lambda t: pixelcnn.create("gated", (1, 4, 4), levels=True), "integer"),
    ("side 2.0", lambda t: pixelcnn.create("gated", (1, 4.0, 4)), "integer"),
    (
        "hp a string",
        lambda t: pixelcnn.create("gated", (1, 4, 4), hidden_channels="abc"),
        "must be an integer",
    ),
    ("hp 1.5", lambda t: pixelcnn.create("gated", (1, 4, 4), layers=1.5), "must be an integer"),
    ("hp a list", lambda t: pixelcnn.create("gated", (1, 4, 4), layers=[1]), "must be an integer"),
    ("hp 10^9", lambda t: pixelcnn.create("gated", (1, 4, 4), layers=10**9), "1..1000"),
    ("classes 10^9", lambda t: pixelcnn.create("gated", (1, 4, 4), num_classes=10**9), "0..100000"),
    (
        "dropout nan",
        lambda t: pixelcnn.create("pixelcnnpp", (1, 4, 4), dropout=math.nan),
        "finite",
    ),
    (
        "nan vector condition",
        lambda t: vector2().log_prob(images(), condition=torch.full((2, 2), math.nan)),
        "NaN",
    ),
    (
        "inf spatial condition",
        lambda t: pixelcnn.create(
            "gated", (1, 4, 4), levels=4, preset="tiny", spatial_channels=1
        ).log_prob(images(), condition=torch.full((2, 1, 4, 4), math.inf)),
        "NaN or infinite",
    ),
    ("sample True images", lambda t: model4().sample(True), "integer"),
    ("temperature nan", lambda t: model4().sample(1, temperature=math.nan), "finite"),
    ("non-finite weights", lambda t: load_with_nan(t), "NaN or infinite"),
]
API_CASES += ISSUE_10_API_CASES


def vector2():
    return pixelcnn.create("gated", (1, 4, 4), levels=4, preset="tiny", vector_dim=2)


def load_with_nan(tmp: Path):
    model = model4()
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = math.inf
    from safetensors.torch import save_file

    model4().save(tmp / "m")
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, tmp / "m" / "model.safetensors")
    return pixelcnn.load(tmp / "m")


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

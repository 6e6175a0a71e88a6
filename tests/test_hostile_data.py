"""Directories a user hands to prepare-data, train, score and eval can be hostile: nothing
is written through a link planted at one of the library's names, nothing waits forever on
a FIFO, two writers of one prepared directory never interleave, a resumed run refuses data
that is not its own, and each failure is one line naming the file."""

import contextlib
import io
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelcnn.cli.main import main
from pixelcnn.data import load_dataset
from pixelcnn.data import prepare as prepare_module
from pixelcnn.data import stored as stored_module
from pixelcnn.data.loader import consecutive_batches, read_batches
from pixelcnn.data.prepare import prepare_dataset
from pixelcnn.data.stored import MANIFEST, IncompleteDatasetError
from pixelcnn.files import DirectoryLock, NotWritableError
from pixelcnn.train.checkpoint import CHECKPOINT_DIR, list_checkpoints, save_checkpoint

RNG = np.random.default_rng(7)
PREPARED_NAMES = [
    MANIFEST,
    "train_images.npy",
    "train_labels.npy",
    "test_images.npy",
    "test_labels.npy",
]
TINY = ["--model", "gated", "--preset", "tiny", "--levels", "4", "--batch-size", "8"]
QUIET = ["--eval-every", "0", "--samples", "0", "--workers", "0", "--quiet"]


def write_npz(path, count=40, classes=3, side=8):
    x = RNG.integers(0, 256, (count, side, side), dtype=np.uint8)
    y = RNG.integers(0, classes, count)
    np.savez(path, x_train=x[10:], y_train=y[10:], x_test=x[:10], y_test=y[:10])
    return path


def cli(argv) -> tuple[int, str, str]:
    """``pixelcnn ARGV`` in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def one_line_error(argv) -> str:
    """What ``pixelcnn ARGV`` says when it fails: status 2 and exactly one line."""
    status, _, err = cli(argv)
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1, (status, err)
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Two labelled npz sets of 8x8 grey images (30 / 10 and 20 / 10), and a run trained
    for 2 steps on the first, with a checkpoint at each step."""
    folder = tmp_path_factory.mktemp("hostile")
    first = write_npz(folder / "first.npz")
    second = write_npz(folder / "second.npz", count=30)
    run = folder / "run"
    steps = ["--steps", "2", "--checkpoint-every", "1"]
    status, _, err = cli(["train", "--data", first, *TINY, *steps, *QUIET, "--out", run])
    assert status == 0, err
    return folder, first, second, run


# --------------------------------------------------------------------------------------------
# 1. Nothing written through a link
# --------------------------------------------------------------------------------------------


def _unfinished(out: Path, source: Path) -> None:
    """``out`` as a preparation of ``source`` that did not finish (its manifest marked
    incomplete, every array written)."""
    prepare_dataset(source, out)
    manifest = (out / MANIFEST).read_text().replace('"complete": true', '"complete": false')
    (out / MANIFEST).write_text(manifest)


@pytest.mark.parametrize("name", PREPARED_NAMES)
@pytest.mark.parametrize("over", ["finished, with --force", "unfinished"])
def test_a_link_at_a_prepared_name_is_refused_and_its_target_never_written(
    sources, tmp_path, name, over
):
    _, first, second, _ = sources
    out = tmp_path / "out"
    if over == "unfinished":
        _unfinished(out, first)
    else:
        prepare_dataset(first, out)
    users = tmp_path / "users_file"
    users.write_bytes(b"the user's own bytes\n" * 10)
    (out / name).unlink()
    (out / name).symlink_to(users)
    force = ["--force"] if over != "unfinished" else []
    error = one_line_error(["prepare-data", second, "--out", out, *force, "--quiet"])
    assert "symbolic link" in error and name in error
    assert users.read_bytes() == b"the user's own bytes\n" * 10
    assert (out / name).is_symlink()  # refused: nothing replaced either


@pytest.mark.parametrize("name", PREPARED_NAMES)
def test_every_prepared_file_is_renamed_over_its_name_never_written_through_it(
    sources, tmp_path, name, monkeypatch
):
    """Below the refusal: were a link planted after the check, the writing itself
    replaces it and leaves its target alone."""
    _, first, second, _ = sources
    out = tmp_path / "out"
    prepare_dataset(first, out)
    users = tmp_path / "users_file"
    users.write_bytes(b"keep")
    (out / name).unlink()
    (out / name).symlink_to(users)
    monkeypatch.setattr(prepare_module, "_check_out", lambda out, force: None)
    prepare_dataset(second, out, force=True)
    assert users.read_bytes() == b"keep"
    assert not (out / name).is_symlink() and (out / name).is_file()
    assert len(load_dataset(out, "train")) == 20  # the second source's, complete


def test_a_stale_split_file_that_is_a_link_is_removed_not_its_target(sources, tmp_path):
    """Unlinking a split the new source lacks removes the link itself (unlink never
    follows one); prepare-data refuses such a link before it gets there anyway."""
    _, first, _, _ = sources
    out = tmp_path / "out"
    prepare_dataset(first, out)
    users = tmp_path / "users_file"
    users.write_bytes(b"keep")
    only_train = tmp_path / "only_train.npz"
    np.savez(only_train, x_train=RNG.integers(0, 256, (12, 8, 8), dtype=np.uint8))
    (out / "test_labels.npy").unlink()
    (out / "test_labels.npy").symlink_to(users)
    with pytest.raises(ValueError, match="symbolic link"):
        prepare_dataset(only_train, out, force=True)
    assert users.read_bytes() == b"keep"


def test_a_link_at_the_checkpoints_folder_or_a_checkpoint_is_never_written_through(
    sources, tmp_path
):
    _, _, _, run = sources
    from pixelcnn.train.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(list_checkpoints(run)[-1])
    elsewhere = tmp_path / "users_folder"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("keep")
    linked = tmp_path / "linked_run"
    linked.mkdir()
    (linked / CHECKPOINT_DIR).symlink_to(elsewhere)
    with pytest.raises(NotWritableError, match="symbolic link"):
        save_checkpoint(linked, checkpoint)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["notes.txt"]

    at_step = tmp_path / "at_step"
    (at_step / CHECKPOINT_DIR).mkdir(parents=True)
    (at_step / CHECKPOINT_DIR / f"step_{checkpoint.step:08d}").symlink_to(elsewhere)
    with pytest.raises(FileExistsError, match="not a pixelcnn checkpoint"):
        save_checkpoint(at_step, checkpoint)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["notes.txt"]


def test_a_resumed_run_never_appends_through_a_link_at_its_metrics(sources, tmp_path):
    _, _, _, run = sources
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    users = tmp_path / "users_log"
    users.write_text("keep\n")
    (copy / "metrics.jsonl").unlink()
    (copy / "metrics.jsonl").symlink_to(users)
    error = one_line_error(["train", "--out", copy, "--resume", "--steps", "4", "--quiet"])
    assert "metrics.jsonl is a symbolic link" in error
    assert users.read_text() == "keep\n"


def _modes(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode)
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_every_file_of_a_run_follows_the_umask(sources, tmp_path, umask_022):
    _, first, _, _ = sources
    run = tmp_path / "run"
    steps = ["--steps", "2", "--checkpoint-every", "1"]
    status, _, err = cli(["train", "--data", first, *TINY, *steps, *QUIET, "--out", run])
    assert status == 0, err
    modes = _modes(run)
    assert {"model.safetensors", "checkpoints/step_00000002/state.safetensors"} <= set(modes)
    assert modes == dict.fromkeys(modes, 0o644)  # safetensors' own writer makes 0600


def test_every_prepared_file_follows_the_umask(sources, tmp_path, umask_022):
    _, first, _, _ = sources
    prepare_dataset(first, tmp_path / "out")
    modes = _modes(tmp_path / "out")
    assert sorted(modes) == sorted(PREPARED_NAMES)
    assert set(modes.values()) == {0o644}


# --------------------------------------------------------------------------------------------
# 2. A FIFO where a file is expected: one line, at once
# --------------------------------------------------------------------------------------------


WAIT = 60  # seconds: the interpreter and torch start in a few; a FIFO would block forever


def _within(seconds: float, argv) -> str:
    """The one-line error of ``pixelcnn ARGV``, which must come within ``seconds``: run in a
    process of its own (a fresh interpreter: a forked child of this process, which has
    OpenMP threads running, can hang in them), killed if it still waits then, so the test
    fails instead of hanging on a FIFO."""
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pixelcnn", *map(str, argv)],
            capture_output=True,
            text=True,
            timeout=seconds,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"pixelcnn {argv[0]} still waited after {seconds} s")
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, (run.returncode, run.stderr)
    return lines[0]


def _fifo_at(path: Path) -> Path:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("name", PREPARED_NAMES)
def test_a_fifo_in_a_prepared_directory_fails_in_one_line_at_once(sources, tmp_path, name):
    _, first, _, _ = sources
    out = tmp_path / "prepared"
    prepare_dataset(first, out)
    _fifo_at(out / name)
    argv = ["train", "--data", out, *TINY, "--steps", "1", *QUIET, "--out", tmp_path / "r"]
    error = _within(WAIT, argv)
    assert f"{name} is a FIFO, not a regular file" in error
    assert not (tmp_path / "r").exists()


def _checkpoint_file(name):
    return lambda run: list_checkpoints(run)[-1] / name


RUN_FIFOS = [  # (where, the command that reads it, what the line says)
    ("config.json", "score", "config.json"),  # (the model's reader: not these modules)
    ("model.safetensors", "score", "model.safetensors"),
    ("train_args.json", "score", "train_args.json is a FIFO"),
    ("train_args.json", "resume", "train_args.json is a FIFO"),
    ("metrics.jsonl", "resume", "metrics.jsonl is a FIFO"),
    (_checkpoint_file("state.json"), "resume", "state.json is a FIFO"),
    (_checkpoint_file("state.safetensors"), "resume", "state.safetensors is a FIFO"),
]


@pytest.mark.parametrize(
    "where, command, says", RUN_FIFOS, ids=[f"{c}-{s.split()[0]}" for _, c, s in RUN_FIFOS]
)
def test_a_fifo_in_a_run_fails_in_one_line_at_once(sources, tmp_path, where, command, says):
    _, first, _, run = sources
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    _fifo_at(copy / where if isinstance(where, str) else where(copy))
    if command == "score":
        data = [] if where == "train_args.json" else ["--data", first]
        argv = ["score", copy, *data, "--out", tmp_path / "s.csv", "--quiet"]
    else:
        argv = ["train", "--out", copy, "--resume", "--steps", "3", "--quiet"]
    assert says in _within(WAIT, argv)


# --------------------------------------------------------------------------------------------
# 3. One writer of a prepared directory at a time
# --------------------------------------------------------------------------------------------


def test_a_second_prepare_data_into_a_directory_being_written_fails_in_one_line(sources, tmp_path):
    _, first, second, _ = sources
    out = tmp_path / "out"
    prepare_dataset(first, out)
    before = {name: (out / name).read_bytes() for name in PREPARED_NAMES}
    held = DirectoryLock(lambda d: "held by the test")
    held.acquire(out)  # as a prepare-data at work holds it
    try:
        error = one_line_error(["prepare-data", second, "--out", out, "--force", "--quiet"])
    finally:
        held.release()
    assert error == f"pixelcnn: error: another prepare-data is writing {out}; wait for it to finish"
    assert {name: (out / name).read_bytes() for name in PREPARED_NAMES} == before
    prepare_dataset(second, out, force=True)  # released: it may go on
    assert len(load_dataset(out, "train")) == 20


def test_two_prepare_data_at_once_never_mix_their_sources(sources, tmp_path):
    """Each either finishes or is refused in one line; what is left is one source's
    manifest over that source's own arrays."""
    _, first, second, _ = sources
    out = tmp_path / "out"
    commands = [
        [sys.executable, "-m", "pixelcnn", "prepare-data", str(src), "--out", str(out)]
        + ["--force", "--quiet"]
        for src in (first, second)
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for _ in range(3):
        running = [
            subprocess.Popen(c, env=env, stderr=subprocess.PIPE, text=True) for c in commands
        ]
        for process in running:
            _, err = process.communicate(timeout=120)
            assert process.returncode == 0 or (
                process.returncode == 2 and "another prepare-data is writing" in err
            ), err
        got = load_dataset(out, "train")
        source = stored_module.read_manifest(out)["source"]
        want = load_dataset(source, "train")
        np.testing.assert_array_equal(np.asarray(got.images), want.images)
        np.testing.assert_array_equal(got.labels, want.labels)


# --------------------------------------------------------------------------------------------
# 4. A resumed run trains on its own data
# --------------------------------------------------------------------------------------------


def test_resuming_on_a_prepared_directory_prepared_again_from_other_data_is_refused(
    sources, tmp_path
):
    _, first, second, _ = sources
    data, run = tmp_path / "data", tmp_path / "run"
    prepare_dataset(first, data)
    steps = ["--steps", "1", "--checkpoint-every", "1"]
    status, _, err = cli(["train", "--data", data, *TINY, *steps, *QUIET, "--out", run])
    assert status == 0, err
    status, _, err = cli(["train", "--out", run, "--resume", "--steps", "2", "--quiet"])
    assert status == 0, err  # the same data: resumed
    prepare_dataset(second, data, force=True)  # the same path, other data
    error = one_line_error(["train", "--out", run, "--resume", "--steps", "3", "--quiet"])
    assert f"--data {data} is not the data this run was trained on" in error
    assert "images {'train': 30, 'test': 10} then, {'train': 20, 'test': 10} now" in error
    assert [p.name for p in list_checkpoints(run)][-1] == "step_00000002"  # untouched


def test_resuming_on_an_npz_replaced_by_another_of_the_same_shape_is_refused(sources, tmp_path):
    _, first, _, _ = sources
    data, run = tmp_path / "data.npz", tmp_path / "run"
    shutil.copy(first, data)
    steps = ["--steps", "1", "--checkpoint-every", "1"]
    status, _, err = cli(["train", "--data", data, *TINY, *steps, *QUIET, "--out", run])
    assert status == 0, err
    x = RNG.integers(0, 256, (41, 8, 8), dtype=np.uint8)  # counts and shape alike
    np.savez(
        data, x_train=x[:30], y_train=np.zeros(30, int), x_test=x[30:40], y_test=np.zeros(10, int)
    )
    error = one_line_error(["train", "--out", run, "--resume", "--steps", "2", "--quiet"])
    assert "is not the data this run was trained on (file_sha256" in error


# --------------------------------------------------------------------------------------------
# 5. One rule for image folders of mixed sizes
# --------------------------------------------------------------------------------------------


def write_mixed_folder(folder: Path) -> Path:
    """24 RGB pictures in two classes, of two sizes (6x5 and 5x6)."""
    for i in range(24):
        height, width = ((6, 5), (5, 6))[i % 2]
        (folder / f"c{i % 3 % 2}").mkdir(parents=True, exist_ok=True)
        pixels = RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"c{i % 3 % 2}" / f"{i:03d}.png")
    return folder


def test_with_a_size_every_command_reads_a_folder_of_mixed_sizes_and_without_none(tmp_path):
    folder = write_mixed_folder(tmp_path / "pictures")
    refused = one_line_error(["prepare-data", folder, "--out", tmp_path / "p0", "--quiet"])
    assert "(WxH)" in refused and "--size H W" in refused
    status, _, err = cli(["prepare-data", folder, "--out", tmp_path / "p", "--size", "8"])
    assert status == 0, err
    run = tmp_path / "run"
    status, _, err = cli(["train", "--data", tmp_path / "p", *TINY, "--steps", "1", *QUIET,
                          "--out", run])  # fmt: skip
    assert status == 0, err
    for split in ("train", "test"):  # read by load_dataset, as train and eval read it
        scores = tmp_path / f"{split}.csv"
        argv = ["score", run, "--data", folder, "--split", split, "--out", scores, "--quiet"]
        status, _, err = cli([*argv, "--size", "8"])
        assert status == 0, err
        prepared = load_dataset(tmp_path / "p", split).images
        assert len(scores.read_text().splitlines()) == 1 + len(prepared)
        np.testing.assert_array_equal(
            load_dataset(folder, split, size=8).images, np.asarray(prepared)
        )
    # without a size: refused by both, in the same words (the first file of train/ decides)
    argv = ["score", run, "--data", folder, "--split", "train", "--out", tmp_path / "x.csv"]
    assert one_line_error(argv) == refused


# --------------------------------------------------------------------------------------------
# 6. A read that fails in a worker: one line naming the file
# --------------------------------------------------------------------------------------------


def test_a_file_cut_short_while_workers_read_it_is_one_line_naming_it(sources, tmp_path):
    _, first, _, _ = sources
    out = tmp_path / "out"
    prepare_dataset(first, out)
    images = load_dataset(out, "train").images  # checked whole here
    path = out / "train_images.npy"
    os.truncate(path, path.stat().st_size - 64 * 5)
    with pytest.raises(IncompleteDatasetError) as caught:
        for _ in read_batches(images, consecutive_batches(len(images), 4), workers=2):
            pass
    message = str(caught.value)
    assert message.startswith(f"{path}: ends before image") and "\n" not in message
    assert "Traceback" not in message and len(message) < 300


def test_score_with_workers_on_a_file_cut_short_is_one_line(sources, tmp_path, monkeypatch):
    _, first, _, run = sources
    out = tmp_path / "out"
    prepare_dataset(first, out)
    real_open = stored_module.open_stored_images

    def opened_then_cut(path, rows=None):  # cut after the check made when it is opened
        images = real_open(path, rows)
        os.truncate(path, path.stat().st_size - 64 * 3)
        return images

    monkeypatch.setattr(stored_module, "open_stored_images", opened_then_cut)
    argv = ["score", run, "--data", out, "--workers", "2", "--batch-size", "4"]
    error = one_line_error([*argv, "--out", tmp_path / "s.csv", "--quiet"])
    assert f"{out / 'test_images.npy'}: ends before image" in error and len(error) < 300


# --------------------------------------------------------------------------------------------
# 7. Saying what the user did not choose, and what a missing path is
# --------------------------------------------------------------------------------------------


def test_prepare_data_says_how_it_split_a_folder_without_train_and_test(tmp_path):
    folder = write_mixed_folder(tmp_path / "pictures")
    status, out, err = cli(["prepare-data", folder, "--out", tmp_path / "p", "--size", "4"])
    assert status == 0, err
    tests = len(load_dataset(tmp_path / "p", "test"))
    assert (
        f"no train/ and test/ subfolders in {folder}: every tenth image of each class is the "
        f"test split ({tests} of 24)"
    ) in out
    chosen = tmp_path / "chosen"
    shutil.copytree(folder, chosen / "train")
    shutil.copytree(folder / "c0", chosen / "test" / "c0")
    shutil.copytree(folder / "c1", chosen / "test" / "c1")
    status, out, err = cli(["prepare-data", chosen, "--out", tmp_path / "q", "--size", "4"])
    assert status == 0, err
    assert "every tenth" not in out


NOT_DATA = [  # (what --data is, what the one line says)
    (lambda t: t / "nowhere" / "set", "no such file or directory"),
    (lambda t: "missing.npz", "missing.npz: no such file or directory"),
    (lambda t: "imagenet64", "unknown dataset 'imagenet64'"),
    (lambda t: t / "notes.txt", "notes.txt is not a dataset"),
    (lambda t: t / "pipe.npz", "pipe.npz is a FIFO, not a regular file"),
]


@pytest.mark.parametrize(
    "data, says", NOT_DATA, ids=["missing-folder", "missing-npz", "unknown-name", "text", "fifo"]
)
def test_data_that_is_not_a_dataset_says_what_it_is(tmp_path, data, says):
    (tmp_path / "notes.txt").write_text("hello")
    os.mkfifo(tmp_path / "pipe.npz")
    argv = ["train", "--data", data(tmp_path), *TINY, "--steps", "1", *QUIET]
    error = one_line_error([*argv, "--out", tmp_path / "run"])
    assert says in error

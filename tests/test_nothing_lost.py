"""Nothing lost, nothing silently wrong: what a run may delete, replace and write, the lock
on a run, the guard against non-finite weights, and the CLI's last line of defence.

The refusals themselves (one line, status 2, nothing changed) are in the table of
``test_bad_inputs.py``; these tests check what *does* happen around them."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pixelcnn
from pixelcnn.cli import commands, main
from pixelcnn.evaluate import evaluate
from pixelcnn.train import TrainOptions, list_checkpoints, load_checkpoint, train
from pixelcnn.train.run_dir import own_entries

TINY = ["--preset", "tiny", "--size", "8", "--levels", "4", "--batch-size", "8", "--quiet"]
SRC = str(Path(__file__).resolve().parents[1] / "src")


def tiny_train(out: Path, *extra: str) -> int:
    argv = ["train", "--out", str(out), "--steps", "4", "--checkpoint-every", "2", *TINY]
    return main([*argv, "--samples", "2", *extra])


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# ------------------------------------------------------------- what --force may delete
def test_force_removes_only_what_the_run_wrote(tmp_path):
    run = tmp_path / "run"
    assert tiny_train(run) == 0
    written = {str(p.relative_to(run)) for p in own_entries(run)}
    assert {"config.json", "model.safetensors", "metrics.jsonl", "samples.png"} <= written
    assert {"checkpoints/step_00000002", "checkpoints/step_00000004"} <= written
    mine = {
        "checkpoints/mywork.txt": b"mine",
        "checkpoints/step_00000099/notes.txt": b"a folder of mine with a checkpoint's name",
        "checkpoints/.tmp-mine/data.bin": b"a temporary of mine",
        "tensorboard/notes.txt": b"mine",
        ".notes.tmp": b"mine",
        "notes.txt": b"mine",
    }
    for name, data in mine.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(data)
    assert tiny_train(run, "--force", "--seed", "1") == 0
    after = tree(run)
    assert all(after[name] == data for name, data in mine.items())
    assert json.loads((run / "train_args.json").read_text())["seed"] == 1  # the new run


def test_resume_clears_its_own_leftovers_and_keeps_the_users(tmp_path):
    run = tmp_path / "run"
    assert tiny_train(run) == 0
    ours = [
        run / ".model.safetensors.pixelcnn-partial-abc123.tmp",
        run / "checkpoints" / ".tmp-step_00000006-4242" / "state.json",
    ]
    mine = [run / ".notes.tmp", run / "checkpoints" / ".tmp-mine" / "state.json"]
    for path in ours + mine:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    argv = ["train", "--out", str(run), "--resume", "--steps", "6", "--quiet", "--samples", "0"]
    assert main(argv) == 0
    assert not any(p.exists() for p in ours)
    assert all(p.read_text() == "{}" for p in mine)


def test_a_run_stopped_before_its_first_checkpoint_can_be_resumed(tmp_path, capsys):
    run = tmp_path / "run"
    assert tiny_train(run) == 0
    for path in own_entries(run):  # as if killed right after train_args.json
        if path.name != "train_args.json":
            path.unlink() if path.is_file() else __import__("shutil").rmtree(path)
    assert main(["train", "--out", str(run), "--resume", "--quiet", "--samples", "0"]) == 0
    assert "no checkpoint yet" in capsys.readouterr().out
    assert [p.name for p in list_checkpoints(run)] == ["step_00000002", "step_00000004"]


def test_resume_accepts_options_equal_to_the_runs(tmp_path):
    run = tmp_path / "run"
    assert tiny_train(run) == 0
    argv = ["train", "--out", str(run), "--resume", "--steps", "6", "--lr", "0.001"]
    assert main([*argv, "--levels", "4", "--quiet", "--samples", "0"]) == 0


# ----------------------------------------------------------------- outputs of commands
def test_sample_replaces_its_own_output_and_a_users_file_only_with_overwrite(tmp_path):
    run = tmp_path / "run"
    assert tiny_train(run) == 0
    out = tmp_path / "grid.png"
    for _ in range(2):  # an earlier output of the same command is replaced
        assert main(["sample", str(run), "--n", "2", "--out", str(out), "--quiet"]) == 0
    assert main(["sample", str(run), "--n", "2", "--quiet"]) == 0  # RUN/samples.png, again
    (tmp_path / "mine.png").write_bytes(b"mine")
    argv = ["sample", str(run), "--n", "2", "--out", str(tmp_path / "mine.png"), "--quiet"]
    assert main(argv) == 2 and (tmp_path / "mine.png").read_bytes() == b"mine"
    assert main([*argv, "--overwrite"]) == 0
    assert Image.open(tmp_path / "mine.png").format == "PNG"


def test_receptive_field_pictures_are_replaced_only_when_they_are_its_own(tmp_path):
    out = tmp_path / "fields"
    argv = ["receptive-field", "--size", "5", "--layers", "2", "--out", str(out)]
    assert main(argv) == 0 and main(argv) == 0
    (out / "growth.png").write_bytes(b"mine")
    assert main(argv) == 2 and (out / "growth.png").read_bytes() == b"mine"


def test_complete_reads_16_bit_pictures_like_the_folder_reader(tmp_path):
    model = pixelcnn.create("gated", (1, 4, 4), levels=256, preset="tiny")
    wide = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4099).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    image = commands.read_image(tmp_path / "wide.png", model)
    assert torch.equal(image[0, 0], torch.from_numpy((wide >> 8).astype(np.uint8)))


# ------------------------------------------------------------------------ the run lock
HOLD = textwrap.dedent(
    """
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    time.sleep(120)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_a_locked_run_is_refused_and_a_killed_holder_releases_it(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        assert tiny_train(run) == 2
        assert "in use by another pixelcnn train" in capsys.readouterr().err
        assert tree(run) == {}  # nothing written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert tiny_train(run) == 0  # the kernel dropped the dead holder's lock


def test_two_trainings_of_one_directory_never_both_run(tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "pixelcnn", "train", "--out", str(run), "--steps", "30"]
    command += [*TINY, "--samples", "0", "--eval-every", "0"]
    env = {**os.environ, "PYTHONPATH": SRC}
    first = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(0.5)
    second = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    results = sorted(
        (process.wait(timeout=300), process.stderr.read()) for process in (first, second)
    )
    assert [code for code, _ in results] == [0, 2], results
    assert "in use" in results[1][1] or "already holds a run" in results[1][1]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))  # one run's records, not two interleaved


# ----------------------------------------------------------------------- a full disk
FULL_DISK = textwrap.dedent(
    """
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from pixelcnn.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


def test_a_full_disk_while_checkpointing_is_one_line_and_loses_nothing(tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--out", str(run), "--steps", "4", "--checkpoint-every", "2", *TINY]
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK, "6000", *argv, "--samples", "0"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write" in lines[0] and "Traceback" not in result.stderr
    assert not list(run.rglob("*.tmp")) and not list(run.rglob(".tmp-*"))


# ------------------------------------------------------------ non-finite weights, never
def vector_data():
    generator = torch.Generator().manual_seed(1)
    images = pixelcnn.Quantizer(4).snap(
        torch.randint(0, 256, (32, 1, 6, 6), generator=generator, dtype=torch.uint8)
    )
    return images, torch.randn(32, 2, generator=generator)


def break_updates(monkeypatch, which):
    """Make the optimizer updates numbered in ``which`` leave an infinite weight (a finite
    loss and gradient, then a step too large): what an absurd learning rate does."""
    real_step = torch.optim.Adam.step
    calls = {"n": 0}

    def step(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        calls["n"] += 1
        if which(calls["n"]):
            with torch.no_grad():
                self.param_groups[0]["params"][0].view(-1)[0] = math.inf
        return result

    monkeypatch.setattr(torch.optim.Adam, "step", step)


def test_an_update_that_breaks_the_weights_restores_them_at_once(tmp_path, monkeypatch):
    break_updates(monkeypatch, lambda n: n == 7)
    torch.manual_seed(0)
    model = pixelcnn.create("gated", (1, 6, 6), levels=4, preset="tiny", vector_dim=2)
    images, vectors = vector_data()
    options = TrainOptions(steps=12, batch_size=8, eval_every=0, checkpoint_every=4, progress=False)
    messages = []
    train(model, images, None, options, tmp_path, train_condition=vectors, log=messages.append)
    assert any("step 7: an update left non-finite weights" in m for m in messages), messages
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    for path in list_checkpoints(tmp_path):
        load_checkpoint(path)  # refuses non-finite weights; none were ever saved
    pixelcnn.load(tmp_path)


def test_updates_that_keep_breaking_the_weights_stop_with_an_error(tmp_path, monkeypatch):
    break_updates(monkeypatch, lambda n: True)
    model = pixelcnn.create("gated", (1, 6, 6), levels=4, preset="tiny", vector_dim=2)
    images, vectors = vector_data()
    options = TrainOptions(steps=50, batch_size=8, eval_every=0, checkpoint_every=4, progress=False)
    with pytest.raises(FloatingPointError, match="non-finite"):
        train(model, images, None, options, tmp_path, train_condition=vectors)
    assert list_checkpoints(tmp_path) == []  # no step was good: nothing was saved


def test_nan_scores_are_an_error_never_a_result(tmp_path, capsys):
    model = pixelcnn.create("gated", (1, 4, 4), levels=4, preset="tiny")
    with torch.no_grad():  # finite weights so large that the logits overflow
        for parameter in model.parameters():
            parameter.fill_(3e38)
    images = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    with pytest.raises(FloatingPointError, match="non-finite log-likelihoods"):
        evaluate(model, images)
    model.save(tmp_path / "m")
    np.savez(
        tmp_path / "d.npz",
        x_train=np.zeros((4, 4, 4), np.uint8),
        x_test=np.zeros((2, 4, 4), np.uint8),
    )
    argv = ["eval", str(tmp_path / "m"), "--data", str(tmp_path / "d.npz"), "--quiet"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "nan" not in out.lower() and "non-finite" in err


# ------------------------------------------------------------- the CLI's last defence
@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (TypeError("a bug"), "unexpected TypeError: a bug"),
        (MemoryError(), "out of memory"),
        (FloatingPointError("keeps producing non-finite losses"), "non-finite losses"),
        (KeyError("x"), "unexpected KeyError"),
    ],
)
def test_every_exception_ends_in_one_line_and_status_2(monkeypatch, capsys, error, expected):
    def fail(args):
        raise error

    monkeypatch.setattr(commands, "run_sample", fail)
    monkeypatch.delenv("PIXELCNN_DEBUG", raising=False)
    assert main(["sample", "somewhere"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and "Traceback" not in err


# ---------------------------------------------------------------- the library, kindly
def test_numpy_scalars_are_numbers(tmp_path):
    model = pixelcnn.create("gated", (np.int64(1), 4, 4), levels=np.int64(4), preset="tiny")
    model = pixelcnn.create("gated", (1, 4, 4), levels=4, layers=np.int32(2), hidden_channels=6)
    images = model.sample(np.int64(2), temperature=np.float32(0.5))
    assert images.shape == (2, 1, 4, 4)
    TrainOptions(steps=np.int64(3), learning_rate=np.float32(1e-3)).check()


def test_save_checks_both_files_before_writing_either(tmp_path):
    (tmp_path / "m" / "config.json").mkdir(parents=True)
    with pytest.raises(OSError, match="config.json"):
        pixelcnn.create("gated", (1, 4, 4), levels=4, preset="tiny").save(tmp_path / "m")
    assert not (tmp_path / "m" / "model.safetensors").exists()
    assert tree(tmp_path) == {}


def test_a_resume_with_a_differing_option_changes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    assert tiny_train(run) == 0
    before = tree(run)
    assert main(["train", "--out", str(run), "--resume", "--batch-size", "4", "--quiet"]) == 2
    assert "--batch-size 4" in capsys.readouterr().err
    assert tree(run) == before


def test_a_resumed_run_keeps_its_precision_warmup_and_recipe_values(tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--out", str(run), "--preset", "tiny", "--size", "8", "--levels", "4"]
    argv += ["--steps", "3", "--warmup", "2", "--precision", "bf16", "--quiet", "--samples", "0"]
    assert main(argv) == 0
    stored = json.loads((run / "train_args.json").read_text())
    # what the recipe decided is written down, not left as "the default"
    assert (stored["precision"], stored["warmup"], stored["lr"]) == ("bf16", 2, 0.001)
    assert stored["batch_size"] == 32
    resume = ["train", "--out", str(run), "--resume", "--steps", "5", "--quiet"]
    assert main([*resume, "--samples", "0"]) == 0
    stored = json.loads((run / "train_args.json").read_text())
    assert (stored["precision"], stored["warmup"], stored["steps"]) == ("bf16", 2, 5)
    assert main([*resume, "--steps", "6", "--precision", "fp32"]) == 2  # it keeps its own

"""Training survives faults: a run killed with SIGKILL at an arbitrary moment and resumed
ends exactly where an uninterrupted run ends."""

import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import pixelcnn
from pixelcnn.train import TrainOptions, batch_indices, objective, train
from pixelcnn.train.checkpoint import list_checkpoints, load_checkpoint

STEPS = 150
# PixelCNN++ with dropout, a weight average and data-dependent init: every kind of state a
# checkpoint must carry (weights, average, Adam moments, schedule, step, RNG for dropout).
TRAIN = [
    sys.executable, "-m", "pixelcnn", "train", "--model", "pixelcnnpp", "--preset", "tiny",
    "--hp", "dropout=0.5", "--data", "mnist5k", "--size", "8", "--levels", "4",
    "--batch-size", "8", "--steps", str(STEPS), "--checkpoint-every", "7",
    "--eval-every", "0", "--samples", "0", "--seed", "3", "--quiet",
]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same arithmetic in every run


def run(args, **kwargs):
    return subprocess.run(TRAIN + args, env=ENV, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run that interrupted ones must end like."""
    out = tmp_path_factory.mktemp("reference") / "run"
    done = run(["--out", str(out)], timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def assert_same_end(reference, resumed, stopped_at=None):
    expected = load_file(str(reference / "model.safetensors"))  # the saved (averaged) model
    actual = load_file(str(resumed / "model.safetensors"))
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=1e-6)
    final_expected = load_checkpoint(list_checkpoints(reference)[-1])
    final_actual = load_checkpoint(list_checkpoints(resumed)[-1])
    assert final_actual.step == final_expected.step == STEPS
    for key, tensor in final_expected.model.items():  # the raw weights, not the average
        torch.testing.assert_close(final_actual.model[key], tensor, rtol=0, atol=1e-6)
    for index, state in final_expected.optimizer["state"].items():
        torch.testing.assert_close(
            final_actual.optimizer["state"][index]["exp_avg_sq"], state["exp_avg_sq"]
        )
    # each logged step once, as in the uninterrupted run (plus the step a stop request
    # checkpointed), and nothing half written left
    expected_steps = set(logged_steps(reference)) | ({stopped_at} if stopped_at else set())
    assert logged_steps(resumed) == sorted(expected_steps)
    leftovers = [
        p.name for p in resumed.rglob(".*") if p.name.endswith(".tmp") or ".tmp-" in p.name
    ]
    assert leftovers == []


def start_and_wait_for_a_checkpoint(out, chooser):
    """A training process, once its checkpoints reach a random step (and a random few
    milliseconds more: mid-step, mid-write, anywhere)."""
    process = subprocess.Popen(
        [*TRAIN, "--out", str(out)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    wait_for = chooser.randrange(7, STEPS // 2)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        steps = [load_step(path) for path in list_checkpoints(out)]
        if steps and max(steps) >= wait_for:
            break
        time.sleep(0.01)
    time.sleep(chooser.uniform(0, 0.05))
    return process


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_a_run_killed_with_sigkill_and_resumed_ends_like_an_uninterrupted_one(reference, tmp_path):
    chooser = random.Random(os.urandom(8))
    killed = tmp_path / "killed"
    process = start_and_wait_for_a_checkpoint(killed, chooser)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    newest = load_step(list_checkpoints(killed)[-1])
    assert newest < STEPS, "nothing left to resume"

    resumed = run(["--out", str(killed), "--resume"], timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"at step {newest}" in resumed.stdout + resumed.stderr

    assert_same_end(reference, killed)


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs POSIX signals")
def test_sigterm_ends_the_step_writes_a_checkpoint_and_resume_ends_like_the_uninterrupted_run(
    reference, tmp_path
):
    chooser = random.Random(os.urandom(8))
    stopped = tmp_path / "stopped"
    process = start_and_wait_for_a_checkpoint(stopped, chooser)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    message = [line for line in err.splitlines() if "stopped by SIGTERM" in line]
    assert len(message) == 1 and "--resume" in message[0], err
    step = int(message[0].split(" at step ")[1].split()[0])
    assert load_step(list_checkpoints(stopped)[-1]) == step  # no step lost
    resumed = run(["--out", str(stopped), "--resume"], timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_end(reference, stopped, stopped_at=step)


def logged_steps(run_dir):
    return [
        json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]


def load_step(path):
    return int(path.name.removeprefix("step_"))


def vector_model():
    torch.manual_seed(0)
    return pixelcnn.create("gated", (1, 6, 6), levels=4, preset="tiny", vector_dim=2)


POISON = 1234.5  # a condition value that marks an image whose batch gives a NaN loss


def noisy_data(count=64, poisoned=()):
    """Random 6x6 images with vector conditions; the ``poisoned`` images' vectors hold
    POISON, so that under :func:`poison_batches` any batch holding one has a NaN loss (a
    NaN condition itself is refused before training)."""
    generator = torch.Generator().manual_seed(1)
    images = pixelcnn.Quantizer(4).snap(
        torch.randint(0, 256, (count, 1, 6, 6), generator=generator, dtype=torch.uint8)
    )
    vectors = torch.randn(count, 2, generator=generator)
    vectors[list(poisoned)] = POISON
    return images, vectors


@pytest.fixture
def poison_batches(monkeypatch):
    """The training loss is NaN for every batch that holds a POISON condition."""
    real_loss = objective.mean_bits_per_dim

    def poisoned_loss(model, levels, condition=None, forward=None):
        value = real_loss(model, levels, condition, forward)
        return value * math.nan if bool((condition["vector"] == POISON).any()) else value

    monkeypatch.setattr(objective, "mean_bits_per_dim", poisoned_loss)


def options(**kwargs):
    defaults = dict(steps=24, batch_size=8, eval_every=0, checkpoint_every=8, progress=False)
    return TrainOptions(**{**defaults, **kwargs})


def test_a_nan_batch_is_skipped_and_training_goes_on(tmp_path, poison_batches):
    images, vectors = noisy_data(poisoned=[5])  # one image: one batch per epoch (8 batches)
    model = vector_model()
    result = train(model, images, None, options(), tmp_path, train_condition=vectors)
    assert result.step == 24
    assert all(torch.isfinite(p).all() for p in model.parameters())
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    skipped = sum(r.get("skipped_steps", 0) for r in records)
    assert skipped == 3  # the poisoned image's batch, once in each of the 3 epochs
    assert not any(r.get("event") == "restored" for r in records)


def test_a_skipped_step_leaves_the_weights_untouched(tmp_path, poison_batches):
    first_batch = batch_indices(0, 64, 8, seed=0)
    images, vectors = noisy_data(poisoned=[int(first_batch[3])])
    model = vector_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, images, None, options(steps=1), tmp_path, train_condition=vectors)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert record["skipped_steps"] == 1 and "train_bpd" not in record


def test_non_finite_steps_in_a_row_restore_the_last_good_weights_with_a_lower_rate(
    tmp_path, monkeypatch
):
    images, vectors = noisy_data()
    calls = {"n": 0}
    real_loss = objective.mean_bits_per_dim

    def loss_with_a_bad_stretch(model, levels, condition=None, forward=None):
        calls["n"] += 1
        value = real_loss(model, levels, condition, forward)
        return value * math.inf if 11 <= calls["n"] <= 15 else value  # steps 11..15

    monkeypatch.setattr(objective, "mean_bits_per_dim", loss_with_a_bad_stretch)
    messages = []
    model = vector_model()
    opts = options(learning_rate=1e-3, lr_schedule="constant")
    train(model, images, None, opts, tmp_path, train_condition=vectors, log=messages.append)
    assert any("restored the weights of step 8" in m and "to 0.0005" in m for m in messages), (
        messages
    )
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    restored = [r for r in records if r.get("event") == "restored"]
    assert [(r["step"], r["from_step"]) for r in restored] == [(15, 8)]
    assert records[-1]["lr"] == pytest.approx(5e-4)  # the lower rate stays, and is saved
    final = load_checkpoint(list_checkpoints(tmp_path)[-1])
    assert final.scheduler["base_lrs"] == [pytest.approx(5e-4)]


def test_training_that_stays_non_finite_stops_with_a_clear_error(tmp_path, poison_batches):
    images, vectors = noisy_data()
    vectors[:] = POISON  # every batch
    with pytest.raises(FloatingPointError, match="non-finite.*check the data"):
        train(
            vector_model(),
            images,
            None,
            options(steps=100, max_restores=2),
            tmp_path,
            train_condition=vectors,
        )


def test_checkpoints_record_the_data_order_and_a_changed_order_is_said(tmp_path):
    images, vectors = noisy_data()
    train(vector_model(), images, None, options(steps=10), tmp_path, train_condition=vectors)
    order = load_checkpoint(list_checkpoints(tmp_path)[-1]).data_order
    assert order == {"seed": 0, "batch_size": 8, "images": 64, "epoch": 1, "batch": 2}
    messages = []
    more = options(steps=12, batch_size=4)
    train(vector_model(), images, None, more, tmp_path, resume=True, log=messages.append,
          train_condition=vectors)  # fmt: skip
    assert any("data order differs" in m and "'batch_size': 4" in m for m in messages), messages


def test_a_first_ctrl_c_ends_the_step_and_checkpoints_a_second_interrupts(tmp_path, monkeypatch):
    images, vectors = noisy_data()
    calls = {"n": 0}
    real_loss = objective.mean_bits_per_dim

    def loss_then_ctrl_c(model, levels, condition=None, forward=None):
        calls["n"] += 1
        if calls["n"] == 4:  # during step 4: the step still completes
            os.kill(os.getpid(), signal.SIGINT)
        return real_loss(model, levels, condition, forward)

    monkeypatch.setattr(objective, "mean_bits_per_dim", loss_then_ctrl_c)
    result = train(vector_model(), images, None, options(checkpoint_every=100), tmp_path,
                   train_condition=vectors)  # fmt: skip
    assert result.stopped_by == "SIGINT" and result.step == 4
    assert [load_step(p) for p in list_checkpoints(tmp_path)] == [4]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored

    def loss_then_two_ctrl_c(model, levels, condition=None, forward=None):
        calls["n"] += 1
        if calls["n"] == 8:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return real_loss(model, levels, condition, forward)

    monkeypatch.setattr(objective, "mean_bits_per_dim", loss_then_two_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        train(vector_model(), images, None, options(checkpoint_every=100), tmp_path / "b",
              train_condition=vectors)  # fmt: skip


def test_a_checkpoint_pruned_while_the_run_is_listed_is_not_listed(tmp_path, monkeypatch):
    """Another process prunes its oldest checkpoint between listing the folder and reading
    the checkpoint's files: the listing skips it instead of failing."""
    from pixelcnn.train import checkpoint

    for step in (1, 2):
        folder = tmp_path / checkpoint.CHECKPOINT_DIR / f"step_{step:08d}"
        folder.mkdir(parents=True)
        (folder / checkpoint.STATE_JSON).write_text("{}")
    real_iterdir = Path.iterdir

    def pruned_meanwhile(self):
        if self.name == "step_00000001":
            shutil.rmtree(self)
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", pruned_meanwhile)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002"]

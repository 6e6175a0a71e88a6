"""Data-parallel training: torchrun with 2 CPU processes (gloo) takes the same steps as one
process with the same global batch, and only rank 0 writes."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from pixelcnn.train.checkpoint import list_checkpoints, load_checkpoint
from pixelcnn.train.distributed import World

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def train_args(model: str, out) -> list[str]:
    return [
        "-m", "pixelcnn", "train", "--model", model, "--preset", "tiny", "--size", "8",
        "--levels", "4", "--batch-size", "8", "--steps", "10", "--checkpoint-every", "5",
        "--eval-every", "5", "--eval-images", "50", "--samples", "2", "--seed", "1",
        "--quiet", "--out", str(out),
    ]  # fmt: skip


# Two half-batch gradients summed differ from one full batch's gradient in the last bits, and
# how many last bits depends on the thread count and the CPU's kernels. Adam divides by the
# gradient's running scale, so where a component is near zero those bits can move its step
# by up to the learning rate, on any machine; but such components are a handful. So the
# runs agree in what training did to the weights as a whole: the difference between them is
# a small fraction of how far the weights moved. Measured on 2 cores: Gated 1.4e-6, PixelCNN++
# 2.1e-3 at 1 thread and 6.9e-3 at 2; training on half the global batch (what a process
# that loses its share does) gives 4.8.
SAME_TRAINING = 0.05


def assert_same_training(actual, expected, earlier, limit=SAME_TRAINING):
    """``actual`` and ``expected`` (state dicts after training) differ by under ``limit``
    of the distance ``expected`` moved from ``earlier`` (the same run's earlier state)."""
    keys = sorted(expected)
    assert sorted(actual) == keys
    flat = [torch.cat([d[k].double().flatten() for k in keys]) for d in (actual, expected, earlier)]
    moved = (flat[1] - flat[2]).norm()
    assert moved > 0
    assert (flat[0] - flat[1]).norm() / moved < limit


@pytest.mark.parametrize("model, extra", [("gated", []), ("pixelcnnpp", ["--ema", "0.9"])])
def test_two_processes_match_one_with_the_same_global_batch(model, extra, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    single = subprocess.run(
        [sys.executable, *train_args(model, one), *extra], env=ENV, capture_output=True, text=True
    )
    assert single.returncode == 0, single.stderr
    double = subprocess.run(
        [*TORCHRUN, *train_args(model, two), *extra],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert double.returncode == 0, double.stderr[-3000:]

    expected, actual = (
        load_file(str(one / "model.safetensors")),
        load_file(str(two / "model.safetensors")),
    )
    first, last = (load_checkpoint(c).model for c in list_checkpoints(one))
    assert_same_training(load_checkpoint(list_checkpoints(two)[-1]).model, last, first)
    # the saved model (the weight average for PixelCNN++) moves less than the raw weights
    assert_same_training(actual, expected, first)

    # rank 0 alone wrote: one line per logged step, one progress report, the same files
    records = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10]
    reference = [json.loads(line) for line in (one / "metrics.jsonl").read_text().splitlines()]
    for got, want in zip(records, reference, strict=True):  # the loss of the global batch
        # (Adam's early steps are about sign(g): gradient components near 0 turn last-bit
        # differences into lr-sized ones, so the losses agree to 1e-3, not to 1e-7)
        assert got["train_bpd"] == pytest.approx(want["train_bpd"], rel=1e-3)
        assert got["test_bpd"] == pytest.approx(want["test_bpd"], rel=1e-3)
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert double.stdout.count("test bits/dim:") == 1
    assert "in 2 processes" in double.stdout


def test_a_batch_that_does_not_split_over_the_processes_is_refused(tmp_path):
    args = train_args("gated", tmp_path / "run")
    args[args.index("--batch-size") + 1] = "7"
    result = subprocess.run(
        [*TORCHRUN, *args], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    assert "does not split evenly over 2 processes" in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_each_process_takes_its_own_slice_of_the_global_batch():
    batch = torch.arange(12)
    slices = [World(rank=r, size=3).shard(batch) for r in range(3)]
    assert all(len(s) == 4 for s in slices)
    assert sorted(torch.cat(slices).tolist()) == batch.tolist()  # disjoint, all of it
    assert World().shard(batch).tolist() == batch.tolist()

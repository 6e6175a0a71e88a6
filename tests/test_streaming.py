"""Training and evaluation streamed from a prepared dataset on disk: the same batches, the
same weights and the same scores as from memory; each process of a distributed run reads
only its share; a set larger than the process's memory limit trains."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import pixelcnn
from pixelcnn.data import load_dataset
from pixelcnn.data.prepare import prepare_dataset
from pixelcnn.data.stored import StoredImages, write_manifest
from pixelcnn.evaluate import evaluate
from pixelcnn.train import TrainOptions, train
from pixelcnn.train.data import StreamedData, batch_indices
from pixelcnn.train.distributed import World

RNG = np.random.default_rng(1)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A labelled set of 90 / 20 grey 8x8 images, as an npz and prepared from it."""
    folder = tmp_path_factory.mktemp("streaming")
    x = RNG.integers(0, 256, (110, 8, 8), dtype=np.uint8)
    y = RNG.integers(0, 3, 110)
    np.savez(folder / "set.npz", x_train=x[:90], y_train=y[:90], x_test=x[90:], y_test=y[90:])
    prepare_dataset(folder / "set.npz", folder / "prepared")
    return folder


def _model():
    torch.manual_seed(3)
    return pixelcnn.create("gated", image_shape=(1, 8, 8), levels=4, preset="tiny")


def _options(**extra):
    return TrainOptions(
        steps=8, batch_size=16, eval_every=4, eval_images=8, checkpoint_every=4,
        progress=False, tensorboard=False, seed=5, **extra,
    )  # fmt: skip


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_training_takes_the_steps_training_from_memory_takes(prepared, tmp_path, workers):
    resident_model, streamed_model = _model(), _model()
    train_set = load_dataset(prepared / "set.npz", "train").images
    test_set = load_dataset(prepared / "set.npz", "test").images
    resident = train(
        resident_model,
        resident_model.quantize(train_set),
        resident_model.quantize(test_set),
        _options(),
        tmp_path / "resident",
        log=lambda _: None,
    )
    stored_train = load_dataset(prepared / "prepared", "train").images
    stored_test = load_dataset(prepared / "prepared", "test").images
    assert isinstance(stored_train, StoredImages)
    quantizer = streamed_model.quantizer
    streamed = train(
        streamed_model,
        stored_train.snapped(quantizer),
        stored_test.snapped(quantizer),
        _options(workers=workers),
        tmp_path / "streamed",
        log=lambda _: None,
    )
    assert streamed.train_bpd == resident.train_bpd
    assert streamed.test_bpd == resident.test_bpd
    for name, value in resident_model.state_dict().items():
        assert torch.equal(streamed_model.state_dict()[name], value), name


def test_a_streamed_run_stopped_and_resumed_ends_as_the_uninterrupted_one(prepared, tmp_path):
    images = load_dataset(prepared / "prepared", "train").images
    once, twice = _model(), _model()
    snapped = images.snapped(once.quantizer)
    train(once, snapped, None, _options(), tmp_path / "once", log=lambda _: None)
    train(twice, snapped, None, _options(), tmp_path / "twice", log=lambda _: None, stop_at=3)
    resumed = _model()
    train(resumed, snapped, None, _options(), tmp_path / "twice", log=lambda _: None, resume=True)
    for name, value in once.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name


def test_evaluating_a_stored_set_gives_the_scores_of_the_array(prepared):
    model = _model()
    stored = load_dataset(prepared / "prepared", "test").images.snapped(model.quantizer)
    in_memory = model.quantize(load_dataset(prepared / "set.npz", "test").images)
    want = evaluate(model, in_memory, batch_size=6)
    for workers in (0, 2):
        got = evaluate(model, stored, batch_size=6, workers=workers)
        np.testing.assert_array_equal(got.nats, want.nats)


class Recording:
    """Stored images that note every row they are asked for."""

    def __init__(self, images):
        self.images, self.read = images, []

    def __len__(self):
        return len(self.images)

    def __getitem__(self, indices):
        self.read.extend(np.asarray(indices).reshape(-1).tolist())
        return self.images[indices]


def test_each_process_reads_only_its_share_of_every_global_batch(prepared):
    model = _model()
    images = load_dataset(prepared / "prepared", "train").images.snapped(model.quantizer)
    options = _options(workers=0)
    shares = []
    for rank in (0, 1):
        recording = Recording(images)
        data = StreamedData(model, recording, None, options, World(rank=rank, size=2))
        for step in range(12):  # past the end of an epoch (5 batches of 16 from 90)
            levels, _ = data.batch(step)
            assert levels.shape == (8, 1, 8, 8)
        data.close()
        shares.append(recording.read)
    for step in range(12):
        mine, yours = shares[0][step * 8 : step * 8 + 8], shares[1][step * 8 : step * 8 + 8]
        global_batch = batch_indices(step, 90, 16, seed=5).tolist()
        assert sorted(mine + yours) == sorted(global_batch)
        assert mine == global_batch[0::2] and yours == global_batch[1::2]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def _train_args(data, out):
    return [
        "-m", "pixelcnn", "train", "--model", "gated", "--preset", "tiny", "--levels", "4",
        "--data", str(data), "--batch-size", "8", "--steps", "6", "--checkpoint-every", "3",
        "--eval-every", "3", "--eval-images", "10", "--samples", "0", "--seed", "1",
        "--quiet", "--out", str(out),
    ]  # fmt: skip


def test_two_processes_streaming_their_shares_match_one_process_from_memory(prepared, tmp_path):
    single = subprocess.run(
        [sys.executable, *_train_args(prepared / "set.npz", tmp_path / "one")],
        env=ENV, capture_output=True, text=True,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-2000:]
    double = subprocess.run(
        [*TORCHRUN, *_train_args(prepared / "prepared", tmp_path / "two")],
        env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert double.returncode == 0, double.stderr[-3000:]
    assert "in 2 processes" in double.stdout
    expected = load_file(str(tmp_path / "one" / "model.safetensors"))
    actual = load_file(str(tmp_path / "two" / "model.safetensors"))
    for key in expected:  # as in test_distributed: half-batch gradients summed
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-3, atol=1e-4)


def test_a_set_larger_than_the_memory_limit_trains_from_disk(tmp_path):
    """3.1 GB of training images (a sparse file: the blank rows take no disk) under a 2 GiB
    address-space limit: loading them fails there, streaming them trains and evaluates."""
    data = tmp_path / "big"
    data.mkdir()
    count = 1_000_000
    images = np.lib.format.open_memmap(
        data / "train_images.npy", "w+", np.uint8, (count, 3, 32, 32)
    )
    images[:: count // 100] = RNG.integers(0, 256, (100, 3, 32, 32), dtype=np.uint8)
    del images
    np.save(data / "test_images.npy", RNG.integers(0, 256, (16, 3, 32, 32), dtype=np.uint8))
    splits = {"train": {"images": count, "labels": False}, "test": {"images": 16, "labels": False}}
    write_manifest(data, splits, (3, 32, 32), None, "a test")
    limit = 2 << 30
    assert (data / "train_images.npy").stat().st_size > limit

    def limited(*argv):
        def set_limit():
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        return subprocess.run(
            [sys.executable, *argv], env=ENV, capture_output=True, text=True,
            preexec_fn=set_limit, timeout=300,
        )  # fmt: skip

    loading = limited("-c", f"import numpy as np; np.load({str(data / 'train_images.npy')!r})")
    assert loading.returncode != 0 and "MemoryError" in loading.stderr
    read_whole = limited(
        "-c",
        "import numpy as np; from pixelcnn.data import load_dataset; "
        f"np.asarray(load_dataset({str(data)!r}).images)",
    )
    assert "would need 3.1 GB of memory" in read_whole.stderr
    run = tmp_path / "run"
    result = limited(
        "-m", "pixelcnn", "train", "--data", str(data), "--model", "gated", "--preset", "tiny",
        "--steps", "3", "--batch-size", "8", "--eval-images", "16", "--samples", "0",
        "--workers", "1", "--quiet", "--out", str(run),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1000000 train / 16 test images" in result.stdout
    assert "test bits/dim:" in result.stdout
    (data / "train_images.npy").unlink()

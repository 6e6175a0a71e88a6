"""Prepared datasets: ``prepare-data`` turns every source kind into arrays on disk that read
back as exactly the images and labels ``load_dataset`` gives for the source; stored images
index like numpy; an unfinished or damaged directory is one line and exit 2."""

import contextlib
import io
import pickle
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from pixelcnn.cli.main import main
from pixelcnn.data import load_dataset
from pixelcnn.data.prepare import prepare_dataset
from pixelcnn.data.stored import MANIFEST, IncompleteDatasetError, StoredImages
from pixelcnn.quantize import Quantizer

RNG = np.random.default_rng(0)


def assert_same_dataset(prepared_dir, source, **load):
    for split in ("train", "test"):
        want = load_dataset(source, split, **load)
        got = load_dataset(prepared_dir, split)
        assert isinstance(got.images, StoredImages)
        np.testing.assert_array_equal(np.asarray(got.images), want.images)
        if want.labels is None:
            assert got.labels is None
        else:
            np.testing.assert_array_equal(got.labels, want.labels)
        assert got.class_names == want.class_names


def write_npz(path, compressed=True):
    """Channels-last int16 pixels (in 0..255) with labels and class names: read_npz's rules."""
    x = RNG.integers(0, 256, (37, 5, 7, 3)).astype(np.int16)
    y = RNG.integers(0, 4, 37)
    save = np.savez_compressed if compressed else np.savez
    save(path, x_train=x, y_train=y, x_test=x[:9], y_test=y[:9], class_names=np.array(list("abcd")))
    return path


@pytest.mark.parametrize("compressed", [True, False])
def test_an_npz_prepares_to_the_images_and_labels_load_dataset_reads(tmp_path, compressed):
    source = write_npz(tmp_path / "set.npz", compressed)
    prepare_dataset(source, tmp_path / "out")
    assert_same_dataset(tmp_path / "out", source)


def test_a_small_chunk_size_streams_the_same_bytes(tmp_path, monkeypatch):
    from pixelcnn.data import prepare

    monkeypatch.setattr(prepare, "_CHUNK_BYTES", 200)  # two images a chunk
    source = write_npz(tmp_path / "set.npz")
    prepare_dataset(source, tmp_path / "out")
    assert_same_dataset(tmp_path / "out", source)


def test_resizing_while_preparing_matches_load_dataset_with_size(tmp_path):
    source = write_npz(tmp_path / "set.npz")
    prepare_dataset(source, tmp_path / "out", size=(4, 9))
    assert_same_dataset(tmp_path / "out", source, size=(4, 9))
    with pytest.raises(ValueError, match="resized when it is prepared"):
        load_dataset(tmp_path / "out", "train", size=5)
    assert len(load_dataset(tmp_path / "out", "train", size=(4, 9))) == 37  # its own size


def write_imagenet(folder, side=4, batches=(5, 3), val=4):
    folder.mkdir()
    for k, n in enumerate(batches, start=1):
        data = RNG.integers(0, 256, (n, 3 * side * side), dtype=np.uint8)
        np.savez(folder / f"train_data_batch_{k}.npz", data=data, labels=RNG.integers(1, 11, n))
    data = RNG.integers(0, 256, (val, 3 * side * side), dtype=np.uint8)
    np.savez(folder / "val_data.npz", data=data, labels=RNG.integers(1, 11, val))
    return folder


def test_downsampled_imagenet_batches_prepare_to_what_load_dataset_reads(tmp_path):
    source = write_imagenet(tmp_path / "imagenet32", batches=(5, 3, 2))
    prepare_dataset(source, tmp_path / "out")
    assert_same_dataset(tmp_path / "out", source)
    assert len(load_dataset(tmp_path / "out", "train")) == 10


def write_folder(folder, sizes=((6, 5),)):
    """Two class subfolders of RGB PNGs; image i has size sizes[i % len(sizes)] (H, W)."""
    for i in range(24):
        height, width = sizes[i % len(sizes)]
        pixels = RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)
        (folder / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"c{i % 2}" / f"{i:03d}.png")
    return folder


def test_an_image_folder_prepares_to_what_load_dataset_reads(tmp_path):
    source = write_folder(tmp_path / "pictures")
    prepare_dataset(source, tmp_path / "out")
    assert_same_dataset(tmp_path / "out", source)


def test_a_folder_of_mixed_sizes_is_refused_before_anything_is_written(tmp_path):
    source = write_folder(tmp_path / "pictures", sizes=((6, 5), (5, 6)))
    out = tmp_path / "out"
    assert main(["prepare-data", str(source), "--out", str(out), "--quiet"]) == 2
    assert not out.exists() or not any(out.iterdir())
    assert main(["prepare-data", str(source), "--out", str(out), "--size", "4", "--quiet"]) == 0
    assert load_dataset(out, "train").images.shape[1:] == (3, 4, 4)


def test_a_registered_dataset_prepares_whole(tmp_path, capsys):
    assert main(["prepare-data", "mnist5k", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert "prepared 4500 train / 500 test images of 1x28x28" in capsys.readouterr().out
    assert_same_dataset(tmp_path / "out", "mnist5k")


def stored(tmp_path, images):
    np.savez(tmp_path / "set.npz", x_train=images, x_test=images[:1])
    prepare_dataset(tmp_path / "set.npz", tmp_path / "out")
    return load_dataset(tmp_path / "out", "train").images


def test_stored_images_index_like_numpy(tmp_path):
    array = RNG.integers(0, 256, (20, 1, 3, 2), dtype=np.uint8)
    images = stored(tmp_path, array)
    assert images.shape == array.shape and len(images) == 20
    view = images[3:15][2:9]  # a view of a view: nothing read
    assert isinstance(view, StoredImages) and view.shape == (7, 1, 3, 2)
    for key in (slice(None), slice(4, 4), [5, 5, 0, 19, -1], np.array([7, 6, 8, 2])):
        np.testing.assert_array_equal(images[key], array[key])
    np.testing.assert_array_equal(images[-3], array[-3])
    np.testing.assert_array_equal(images[::3], array[::3])
    np.testing.assert_array_equal(np.asarray(view), array[3:15][2:9])
    np.testing.assert_array_equal(view[[-1, 0]], array[3:15][2:9][[-1, 0]])
    with pytest.raises(IndexError):
        images[[20]]
    with pytest.raises(IndexError):
        view[np.array([0.5])]
    again = pickle.loads(pickle.dumps(view))  # what a DataLoader worker gets
    np.testing.assert_array_equal(np.asarray(again), array[5:12])
    quantizer = Quantizer(4)
    snapped = images.snapped(quantizer)[2:6]
    want = quantizer.snap(torch.from_numpy(array[2:6])).numpy()
    np.testing.assert_array_equal(np.asarray(snapped), want)


def test_an_unfinished_preparation_is_one_line_and_can_be_run_again(tmp_path, capsys):
    source = write_folder(tmp_path / "pictures")
    broken = source / "c1" / "999.png"  # the header reads (6x5 RGB), the pixels do not
    whole = (source / "c1" / "001.png").read_bytes()
    broken.write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "out"
    assert main(["prepare-data", str(source), "--out", str(out), "--quiet"]) == 2
    assert '"complete": false' in (out / MANIFEST).read_text()  # marked unfinished
    capsys.readouterr()
    train = ["train", "--data", str(out), "--steps", "1", "--out", str(tmp_path / "run")]
    error = _error(train)
    assert "incomplete prepared dataset" in error and "prepare-data again" in error
    assert len(error.strip().splitlines()) == 1, error
    error = _error(["prepare-data", str(source), "--out", str(tmp_path / "other"), "--quiet"])
    assert "999.png: cannot decode image" in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
    broken.unlink()
    assert main(["prepare-data", str(source), "--out", str(out), "--quiet"]) == 0  # again
    assert_same_dataset(out, source)


def _error(argv) -> str:
    """What ``pixelcnn ARGV`` says on stderr, after checking that it fails with status 2."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(argv) == 2
    return err.getvalue()


def test_a_cut_short_or_foreign_prepared_directory_is_refused_in_one_line(tmp_path, capsys):
    source = write_npz(tmp_path / "set.npz")
    out = tmp_path / "out"
    prepare_dataset(source, out)
    images = out / "train_images.npy"
    whole = images.read_bytes()
    images.write_bytes(whole[:-10])
    with pytest.raises(IncompleteDatasetError, match="holds .* of its .* bytes"):
        load_dataset(out, "train")
    images.write_bytes(whole)
    (out / MANIFEST).write_text('{"format": "something else"}')
    error = _error(["train", "--data", str(out), "--out", str(tmp_path / "run")])
    assert "not a pixelcnn prepared-dataset manifest" in error
    assert len(error.strip().splitlines()) == 1


def test_out_is_never_someone_elses_directory(tmp_path):
    source = write_npz(tmp_path / "set.npz")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="holds other files"):
        prepare_dataset(source, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    (tmp_path / "theirs").mkdir()  # a file at a name prepare-data writes, but not its own
    (tmp_path / "theirs" / "train_images.npy").write_bytes(b"someone's array")
    with pytest.raises(ValueError, match="not written by prepare-data"):
        prepare_dataset(source, tmp_path / "theirs", force=True)
    (tmp_path / "theirs" / MANIFEST).write_text('{"a": "manifest of something else"}')
    with pytest.raises(ValueError, match="prepare-data did not write"):
        prepare_dataset(source, tmp_path / "theirs", force=True)
    assert (tmp_path / "theirs" / "train_images.npy").read_bytes() == b"someone's array"
    prepare_dataset(source, tmp_path / "out")
    with pytest.raises(ValueError, match="--force"):
        prepare_dataset(source, tmp_path / "out")
    prepare_dataset(source, tmp_path / "out", force=True)
    with pytest.raises(ValueError, match="already a prepared dataset"):
        prepare_dataset(tmp_path / "out", tmp_path / "again")


def test_preparing_an_npz_larger_than_the_memory_limit_streams_it(tmp_path):
    """An npz of 600 MB prepared under an address-space limit 300 MB above what the
    process needs before it starts: only chunks are ever in memory."""
    x = np.lib.format.open_memmap(tmp_path / "x_train.npy", "w+", np.uint8, (200_000, 3, 32, 32))
    x[::1000] = 7  # a few rows that are not zero
    del x
    with zipfile.ZipFile(tmp_path / "big.npz", "w") as archive:  # stored, as np.savez does
        archive.write(tmp_path / "x_train.npy", "x_train.npy")
    (tmp_path / "x_train.npy").unlink()
    script = textwrap.dedent(
        f"""
        import resource, sys
        import numpy as np
        from pixelcnn.data.prepare import prepare_dataset
        status = open("/proc/self/status").read()
        size = int(status.split("VmSize:")[1].split()[0]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size + 300_000_000, resource.RLIM_INFINITY))
        try:
            np.ones(600_000_000, np.uint8)
            sys.exit("the limit does not hold 600 MB back")
        except MemoryError:
            pass
        prepare_dataset({str(tmp_path / "big.npz")!r}, {str(tmp_path / "out")!r})
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    (tmp_path / "big.npz").unlink()
    images = load_dataset(tmp_path / "out", "train").images
    assert images.shape == (200_000, 3, 32, 32)
    np.testing.assert_array_equal(
        images[[0, 1, 1000, 199_000, 199_999]][:, 0, 0, 0], [7, 0, 7, 7, 0]
    )

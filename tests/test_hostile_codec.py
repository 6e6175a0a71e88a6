"""Hostile inputs to compress and decompress: crafted .pxc files whose declared sizes would
exhaust memory or time, FIFOs and devices where a file is read, symbolic links where a
file is written, outputs that are inputs, and models whose probabilities are not finite.
Every one fails fast, in one line, with nothing written outside the folder the user named."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import perturb
from PIL import Image

import pixelcnn
from pixelcnn.cli import main
from pixelcnn.coding import codec, container, unpack
from pixelcnn.data import readers
from pixelcnn.files import NotRegularFileError, NotWritableError
from pixelcnn.pictures import png_kind, save_png


def tree(root: Path) -> dict[str, bytes]:
    """Every file and link under ``root``: links by their target, files by their bytes."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(root))] = f"-> {os.readlink(path)}".encode()
        elif path.is_file():
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


def one_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Saved tiny models of 1x4x4 images: 16 levels, 16 levels with 3 classes, and 256."""
    root = tmp_path_factory.mktemp("hostile")
    made = {
        "small": pixelcnn.create("gated", (1, 4, 4), 16, preset="tiny"),
        "classes": pixelcnn.create("gated", (1, 4, 4), 16, preset="tiny", num_classes=3),
        "wide": pixelcnn.create("gated", (1, 4, 4), 256, preset="tiny"),
    }
    loaded = {}
    for name, model in made.items():
        perturb(model, 0.5, seed=1).eval()
        loaded[name] = (model, model.save(root / name))
    return loaded


def images(model, count: int) -> torch.Tensor:
    levels = torch.randint(0, model.levels, (count, *model.image_shape))
    return model.encoding.from_levels(levels)


def crafted(blob: bytes, **changes) -> bytes:
    """``blob`` under a header with ``changes`` (and a digest that fits them): a file anyone
    can make, since the digest guards against damage, not against intent."""
    header, streams = unpack(blob)
    if "streams" in changes:
        streams = changes.pop("streams")
    for key, value in changes.items():
        setattr(header, key, value)
    return container.pack(header, streams)


def bomb_header(inflated: int) -> bytes:
    """A file whose zlib header inflates to ``inflated`` bytes of JSON whitespace."""
    packer = zlib.compressobj(9)
    parts = [packer.compress(b'{"format":"pixelcnn-compressed"')]
    spaces = b" " * (1 << 20)
    parts += [packer.compress(spaces) for _ in range(inflated >> 20)]
    parts.append(packer.compress(b"}") + packer.flush())
    body = b"".join(parts)
    preamble = container._PREAMBLE.pack(
        container.MAGIC, container.VERSION, len(body), container.digest(body)
    )
    return preamble + body


def nested(depth: int) -> bytes:
    """A file whose header is JSON lists nested ``depth`` deep."""
    body = zlib.compress(b"[" * depth + b"]" * depth)
    preamble = container._PREAMBLE.pack(
        container.MAGIC, container.VERSION, len(body), container.digest(body)
    )
    return preamble + body


def many_groups(blob: bytes, count: int = 1_000_000) -> bytes:
    """A file declaring ``count`` images in groups of one, each with an empty stream and
    the same checksum: a few kB that would parse into tens of MB of header."""
    return crafted(
        blob,
        count=count,
        batch=1,
        group_bytes=[0] * count,
        group_checks=["0" * 16] * count,
        streams=[b""] * count,
    )


def huge(count: int, batch: int):
    return lambda m, b: crafted(
        b, count=count, batch=batch, group_bytes=[0], group_checks=["0" * 16], streams=[b""]
    )


# name, model, crafting from (model, a good file), what the one line says, peak MiB allowed
CRAFTED = [
    ("1e9 images in one group", "small", huge(10**9, 10**9), "more than", 64),
    ("1e8 images in one group", "small", huge(10**8, 10**8), "more than", 64),
    ("1e8 images at 256 levels", "wide", huge(10**8, 10**8), "more than", 64),
    ("1e6 images in one empty group", "wide", huge(10**6, 10**6), "more than", 64),
    ("1e5 images in an empty stream", "small", huge(10**5, 10**5), "ran past", 256),
    ("5 images padded to 1e7", "small", huge(5, 10**7), "groups of 10000000", 64),
    ("header bomb", "small", lambda m, b: bomb_header(300 << 20), "header of more than", 64),
    (
        "network name of 1 MB",
        "small",
        lambda m, b: crafted(b, network="x\n" * 10**6),
        "network",
        64,
    ),
    ("a name with NUL", "small", lambda m, b: crafted(b, names=["a\0b"] * 5), "names", 64),
    ("nested 100000 deep", "small", lambda m, b: nested(100_000), "unreadable header", 64),
    ("checks not hex", "small", lambda m, b: crafted(b, group_checks=["?" * 16] * 3), "checks", 64),
    ("1e6 groups in a small file", "small", lambda m, b: many_groups(b), "header of more", 64),
    ("split names a path", "small", lambda m, b: crafted(b, split="../../x"), "split", 64),
    ("label beyond classes", "classes", lambda m, b: crafted(b, labels=[5] * 5), "label 5", 64),
    ("label 1e30", "classes", lambda m, b: crafted(b, labels=[10**30] * 5), "labels", 64),
    ("no labels", "classes", lambda m, b: crafted(b, labels=None), "no class labels", 64),
    (
        "shape beyond the model's",
        "small",
        lambda m, b: crafted(b, image_shape=[1, 10**5, 10**5]),
        "shape",
        64,
    ),
    (
        "header length beyond the file",
        "small",
        lambda m, b: b[:10] + (2**32 - 1).to_bytes(4, "little") + b[14:],
        "truncated",
        64,
    ),
]


@pytest.mark.parametrize(
    ("case", "which", "craft", "message", "peak_mib"), CRAFTED, ids=[c[0] for c in CRAFTED]
)
def test_crafted_files_fail_fast_in_one_line(models, case, which, craft, message, peak_mib):
    model, _ = models[which]
    labels = torch.tensor([0, 2, 1, 1, 0]) if model.condition_spec else None
    good = model.compress(images(model, 5), labels, batch_size=2)
    data = craft(model, good)
    assert len(data) < 2 << 20  # a small file...
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(ValueError) as caught:  # ...refused fast, in little memory
            model.decompress(data)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.monotonic() - start < 3
    assert peak < peak_mib << 20
    text = str(caught.value)
    assert message in text and "\n" not in text, text
    assert "checksum" not in text
    assert "\n" not in text


def test_the_fewest_bits_a_symbol_costs_is_a_true_lower_bound():
    """The bound that refuses groups too short for their symbols, measured where it is
    tightest: 8 million certain symbols cost at least the bound each, so no real stream
    is ever refused by it."""
    import constriction

    count = 8_000_000
    for levels in (2, 16, 256):
        certain = np.zeros((count // 8, levels))
        certain[:, 0] = 1.0
        encoder = constriction.stream.queue.RangeEncoder()
        for _ in range(8):
            encoder.encode(np.zeros(count // 8, np.int32), codec._FAMILY, certain)
        bits = 32 * len(encoder.get_compressed())
        assert count * codec.min_bits_per_symbol(levels) <= bits, levels


@pytest.mark.parametrize("levels", [2, 16, 256])
@pytest.mark.parametrize("pick", ["likeliest", "least likely", "drawn"])
def test_a_stream_holds_at_least_the_information_of_its_symbols(levels, pick):
    """What the decoder checks as it goes: a stream of w words spends at least
    sum -log2(p(x) + 2^-22) bits on its symbols x, for sharp and flat distributions and
    for the symbols that cost least and most."""
    import constriction

    generator = np.random.default_rng(levels)
    count = 20_000
    logits = generator.normal(size=(count, levels)) * generator.choice([0.1, 3, 30], (count, 1))
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    if pick == "likeliest":
        symbols = probabilities.argmax(1)
    elif pick == "least likely":
        symbols = probabilities.argmin(1)
    else:
        draws = generator.random((count, 1))
        symbols = (probabilities.cumsum(1) < draws).sum(1).clip(0, levels - 1)
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(symbols.astype(np.int32), codec._FAMILY, probabilities)
    bits = 32 * len(encoder.get_compressed())
    chosen = probabilities[np.arange(count), symbols]
    assert -np.log2(np.minimum(chosen + codec._QUANTIZATION_SLACK, 1)).sum() <= bits


def test_a_crafted_file_of_1e9_images_is_refused_by_the_command(models, tmp_path, capsys):
    model, saved = models["small"]
    blob = tmp_path / "huge.pxc"
    blob.write_bytes(huge(10**9, 10**9)(model, model.compress(images(model, 3))))
    assert blob.stat().st_size < 1000
    start = time.monotonic()
    argv = ["decompress", str(blob), "--run", str(saved), "--out", str(tmp_path / "o")]
    assert main([*argv, "--quiet"]) == 2
    assert time.monotonic() - start < 3
    one_line(capsys, "decoding 1000000000 of the 1000000000 images", "would need")
    assert not (tmp_path / "o").exists()


def test_what_fails_in_the_walk_is_named_not_called_a_checksum_mismatch(models, monkeypatch):
    model, _ = models["small"]
    data = model.compress(images(model, 3))

    def no_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 9 TB")

    monkeypatch.setattr(codec, "walk", no_memory)
    with pytest.raises(ValueError, match="needs more memory") as caught:
        model.decompress(data)
    assert "checksum" not in str(caught.value)

    def bug(*args, **kwargs):
        raise RuntimeError("a bug in a layer")

    monkeypatch.setattr(codec, "walk", bug)
    with pytest.raises(RuntimeError, match="a bug in a layer"):
        model.decompress(data)


def test_files_that_are_not_compressed_files_are_refused_unread(models, tmp_path, capsys):
    """A device, and a 10 GB (sparse) regular file: refused from their first bytes."""
    _, saved = models["small"]
    sparse = tmp_path / "big.pxc"
    with open(sparse, "wb") as stream:
        stream.truncate(10 << 30)
    for path, message in [("/dev/zero", "device"), (str(sparse), "not a pixelcnn")]:
        start = time.monotonic()
        argv = ["decompress", path, "--run", str(saved), "--out", str(tmp_path / "o"), "--quiet"]
        assert main(argv) == 2
        assert time.monotonic() - start < 3
        one_line(capsys, message)


# --------------------------------------------------------------------------- FIFOs
def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def finishes(call, fifos: list[Path], within: float = 1.0, seconds: float = 5.0):
    """``call()``'s result or exception, which must come ``within`` seconds; failing the
    test (not hanging it) when the call blocks on one of ``fifos``: after ``seconds`` they
    are opened for writing and closed, releasing it."""
    result: dict = {}
    start = time.monotonic()

    def run():
        try:
            result["value"] = call()
        except BaseException as error:  # handed to the test
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for path in fifos:
            with contextlib.suppress(OSError):  # no reader: nothing to release
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(seconds)
        pytest.fail(f"blocked reading a FIFO: {fifos}")
    assert time.monotonic() - start < within
    return result


def _cifar_folder(tmp: Path) -> tuple[Path, list[Path]]:
    (tmp / "cifar").mkdir()
    return tmp / "cifar", [fifo(tmp / "cifar" / "test_batch")]


def _cifar_archive(tmp: Path) -> tuple[Path, list[Path]]:
    return tmp / "cifar-10-python.tar.gz", [fifo(tmp / "cifar-10-python.tar.gz")]


LIBRARY_FIFOS = [
    ("image file", lambda t: (fifo(t / "x.png"),) * 2, readers.read_image_file),
    ("image header", lambda t: (fifo(t / "x.png"),) * 2, readers.image_file_header),
    ("image exactness", lambda t: (fifo(t / "x.png"),) * 2, readers.lossy_reading),
    ("npz", lambda t: (fifo(t / "d.npz"),) * 2, readers.read_npz),
    ("idx", lambda t: (fifo(t / "images-idx3-ubyte"),) * 2, readers.read_idx),
    ("gzip", lambda t: (fifo(t / "x.gz"),) * 2, readers.gunzip_file),
    ("cifar batch", _cifar_folder, lambda p: readers.read_cifar10(p, "test")),
    ("cifar archive", _cifar_archive, lambda p: readers.read_cifar10(p, "test")),
    ("compressed file", lambda t: (fifo(t / "c.pxc"),) * 2, lambda p: container.read_file(p)),
]


@pytest.mark.parametrize(("kind", "make", "read"), LIBRARY_FIFOS, ids=[c[0] for c in LIBRARY_FIFOS])
def test_a_fifo_where_a_file_is_read_is_refused_at_once(tmp_path, kind, make, read):
    path, fifos = make(tmp_path)
    fifos = fifos if isinstance(fifos, list) else [fifos]
    result = finishes(lambda: read(path), fifos)
    error = result.get("error")
    assert isinstance(error, NotRegularFileError), result
    assert "FIFO" in str(error)


def test_checks_of_earlier_outputs_do_not_block_on_a_fifo(tmp_path):
    path = fifo(tmp_path / "x.png")
    assert finishes(lambda: png_kind(path), [path]) == {"value": None}
    assert finishes(lambda: container.is_compressed_file(path), [path]) == {"value": False}


def test_a_fifo_given_to_the_commands_is_refused_in_one_line(models, tmp_path, capsys):
    _, saved = models["small"]
    (tmp_path / "folder").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "folder" / "a.png")
    fifos = [fifo(tmp_path / "x.png"), fifo(tmp_path / "folder" / "b.png")]
    fifos += [fifo(tmp_path / "c.pxc"), fifo(tmp_path / "d.npz")]
    out = str(tmp_path / "o.pxc")
    for argv in [
        ["compress", str(saved), str(fifos[0]), "--out", out],
        ["compress", str(saved), str(tmp_path / "folder"), "--out", out],
        ["compress", str(saved), str(fifos[3]), "--out", out],
        ["decompress", str(fifos[2]), "--run", str(saved), "--out", str(tmp_path / "o")],
    ]:
        result = finishes(lambda argv=argv: main([*argv, "--quiet"]), fifos, within=3)
        assert result == {"value": 2}, (argv, result)
        one_line(capsys, "FIFO")


# ------------------------------------------------------------------ links on the way out
@pytest.fixture
def named(models, tmp_path):
    """A compressed file of four images stored under names at depths 0 to 3."""
    model, saved = models["wide"]
    names = ["a/b/c/deep.png", "a/b/mid.png", "a/top.png", "z.png"]
    blob = tmp_path / "named.pxc"
    blob.write_bytes(model.compress(images(model, 4), names=names))
    return saved, blob


def _linked_folder(depth: int):
    def setup(out: Path, outside: Path) -> None:
        parts = ["a", "b", "c"][:depth]
        (out / Path(*parts[:-1])).mkdir(parents=True, exist_ok=True)
        (out / Path(*parts)).symlink_to(outside, target_is_directory=True)

    return setup


def _linked_file(out: Path, outside: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "z.png").symlink_to(outside / "z.png")


def _file_for_folder(out: Path, outside: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "a").write_bytes(b"a user's file where a folder would go")


LINKS = [
    ("folder link at depth 1", _linked_folder(1), [], "symbolic link"),
    ("folder link at depth 2", _linked_folder(2), [], "symbolic link"),
    ("folder link at depth 3", _linked_folder(3), [], "symbolic link"),
    ("folder link with --overwrite", _linked_folder(2), ["--overwrite"], "symbolic link"),
    ("link at the name", _linked_file, [], "not a regular file"),
    ("link at the name with --overwrite", _linked_file, ["--overwrite"], "not a regular file"),
    ("a file where a folder goes", _file_for_folder, ["--overwrite"], "not a folder"),
]


@pytest.mark.parametrize(("case", "setup", "flags", "message"), LINKS, ids=[c[0] for c in LINKS])
def test_decompress_never_writes_through_a_link(
    named, tmp_path, capsys, case, setup, flags, message
):
    saved, blob = named
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    for name in ["deep.png", "mid.png", "top.png", "z.png", "c/deep.png", "b/mid.png"]:
        (outside / name).parent.mkdir(parents=True, exist_ok=True)
        (outside / name).write_bytes(b"the user's own file")
    setup(out, outside)
    before, inside = tree(outside), tree(out)
    argv = ["decompress", str(blob), "--run", str(saved), "--out", str(out), *flags, "--quiet"]
    assert main(argv) == 2
    one_line(capsys, message)
    assert tree(outside) == before and tree(out) == inside


def test_a_name_that_is_both_an_image_and_a_folder_is_refused_before_decoding(
    models, tmp_path, capsys
):
    model, saved = models["wide"]
    blob = tmp_path / "clash.pxc"
    blob.write_bytes(model.compress(images(model, 2), names=["a.png", "a.png/b.png"]))
    out = tmp_path / "out"
    assert main(["decompress", str(blob), "--run", str(saved), "--out", str(out), "--quiet"]) == 2
    one_line(capsys, "both as an image and as a folder")
    assert not out.exists()


def test_the_write_itself_refuses_a_linked_folder(tmp_path):
    """The last guard, if a link appears after the checks: save_png inside the folder."""
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "sub").symlink_to(outside, target_is_directory=True)
    picture = Image.fromarray(np.zeros((4, 4), np.uint8))
    with pytest.raises(NotWritableError, match="symbolic link"):
        save_png(picture, out / "sub" / "x.png", "decompressed", inside=out)
    assert list(outside.iterdir()) == []
    save_png(picture, out / "new" / "deeper" / "x.png", "decompressed", inside=out)
    assert png_kind(out / "new" / "deeper" / "x.png") == "decompressed"


def test_an_npz_output_that_is_a_link_is_never_written_through(named, tmp_path, capsys):
    saved, blob = named
    victim = tmp_path / "victim.npz"
    victim.write_bytes(b"the user's own file")
    (tmp_path / "r.npz").symlink_to(victim)
    argv = ["decompress", str(blob), "--run", str(saved), "--out", str(tmp_path / "r.npz")]
    assert main([*argv, "--overwrite", "--quiet"]) == 2
    one_line(capsys, "not a regular file")
    assert victim.read_bytes() == b"the user's own file"


# ------------------------------------------------------------ outputs that are inputs
def _folder(tmp: Path) -> Path:
    for name in ["x/a.png", "x/b.png", "y/c.png"]:
        (tmp / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((4, 4), 17, np.uint8)).save(tmp / "in" / name)  # a level
    (tmp / "in" / "notes.bin").write_bytes(b"not an image, still the user's")
    return tmp / "in"


INSIDE = [
    ("an image in a class folder", lambda t: t / "in" / "x" / "a.png"),
    ("another file at the top", lambda t: t / "in" / "notes.bin"),
    ("through a link to the folder", lambda t: t / "link" / "y" / "c.png"),
]


@pytest.mark.parametrize(("case", "target"), INSIDE, ids=[c[0] for c in INSIDE])
def test_compress_never_replaces_a_file_of_its_input_folder(models, tmp_path, capsys, case, target):
    _, saved = models["small"]
    folder = _folder(tmp_path)
    (tmp_path / "link").symlink_to(folder, target_is_directory=True)
    before = tree(folder)
    argv = ["compress", str(saved), str(folder), "--out", str(target(tmp_path)), "--overwrite"]
    assert main([*argv, "--quiet"]) == 2
    one_line(capsys, "inside the input folder")
    assert tree(folder) == before


def test_decompress_replaces_its_own_npz_but_not_a_users(named, tmp_path, capsys):
    saved, blob = named
    out = tmp_path / "r.npz"
    argv = ["decompress", str(blob), "--run", str(saved), "--out", str(out), "--quiet"]
    assert main(argv) == 0
    first = out.read_bytes()
    assert main(argv) == 0  # its own earlier output: replaced without --overwrite
    assert out.read_bytes() == first
    with np.load(out) as arrays:  # the mark is invisible to numpy
        assert sorted(arrays.files) == ["x_test"] and arrays["x_test"].shape == (4, 1, 4, 4)
    np.savez(out, x_test=np.zeros((1, 1, 4, 4), np.uint8))  # the user's own npz
    mine = out.read_bytes()
    assert main(argv) == 2
    one_line(capsys, "--overwrite")
    assert out.read_bytes() == mine


def test_compress_makes_missing_folders_only_once_it_has_its_output(models, tmp_path, capsys):
    _, saved = models["small"]
    folder = _folder(tmp_path)
    out = tmp_path / "new" / "deeper" / "c.pxc"
    assert main(["compress", str(saved), str(folder), "--out", str(out), "--quiet"]) == 0
    assert container.is_compressed_file(out)
    # a failure leaves no folder behind
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(folder / "x" / "odd.png")
    out = tmp_path / "other" / "c.pxc"
    assert main(["compress", str(saved), str(folder), "--out", str(out), "--quiet"]) == 2
    capsys.readouterr()
    assert not (tmp_path / "other").exists()


def test_an_output_that_cannot_be_written_is_refused_before_any_work(
    models, tmp_path, capsys, monkeypatch
):
    from pixelcnn.cli import commands

    _, saved = models["small"]
    folder = _folder(tmp_path)
    (tmp_path / "file").write_bytes(b"a file, not a folder")

    def no_model(*args):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(commands, "load_run_model", no_model)
    out = tmp_path / "file" / "c.pxc"
    assert main(["compress", str(saved), str(folder), "--out", str(out), "--quiet"]) == 2
    one_line(capsys, "not a directory")


# ------------------------------------------------------- probabilities that are not
def test_a_model_with_overflowing_weights_cannot_code(models, tmp_path, capsys):
    """Every weight x3e37 (finite, but the activations overflow): NaN probabilities are
    refused in one line, never quantized into a file."""
    model, _ = models["small"]
    broken = pixelcnn.create("gated", (1, 4, 4), 16, preset="tiny")
    broken.load_state_dict(model.state_dict())
    with torch.no_grad():
        for parameter in broken.parameters():
            parameter.mul_(3e37)
    assert all(torch.isfinite(p).all() for p in broken.parameters())
    some = images(broken, 3)
    with pytest.raises(ValueError, match="not finite at sub-pixel"):
        broken.compress(some)
    saved = broken.save(tmp_path / "broken")
    Image.fromarray(some[0, 0].numpy()).save(tmp_path / "x.png")
    out = tmp_path / "x.pxc"
    argv = ["compress", str(saved), str(tmp_path / "x.png"), "--out", str(out), "--quiet"]
    assert main(argv) == 2
    one_line(capsys, "not finite", "cannot code images")
    assert not out.exists()

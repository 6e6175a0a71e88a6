"""The file primitives every writer and reader goes through (pixelcnn/files.py): nothing is
written through a symbolic link below the directory the user named or at a file's own name,
every written file follows the umask, and only regular files are read (a FIFO is refused at
once instead of blocking)."""

import os
import threading
from pathlib import Path

import pytest

import pixelcnn
from pixelcnn.files import (
    NotRegularFileError,
    NotWritableError,
    atomic_write,
    check_regular,
    open_appending,
    open_regular,
    read_regular,
)
from pixelcnn.train.metrics import append_metrics, read_metrics


def write_text(text):
    return lambda temp: Path(temp).write_text(text)


@pytest.fixture
def elsewhere(tmp_path):
    """A folder outside the output folder holding a user's file."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "x.png").write_text("the user's file")
    return folder


def untouched(folder: Path) -> bool:
    return (
        sorted(p.name for p in folder.iterdir()) == ["x.png"]
        and (folder / "x.png").read_text() == "the user's file"
    )


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_a_linked_folder_on_the_way_is_refused(tmp_path, elsewhere, depth):
    out = tmp_path / "out"
    real = out.joinpath(*[f"d{i}" for i in range(depth)])
    real.mkdir(parents=True)
    os.symlink(elsewhere, real / "sub")
    with pytest.raises(NotWritableError, match="symbolic link"):
        atomic_write(real / "sub" / "x.png", write_text("written"), inside=out)
    assert untouched(elsewhere)


def test_a_link_at_the_name_is_replaced_never_written_through(tmp_path, elsewhere):
    link = tmp_path / "x.png"
    os.symlink(elsewhere / "x.png", link)
    atomic_write(link, write_text("new"))
    assert not link.is_symlink() and link.read_text() == "new"
    assert untouched(elsewhere)


def test_missing_folders_are_made_inside_the_named_directory(tmp_path):
    atomic_write(tmp_path / "a" / "b" / "c.txt", write_text("deep"), inside=tmp_path)
    assert (tmp_path / "a" / "b" / "c.txt").read_text() == "deep"
    assert os.listdir(tmp_path / "a" / "b") == ["c.txt"]  # no temporary left
    with pytest.raises(ValueError, match="not a folder name"):
        atomic_write(tmp_path / ".." / "c.txt", write_text("up"), inside=tmp_path)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(tmp_path, umask):
    before = os.umask(umask)
    try:
        atomic_write(tmp_path / "f.txt", write_text("x"))
        pixelcnn.create("gated", (1, 3, 3), levels=4, preset="tiny").save(tmp_path / "model")
    finally:
        os.umask(before)
    for path in (tmp_path / "f.txt", *(tmp_path / "model").iterdir()):
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask, path


def test_a_failed_write_names_the_file_and_leaves_nothing(tmp_path):
    def fails(temp):
        Path(temp).write_text("half")
        raise RuntimeError("disk\nfull")

    with pytest.raises(OSError, match=r"cannot write .*out\.bin: disk full"):
        atomic_write(tmp_path / "out.bin", fails)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OSError, match=r"cannot write .*missing.*out\.bin: No such file"):
        atomic_write(tmp_path / "missing" / "out.bin", write_text("x"))


def within_a_second(call):
    """``call()``'s exception, failing the test if it has not returned within a second
    (a FIFO opened for reading would block forever)."""
    outcome = {}

    def run():
        try:
            call()
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(1.0)
    assert not thread.is_alive(), "blocked on a FIFO"
    return outcome.get("error")


@pytest.mark.parametrize(
    "read",
    [
        open_regular,
        check_regular,
        lambda path: read_regular(path, 100),
        lambda path: pixelcnn.load(path.parent),
        read_metrics,
    ],
    ids=["open_regular", "check_regular", "read_regular", "load-config", "read_metrics"],
)
def test_a_fifo_is_refused_at_once(tmp_path, read):
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    (tmp_path / "model.safetensors").write_bytes(b"")
    error = within_a_second(lambda: read(fifo))
    assert isinstance(error, NotRegularFileError) and "is a FIFO" in str(error)


def test_a_directory_is_refused_and_a_huge_small_file_too(tmp_path):
    with pytest.raises(NotRegularFileError, match="is a directory"):
        open_regular(tmp_path)
    big = tmp_path / "config.json"
    with open(big, "wb") as f:
        f.truncate(10**12)  # sparse: a terabyte that takes no disk
    with pytest.raises(ValueError, match="more than a model config ever needs"):
        pixelcnn.create("gated", (1, 3, 3), levels=4, preset="tiny").save(tmp_path / "m")
        big.replace(tmp_path / "m" / "config.json")
        pixelcnn.load(tmp_path / "m")


def test_logs_are_never_appended_through_a_link(tmp_path, elsewhere):
    os.symlink(elsewhere / "x.png", tmp_path / "metrics.jsonl")
    with pytest.raises(NotWritableError, match="symbolic link"):
        append_metrics(tmp_path / "metrics.jsonl", {"step": 1})
    assert untouched(elsewhere)
    append_metrics(tmp_path / "log.jsonl", {"step": 1})
    append_metrics(tmp_path / "log.jsonl", {"step": 2})
    assert read_metrics(tmp_path / "log.jsonl") == [{"step": 1}, {"step": 2}]
    with open_appending(tmp_path / "log.jsonl") as log:
        log.write(b'{"torn')
    assert read_metrics(tmp_path / "log.jsonl") == [{"step": 1}, {"step": 2}]

"""The run directory of a training: what in it this library wrote, when it may be (re)used,
and the lock that keeps two trainings out of one directory.

Files are recognised positively, never by name alone: a JSON file by its contents, a PNG by
the tag this library writes into it, a checkpoint by its layout. ``--force`` removes what
is recognised and nothing else; a file at a run's name that is not recognised stops a new
run before anything is written, so it is never replaced or deleted.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors import safe_open

from pixelcnn.files import atomic_write, remove_stale_temporaries
from pixelcnn.model import CONFIG_FILE, FORMAT_NAME, WEIGHTS_FILE
from pixelcnn.pictures import png_kind
from pixelcnn.train.checkpoint import CHECKPOINT_DIR, own_checkpoint_entries
from pixelcnn.train.loop import CURVE_FILE, METRICS_FILE
from pixelcnn.train.metrics import CURVE_KIND
from pixelcnn.train.tensorboard import TENSORBOARD_DIR, own_event_files

try:  # POSIX; elsewhere runs go unlocked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

ARGS_FILE = "train_args.json"
SAMPLES_FILE = "samples.png"
COMPLETIONS_FILE = "completions.png"  # pixelcnn complete's default output
SAMPLES_KIND, COMPLETIONS_KIND = "samples", "completions"  # their PNG tags


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _own_args(path: Path) -> bool:
    args = _json(path)
    return isinstance(args, dict) and {"model", "levels", "data"} <= set(args)


def _own_config(path: Path) -> bool:
    config = _json(path)
    return isinstance(config, dict) and config.get("format") == FORMAT_NAME


def _own_weights(path: Path) -> bool:
    """Weights tagged by this library, or (written before the tag) beside its config."""
    try:
        with safe_open(str(path), "pt") as weights:
            tag = (weights.metadata() or {}).get("format")
    except Exception:  # noqa: BLE001 - any unreadable file is simply not ours
        return False
    return tag == FORMAT_NAME or _own_config(path.parent / CONFIG_FILE)


def _own_metrics(path: Path) -> bool:
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError):
        return False
    # the last line may be torn by a kill, but the first must be a whole record
    records = [_record(line) for line in lines[: max(1, len(lines) - 1)]]
    return bool(lines) and all(isinstance(r, dict) and "step" in r for r in records)


def _record(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _picture(kind: str) -> Callable[[Path], bool]:
    return lambda path: png_kind(path) == kind


# Every file a training (or a later sample/complete) writes at the top of a run, with the
# test that recognises it as this library's.
RUN_FILES: dict[str, Callable[[Path], bool]] = {
    ARGS_FILE: _own_args,
    CONFIG_FILE: _own_config,
    WEIGHTS_FILE: _own_weights,
    METRICS_FILE: _own_metrics,
    CURVE_FILE: _picture(CURVE_KIND),
    SAMPLES_FILE: _picture(SAMPLES_KIND),
    COMPLETIONS_FILE: _picture(COMPLETIONS_KIND),
}
# Folders a training writes into, with what in them is its own.
RUN_FOLDERS: dict[str, Callable[[Path], list[Path]]] = {
    CHECKPOINT_DIR: own_checkpoint_entries,
    TENSORBOARD_DIR: own_event_files,
}


def own_entries(run_dir: Path) -> list[Path]:
    """What this library wrote into ``run_dir``: recognised files and folder entries."""
    run_dir = Path(run_dir)
    found = [
        run_dir / name
        for name, ours in RUN_FILES.items()
        if (run_dir / name).is_file() and not (run_dir / name).is_symlink() and ours(run_dir / name)
    ]
    for name, entries in RUN_FOLDERS.items():
        folder = run_dir / name
        if folder.is_dir() and not folder.is_symlink():
            found += entries(folder)
    return found


def foreign_entries(run_dir: Path) -> list[Path]:
    """Things at a run file's or folder's name that this library did not write: a user's
    ``samples.png``, a device node, a file where a folder belongs. A run never replaces
    them, and ``--force`` never deletes them."""
    run_dir = Path(run_dir)
    foreign = []
    for name, ours in RUN_FILES.items():
        path = run_dir / name
        if os.path.lexists(path) and (path.is_symlink() or not path.is_file() or not ours(path)):
            foreign.append(path)
    for name in RUN_FOLDERS:
        path = run_dir / name
        if os.path.lexists(path) and (path.is_symlink() or not path.is_dir()):
            foreign.append(path)
    return foreign


def holds_run(run_dir: Path) -> bool:
    return bool(own_entries(run_dir))


def check_new_run(run_dir: Path, force: bool) -> None:
    """Raise unless ``run_dir`` may receive a fresh run (empty, new, or ``force``)."""
    run_dir = Path(run_dir)
    if os.path.lexists(run_dir) and not run_dir.is_dir():
        raise ValueError(f"{run_dir} exists and is not a directory")
    foreign = foreign_entries(run_dir)
    if foreign:
        legacy = (
            " (pictures from before pixelcnn tagged its PNGs count as not written by it: "
            "delete an old run's yourself)"
            if foreign[0].suffix == ".png"
            else ""
        )
        raise FileExistsError(
            f"{foreign[0]} exists and was not written by pixelcnn (a run would replace it); "
            f"move it away or choose another --out{legacy}"
        )
    if holds_run(run_dir) and not force:
        raise FileExistsError(
            f"{run_dir} already holds a run; use --resume to continue it or --force to replace it"
        )


def prepare_new_run(run_dir: Path, force: bool) -> None:
    """Make ``run_dir`` ready for a fresh run, removing an old run's files with ``force``.

    Call it only once everything else has been checked (and with the run locked), so a
    mistyped option never costs the user an old run. Removes only :func:`own_entries`,
    and the run's folders only when that leaves them empty.
    """
    check_new_run(run_dir, force)
    run_dir = Path(run_dir)
    for path in own_entries(run_dir):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    remove_stale_temporaries(run_dir, RUN_FILES)
    for name in RUN_FOLDERS:
        if (run_dir / name).is_dir() and not any((run_dir / name).iterdir()):
            (run_dir / name).rmdir()
    run_dir.mkdir(parents=True, exist_ok=True)


def write_run_args(run_dir: Path, args: dict[str, Any]) -> None:
    text = json.dumps(args, indent=2) + "\n"
    atomic_write(Path(run_dir) / ARGS_FILE, lambda temp: Path(temp).write_text(text))


def read_run_args(run_dir: Path) -> dict[str, Any]:
    """The training arguments a run was started with; ValueError when unreadable."""
    path = Path(run_dir) / ARGS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a training run (no {ARGS_FILE})")
    try:
        args = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(args, dict):
        raise ValueError(f"{path} does not hold training arguments")
    return args


class RunLock:
    """An exclusive OS lock on a run directory (``flock`` on the directory itself: no
    file to leave behind, and the kernel releases it when the holder dies, even by
    SIGKILL). A second training of the same directory fails at once with one line."""

    def __init__(self) -> None:
        self.fd: int | None = None

    def acquire(self, run_dir: Path) -> None:
        if self.fd is not None or fcntl is None:
            return
        fd = os.open(run_dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise FileExistsError(
                f"{run_dir} is in use by another pixelcnn train; wait for it to finish "
                "or choose another --out"
            ) from None
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the lock
            self.fd = None

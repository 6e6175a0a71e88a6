"""The run directory of a training: what in it this library wrote, when it may be (re)used,
and the lock that keeps two trainings out of one directory.

Files are recognised positively, never by name alone: a JSON file by its contents, a PNG by
the tag this library writes into it, a checkpoint by its layout. ``--force`` removes what
is recognised and nothing else; a file at a run's name that is not recognised stops a new
run before anything is written, so it is never replaced or deleted. Only regular files are
read (a FIFO would block its reader forever), and a link or a FIFO at a run's name stops a
resumed run too, before anything is read or written through it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors import safe_open

from pixelcnn.files import (
    DirectoryLock,
    atomic_write,
    check_regular,
    read_regular,
    remove_stale_temporaries,
)
from pixelcnn.model import CONFIG_FILE, FORMAT_NAME, WEIGHTS_FILE
from pixelcnn.pictures import png_kind
from pixelcnn.train.checkpoint import CHECKPOINT_DIR, own_checkpoint_entries
from pixelcnn.train.loop import CURVE_FILE, METRICS_FILE
from pixelcnn.train.metrics import CURVE_KIND, metrics_text
from pixelcnn.train.tensorboard import TENSORBOARD_DIR, own_event_files

ARGS_FILE = "train_args.json"
SAMPLES_FILE = "samples.png"
COMPLETIONS_FILE = "completions.png"  # pixelcnn complete's default output
SAMPLES_KIND, COMPLETIONS_KIND = "samples", "completions"  # their PNG tags


# A run's JSON files (arguments, config) are a few hundred bytes; a larger one is not ours.
_JSON_BYTES = 1 << 20


def _json(path: Path) -> Any:
    try:
        return json.loads(read_regular(path, _JSON_BYTES, "run's JSON file"))
    except (OSError, ValueError):  # (UnicodeDecodeError is a ValueError)
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
        with safe_open(str(check_regular(path)), "pt") as weights:
            tag = (weights.metadata() or {}).get("format")
    except Exception:  # noqa: BLE001 - any unreadable file is simply not ours
        return False
    return tag == FORMAT_NAME or _own_config(path.parent / CONFIG_FILE)


def _own_metrics(path: Path) -> bool:
    try:
        lines = [line for line in metrics_text(path, errors="strict").splitlines() if line.strip()]
    except (OSError, ValueError):  # a FIFO, a huge file: not this library's log
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


def check_resumable(run_dir: Path) -> None:
    """Refuse, before anything of a run is read or written, a link or anything but a
    regular file at a run file's name (a folder's: anything but a real folder): a resumed
    run appends to its files and replaces others, and would write through a link or wait
    on a FIFO forever. Files that are not recognised are left to the reader that needs
    them (an untagged old picture is no reason to stop a run)."""
    run_dir = Path(run_dir)
    for name in RUN_FILES:
        path = run_dir / name
        if os.path.islink(path):
            raise ValueError(
                f"{path} is a symbolic link, which a resumed run never reads or writes "
                "through; move it away"
            )
        if os.path.lexists(path):
            check_regular(path)  # "... is a FIFO, not a regular file"
    for name in RUN_FOLDERS:
        path = run_dir / name
        if os.path.islink(path) or (os.path.lexists(path) and not path.is_dir()):
            raise ValueError(
                f"{path} is a symbolic link or not a folder, which a resumed run never "
                "writes through; move it away"
            )


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
    try:  # a FIFO, a device or a huge file: refused in one line, never waited on
        text = read_regular(path, _JSON_BYTES, "run's arguments file")
    except FileNotFoundError:
        raise FileNotFoundError(f"{run_dir} is not a training run (no {ARGS_FILE})") from None
    try:
        args = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(args, dict):
        raise ValueError(f"{path} does not hold training arguments")
    return args


class RunLock(DirectoryLock):
    """An exclusive OS lock on a run directory (:class:`DirectoryLock`, the lock
    ``prepare-data`` takes on its directory too). A second training of the same directory
    fails at once with one line."""

    def __init__(self) -> None:
        super().__init__(
            lambda run_dir: (
                f"{run_dir} is in use by another pixelcnn train; wait for it to "
                "finish or choose another --out"
            )
        )


DATA_FINGERPRINT = "data_fingerprint"  # the key in train_args.json


def check_same_data(stored: Any, current: dict[str, Any], data: str, source: Path) -> None:
    """Refuse to resume on data other than the run's: ``stored`` is the fingerprint the
    run recorded (:func:`pixelcnn.data.datasets.data_fingerprint`; None for a run from
    before fingerprints, which cannot be checked), ``current`` the data's now."""
    if stored is None:
        return
    if not isinstance(stored, dict):
        raise ValueError(f"{source}: {DATA_FINGERPRINT} is {stored!r}, not a fingerprint")
    differ = [
        f"{key} {stored.get(key)!r} then, {current.get(key)!r} now"
        for key in sorted(set(stored) | set(current))
        if stored.get(key) != current.get(key)
    ]
    if differ:
        raise ValueError(
            f"--data {data} is not the data this run was trained on ({'; '.join(differ)}); "
            "resume on the same data, or start a new run (another --out, or --force)"
        )

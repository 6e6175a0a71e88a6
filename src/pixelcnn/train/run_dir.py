"""The run directory of a training: what it holds, and when it may be (re)used."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pixelcnn.model import CONFIG_FILE, WEIGHTS_FILE
from pixelcnn.train.checkpoint import CHECKPOINT_DIR
from pixelcnn.train.loop import CURVE_FILE, METRICS_FILE
from pixelcnn.train.tensorboard import TENSORBOARD_DIR

ARGS_FILE = "train_args.json"
SAMPLES_FILE = "samples.png"
COMPLETIONS_FILE = "completions.png"  # pixelcnn complete's default output
# Every file and folder a training (or a later sample/complete) writes into a run;
# --force removes these and nothing else.
RUN_ENTRIES = (
    ARGS_FILE,
    CONFIG_FILE,
    WEIGHTS_FILE,
    METRICS_FILE,
    CURVE_FILE,
    SAMPLES_FILE,
    COMPLETIONS_FILE,
    CHECKPOINT_DIR,
    TENSORBOARD_DIR,
)


def holds_run(run_dir: Path) -> bool:
    return any((Path(run_dir) / name).exists() for name in RUN_ENTRIES)


def check_new_run(run_dir: Path, force: bool) -> None:
    """Raise unless ``run_dir`` may receive a fresh run (empty, new, or ``force``)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir} exists and is not a directory")
    if holds_run(run_dir) and not force:
        raise FileExistsError(
            f"{run_dir} already holds a run; use --resume to continue it or --force to replace it"
        )


def prepare_new_run(run_dir: Path, force: bool) -> None:
    """Make ``run_dir`` ready for a fresh run, removing an old run's files with ``force``.

    Call it only once everything else has been checked, so a mistyped option never costs
    the user an old run.
    """
    check_new_run(run_dir, force)
    run_dir = Path(run_dir)
    for name in RUN_ENTRIES:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)


def write_run_args(run_dir: Path, args: dict[str, Any]) -> None:
    (Path(run_dir) / ARGS_FILE).write_text(json.dumps(args, indent=2) + "\n")


def read_run_args(run_dir: Path) -> dict[str, Any]:
    """The training arguments a run was started with; ValueError when unreadable."""
    path = Path(run_dir) / ARGS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a training run (no {ARGS_FILE})")
    try:
        args = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(args, dict):
        raise ValueError(f"{path} does not hold training arguments")
    return args

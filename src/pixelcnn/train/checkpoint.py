"""Training checkpoints: weights, weight average, optimizer, schedule, step and RNG states
(CPU, and CUDA when used), in safetensors + JSON. The position in the data order is the step
itself: batches are a pure function of (seed, step), see ``batch_indices``.

A checkpoint is a directory ``checkpoints/step_XXXXXXXX`` holding ``state.safetensors`` and
``state.json``. It is written under a temporary name and renamed into place, so a run killed
mid-write leaves the previous checkpoints intact; only the newest ``keep`` are kept.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pixelcnn.files import fsync_file
from pixelcnn.train.state_io import flatten_state, unflatten_state
from pixelcnn.values import as_int

CHECKPOINT_DIR = "checkpoints"
STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"
_PREFIX = "step_"


@dataclass
class Checkpoint:
    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: torch.Tensor
    model_config: dict[str, Any]
    ema: dict[str, torch.Tensor] | None = None  # the weight average's state, when kept
    cuda_rng: torch.Tensor | None = None  # [devices, n] generator states, when on a GPU
    scaler: dict[str, Any] | None = None  # fp16 loss scaling state
    # where the data order stands: seed, batch size, images, epoch and batch in the epoch
    data_order: dict[str, int] | None = None


def save_checkpoint(run_dir: Path, checkpoint: Checkpoint, keep: int = 3) -> Path:
    """Write ``checkpoint`` atomically under ``run_dir/checkpoints`` and prune old ones.

    A failed write (a full disk) removes its temporary folder and raises OSError naming
    the checkpoint; the earlier checkpoints stay as they were."""
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{_PREFIX}{checkpoint.step:08d}"
    if final.exists() and not _is_laid_out(final):
        raise FileExistsError(f"{final} exists and is not a pixelcnn checkpoint; move it away")
    temp = root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    skeleton, tensors = flatten_state(
        {
            "model": checkpoint.model,
            "optimizer": checkpoint.optimizer,
            "scheduler": checkpoint.scheduler,
            "rng": checkpoint.rng,
            "ema": checkpoint.ema,
            "cuda_rng": checkpoint.cuda_rng,
            "scaler": checkpoint.scaler,
            "data_order": checkpoint.data_order,
        }
    )
    meta = {"step": checkpoint.step, "model_config": checkpoint.model_config, "state": skeleton}
    try:
        temp.mkdir()
        save_file(tensors, str(temp / STATE_TENSORS))
        (temp / STATE_JSON).write_text(json.dumps(meta))
        for name in (STATE_TENSORS, STATE_JSON):
            fsync_file(temp / name)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(temp, final)
    except (OSError, SafetensorError) as error:
        shutil.rmtree(temp, ignore_errors=True)
        raise OSError(f"cannot write checkpoint {final}: {' '.join(str(error).split())}") from None
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


_COMPLETE = re.compile(rf"{_PREFIX}\d{{8}}")
_PARTIAL = re.compile(rf"\.tmp-{_PREFIX}\d{{8}}-\d+")
_FILES = {STATE_TENSORS, STATE_JSON}


def _holds_only_checkpoint_files(folder: Path) -> bool:
    return (
        folder.is_dir() and not folder.is_symlink() and {p.name for p in folder.iterdir()} <= _FILES
    )


def _is_laid_out(folder: Path) -> bool:
    """A complete checkpoint folder by its layout: the name, a state.json, and no file
    but a checkpoint's. Its contents are checked when it is loaded (a damaged newest
    checkpoint is refused there, never skipped for an older one)."""
    return (
        bool(_COMPLETE.fullmatch(folder.name))
        and _holds_only_checkpoint_files(folder)
        and (folder / STATE_JSON).is_file()
    )


def _is_own(folder: Path) -> bool:
    """A complete checkpoint folder this library wrote, by layout and by a state.json of
    its own: what ``--force`` may delete. A user's folder is never taken for one."""
    if not _is_laid_out(folder):
        return False
    try:
        meta = json.loads((folder / STATE_JSON).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(meta, dict) and {"step", "model_config", "state"} <= set(meta)


def _is_partial(folder: Path) -> bool:
    """A folder a killed run left half written: the temporary name and only our files."""
    return bool(_PARTIAL.fullmatch(folder.name)) and _holds_only_checkpoint_files(folder)


def own_checkpoint_entries(root: Path) -> list[Path]:
    """Everything this library wrote in a checkpoints folder: complete and partial ones."""
    return sorted(p for p in Path(root).iterdir() if _is_own(p) or _is_partial(p))


def remove_partial_checkpoints(run_dir: Path) -> list[Path]:
    """Delete checkpoint directories that a killed run left half written (they never got
    their final name); returns what it deleted."""
    root = Path(run_dir) / CHECKPOINT_DIR
    partial = [p for p in root.iterdir() if _is_partial(p)] if root.is_dir() else []
    for path in partial:
        shutil.rmtree(path, ignore_errors=True)
    return partial


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoint directories of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if _is_laid_out(p)), key=lambda p: p.name)


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint directory; anything unreadable, foreign or out of range raises
    ValueError naming it."""
    path = Path(path)
    try:
        meta = json.loads((path / STATE_JSON).read_text())
        tensors = load_file(str(path / STATE_TENSORS))
    except (OSError, UnicodeDecodeError, ValueError, SafetensorError) as error:
        raise ValueError(f"checkpoint {path} is unreadable: {error}") from None
    if not isinstance(meta, dict) or not {"step", "model_config", "state"} <= set(meta):
        raise ValueError(f"checkpoint {path} is not a pixelcnn training checkpoint")
    try:
        state = unflatten_state(meta["state"], tensors)
        checkpoint = Checkpoint(
            step=as_int(meta["step"], "step", 0),
            model=_tensors(state["model"], "model"),
            optimizer=_mapping(state["optimizer"], "optimizer"),
            scheduler=_mapping(state["scheduler"], "scheduler"),
            rng=_tensor(state["rng"], "rng", torch.uint8),
            model_config=_mapping(meta["model_config"], "model_config"),
            ema=_tensors(state["ema"], "ema") if state.get("ema") is not None else None,
            cuda_rng=_optional_tensor(state.get("cuda_rng"), "cuda_rng"),
            scaler=_optional_mapping(state.get("scaler"), "scaler"),
            data_order=_data_order(state.get("data_order")),
        )
        _check_schedule(checkpoint)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise ValueError(f"checkpoint {path} is malformed: {error}") from None
    return checkpoint


def _mapping(value: Any, name: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object, got {type(value).__name__}")
    return value


def _optional_mapping(value: Any, name: str) -> dict | None:
    return None if value is None else _mapping(value, name)


def _tensor(value: Any, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or (dtype is not None and value.dtype != dtype):
        raise ValueError(f"{name} must be a {dtype or 'tensor'}")
    return value


def _optional_tensor(value: Any, name: str) -> torch.Tensor | None:
    return None if value is None else _tensor(value, name, torch.uint8)


def _tensors(value: Any, name: str) -> dict[str, torch.Tensor]:
    """A state dict: names to tensors, the floating ones finite."""
    for key, tensor in _mapping(value, name).items():
        _tensor(tensor, f"{name}/{key}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name}/{key} holds NaN or infinite values")
    return value


def _data_order(value: Any) -> dict[str, int] | None:
    if value is None:
        return None
    return {
        key: as_int(v, f"data_order/{key}", 0) for key, v in _mapping(value, "data_order").items()
    }


def _check_schedule(checkpoint: Checkpoint) -> None:
    """The schedule's position is the step: a checkpoint whose two disagree was edited."""
    position = checkpoint.scheduler.get("last_epoch")
    if position is not None and as_int(position, "scheduler/last_epoch", 0) != checkpoint.step:
        raise ValueError(
            f"its schedule stands at step {position} but its step is {checkpoint.step}"
        )

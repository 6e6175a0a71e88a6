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
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pixelcnn.files import fsync_file
from pixelcnn.train.state_io import flatten_state, unflatten_state

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
    """Write ``checkpoint`` atomically under ``run_dir/checkpoints`` and prune old ones."""
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{_PREFIX}{checkpoint.step:08d}"
    temp = root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
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
    save_file(tensors, str(temp / STATE_TENSORS))
    meta = {"step": checkpoint.step, "model_config": checkpoint.model_config, "state": skeleton}
    (temp / STATE_JSON).write_text(json.dumps(meta))
    for name in (STATE_TENSORS, STATE_JSON):
        fsync_file(temp / name)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(temp, final)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def remove_partial_checkpoints(run_dir: Path) -> list[Path]:
    """Delete checkpoint directories that a killed run left half written (they never got
    their final name); returns what it deleted."""
    root = Path(run_dir) / CHECKPOINT_DIR
    partial = [p for p in root.glob(".tmp-*") if p.is_dir()] if root.is_dir() else []
    for path in partial:
        shutil.rmtree(path, ignore_errors=True)
    return partial


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoint directories of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(_PREFIX) and (p / STATE_JSON).is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint directory; anything unreadable or foreign raises ValueError."""
    path = Path(path)
    try:
        meta = json.loads((path / STATE_JSON).read_text())
        tensors = load_file(str(path / STATE_TENSORS))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, SafetensorError) as error:
        raise ValueError(f"checkpoint {path} is unreadable: {error}") from None
    if not isinstance(meta, dict) or not {"step", "model_config", "state"} <= set(meta):
        raise ValueError(f"checkpoint {path} is not a pixelcnn training checkpoint")
    state = unflatten_state(meta["state"], tensors)
    return Checkpoint(
        step=int(meta["step"]),
        model=state["model"],
        optimizer=state["optimizer"],
        scheduler=state["scheduler"],
        rng=state["rng"],
        model_config=meta["model_config"],
        ema=state.get("ema"),
        cuda_rng=state.get("cuda_rng"),
        scaler=state.get("scaler"),
        data_order=state.get("data_order"),
    )

"""Training checkpoints: weights, weight average, optimizer, schedule, step and RNG states
(CPU, and CUDA when used), in safetensors + JSON. The position in the data order is the step
itself: batches are a pure function of (seed, step), see ``batch_indices``.

A checkpoint is a directory ``checkpoints/step_XXXXXXXX`` holding ``state.safetensors`` and
``state.json``. It is written under a temporary name and renamed into place, so a run killed
mid-write leaves the previous checkpoints intact; only the newest ``keep`` are kept. The
folders are reached by descriptor without following a link (a link planted at
``checkpoints`` or at a checkpoint's name never redirects a write), the files are created
anew at the umask's mode like every other file of a run, and only regular files are read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.optim.swa_utils import AveragedModel

from pixelcnn.files import (
    NotWritableError,
    check_regular,
    fd_path,
    open_directory,
    read_regular,
)
from pixelcnn.model import DensityModel, ModelConfig, check_finite, load_weights
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
    the checkpoint; the earlier checkpoints stay as they were. ``checkpoints`` (made if
    missing) and every folder of it are reached without following a link."""
    root = Path(run_dir) / CHECKPOINT_DIR
    final = root / f"{_PREFIX}{checkpoint.step:08d}"
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
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    try:
        root_fd = open_directory(run_dir, (CHECKPOINT_DIR,), create=True)
    except NotWritableError:
        raise
    except OSError as error:
        raise OSError(f"cannot write checkpoint {final}: {error.strerror or error}") from None
    try:
        if os.path.lexists(final) and not _is_laid_out(final):
            raise FileExistsError(f"{final} exists and is not a pixelcnn checkpoint; move it away")
        temp = f".tmp-{final.name}-{os.getpid()}"
        try:
            _remove(root_fd, root, temp)  # a killed run's with this pid
            _write_folder(root_fd, root / temp, tensors, json.dumps(meta))
            _remove(root_fd, root, final.name)
            os.replace(temp, final.name, src_dir_fd=root_fd, dst_dir_fd=root_fd)
            os.fsync(root_fd)
        except (OSError, SafetensorError) as error:
            _remove(root_fd, root, temp)
            reason = " ".join(str(error).split())
            raise OSError(f"cannot write checkpoint {final}: {reason}") from None
        for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
            _remove(root_fd, root, old.name)
    finally:
        os.close(root_fd)
    return final


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def _remove(root_fd: int, root: Path, name: str) -> None:
    """Delete the folder ``name`` of the checkpoints folder, if there (rmtree refuses a
    link at the name itself and never follows one inside)."""
    shutil.rmtree(fd_path(root_fd, root, name), ignore_errors=True)


def _write_folder(root_fd: int, path: Path, tensors: dict[str, torch.Tensor], meta: str) -> None:
    """A new folder ``path`` (its parent open as ``root_fd``), holding ``tensors``
    (STATE_TENSORS) and ``meta`` (STATE_JSON), both synced. Made with ``mkdir`` (it fails
    if anything is at the name), reached without following a link, its files created anew."""
    name = path.name
    os.mkdir(name, 0o777, dir_fd=root_fd)
    folder = os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=root_fd)
    try:
        created = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
        handle = os.open(STATE_JSON, created, 0o666, dir_fd=folder)  # the umask's mode
        with os.fdopen(handle, "w") as file:
            file.write(meta)
            file.flush()
            os.fsync(file.fileno())
        # safetensors writes a file of its own (mode 0600) and renames it into place; it
        # then gets the mode every other file of a run has: that of STATE_JSON just made
        mode = os.stat(STATE_JSON, dir_fd=folder).st_mode & 0o777
        save_file(tensors, fd_path(folder, path, STATE_TENSORS))
        handle = os.open(STATE_TENSORS, os.O_RDONLY | _NOFOLLOW, dir_fd=folder)
        try:
            os.fchmod(handle, mode)
            os.fsync(handle)
        finally:
            os.close(handle)
        os.fsync(folder)
    finally:
        os.close(folder)


_COMPLETE = re.compile(rf"{_PREFIX}\d{{8}}")
_PARTIAL = re.compile(rf"\.tmp-{_PREFIX}\d{{8}}-\d+")
_FILES = {STATE_TENSORS, STATE_JSON}


def _holds_only_checkpoint_files(folder: Path) -> bool:
    """False also for a folder that vanishes while it is read: a training process prunes
    its oldest checkpoint while another process (a test, a resume check) lists them."""
    if not folder.is_dir() or folder.is_symlink():
        return False
    try:
        return {p.name for p in folder.iterdir()} <= _FILES
    except (FileNotFoundError, NotADirectoryError):
        return False


def _is_laid_out(folder: Path) -> bool:
    """A complete checkpoint folder by its layout: the name, a state.json, and no file
    but a checkpoint's. Its contents are checked when it is loaded (a damaged newest
    checkpoint is refused there, never skipped for an older one: a state.json that is a
    FIFO or a link counts here, and is refused when read)."""
    return (
        bool(_COMPLETE.fullmatch(folder.name))
        and _holds_only_checkpoint_files(folder)
        and os.path.lexists(folder / STATE_JSON)
    )


# A checkpoint's state.json holds counters and random-number states: kilobytes. A larger
# one (a crafted or foreign file of gigabytes) is refused before it is read.
_STATE_JSON_BYTES = 64 << 20


def _read_json(path: Path) -> Any:
    """JSON of a regular file (a FIFO at the name is refused, never waited on; a huge one
    too, never read)."""
    return json.loads(read_regular(path, _STATE_JSON_BYTES, "checkpoint's state").decode())


def _is_own(folder: Path) -> bool:
    """A complete checkpoint folder this library wrote, by layout and by a state.json of
    its own: what ``--force`` may delete. A user's folder is never taken for one."""
    if not _is_laid_out(folder):
        return False
    try:
        meta = _read_json(folder / STATE_JSON)
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
        meta = _read_json(path / STATE_JSON)
        # safetensors opens it by name: a FIFO is refused first, never waited on
        tensors = load_file(str(check_regular(path / STATE_TENSORS)))
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


@dataclass
class TrainingParts:
    """What a checkpoint saves and a resume restores, besides the step."""

    model: DensityModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: AveragedModel | None
    scaler: torch.amp.GradScaler


def save_training_state(
    parts: TrainingParts, step: int, run_dir: Path, keep: int, order: dict
) -> None:
    """Checkpoint ``parts`` at ``step`` (with the data order ``order``), and write the model
    to use (the weight average when there is one) into ``run_dir`` itself."""
    model, ema, scaler = parts.model, parts.ema, parts.scaler
    # the guard restores before any non-finite weights could get here; never save them
    check_finite(model.state_dict(), f"the weights at step {step}")
    if ema is not None:
        check_finite(ema.state_dict(), f"the weight average at step {step}")
    cuda = torch.cuda.is_initialized()
    checkpoint = Checkpoint(
        step=step,
        model=model.state_dict(),
        optimizer=parts.optimizer.state_dict(),
        scheduler=parts.scheduler.state_dict(),
        rng=torch.get_rng_state(),
        cuda_rng=torch.stack(torch.cuda.get_rng_state_all()) if cuda else None,
        model_config=model.config.to_json(),
        ema=ema.state_dict() if ema is not None else None,
        scaler=scaler.state_dict() if scaler.is_enabled() else None,
        data_order=order,
    )
    save_checkpoint(run_dir, checkpoint, keep=keep)
    # The run directory itself always holds the latest loadable model: the average if any.
    (ema.module if ema is not None else model).save(run_dir)


def restore_training_state(
    parts: TrainingParts, run_dir: Path, log: Callable[[str], None], order: dict
) -> int:
    """Load the newest checkpoint into ``parts``; its step. ``order`` is this run's data
    order at step 0: a different one is allowed, but said (the batches will differ)."""
    model, ema = parts.model, parts.ema
    checkpoints = list_checkpoints(run_dir)
    checkpoint = load_checkpoint(checkpoints[-1])
    try:
        stored_config = ModelConfig.from_json(checkpoint.model_config, str(checkpoints[-1]))
    except ValueError:
        stored_config = None
    if stored_config != model.config:
        raise ValueError(f"checkpoint {checkpoints[-1]} belongs to a different model configuration")
    load_weights(model, checkpoint.model, source=str(checkpoints[-1]))
    try:
        parts.optimizer.load_state_dict(checkpoint.optimizer)
        parts.scheduler.load_state_dict(checkpoint.scheduler)
        torch.set_rng_state(checkpoint.rng)
        if checkpoint.cuda_rng is not None and torch.cuda.is_available():
            if len(checkpoint.cuda_rng) != torch.cuda.device_count():
                raise ValueError(
                    f"it holds the random state of {len(checkpoint.cuda_rng)} GPUs, "
                    f"this machine has {torch.cuda.device_count()}"
                )
            torch.cuda.set_rng_state_all(list(checkpoint.cuda_rng))
        if ema is not None:
            if checkpoint.ema is None:
                raise ValueError("it was trained without a weight average (--ema 0)")
            ema.load_state_dict(checkpoint.ema)
        if parts.scaler.is_enabled() and checkpoint.scaler is not None:
            parts.scaler.load_state_dict(checkpoint.scaler)
    except Exception as error:  # noqa: BLE001 - any bad state, one line naming the file
        raise ValueError(
            f"checkpoint {checkpoints[-1]} has unusable training state: {error}"
        ) from None
    log(f"resumed from {checkpoints[-1]} at step {checkpoint.step}")
    stored = {k: v for k, v in (checkpoint.data_order or {}).items() if k in _ORDER_KEYS}
    current = {k: order[k] for k in _ORDER_KEYS}
    if stored and stored != current:
        log(
            f"note: the data order differs from the checkpoint's ({stored} then, {current} "
            "now): the resumed run will not see the batches an uninterrupted one would"
        )
    return checkpoint.step


_ORDER_KEYS = ("seed", "batch_size", "images")  # what decides the order of the batches

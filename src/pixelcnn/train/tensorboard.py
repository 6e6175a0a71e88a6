"""Training metrics and sample grids in TensorBoard, when the ``tensorboard`` package is
installed (``pip install pixelcnn[tensorboard]``); without it training logs as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixelcnn.pictures import image_grid

TENSORBOARD_DIR = "tensorboard"
SAMPLES = 16  # images in the grid drawn at each evaluation


def own_event_files(folder: Path) -> list[Path]:
    """The event files TensorBoard's writer made in ``folder`` (its own naming scheme)."""
    return sorted(p for p in Path(folder).glob("events.out.tfevents.*") if p.is_file())


def open_writer(run_dir: str | Path, first_step: int):
    """A SummaryWriter on ``run_dir/tensorboard``, or None when TensorBoard is missing.

    Events of steps >= ``first_step`` that an earlier (killed) run wrote are dropped, so a
    resumed run's curves do not fold back on themselves."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # TensorBoard is optional
        return None
    return SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD_DIR), purge_step=first_step)


def log_record(writer, record: dict[str, Any]) -> None:
    """The scalars of one metrics record, under TensorBoard-style names."""
    names = {
        "train_bpd": "train/bits_per_dim",
        "test_bpd": "test/bits_per_dim",
        "lr": "train/learning_rate",
        "images_per_s": "train/images_per_s",
        "skipped_steps": "train/skipped_steps",
    }
    for key, name in names.items():
        if key in record:
            writer.add_scalar(name, record[key], record["step"])


def log_samples(writer, model, step: int, seed: int = 0) -> None:
    """A grid of samples from ``model`` (always drawn from the same random stream, so the
    grids of successive evaluations compare); skipped for vector or spatial conditions."""
    spec = model.condition_spec
    if spec.vector_dim or spec.spatial_channels or model.encoding.kind != "image":
        return
    condition = torch.arange(SAMPLES) % spec.num_classes if spec.num_classes else None
    generator = torch.Generator(device=model.device).manual_seed(seed)
    images = model.sample(SAMPLES, condition, generator=generator)
    grid = np.asarray(image_grid(images.numpy(), columns=4, scale=1))
    writer.add_image(
        "samples", grid if grid.ndim == 3 else grid[:, :, None], step, dataformats="HWC"
    )

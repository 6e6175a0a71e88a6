"""Batches of images read through a ``torch.utils.data.DataLoader``: worker processes read
the next batches (from a prepared dataset on disk, see :mod:`pixelcnn.data.stored`) while
the model works on this one.

The caller decides which images form each batch (training's seeded order, evaluation's
consecutive slices); the loader only reads them, so a resumed or distributed run reads
exactly the images it would have read from memory, and each process only its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["DEFAULT_WORKERS", "ImageRows", "consecutive_batches", "read_batches"]

# Reading processes for a dataset on disk: enough to keep a batch ahead of the model on a
# laptop; each holds at most PREFETCH batches.
DEFAULT_WORKERS = 2
PREFETCH = 2


class ImageRows(Dataset):
    """``rows[indices]`` -> (indices int64 [k], uint8 images [k, C, H, W]): one read of a
    whole batch from an array in memory or a :class:`~pixelcnn.data.stored.StoredImages`."""

    def __init__(self, images):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        indices = torch.as_tensor(indices, dtype=torch.int64)
        if isinstance(self.images, torch.Tensor):
            return indices, self.images[indices]
        return indices, torch.from_numpy(np.asarray(self.images[indices.numpy()]))


def read_batches(
    images, batches: Iterable[torch.Tensor], workers: int = DEFAULT_WORKERS, pin: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(indices, uint8 images) for each index tensor of ``batches``, in order; ``workers``
    processes read ahead (0: read in this process). ``pin``: page-locked for a GPU."""
    loader = DataLoader(
        ImageRows(images),
        sampler=batches,
        batch_size=None,  # each "sample" is a whole batch: one read per batch
        num_workers=workers,
        prefetch_factor=PREFETCH if workers else None,
        pin_memory=pin,
    )
    return iter(loader)


def consecutive_batches(count: int, batch_size: int) -> list[torch.Tensor]:
    """Indices 0..count-1 in batches of ``batch_size`` (evaluation's order)."""
    return list(torch.arange(count).split(batch_size))

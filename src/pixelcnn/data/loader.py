"""Batches of images read through a ``torch.utils.data.DataLoader``: worker processes read
the next batches (from a prepared dataset on disk, see :mod:`pixelcnn.data.stored`) while
the model works on this one.

The caller decides which images form each batch (training's seeded order, evaluation's
consecutive slices); the loader only reads them, so a resumed or distributed run reads
exactly the images it would have read from memory, and each process only its own.

A read that fails in a worker (a file cut short, swapped for a FIFO) reaches the caller as
the error the read raised, with its own one-line message: a DataLoader would wrap it in the
worker's whole traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

__all__ = ["DEFAULT_WORKERS", "ImageRows", "consecutive_batches", "read_batches"]

# Reading processes for a dataset on disk: enough to keep a batch ahead of the model on a
# laptop; each holds at most PREFETCH batches.
DEFAULT_WORKERS = 2
PREFETCH = 2


class ReadFailure:
    """What a worker returns instead of a batch when reading it failed: the error's type
    and its one-line message (the DataLoader would re-raise it with the worker's traceback
    pasted into the message)."""

    def __init__(self, error: Exception):
        self.kind = type(error)
        self.message = " ".join(str(error).split()) or type(error).__name__

    def error(self) -> Exception:
        """The error again, as its own type where that takes a message alone."""
        try:
            return self.kind(self.message)
        except Exception:  # noqa: BLE001 - a type that needs other arguments
            return RuntimeError(self.message)


class ImageRows(Dataset):
    """``rows[indices]`` -> (indices int64 [k], uint8 images [k, C, H, W]): one read of a
    whole batch from an array in memory or a :class:`~pixelcnn.data.stored.StoredImages`.
    In a worker process a failed read gives a :class:`ReadFailure` instead."""

    def __init__(self, images):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, indices) -> tuple[torch.Tensor, torch.Tensor] | ReadFailure:
        indices = torch.as_tensor(indices, dtype=torch.int64)
        if isinstance(self.images, torch.Tensor):
            return indices, self.images[indices]
        try:
            return indices, torch.from_numpy(np.asarray(self.images[indices.numpy()]))
        except Exception as error:
            if get_worker_info() is None:  # in this process: raised as it is
                raise
            return ReadFailure(error)


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
    return _raising_failures(iter(loader))


def _raising_failures(batches: Iterator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``batches``, a worker's :class:`ReadFailure` raised as the error it stands for."""
    for batch in batches:
        if isinstance(batch, ReadFailure):
            raise batch.error()
        yield batch


def consecutive_batches(count: int, batch_size: int) -> list[torch.Tensor]:
    """Indices 0..count-1 in batches of ``batch_size`` (evaluation's order)."""
    return list(torch.arange(count).split(batch_size))

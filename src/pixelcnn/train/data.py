"""The training set cut into batches: which images each step trains on (a pure function of
seed and step), each process's share of them, and how they reach the model: from memory
(``ResidentData``) or read from disk a few batches ahead (``StreamedData``)."""

from __future__ import annotations

import functools

import numpy as np
import torch

from pixelcnn.conditions import select
from pixelcnn.data.loader import read_batches
from pixelcnn.train.distributed import World
from pixelcnn.train.options import TrainOptions

__all__ = [
    "ResidentData",
    "StreamedData",
    "TrainingData",
    "batch_indices",
    "data_order",
    "perturbed",
    "training_data",
]


# Images converted to levels at a time when a set is brought into memory.
_CONVERT_CHUNK = 1024


def data_order(step: int, count: int, batch_size: int, seed: int) -> dict[str, int]:
    """The place of batch ``step`` in the data order (epoch, batch in it) and what decides
    that order; :func:`batch_indices` uses it, checkpoints keep it."""
    epoch, batch = divmod(step, max(1, count // batch_size))
    return {"seed": seed, "batch_size": batch_size, "images": count, "epoch": epoch, "batch": batch}


@functools.lru_cache(maxsize=2)
def _epoch_order(seed: int, epoch: int, count: int) -> torch.Tensor:
    """The seeded permutation of an epoch (kept: every step of the epoch slices it)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(count, generator=generator)


def batch_indices(step: int, count: int, batch_size: int, seed: int) -> torch.Tensor:
    """Indices of the images in batch ``step``: a fresh seeded permutation every epoch.

    The order is a pure function of (seed, step), so a resumed run sees exactly the batches
    the uninterrupted run would have seen, with no data-loader state to save.
    """
    where = data_order(step, count, batch_size, seed)
    order = _epoch_order(seed, where["epoch"], count)
    return order[where["batch"] * batch_size : (where["batch"] + 1) * batch_size].clone()


def perturbed(
    levels: torch.Tensor,
    rate: float,
    symbols: int,
    seed: int,
    step: int,
    rows: torch.Tensor | None = None,
    total: int | None = None,
):
    """``levels`` with each sub-pixel replaced, with probability ``rate``, by a level drawn
    uniformly from 0..symbols-1 (it may draw the same one). The draws are a pure function
    of (seed, step), like the batches, so a resumed run perturbs alike. ``rows``: where
    ``levels`` sit in a global batch of ``total`` images (a process's shard), so that the
    processes of a distributed run take their parts of one draw, as a single process would."""
    if not rate:
        return levels
    total = len(levels) if total is None else total
    rows = torch.arange(len(levels)) if rows is None else rows
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step + 7_919)
    shape = (total, *levels.shape[1:])
    chosen = (torch.rand(shape, generator=generator) < rate)[rows]
    drawn = torch.randint(0, symbols, shape, generator=generator)[rows]
    return torch.where(chosen.to(levels.device), drawn.to(levels.device), levels)


def training_data(model, images, condition, options: TrainOptions, world: World):
    """:class:`ResidentData` for images in memory (a tensor or array), :class:`StreamedData`
    for images on disk (a prepared dataset's ``StoredImages``)."""
    if isinstance(images, (torch.Tensor, np.ndarray)):
        return ResidentData(model, images, condition, options, world)
    return StreamedData(model, images, condition, options, world)


class _Batches:
    """What both kinds share: the order, this process's share of each global batch, the
    conditions (one per image, in memory) and the perturbation."""

    def __init__(self, model, count: int, condition, options: TrainOptions, world: World):
        self.count = count
        self.conditions = model.prepare_condition(condition, count)
        self.batch_size = min(options.batch_size, count)
        world.check_batch(self.batch_size)
        self.seed, self.world, self.device = options.seed, world, model.device
        self.perturb, self.symbols = options.perturb, model.levels

    def order(self, step: int) -> dict[str, int]:
        return data_order(step, self.count, self.batch_size, self.seed)

    def shard(self, step: int) -> torch.Tensor:
        """The indices of this process's part of batch ``step``."""
        return self.world.shard(batch_indices(step, self.count, self.batch_size, self.seed))

    def _finish(self, step: int, indices: torch.Tensor, levels: torch.Tensor):
        """The batch as the trainer takes it: levels perturbed, with its condition."""
        rows = self.world.shard(torch.arange(self.batch_size))  # this process's part
        perturb = (self.perturb, self.symbols, self.seed, step, rows, self.batch_size)
        return perturbed(levels, *perturb), select(self.conditions, indices)


class ResidentData(_Batches):
    """The whole training set as narrow levels on the model's device."""

    def __init__(self, model, images, condition, options: TrainOptions, world: World):
        super().__init__(model, len(images), condition, options, world)
        # Levels are stored narrow (uint8 for L <= 256) and widened per batch to save memory;
        # converted a chunk at a time, so the int64 levels of the whole set never exist at
        # once (they took 8x the images, and the conversion's temporaries more).
        storage = torch.uint8 if model.levels <= 256 else torch.int32
        first = model.images_to_levels(images[:1])
        self.levels = torch.empty(
            (len(images), *first.shape[1:]), dtype=storage, device=first.device
        )
        for start in range(0, len(images), _CONVERT_CHUNK):
            part = images[start : start + _CONVERT_CHUNK]
            self.levels[start : start + len(part)] = model.images_to_levels(part)

    def _take(self, indices: torch.Tensor) -> torch.Tensor:
        return self.levels[indices].to(device=self.device, dtype=torch.int64)

    def batch(self, step: int):
        """This process's levels [b, C, H, W] (int64) and condition of batch ``step``;
        with ``perturb``, each sub-pixel replaced by a uniform level at that rate."""
        indices = self.shard(step)
        return self._finish(step, indices, self._take(indices))

    def first(self, count: int):
        """The first ``count`` images of the data order (for data-dependent init)."""
        indices = batch_indices(0, self.count, count, self.seed)
        return self._take(indices), select(self.conditions, indices)

    def close(self) -> None:
        pass


class StreamedData(_Batches):
    """A training set on disk, read through a DataLoader whose workers fetch this process's
    part of the next batches while the model trains on the current one. Memory: the
    conditions plus ``workers x PREFETCH`` batches."""

    def __init__(self, model, images, condition, options: TrainOptions, world: World):
        super().__init__(model, len(images), condition, options, world)
        self.images, self.model = images, model
        self.workers = options.workers
        self._stream, self._next_step = None, None

    def _levels(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.images_to_levels(images)

    def batch(self, step: int):
        """As :meth:`ResidentData.batch`, read from disk: steps are taken in order, so
        the loader reads ahead from ``step`` on (a jump starts it again)."""
        if self._stream is None or step != self._next_step:
            self.close()
            steps = _steps_from(step)
            batches = (self.shard(s) for s in steps)
            pin = self.device.type == "cuda"
            self._stream = read_batches(self.images, batches, self.workers, pin)
        indices, images = next(self._stream)
        self._next_step = step + 1
        return self._finish(step, indices, self._levels(images))

    def first(self, count: int):
        indices = batch_indices(0, self.count, count, self.seed)
        images = torch.from_numpy(np.asarray(self.images[indices.numpy()]))
        return self._levels(images), select(self.conditions, indices)

    def close(self) -> None:
        """Stop the reading workers (a new stream, or the end of training)."""
        self._stream = None


# what the loop holds: either kind takes batches alike
TrainingData = ResidentData | StreamedData


def _steps_from(step: int):
    while True:
        yield step
        step += 1

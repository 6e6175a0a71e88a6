"""Exact evaluation: nats per image and bits per dimension over a set of images."""

from __future__ import annotations

import math
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pixelcnn.conditions import select
from pixelcnn.data.loader import DEFAULT_WORKERS, consecutive_batches, read_batches
from pixelcnn.units import bits_per_dim

# The network's arithmetic while scoring: float32, or bfloat16 autocast (the likelihood
# stays float32) where it agrees with float32 to BF16_TOLERANCE
SCORING_PRECISIONS = ("fp32", "bf16")
# bits/dim by which a bf16 score of an image may differ from its fp32 score
BF16_TOLERANCE = 1e-3


class PrecisionWarning(UserWarning):
    """bf16 scoring was asked for but would have moved scores too far: scored in fp32."""


@dataclass
class Evaluation:
    """Mean scores over ``count`` images; ``nats`` holds -log p(x) of each image.
    ``precision``: the arithmetic the scores came from; ``precision_gap``: with bf16 asked
    for, the largest per-image |bf16 - fp32| bits/dim on the first batch (None otherwise)."""

    bits_per_dim: float
    nats_per_image: float
    count: int
    nats: np.ndarray
    precision: str = "fp32"
    precision_gap: float | None = None

    def as_dict(self) -> dict[str, float | int | str | None]:
        scores = {
            "bits_per_dim": self.bits_per_dim,
            "nats_per_image": self.nats_per_image,
            "images": self.count,
            "precision": self.precision,
        }
        if self.precision_gap is not None:
            scores["precision_gap_bits_per_dim"] = self.precision_gap
        return scores


def _batches(images: Any, batch_size: int, workers: int):
    """(slice, batch) pairs covering ``images`` in order: sliced from memory, or read
    ahead by a DataLoader from a dataset on disk."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if isinstance(images, torch.Tensor):
        for start in range(0, len(images), batch_size):
            yield slice(start, start + batch_size), images[start : start + batch_size]
        return
    parts = consecutive_batches(len(images), batch_size)
    for indices, batch in read_batches(images, parts, workers):
        yield slice(int(indices[0]), int(indices[-1]) + 1), batch


def _autocast(model, precision: str):
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(model.device.type, dtype=torch.bfloat16)


@torch.no_grad()
def evaluate(
    model,
    images: Any,
    batch_size: int = 256,
    progress: bool = False,
    condition: Any = None,
    precision: str = "fp32",
    workers: int = DEFAULT_WORKERS,
) -> Evaluation:
    """Score images [N, C, H, W] (valid levels of ``model``; token grids [N, H, W]) exactly,
    in eval mode; ``condition`` holds one entry per image for conditional models.
    ``images`` is a tensor or array, or a prepared dataset's ``StoredImages`` (snapped to
    the model's levels), which ``workers`` processes read a few batches ahead.

    ``precision`` "bf16" runs the network under bfloat16 autocast. The first batch is
    scored both ways: if any of its images moves by more than :data:`BF16_TOLERANCE`
    bits/dim, a :class:`PrecisionWarning` says so and everything is scored in fp32.
    """
    if precision not in SCORING_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(SCORING_PRECISIONS)}")
    if len(images) == 0:
        raise ValueError("no images to evaluate")
    dims = math.prod(model.image_shape)
    gap = None
    # eval mode, and weight-normalized layers computing their weights once for all batches
    with model.inference():
        batches = _batches(images, batch_size, workers)
        total = math.ceil(len(images) / batch_size)
        nats = []
        for part, batch in tqdm(
            batches, desc="evaluating", total=total, disable=not progress, leave=False
        ):
            cond = select(condition, part)
            with _autocast(model, precision):
                log_p = model.log_prob(batch, cond).double()
            if precision != "fp32" and gap is None:  # the first batch decides
                exact = model.log_prob(batch, cond).double()
                gap = float((exact - log_p).abs().max()) / (dims * math.log(2))
                if gap > BF16_TOLERANCE:
                    warnings.warn(
                        f"{precision} moves scores by up to {gap:.4f} bits/dim (more than "
                        f"{BF16_TOLERANCE}) on this model: scoring in fp32",
                        PrecisionWarning,
                        stacklevel=2,
                    )
                    precision, log_p = "fp32", exact
            nats.append(-log_p.cpu())
    per_image = torch.cat(nats).numpy()
    broken = int((~np.isfinite(per_image)).sum())
    if broken:  # never a NaN score reported as a result
        raise FloatingPointError(
            f"the model gives non-finite log-likelihoods for {broken} of {len(per_image)} "
            "images; its weights or the condition are broken"
        )
    mean_nats = float(per_image.mean())
    return Evaluation(
        bits_per_dim=bits_per_dim(mean_nats, dims),
        nats_per_image=mean_nats,
        count=len(per_image),
        nats=per_image,
        precision=precision,
        precision_gap=gap,
    )

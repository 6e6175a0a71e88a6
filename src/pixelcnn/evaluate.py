"""Exact evaluation: nats per image and bits per dimension over a set of images."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pixelcnn.conditions import select
from pixelcnn.units import bits_per_dim


@dataclass
class Evaluation:
    """Mean scores over ``count`` images; ``nats`` holds -log p(x) of each image."""

    bits_per_dim: float
    nats_per_image: float
    count: int
    nats: np.ndarray

    def as_dict(self) -> dict[str, float | int]:
        return {
            "bits_per_dim": self.bits_per_dim,
            "nats_per_image": self.nats_per_image,
            "images": self.count,
        }


@torch.no_grad()
def evaluate(
    model,
    images: torch.Tensor | np.ndarray,
    batch_size: int = 256,
    progress: bool = False,
    condition: Any = None,
) -> Evaluation:
    """Score images [N, C, H, W] (valid levels of ``model``; token grids [N, H, W]) exactly,
    in eval mode; ``condition`` holds one entry per image for conditional models."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if len(images) == 0:
        raise ValueError("no images to evaluate")
    was_training = model.training
    model.eval()
    try:
        batches = range(0, len(images), batch_size)
        nats = []
        for start in tqdm(batches, desc="evaluating", disable=not progress, leave=False):
            part = slice(start, start + batch_size)
            log_p = model.log_prob(images[part], select(condition, part))
            nats.append(-log_p.double().cpu())
    finally:
        model.train(was_training)
    per_image = torch.cat(nats).numpy()
    broken = int((~np.isfinite(per_image)).sum())
    if broken:  # never a NaN score reported as a result
        raise FloatingPointError(
            f"the model gives non-finite log-likelihoods for {broken} of {len(per_image)} "
            "images; its weights or the condition are broken"
        )
    dims = math.prod(model.image_shape)
    mean_nats = float(per_image.mean())
    return Evaluation(
        bits_per_dim=bits_per_dim(mean_nats, dims),
        nats_per_image=mean_nats,
        count=len(per_image),
        nats=per_image,
    )

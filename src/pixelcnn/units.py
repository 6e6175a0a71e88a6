"""The one definition of the units a density is reported in."""

from __future__ import annotations

import math

import torch


def bits_per_dim(nats: torch.Tensor | float, dims: int) -> torch.Tensor | float:
    """-log p(x) in nats (per image, any shape) -> bits per sub-pixel: nats / (dims ln 2),
    ``dims`` = C * H * W. log2(L) is the uniform model's over L levels."""
    return nats / (dims * math.log(2))

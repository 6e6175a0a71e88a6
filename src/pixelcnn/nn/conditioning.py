"""Conditioning: class labels, vectors and spatial maps projected into a layer's gates.

As in the Conditional PixelCNN, every kind of condition is mapped to a bias that is added
inside both gates of every block: a class through an embedding, a vector h through a linear
map, a spatial map s (already resized to the image grid) through a 1x1 convolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

CONDITION_KINDS = ("class", "vector", "spatial")


@dataclass(frozen=True)
class ConditionSpec:
    """What a network is conditioned on; 0 means "not this kind"."""

    num_classes: int = 0
    vector_dim: int = 0
    spatial_channels: int = 0

    def __post_init__(self) -> None:
        for name in ("num_classes", "vector_dim", "spatial_channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")

    @property
    def kinds(self) -> tuple[str, ...]:
        sizes = (self.num_classes, self.vector_dim, self.spatial_channels)
        return tuple(kind for kind, size in zip(CONDITION_KINDS, sizes, strict=True) if size)

    def __bool__(self) -> bool:
        return bool(self.kinds)


class ConditionProjection(nn.Module):
    """condition dict -> ``parts`` biases (by default 2: vertical, horizontal), each
    [B, channels, 1 | h, 1 | W].

    ``condition`` holds "class" int64 [B], "vector" float [B, d] and/or "spatial" float
    [B, s, H, W] at the image's full size; ``height`` crops the spatial map to the rows the
    network is run on (the sampler may run it on the top rows only).
    """

    def __init__(self, spec: ConditionSpec, channels: int, parts: int = 2):
        super().__init__()
        self.parts = parts
        both = parts * channels  # one bias per part (the gated stacks: vertical, horizontal)
        self.by_class = nn.Embedding(spec.num_classes, both) if spec.num_classes else None
        self.by_vector = nn.Linear(spec.vector_dim, both) if spec.vector_dim else None
        self.by_map = nn.Conv2d(spec.spatial_channels, both, 1) if spec.spatial_channels else None

    def forward(
        self, condition: dict[str, torch.Tensor], height: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        bias = 0
        if self.by_class is not None:
            bias = bias + self.by_class(condition["class"])[:, :, None, None]
        if self.by_vector is not None:
            bias = bias + self.by_vector(condition["vector"])[:, :, None, None]
        if self.by_map is not None:
            bias = bias + self.by_map(condition["spatial"][:, :, :height])
        return bias.chunk(self.parts, dim=1)

"""Conditioning: class labels, vectors and spatial maps projected into a layer's gates.

As in the Conditional PixelCNN, every kind of condition is mapped to a bias that is added
inside both gates of every block: a class through an embedding, a vector h through a linear
map, a spatial map s (already resized to the image grid) through a 1x1 convolution.

This module owns the network's form of a condition (a dict of tensors, see
``pixelcnn.conditions`` for the user's form): what a network accepts (``ConditionSpec``),
its projection, its part at one row or pixel (``condition_at``, for stepping) and a
neutral one (``neutral_condition``, for measuring receptive fields).
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


def condition_at(
    condition: dict[str, torch.Tensor] | None, row: int, col: int | None = None
) -> dict[str, torch.Tensor] | None:
    """The part of a prepared condition at one row (or pixel): spatial maps are cut to
    [B, s, 1, W] (or [B, s, 1, 1]); class and vector conditions hold for every position."""
    if condition is None or "spatial" not in condition:
        return condition
    spatial = condition["spatial"][:, :, row : row + 1]
    if col is not None:
        spatial = spatial[:, :, :, col : col + 1]
    return {**condition, "spatial": spatial}


def neutral_condition(
    spec: ConditionSpec, batch: int, grid: tuple[int, int]
) -> dict[str, torch.Tensor]:
    """A prepared condition of zeros for every kind in ``spec``.

    class -> int64 [batch] (label 0), vector -> [batch, d], spatial -> [batch, s, H, W].
    Conditions add a per-image bias; they never connect pixels, so any value will do.
    """
    condition = {}
    if spec.num_classes:
        condition["class"] = torch.zeros(batch, dtype=torch.int64)
    if spec.vector_dim:
        condition["vector"] = torch.zeros(batch, spec.vector_dim, dtype=torch.float64)
    if spec.spatial_channels:
        condition["spatial"] = torch.zeros(batch, spec.spatial_channels, *grid, dtype=torch.float64)
    return condition

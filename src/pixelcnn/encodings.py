"""What the user hands in <-> integer levels <-> network input.

Two kinds of data share one model class:

- ``ImageEncoding``: uint8 images [B, C, H, W] with L colour levels; the network sees the
  dequantized level in [-1, 1] (the exact conversions live in :mod:`pixelcnn.quantize`).
- ``TokenEncoding``: integer grids [B, H, W] of K symbols (e.g. the codes of a VQ-VAE); the
  network sees a learned embedding of each symbol.

Both turn validated input into int64 levels [B, C, H, W] and back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from pixelcnn.quantize import Quantizer

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def as_tensor(data: Any, what: str) -> torch.Tensor:
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if not isinstance(data, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor or numpy array, got {type(data).__name__}")
    return data


class ImageEncoding(nn.Module):
    """uint8 images [B, C, H, W] whose values are the L representable levels."""

    kind = "image"

    def __init__(self, image_shape: tuple[int, int, int], levels: int):
        super().__init__()
        self.image_shape = image_shape
        self.quantizer = Quantizer(levels)
        self.levels = levels
        self.input_channels = image_shape[0]

    def check(self, images: Any, check_values: bool = True) -> torch.Tensor:
        """Validated uint8 [B, C, H, W]; ValueError saying what was expected otherwise."""
        images = as_tensor(images, "images")
        if images.dtype != torch.uint8:
            raise ValueError(f"images must have dtype uint8 (values 0..255), got {images.dtype}")
        if images.dim() != 4:
            raise ValueError(
                f"images must have 4 dimensions [B, C, H, W], got shape {tuple(images.shape)}"
            )
        if tuple(images.shape[1:]) != tuple(self.image_shape):
            raise ValueError(
                f"images must have shape [B, {', '.join(map(str, self.image_shape))}], "
                f"got {list(images.shape)}"
            )
        if check_values and not self.quantizer.is_valid(images):
            raise ValueError(
                f"images hold values that are not among the {self.levels} levels of this model "
                f"(e.g. {self.quantizer.valid_values()[:4].tolist()}...); "
                "snap them with model.quantize(images)"
            )
        return images

    def to_levels(self, images: Any, device: torch.device) -> torch.Tensor:
        return self.quantizer.to_levels(self.check(images).to(device))

    def from_levels(self, levels: torch.Tensor) -> torch.Tensor:
        """int64 levels [B, C, H, W] -> uint8 images [B, C, H, W]."""
        return self.quantizer.to_values(levels)

    def encode(self, levels: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """int64 levels [B, C, H, W] -> network input [B, C, H, W] in [-1, 1]."""
        return self.quantizer.to_input(levels, dtype=dtype)

    def per_subpixel(self, values: torch.Tensor) -> torch.Tensor:
        """Per-sub-pixel results come back as [B, C, H, W]."""
        return values


class TokenEncoding(nn.Module):
    """Integer grids [B, H, W] with values in [0, K), fed to the network by an embedding."""

    kind = "tokens"

    def __init__(self, grid_shape: tuple[int, int], symbols: int, embedding_dim: int):
        super().__init__()
        self.image_shape = (1, *grid_shape)
        self.levels = symbols
        self.input_channels = embedding_dim
        self.embedding = nn.Embedding(symbols, embedding_dim)

    def check(self, tokens: Any) -> torch.Tensor:
        tokens = as_tensor(tokens, "tokens")
        if tokens.dtype not in _INTEGER_DTYPES:
            raise ValueError(f"tokens must have an integer dtype, got {tokens.dtype}")
        grid = tuple(self.image_shape[1:])
        if tokens.dim() != 3 or tuple(tokens.shape[1:]) != grid:
            raise ValueError(
                f"tokens must have shape [B, {grid[0]}, {grid[1]}], got {list(tokens.shape)}"
            )
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.levels):
            raise ValueError(
                f"tokens must lie in 0..{self.levels - 1}, "
                f"got values {tokens.min().item()}..{tokens.max().item()}"
            )
        return tokens

    def to_levels(self, tokens: Any, device: torch.device) -> torch.Tensor:
        return self.check(tokens).to(device=device, dtype=torch.int64).unsqueeze(1)

    def from_levels(self, levels: torch.Tensor) -> torch.Tensor:
        """int64 levels [B, 1, H, W] -> tokens int64 [B, H, W]."""
        return levels[:, 0]

    def encode(self, levels: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """int64 levels [B, 1, H, W] -> embeddings [B, E, H, W]."""
        return self.embedding(levels[:, 0]).permute(0, 3, 1, 2).to(dtype)

    def per_subpixel(self, values: torch.Tensor) -> torch.Tensor:
        """Per-position results come back as [B, H, W], like the tokens."""
        return values[:, 0]

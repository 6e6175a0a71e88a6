"""Completion's rule: what is known must be a raster prefix, since the model conditions on
the past only. Turns a user's mask into the raster index where drawing starts."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def known_prefix(
    known: Any, shape: torch.Size, tokens: bool = False, whole_pixels: str | None = None
) -> tuple[torch.Tensor, int]:
    """The known sub-pixels of images ``shape`` [B, C, H, W] as one bool mask [C, H, W],
    and how many they are (the raster index where drawing starts).

    ``known`` is shaped like the images, like one image, or [H, W] (whole pixels; token
    grids: [(B,) H, W]). Any mask that is not a raster prefix is refused, naming the first
    sub-pixel that breaks the order; ``whole_pixels`` names a likelihood that draws whole
    pixels, whose known part must then end at a pixel boundary.
    """
    batch, channels, height, width = shape
    mask = torch.as_tensor(np.asarray(known) if not torch.is_tensor(known) else known)
    if mask.dtype != torch.bool:
        raise ValueError(f"known must be a boolean mask, got dtype {mask.dtype}")
    if tokens and mask.dim() in (2, 3):  # token grids: [(B,) H, W]
        mask = mask.unsqueeze(-3)
    elif mask.dim() == 2 and tuple(mask.shape) == (height, width):  # whole pixels
        mask = mask.unsqueeze(0).expand(channels, height, width)
    if mask.dim() == 4 and mask.shape[1:] == (channels, height, width):
        if len(mask) not in (1, batch) or not bool((mask == mask[:1]).all()):
            raise ValueError("known must be the same mask for every image")
        mask = mask[0]
    if tuple(mask.shape) != (channels, height, width):
        raise ValueError(
            f"known has shape {tuple(mask.shape)}; it must match the images "
            f"{(channels, height, width)} or be [H, W]"
        )
    order = mask.permute(1, 2, 0).reshape(-1).cpu()  # raster position, then channel
    unknown = (~order).nonzero()
    start = int(unknown[0, 0]) if len(unknown) else len(order)  # the first unknown one
    if bool(order[start:].any()):
        index = int(start + order[start:].nonzero()[0, 0])
        (row, col), channel = divmod(index // channels, width), index % channels
        raise ValueError(
            "known must be a raster prefix: the model conditions on the past only, and "
            f"the known sub-pixel at row {row}, column {col}, channel {channel} comes "
            "after an unknown one"
        )
    if whole_pixels and start % channels:
        raise ValueError(
            f"the {whole_pixels} likelihood draws whole pixels: the known part "
            "must end at a pixel boundary"
        )
    return mask, start

"""Colour quantization: uint8 pixel value <-> integer level <-> network input.

This module is the one place where colour conversions live. With L levels, level k stands
for the pixel value round(255 * k / (L - 1)), and a uint8 value v goes to the level whose
value is nearest (ties upwards). Every conversion uses integer arithmetic, so
``to_levels(to_values(k)) == k`` holds exactly for every k and every L in 2..256: the label
computed from data and the value fed back into the network while sampling always land in
the same bin. With L = 2 this is binarization at 128; with L = 256 every map is the identity.

The network never sees raw pixels: it is fed ``to_input(levels)``, a float in [-1, 1], in
training and in sampling alike, so both see identical inputs.
"""

from __future__ import annotations

import torch

from pixelcnn.values import as_int

MIN_LEVELS = 2
MAX_LEVELS = 256


def check_levels(levels: int) -> int:
    """``levels`` as an int if it is one in 2..256 (numpy ints too), else raise ValueError."""
    return as_int(levels, "levels", MIN_LEVELS, MAX_LEVELS)


class Quantizer:
    """Exact conversions for images with ``levels`` colour levels per sub-pixel."""

    def __init__(self, levels: int):
        self.levels = check_levels(levels)
        self._steps = self.levels - 1  # the level value k spans 255 * k / steps

    def __repr__(self) -> str:
        return f"Quantizer(levels={self.levels})"

    def to_levels(self, values: torch.Tensor) -> torch.Tensor:
        """uint8 pixel values (any shape) -> int64 levels in [0, L), nearest level, ties up."""
        v = values.to(torch.int64)
        # round(v * steps / 255) == floor((2 * v * steps + 255) / 510)
        return torch.div(2 * v * self._steps + 255, 510, rounding_mode="floor")

    def to_values(self, levels: torch.Tensor) -> torch.Tensor:
        """int levels in [0, L) (any shape) -> uint8 pixel values round(255 k / (L - 1))."""
        k = levels.to(torch.int64)
        values = torch.div(2 * 255 * k + self._steps, 2 * self._steps, rounding_mode="floor")
        return values.to(torch.uint8)

    def to_input(self, levels: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """int levels in [0, L) -> network input in [-1, 1] (level 0 -> -1, level L-1 -> 1)."""
        return levels.to(dtype) * (2.0 / self._steps) - 1.0

    def snap(self, values: torch.Tensor) -> torch.Tensor:
        """Any uint8 image -> the nearest image this quantizer can represent (uint8)."""
        return self.to_values(self.to_levels(values))

    def valid_values(self) -> torch.Tensor:
        """The L uint8 values that images of this quantizer may contain, ascending."""
        return self.to_values(torch.arange(self.levels))

    def is_valid(self, values: torch.Tensor) -> bool:
        """True when every entry of the uint8 tensor is one of the L representable values."""
        return bool(torch.equal(self.snap(values), values.to(torch.uint8)))

"""Shifted convolutions of PixelCNN++ (Salimans et al. 2017): causal by padding, not masks.

A down-shifted convolution pads only above and to both sides, so output row i sees input
rows up to i; a down-right-shifted one pads above and to the left, so output (i, j) sees
rows up to i and, in those rows, columns up to j. The streams that use them are shifted one
row down (or one column right) once at the input, after which every later layer stays
causal. Strided versions downsample; transposed versions upsample and crop back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from pixelcnn.nn.stepping import (
    ConvStepper,
    Cursor,
    PointwiseStepper,
    Steppable,
    TransposedConvStepper,
)


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """Rows one down, a zero row on top: [B, C, H, W] -> [B, C, H, W]."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def right_shift(x: torch.Tensor) -> torch.Tensor:
    """Columns one right, a zero column on the left: [B, C, H, W] -> [B, C, H, W]."""
    return F.pad(x, (1, 0, 0, 0))[:, :, :, :-1]


def _padding(kernel: tuple[int, int], right: bool) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding of a down(-right)-shifted kernel."""
    height, width = kernel
    if right:
        return (width - 1, 0, height - 1, 0)
    return ((width - 1) // 2, (width - 1) // 2, height - 1, 0)


class ShiftedConv2d(Steppable):
    """Down-shifted (``right=False``, odd kernel width) or down-right-shifted convolution,
    weight-normalized: [B, in, H, W] -> [B, out, H / stride, W / stride]."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int],
        right: bool = False,
        stride: int = 1,
    ):
        super().__init__()
        if not right and kernel[1] % 2 == 0:
            raise ValueError("a down-shifted kernel needs an odd width")
        self.pad = _padding(kernel, right)
        self.conv = weight_norm(nn.Conv2d(in_channels, out_channels, kernel, stride=stride))

    def stepper(self, batch: int, width: int, cursor: Cursor, scale: int, pixelwise: bool):
        left, right, top, _ = self.pad
        conv = self.conv
        return ConvStepper(
            conv.weight,
            conv.bias,
            (left, right, top),
            conv.stride[0],
            batch,
            width,
            cursor,
            scale,
            pixelwise,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._stepper is not None:
            return self._stepper(x)
        return self.conv(F.pad(x, self.pad))


class ShiftedConvTranspose2d(Steppable):
    """Stride-2 transposed convolution cropped to stay down(-right)-shifted:
    [B, in, H, W] -> [B, out, 2H, 2W]."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int], right: bool):
        super().__init__()
        self.kernel, self.right = kernel, right
        # dim=1: a transposed weight is [in, out, kh, kw]; the scale is per output channel
        self.deconv = weight_norm(
            nn.ConvTranspose2d(in_channels, out_channels, kernel, stride=2, output_padding=1),
            dim=1,
        )

    def _left(self) -> int:
        return 0 if self.right else (self.kernel[1] - 1) // 2

    def stepper(self, batch: int, width: int, cursor: Cursor, scale: int, pixelwise: bool):
        """``width`` and ``scale`` are those of the output (the upsampled side)."""
        deconv = self.deconv
        return TransposedConvStepper(
            deconv.weight, deconv.bias, self._left(), batch, width // 2, cursor, scale, pixelwise
        )

    def forward(self, x: torch.Tensor | None) -> torch.Tensor:
        if self._stepper is not None:
            return self._stepper(x)
        height, width = x.shape[2] * 2, x.shape[3] * 2
        y = self.deconv(x)  # [B, out, 2H + kh - 1, 2W + kw - 1]: keep the causal corner
        left = self._left()
        return y[:, :, :height, left : left + width]


class NetworkInNetwork(Steppable):
    """A weight-normalized 1x1 convolution: [B, in, H, W] -> [B, out, H, W]."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = weight_norm(nn.Conv2d(in_channels, out_channels, 1))

    def stepper(self, batch: int, width: int, cursor: Cursor, scale: int, pixelwise: bool):
        return PointwiseStepper(self.conv.weight, self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._stepper is not None:
            return self._stepper(x)
        return self.conv(x)


def concat_elu(x: torch.Tensor) -> torch.Tensor:
    """ELU of x and of -x side by side: [B, C, H, W] -> [B, 2C, H, W]."""
    return F.elu(torch.cat([x, -x], dim=1))

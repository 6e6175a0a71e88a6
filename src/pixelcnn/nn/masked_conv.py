"""Masked convolutions for autoregressive image models (PixelCNN, van den Oord et al. 2016).

Sub-pixels are ordered by raster position, then R -> G -> B inside a pixel. A masked
convolution sees every pixel above the current one, every pixel to its left in the current
row, and, at the current pixel itself, only the channel groups that come earlier (mask A) or
earlier-or-equal (mask B). Feature channels are split into ``groups`` contiguous groups (3
for RGB, 1 for grayscale); the group of a channel says which colour it belongs to.

The rows below the centre are always hidden, so the kernel is stored cropped to the rows
above and including the centre ((k//2 + 1) x k taps instead of k x k) and the input is padded
only at the top: the same function as a square masked kernel at about half the FLOPs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelcnn.nn.stepping import ConvStepper, Cursor, PointwiseStepper, Steppable

MASK_TYPES = ("A", "B")


def channel_groups(channels: int, groups: int, blocks: int = 1) -> torch.Tensor:
    """Colour group of each channel, [channels] int64 in [0, groups).

    The channels are ``blocks`` equal blocks (e.g. the tanh and sigmoid halves of a gate),
    and each block is split into ``groups`` contiguous runs, so channel j of every block has
    the same colour.
    """
    if channels % blocks:
        raise ValueError(f"{channels} channels do not split into {blocks} equal blocks")
    per_block = channels // blocks
    if per_block < groups:
        raise ValueError(f"need at least {groups} channels per block to split into {groups} groups")
    # on the CPU even while a network is built on the meta device (parameter counting)
    return torch.arange(channels, device="cpu") % per_block * groups // per_block


def causal_mask(
    out_channels: int,
    in_channels: int,
    kernel_size: int,
    mask_type: str,
    groups: int = 1,
    out_blocks: int = 1,
) -> torch.Tensor:
    """Mask [out, in, k//2 + 1, k] for a kernel cropped to the rows up to the centre.

    Rows above the centre and the taps left of the centre are open; taps right of the centre
    are closed; the centre tap connects in-group g_in to out-group g_out when g_in < g_out
    (mask A) or g_in <= g_out (mask B). ``out_blocks`` as in :func:`channel_groups`.
    """
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    centre = kernel_size // 2
    mask = torch.zeros(out_channels, in_channels, centre + 1, kernel_size)
    g_out = channel_groups(out_channels, groups, out_blocks)[:, None]
    g_in = channel_groups(in_channels, groups)[None, :]
    if mask.is_meta:  # a network built on the meta device to count parameters: shape only
        return mask
    mask[:, :, :centre, :] = 1.0
    mask[:, :, centre, :centre] = 1.0
    allowed = g_in < g_out if mask_type == "A" else g_in <= g_out
    mask[:, :, centre, centre] = allowed.to(mask.dtype)
    return mask


class MaskedConv2d(Steppable):
    """Causal k x k convolution, [B, in, H, W] -> [B, out, H, W] (same spatial size).

    With ``row_only`` the kernel is the 1 x (k//2 + 1) part of the current row up to the
    centre: the horizontal stack of the Gated PixelCNN. ``out_blocks`` > 1 says the output
    is that many blocks with the same colour groups each (a gate's two halves).

    The mask is applied functionally (``weight * mask``) so masked taps get no gradient,
    stay exactly zero in checkpoints, and the layer works under torch.compile and DDP.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        mask_type: str = "B",
        groups: int = 1,
        bias: bool = True,
        row_only: bool = False,
        out_blocks: int = 1,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.mask_type = mask_type
        self.groups = groups
        self.row_only = row_only
        half = kernel_size // 2
        mask = causal_mask(out_channels, in_channels, kernel_size, mask_type, groups, out_blocks)
        if row_only:
            mask = mask[:, :, half:, : half + 1].contiguous()
        # left, right, top, bottom padding: nothing below, and nothing right of a row kernel
        self._padding = (half, 0, 0, 0) if row_only else (half, half, half, 0)
        self.register_buffer("mask", mask, persistent=False)
        self.weight = nn.Parameter(torch.empty_like(mask))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight.is_meta:  # built on the meta device only to count parameters
            return
        # Fan-in counts only the open taps, so deep stacks keep unit-scale activations.
        fan_in = max(1.0, float(self.mask.sum(dim=(1, 2, 3)).mean()))
        nn.init.normal_(self.weight, std=(1.0 / fan_in) ** 0.5)
        with torch.no_grad():  # closed taps start at zero, and no gradient ever moves them
            self.weight.mul_(self.mask)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"mask_type={self.mask_type}, groups={self.groups}, row_only={self.row_only}"
        )

    def stepper(self, batch: int, width: int, cursor: Cursor, scale: int, pixelwise: bool):
        weight = self.weight * self.mask
        if self.kernel_size == 1:
            return PointwiseStepper(weight, self.bias)
        left, right, top, _ = self._padding
        return ConvStepper(
            weight, self.bias, (left, right, top), 1, batch, width, cursor, scale, pixelwise
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._stepper is not None:
            return self._stepper(x)
        if any(self._padding):
            x = F.pad(x, self._padding)
        return F.conv2d(x, self.weight * self.mask, self.bias)

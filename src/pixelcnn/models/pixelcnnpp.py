"""PixelCNN++ network (Salimans et al. 2017): two shifted streams (up, and up-left), gated
residual blocks with concat-ELU and dropout, a three-level U-Net with skip connections, and
weight normalization. Pair it with the discretized logistic mixture (its paper's likelihood)
or any other likelihood.
"""

from __future__ import annotations

import torch
from torch import nn

from pixelcnn.nn import ConditionProjection, ConditionSpec
from pixelcnn.nn.shifted_conv import (
    NetworkInNetwork,
    ShiftedConv2d,
    ShiftedConvTranspose2d,
    concat_elu,
    down_shift,
    right_shift,
)

STAGES = 3  # resolutions: full, 1/2, 1/4


class GatedResidual(nn.Module):
    """x -> x + a * sigmoid(b), [a, b] = conv(dropout(concat_elu(conv(concat_elu(x)) +
    nin(concat_elu(skip))))) (+ condition): [B, C, H, W] -> [B, C, H, W]."""

    def __init__(
        self,
        channels: int,
        right: bool,
        skip_channels: int,
        dropout: float,
        condition: ConditionSpec,
    ):
        super().__init__()
        kernel = (2, 2) if right else (2, 3)
        self.conv_in = ShiftedConv2d(2 * channels, channels, kernel, right=right)
        self.skip = NetworkInNetwork(2 * skip_channels, channels) if skip_channels else None
        self.dropout = nn.Dropout(dropout)
        self.conv_out = ShiftedConv2d(2 * channels, 2 * channels, kernel, right=right)
        self.condition = (
            ConditionProjection(condition, 2 * channels, parts=1) if condition else None
        )

    def forward(self, x, skip=None, condition=None):
        h = self.conv_in(concat_elu(x))
        if skip is not None:
            h = h + self.skip(concat_elu(skip))
        h = self.conv_out(self.dropout(concat_elu(h)))
        if self.condition is not None:
            (bias,) = self.condition(condition, height=h.shape[2])
            h = h + bias
        a, b = h.chunk(2, dim=1)
        return x + a * torch.sigmoid(b)


class PixelCNNPlusPlus(nn.Module):
    """Input [B, C_in, H, W] (H, W divisible by 4) -> parameters [B, P, H, W].

    ``image_channels`` must be 1 when a likelihood draws whole pixels (the logistic mixture):
    the streams see nothing of the current pixel at all. For a per-channel likelihood with
    RGB (the categorical) the current pixel is hidden entirely too, so the network is causal
    but its R, G and B predictions of one pixel cannot see each other; prefer the mixture.
    """

    # Two stride-2 stages: the sampler may crop rows only to multiples of 4.
    row_multiple = 4

    def __init__(
        self,
        image_channels: int,
        out_channels: int,
        input_channels: int | None = None,
        filters: int = 32,
        resnets_per_stage: int = 2,
        dropout: float = 0.0,
        num_classes: int = 0,
        vector_dim: int = 0,
    ):
        super().__init__()
        self.condition_spec = ConditionSpec(num_classes, vector_dim, 0)
        in_channels = (input_channels or image_channels) + 1  # + a channel of ones, see forward
        f, n = filters, resnets_per_stage
        cond = self.condition_spec
        self.u_init = ShiftedConv2d(in_channels, f, (2, 3))
        self.ul_init_up = ShiftedConv2d(in_channels, f, (1, 3))
        self.ul_init_left = ShiftedConv2d(in_channels, f, (2, 1), right=True)
        self.down_u = nn.ModuleList()
        self.down_ul = nn.ModuleList()
        self.downsample_u = nn.ModuleList()
        self.downsample_ul = nn.ModuleList()
        for stage in range(STAGES):
            self.down_u.append(
                nn.ModuleList(GatedResidual(f, False, 0, dropout, cond) for _ in range(n))
            )
            self.down_ul.append(
                nn.ModuleList(GatedResidual(f, True, f, dropout, cond) for _ in range(n))
            )
            if stage < STAGES - 1:
                self.downsample_u.append(ShiftedConv2d(f, f, (2, 3), stride=2))
                self.downsample_ul.append(ShiftedConv2d(f, f, (2, 2), right=True, stride=2))
        self.up_u = nn.ModuleList()
        self.up_ul = nn.ModuleList()
        self.upsample_u = nn.ModuleList()
        self.upsample_ul = nn.ModuleList()
        for stage in range(STAGES):
            blocks = n if stage == 0 else n + 1  # the extra block takes the downsampled output
            self.up_u.append(
                nn.ModuleList(GatedResidual(f, False, f, dropout, cond) for _ in range(blocks))
            )
            self.up_ul.append(
                nn.ModuleList(GatedResidual(f, True, 2 * f, dropout, cond) for _ in range(blocks))
            )
            if stage < STAGES - 1:
                self.upsample_u.append(ShiftedConvTranspose2d(f, f, (2, 3), right=False))
                self.upsample_ul.append(ShiftedConvTranspose2d(f, f, (2, 2), right=True))
        self.out = NetworkInNetwork(f, out_channels)

    def forward(
        self, x: torch.Tensor, condition: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        if bool(self.condition_spec) != (condition is not None):
            raise ValueError("a condition must be given exactly when the network is conditional")
        if x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(f"PixelCNN++ needs a height and width divisible by 4, got {x.shape}")
        # A channel of ones tells the network where the image ends and the zero padding begins.
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        us = [down_shift(self.u_init(x))]
        uls = [down_shift(self.ul_init_up(x)) + right_shift(self.ul_init_left(x))]
        for stage in range(STAGES):
            for block_u, block_ul in zip(self.down_u[stage], self.down_ul[stage], strict=True):
                us.append(block_u(us[-1], condition=condition))
                uls.append(block_ul(uls[-1], us[-1], condition=condition))
            if stage < STAGES - 1:
                us.append(self.downsample_u[stage](us[-1]))
                uls.append(self.downsample_ul[stage](uls[-1]))
        u, ul = us.pop(), uls.pop()
        for stage in range(STAGES):
            for block_u, block_ul in zip(self.up_u[stage], self.up_ul[stage], strict=True):
                u = block_u(u, us.pop(), condition=condition)
                ul = block_ul(ul, torch.cat([u, uls.pop()], dim=1), condition=condition)
            if stage < STAGES - 1:
                u = self.upsample_u[stage](u)
                ul = self.upsample_ul[stage](ul)
        return self.out(torch.nn.functional.elu(ul))

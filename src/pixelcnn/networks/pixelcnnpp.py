"""PixelCNN++ network (Salimans et al. 2017): two shifted streams (up, and up-left), gated
residual blocks with concat-ELU and dropout, a three-level U-Net with skip connections, and
weight normalization. Pair it with the discretized logistic mixture (its paper's likelihood)
or any other likelihood.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelcnn.networks.base import Network
from pixelcnn.nn import ConditionProjection, ConditionSpec
from pixelcnn.nn.dropout import Dropout
from pixelcnn.nn.shifted_conv import (
    NetworkInNetwork,
    ShiftedConv2d,
    ShiftedConvTranspose2d,
    concat_elu,
    down_shift,
    right_shift,
)
from pixelcnn.nn.stepping import Cursor, GenerationSteps, steppers

STAGES = 3  # resolutions: full, 1/2, 1/4


def with_ones(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, C + 1, H, W]: a channel of ones tells the network where the image
    ends and the zero padding begins."""
    return torch.cat([x, torch.ones_like(x[:, :1])], dim=1)


def padded_size(side: int) -> int:
    """The side the U-Net runs at: ``side`` rounded up to a multiple of 2^(STAGES - 1)."""
    multiple = 1 << (STAGES - 1)
    return -(-side // multiple) * multiple


def padded(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, H', W'] with zeros below and to the right, H' and W' the
    :func:`padded_size` of H and W. Every padded position comes after the real ones of its
    row, or below them all, and holds a constant, so no real output sees anything it may
    not: the likelihood of the real pixels stays exact. The channel of ones is zero there,
    as in the padding around the image."""
    height, width = x.shape[2:]
    bottom, right = padded_size(height) - height, padded_size(width) - width
    return F.pad(x, (0, right, 0, bottom)) if bottom or right else x  # no copy when none


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
        kernel: tuple[int, int] | None = None,
    ):
        super().__init__()
        kernel = kernel or ((2, 2) if right else (2, 3))  # (1, 1): pointwise (PixelSNAIL)
        self.conv_in = ShiftedConv2d(2 * channels, channels, kernel, right=right)
        self.skip = NetworkInNetwork(2 * skip_channels, channels) if skip_channels else None
        self.dropout = Dropout(dropout)
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


class PixelCNNPlusPlus(Network):
    """Input [B, C_in, H, W] (any H, W >= 1) -> parameters [B, P, H, W].

    The U-Net halves the resolution twice, so it runs on the image padded with zeros below
    and to the right up to sides divisible by 4 (:func:`padded`), and its output is cropped
    back; cached sampling steps over the padded width and only the real pixels.

    ``colour_groups`` must be 1 when a likelihood draws whole pixels (the logistic mixture):
    the streams see nothing of the current pixel at all. For a per-channel likelihood with
    RGB (the categorical) the current pixel is hidden entirely too, so the network is causal
    but its R, G and B predictions of one pixel cannot see each other; prefer the mixture.
    """

    # Two stride-2 stages: the naive sampler crops rows to multiples of 4, the padded size.
    row_multiple = 4

    def __init__(
        self,
        colour_groups: int,
        out_channels: int,
        input_channels: int | None = None,
        filters: int = 32,
        resnets_per_stage: int = 2,
        dropout: float = 0.0,
        num_classes: int = 0,
        vector_dim: int = 0,
    ):
        condition = ConditionSpec(num_classes, vector_dim, 0)
        super().__init__(colour_groups, out_channels, input_channels, condition)
        in_channels = (input_channels or colour_groups) + 1  # + a channel of ones, see forward
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
        self.check_condition(condition)
        height, width = x.shape[2:]
        x = padded(with_ones(x))
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
        return self.out(torch.nn.functional.elu(ul))[:, :, :height, :width]

    def generation(
        self, batch: int, height: int, width: int, condition: dict | None = None
    ) -> GenerationSteps:
        """Step-by-step evaluation for the cached sampler (see :mod:`pixelcnn.nn.stepping`)."""
        self.check_condition(condition)
        return PixelCNNPlusPlusSteps(self, batch, padded_size(width), condition)


class PixelCNNPlusPlusSteps(GenerationSteps):
    """The up stream (u) steps row by row, the up-left stream (ul) pixel by pixel, each
    stage of the U-Net only at the rows (pixels) where its resolution advances: stage s
    at rows (and columns) divisible by 2^s.

    The down pass leaves a stack of outputs that the up pass pops in reverse; here each
    entry of that stack keeps its latest row (u) or pixel (ul), so a stage that does not
    advance still offers the entries it produced last.
    """

    def __init__(self, network: PixelCNNPlusPlus, batch: int, width: int, condition: dict | None):
        self.cursor = cursor = Cursor()
        pairs = []
        for layer, pixelwise in (
            (network.u_init, False),
            (network.ul_init_up, False),
            (network.ul_init_left, True),
        ):
            pairs += steppers(layer, batch, width, cursor, 0, pixelwise)
        for stage in range(STAGES):
            scaled = width >> stage
            pairs += steppers(network.down_u[stage], batch, scaled, cursor, stage, False)
            pairs += steppers(network.down_ul[stage], batch, scaled, cursor, stage, True)
            if stage < STAGES - 1:
                pairs += steppers(network.downsample_u[stage], batch, scaled, cursor, stage, False)
                pairs += steppers(network.downsample_ul[stage], batch, scaled, cursor, stage, True)
            up_stage = STAGES - 1 - stage  # up stage t runs at resolution STAGES - 1 - t
            pairs += steppers(network.up_u[up_stage], batch, scaled, cursor, stage, False)
            pairs += steppers(network.up_ul[up_stage], batch, scaled, cursor, stage, True)
            if stage > 0:  # the upsampling into this stage's finer neighbour
                for upsample, pixelwise in (
                    (network.upsample_u[up_stage], False),
                    (network.upsample_ul[up_stage], True),
                ):
                    pairs += steppers(upsample, batch, scaled * 2, cursor, stage - 1, pixelwise)
        pairs += steppers(network.out, batch, width, cursor, 0, pixelwise=True)
        image_layers = [network.u_init, network.ul_init_up, network.ul_init_left]
        super().__init__(pairs, image_layers=image_layers)
        self.network, self.batch, self.width, self.condition = network, batch, width, condition
        entries = 1 + STAGES * len(network.down_u[0]) + STAGES - 1
        self.u_stack: list[torch.Tensor | None] = [None] * entries  # latest row per entry
        self.ul_stack: list[torch.Tensor | None] = [None] * entries  # latest pixel per entry
        self.u_up: list[torch.Tensor | None] = [None] * sum(len(b) for b in network.up_u)
        self.ul_above: torch.Tensor | None = None  # the shifted-down ul input of this row

    def _zeros(self, width: int) -> torch.Tensor:
        """A row of the streams' zeros: what the down-shift puts above the image."""
        first = self.network.u_init.conv
        return first.weight.new_zeros(self.batch, first.out_channels, 1, width)

    def row(self, i: int) -> None:
        net, cursor, condition = self.network, self.cursor, self.condition
        if i == 0:  # the shifted-in zero row
            u = self.ul_above = self._zeros(self.width)
        else:
            u = self.stepper_of[net.u_init].output_row(i - 1)
            self.ul_above = self.stepper_of[net.ul_init_up].output_row(i - 1)
        cursor.row = i
        advances = [i % (1 << stage) == 0 for stage in range(STAGES)]
        stack, top = self.u_stack, 0
        stack[0] = u
        for stage in range(STAGES):
            for block in net.down_u[stage]:
                top += 1
                if advances[stage]:
                    stack[top] = u = block(u, condition=condition)
            if stage < STAGES - 1:
                top += 1
                if advances[stage + 1]:
                    stack[top] = u = net.downsample_u[stage](u)
                elif advances[stage]:  # feed the row; the coarser stage waits for the next
                    net.downsample_u[stage](u)
        up = 0
        for t in range(STAGES):
            stage = STAGES - 1 - t
            if t == 0:
                u = stack[top]
                top -= 1
            for block in net.up_u[t]:
                if advances[stage]:
                    u = self.u_up[up] = block(u, stack[top], condition=condition)
                top, up = top - 1, up + 1
            if t < STAGES - 1 and advances[stage - 1]:
                u = net.upsample_u[t](u if advances[stage] else None)

    def pixel(self, i: int, j: int, x: torch.Tensor) -> torch.Tensor:
        net, cursor, condition = self.network, self.cursor, self.condition
        cursor.row, cursor.col = i, j
        # down_shift(ul_init_up(x)) + right_shift(ul_init_left(x)), the shifts taken here
        above = self.ul_above[:, :, :, j : j + 1]
        left = self.stepper_of[net.ul_init_left].output_pixel(i, j - 1) if j else 0.0
        ul = above + left
        advances = [i % (1 << s) == 0 and j % (1 << s) == 0 for s in range(STAGES)]
        stack, top = self.ul_stack, 0
        stack[0] = ul
        for stage in range(STAGES):
            col = j >> stage
            for block in net.down_ul[stage]:
                top += 1
                if advances[stage]:
                    u = self.u_stack[top][:, :, :, col : col + 1]
                    stack[top] = ul = block(ul, u, condition=condition)
            if stage < STAGES - 1:
                top += 1
                if advances[stage + 1]:
                    stack[top] = ul = net.downsample_ul[stage](ul)
                elif advances[stage]:
                    net.downsample_ul[stage](ul)
        up = 0
        for t in range(STAGES):
            stage = STAGES - 1 - t
            col = j >> stage
            if t == 0:
                ul = stack[top]
                top -= 1
            for block in net.up_ul[t]:
                if advances[stage]:
                    u = self.u_up[up][:, :, :, col : col + 1]
                    ul = block(ul, torch.cat([u, stack[top]], dim=1), condition=condition)
                top, up = top - 1, up + 1
            if t < STAGES - 1 and advances[stage - 1]:
                ul = net.upsample_ul[t](ul if advances[stage] else None)
        return net.out(torch.nn.functional.elu(ul))

    def image_input(self, x: torch.Tensor) -> torch.Tensor:
        return with_ones(x)  # as forward does

"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
Decoders"): vertical + horizontal stacks without a blind spot, gated units, residual and skip
connections, and optional conditioning on classes, vectors and spatial maps.
"""

from __future__ import annotations

import torch
from torch import nn

from pixelcnn.networks.base import Network
from pixelcnn.nn import ConditionSpec, GatedBlock, MaskedConv2d
from pixelcnn.nn.conditioning import condition_at
from pixelcnn.nn.gated_step import HorizontalStackStep
from pixelcnn.nn.stepping import Cursor, GenerationSteps, steppers


class GatedPixelCNN(Network):
    """Network input [B, C_in, H, W] (+ condition) -> likelihood parameters [B, P, H, W].

    ``colour_groups`` C: R -> G -> B groups for C = 3; ``input_channels``
    is what the first layer receives (C for images, the embedding size for token grids).
    The first block uses ``input_kernel``, the others ``kernel_size``; every block's skip
    output is summed into a two-layer 1x1 head.
    """

    row_multiple = 1  # outputs at rows <= r never depend on rows > r

    def __init__(
        self,
        colour_groups: int,
        out_channels: int,
        input_channels: int | None = None,
        hidden_channels: int = 32,
        layers: int = 8,
        kernel_size: int = 3,
        input_kernel: int = 7,
        skip_channels: int = 64,
        output_hidden: int = 128,
        num_classes: int = 0,
        vector_dim: int = 0,
        spatial_channels: int = 0,
    ):
        condition = ConditionSpec(num_classes, vector_dim, spatial_channels)
        super().__init__(colour_groups, out_channels, input_channels, condition)
        groups = colour_groups
        if hidden_channels < groups or skip_channels < groups:
            raise ValueError(f"hidden_channels and skip_channels must be at least {groups}")
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        in_channels = input_channels or colour_groups
        self.blocks = nn.ModuleList(
            GatedBlock(
                in_channels if i == 0 else hidden_channels,
                hidden_channels,
                skip_channels,
                input_kernel if i == 0 else kernel_size,
                groups,
                first=i == 0,
                condition=self.condition_spec,
            )
            for i in range(layers)
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(skip_channels, output_hidden, 1, "B", groups),
            nn.ReLU(),
            MaskedConv2d(output_hidden, out_channels, 1, "B", groups),
        )

    def forward(
        self, x: torch.Tensor, condition: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        self.check_condition(condition)
        v = h = x
        skips = 0
        for block in self.blocks:
            v, h, skip = block(v, h, condition)
            skips = skips + skip
        return self.head(skips)

    def generation(
        self, batch: int, height: int, width: int, condition: dict | None = None
    ) -> GenerationSteps:
        """Step-by-step evaluation for the cached sampler (see :mod:`pixelcnn.nn.stepping`)."""
        self.check_condition(condition)
        return GatedSteps(self, batch, width, condition)


class GatedSteps(GenerationSteps):
    """The vertical stack steps row by row (one row ahead: row i - 1 gives the link into
    row i) through its layers' steppers; the horizontal stack and the head step pixel by
    pixel fused (:class:`~pixelcnn.nn.gated_step.HorizontalStackStep`)."""

    def __init__(self, network: GatedPixelCNN, batch: int, width: int, condition: dict | None):
        self.cursor = Cursor()
        pairs = []
        for block in network.blocks:
            pairs += steppers(block.vertical, batch, width, self.cursor, 0, pixelwise=False)
        first = network.blocks[0]
        super().__init__(pairs, image_layers=[first.vertical])
        self.network, self.batch, self.width, self.condition = network, batch, width, condition
        self.horizontal = HorizontalStackStep(network.blocks, network.head, batch)

    def row(self, i: int) -> None:
        blocks = self.network.blocks
        if i == 0:  # the row above the image: the shifted-in zeros
            link = blocks[0].vertical_to_horizontal
            zeros = link.weight.new_zeros(self.batch, link.in_channels, 1, self.width)
            above = [block.vertical_to_horizontal(zeros) for block in blocks]
        else:
            self.cursor.row = i - 1
            condition = condition_at(self.condition, i - 1)
            v, above = None, []
            for block in blocks:
                v_bias, _ = block.biases(condition, 1)
                v, v_pre = block.vertical_part(v, v_bias)
                above.append(block.vertical_to_horizontal(v_pre))
        condition = condition_at(self.condition, i)
        for k, block in enumerate(blocks):
            _, h_bias = block.biases(condition, 1)
            if h_bias is not None:
                above[k] = above[k] + h_bias
        self.horizontal.start_row(above)

    def pixel(self, i: int, j: int, x: torch.Tensor) -> torch.Tensor:
        return self.horizontal(j, x)

    def commit(self, i: int, j: int, x: torch.Tensor) -> None:
        super().commit(i, j, x)
        self.horizontal.commit(j, x)

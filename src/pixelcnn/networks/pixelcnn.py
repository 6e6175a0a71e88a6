"""PixelCNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", section 3.5).

A 7x7 type-A masked convolution, a stack of residual blocks (1x1 -> k x k type-B masked ->
1x1 with ReLUs), and two ReLU + 1x1 output layers. Every convolution, the 1x1 ones included,
is masked with the image's channel groups so that for RGB the R, G and B predictions of a
pixel see only the sub-pixels before them.
"""

from __future__ import annotations

import torch
from torch import nn

from pixelcnn.networks.base import Network
from pixelcnn.nn import MaskedConv2d
from pixelcnn.nn.stepping import Cursor, GenerationSteps, steppers


class ResidualBlock(nn.Module):
    """[B, 2h, H, W] -> [B, 2h, H, W]: x + 1x1(ReLU(kxk_B(ReLU(1x1(ReLU(x))))))."""

    def __init__(self, channels: int, kernel_size: int, groups: int):
        super().__init__()
        inner = channels // 2
        self.reduce = MaskedConv2d(channels, inner, 1, "B", groups)
        self.conv = MaskedConv2d(inner, inner, kernel_size, "B", groups)
        self.expand = MaskedConv2d(inner, channels, 1, "B", groups)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.reduce(self.act(x))
        h = self.conv(self.act(h))
        h = self.expand(self.act(h))
        return x + h


class PixelCNN(Network):
    """Network of the original PixelCNN: image input [B, C, H, W] -> parameters [B, P, H, W].

    ``out_channels`` P is what the likelihood needs (C * L logits for the categorical one,
    ordered by channel, then level), and must be a multiple of the image channels C.
    ``input_channels`` is what the first layer receives when it is not the image itself
    (the embedding of a token grid).
    """

    # The sampler may crop the input below the row being generated: no layer mixes rows
    # other than causally, so outputs at rows <= r never depend on rows > r.
    row_multiple = 1

    def __init__(
        self,
        colour_groups: int,
        out_channels: int,
        input_channels: int | None = None,
        hidden_channels: int = 64,
        residual_blocks: int = 7,
        output_hidden: int = 128,
        input_kernel: int = 7,
        residual_kernel: int = 3,
    ):
        super().__init__(colour_groups, out_channels, input_channels)
        if hidden_channels < 2 * colour_groups or hidden_channels % 2:
            raise ValueError(
                f"hidden_channels must be even and at least {2 * colour_groups}, "
                f"got {hidden_channels}"
            )
        if out_channels % colour_groups:
            raise ValueError(f"out_channels {out_channels} is not a multiple of {colour_groups}")
        groups = colour_groups
        in_channels = input_channels or colour_groups  # embeddings for token grids
        self.input = MaskedConv2d(in_channels, hidden_channels, input_kernel, "A", groups)
        self.blocks = nn.Sequential(
            *(
                ResidualBlock(hidden_channels, residual_kernel, groups)
                for _ in range(residual_blocks)
            )
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(hidden_channels, output_hidden, 1, "B", groups),
            nn.ReLU(),
            MaskedConv2d(output_hidden, out_channels, 1, "B", groups),
        )

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        self.check_condition(condition)
        return self.head(self.blocks(self.input(x)))

    def generation(
        self, batch: int, height: int, width: int, condition: dict | None = None
    ) -> GenerationSteps:
        """Step-by-step evaluation for the cached sampler (see :mod:`pixelcnn.nn.stepping`)."""
        self.check_condition(condition)
        return PixelCNNSteps(self, batch, width)


class PixelCNNSteps(GenerationSteps):
    """Every layer is masked, so all of PixelCNN steps pixel by pixel: its forward runs
    unchanged on one pixel while each k x k layer reads its queue of rows."""

    def __init__(self, network: PixelCNN, batch: int, width: int):
        self.cursor = Cursor()
        pairs = steppers(network, batch, width, self.cursor, 0, pixelwise=True)
        super().__init__(pairs, image_layers=[network.input])
        self.network = network

    def pixel(self, i: int, j: int, x: torch.Tensor) -> torch.Tensor:
        self.cursor.row, self.cursor.col = i, j
        return self.network(x)

"""PixelSNAIL (Chen et al. 2018): PixelCNN++'s gated residual blocks on one down-right-
shifted stream, each group of them followed by causal self-attention over every earlier
position, so each pixel sees the whole image before it, however far. Pair it with the
discretized logistic mixture (its paper's likelihood) or any other likelihood.

Attention at raster position q: its query comes from the stream at q and a positional
encoding (the "background"); keys and values come from the network input, the stream and
the background at each position p < q (strictly: never q itself, whose input the key would
reveal). Position 0 has nothing before it: its attention output is zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelcnn.networks.base import Network
from pixelcnn.networks.pixelcnnpp import GatedResidual, with_ones
from pixelcnn.nn import ConditionSpec
from pixelcnn.nn.shifted_conv import NetworkInNetwork, ShiftedConv2d, down_shift, right_shift
from pixelcnn.nn.stepping import Cursor, GenerationSteps, steppers

POINTWISE = (1, 1)  # the kernel of the attention's gated residuals: one position each


def background(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """The positional encoding [1, 2, H, W]: (row - H/2) / H and (column - W/2) / W."""
    rows = (torch.arange(height, dtype=like.dtype, device=like.device) - height / 2) / height
    cols = (torch.arange(width, dtype=like.dtype, device=like.device) - width / 2) / width
    return torch.stack(
        [rows[:, None].expand(height, width), cols[None, :].expand(height, width)]
    ).unsqueeze(0)


def causal_mask(positions: int, device: torch.device) -> torch.Tensor:
    """bool [N, N]: query q may attend to key p when p < q. Position 0, which has no
    earlier key, is let see itself so the softmax stays finite; its output is zeroed."""
    mask = torch.ones(positions, positions, dtype=torch.bool, device=device).tril(-1)
    mask[0, 0] = True
    return mask


class CausalAttention(nn.Module):
    """Keys and values from [input, stream, background], queries from [stream, background],
    ``heads`` heads of scaled dot products: -> [B, value_size, H, W]."""

    def __init__(
        self,
        channels: int,
        input_channels: int,
        key_size: int,
        value_size: int,
        heads: int,
        dropout: float,
        condition: ConditionSpec,
    ):
        super().__init__()
        if key_size % heads or value_size % heads:
            raise ValueError(
                f"key_size {key_size} and value_size {value_size} must be multiples of "
                f"heads {heads}"
            )
        content = input_channels + channels + 2
        self.content = GatedResidual(content, True, 0, dropout, condition, kernel=POINTWISE)
        self.to_key_value = NetworkInNetwork(content, key_size + value_size)
        query = channels + 2
        self.query = GatedResidual(query, True, 0, dropout, condition, kernel=POINTWISE)
        self.to_query = NetworkInNetwork(query, key_size)
        self.key_size, self.value_size, self.heads = key_size, value_size, heads

    def keys_values(self, x, stream, place, condition):
        """Keys [B, key_size, H, W] and values [B, value_size, H, W] of the positions."""
        content = self.content(torch.cat([x, stream, place], dim=1), condition=condition)
        return self.to_key_value(content).split([self.key_size, self.value_size], dim=1)

    def queries(self, stream, place, condition) -> torch.Tensor:
        """Queries [B, key_size, H, W]."""
        return self.to_query(self.query(torch.cat([stream, place], dim=1), condition=condition))

    def by_head(self, t: torch.Tensor) -> torch.Tensor:
        """[B, D, H, W] -> [B, heads, H * W, D / heads]."""
        batch, size = t.shape[:2]
        return t.reshape(batch, self.heads, size // self.heads, -1).transpose(2, 3)

    def forward(self, x, stream, place, condition=None) -> torch.Tensor:
        batch, _, height, width = stream.shape
        keys, values = self.keys_values(x, stream, place, condition)
        queries = self.queries(stream, place, condition)
        mask = causal_mask(height * width, stream.device)
        mixed = F.scaled_dot_product_attention(
            self.by_head(queries), self.by_head(keys), self.by_head(values), attn_mask=mask
        )  # [B, heads, N, value_size / heads]
        first = torch.ones(height * width, 1, dtype=mixed.dtype, device=mixed.device)
        first[0] = 0  # position 0 attended to itself only to keep the softmax finite
        mixed = (mixed * first).transpose(2, 3).reshape(batch, self.value_size, height, width)
        return mixed


class SnailBlock(nn.Module):
    """``resnets`` down-right-shifted gated residuals, then attention mixed back in by a
    pointwise gated residual: [B, F, H, W] -> [B, F, H, W]."""

    def __init__(
        self, filters, input_channels, resnets, key_size, value_size, heads, dropout, cond
    ):
        super().__init__()
        self.resnets = nn.ModuleList(
            GatedResidual(filters, True, 0, dropout, cond) for _ in range(resnets)
        )
        self.attention = CausalAttention(
            filters, input_channels, key_size, value_size, heads, dropout, cond
        )
        self.mix = GatedResidual(filters, True, value_size, dropout, cond, kernel=POINTWISE)


class PixelSNAIL(Network):
    """Input [B, C_in, H, W] (any H, W >= 1) -> parameters [B, P, H, W].

    As in PixelCNN++, the stream never sees the current pixel, so ``colour_groups`` must be
    1 for a likelihood that draws whole pixels; with a per-channel likelihood on RGB (the
    categorical) the model is causal but R, G and B of one pixel cannot see each other.
    """

    # The positional encoding depends on the image height: a cropped pass would differ.
    row_multiple = None

    def __init__(
        self,
        colour_groups: int,
        out_channels: int,
        input_channels: int | None = None,
        filters: int = 64,
        blocks: int = 2,
        resnets_per_block: int = 2,
        key_size: int = 16,
        value_size: int = 32,
        heads: int = 1,
        dropout: float = 0.0,
        num_classes: int = 0,
        vector_dim: int = 0,
    ):
        condition = ConditionSpec(num_classes, vector_dim, 0)
        super().__init__(colour_groups, out_channels, input_channels, condition)
        image = self.input_channels
        f, cond = filters, self.condition_spec
        self.init_up = ShiftedConv2d(image + 1, f, (1, 3))  # + the channel of ones
        self.init_left = ShiftedConv2d(image + 1, f, (2, 1), right=True)
        self.blocks = nn.ModuleList(
            SnailBlock(f, image, resnets_per_block, key_size, value_size, heads, dropout, cond)
            for _ in range(blocks)
        )
        self.out = NetworkInNetwork(f, out_channels)

    def forward(
        self, x: torch.Tensor, condition: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        self.check_condition(condition)
        batch, _, height, width = x.shape
        place = background(height, width, x).expand(batch, -1, -1, -1)
        ones = with_ones(x)
        stream = down_shift(self.init_up(ones)) + right_shift(self.init_left(ones))
        for block in self.blocks:
            for resnet in block.resnets:
                stream = resnet(stream, condition=condition)
            mixed = block.attention(x, stream, place, condition)
            stream = block.mix(stream, mixed, condition=condition)
        return self.out(F.elu(stream))

    def generation(
        self, batch: int, height: int, width: int, condition: dict | None = None
    ) -> GenerationSteps:
        """Step-by-step evaluation for the cached sampler (see :mod:`pixelcnn.nn.stepping`)."""
        self.check_condition(condition)
        return PixelSNAILSteps(self, batch, height, width, condition)


class PixelSNAILSteps(GenerationSteps):
    """The stream steps pixel by pixel (its first layer's row above, row by row); each
    attention keeps the keys and values of every committed position, so a pixel costs one
    query against them: [B, heads, p, d] for the p positions before it."""

    def __init__(self, network: PixelSNAIL, batch: int, height: int, width: int, condition):
        self.cursor = cursor = Cursor()
        pairs = steppers(network.init_up, batch, width, cursor, 0, False)
        pairs += steppers(network.init_left, batch, width, cursor, 0, True)
        for block in network.blocks:
            pairs += steppers(block, batch, width, cursor, 0, True)
        pairs += steppers(network.out, batch, width, cursor, 0, True)
        super().__init__(pairs, image_layers=[network.init_up, network.init_left])
        self.network, self.batch, self.width, self.condition = network, batch, width, condition
        weight = network.out.conv.weight
        self.place = background(height, width, weight).expand(batch, -1, -1, -1)
        positions = height * width
        self.keys, self.values = [], []
        for block in network.blocks:
            attention = block.attention
            per_head = (batch, attention.heads, positions)
            self.keys.append(weight.new_zeros(*per_head, attention.key_size // attention.heads))
            self.values.append(weight.new_zeros(*per_head, attention.value_size // attention.heads))
        self.streams: list[torch.Tensor | None] = [None] * len(network.blocks)
        self.above: torch.Tensor | None = None

    def row(self, i: int) -> None:
        init_up = self.network.init_up
        if i == 0:  # the shifted-in zero row
            self.above = init_up.conv.weight.new_zeros(
                self.batch, init_up.conv.out_channels, 1, self.width
            )
        else:
            self.above = self.stepper_of[init_up].output_row(i - 1)

    def pixel(self, i: int, j: int, x: torch.Tensor) -> torch.Tensor:
        net, condition = self.network, self.condition
        self.cursor.row, self.cursor.col = i, j
        left = self.stepper_of[net.init_left].output_pixel(i, j - 1) if j else 0.0
        stream = self.above[:, :, :, j : j + 1] + left
        place = self.place[:, :, i : i + 1, j : j + 1]
        position = i * self.width + j
        for b, block in enumerate(net.blocks):
            for resnet in block.resnets:
                stream = resnet(stream, condition=condition)
            self.streams[b] = stream  # for this position's key and value, at commit
            attention = block.attention
            if position:
                query = attention.by_head(attention.queries(stream, place, condition))
                mixed = F.scaled_dot_product_attention(
                    query, self.keys[b][:, :, :position], self.values[b][:, :, :position]
                )  # [B, heads, 1, value_size / heads]
                mixed = mixed.transpose(2, 3).reshape(len(stream), -1, 1, 1)
            else:
                mixed = stream.new_zeros(len(stream), attention.value_size, 1, 1)
            stream = block.mix(stream, mixed, condition=condition)
        return net.out(F.elu(stream))

    def commit(self, i: int, j: int, x: torch.Tensor) -> None:
        super().commit(i, j, x)
        self.cursor.row, self.cursor.col = i, j
        place = self.place[:, :, i : i + 1, j : j + 1]
        position = i * self.width + j
        for b, block in enumerate(self.network.blocks):
            attention = block.attention
            key, value = attention.keys_values(x, self.streams[b], place, self.condition)
            self.keys[b][:, :, position] = attention.by_head(key)[:, :, 0]
            self.values[b][:, :, position] = attention.by_head(value)[:, :, 0]

    def image_input(self, x: torch.Tensor) -> torch.Tensor:
        return with_ones(x)  # as forward does

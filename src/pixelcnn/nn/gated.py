"""Layers of the Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with
PixelCNN Decoders"): a vertical stack over the rows above, a horizontal stack over the current
row, gated tanh * sigmoid units, and condition projections added inside the gates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelcnn.nn.conditioning import ConditionProjection, ConditionSpec
from pixelcnn.nn.masked_conv import MaskedConv2d
from pixelcnn.nn.shifted_conv import down_shift
from pixelcnn.nn.stepping import ConvStepper, Cursor, Steppable


class VerticalConv2d(Steppable, nn.Conv2d):
    """(k//2 + 1) x k convolution whose output row i sees input rows i - k//2 .. i.

    A cropped kernel, not a masked square one: no tap is wasted. The vertical stack may see
    its own row because its output reaches the horizontal stack only after
    :func:`~pixelcnn.nn.shifted_conv.down_shift`. [B, in, H, W] -> [B, out, H, W].
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        half = kernel_size // 2
        super().__init__(in_channels, out_channels, (half + 1, kernel_size))
        self._padding = (half, half, half, 0)  # left, right, top, bottom

    def stepper(self, batch: int, width: int, cursor: Cursor, scale: int, pixelwise: bool):
        left, right, top, _ = self._padding
        return ConvStepper(
            self.weight, self.bias, (left, right, top), 1, batch, width, cursor, scale, pixelwise
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._stepper is not None:
            return self._stepper(x)
        return super().forward(F.pad(x, self._padding))


def gate(x: torch.Tensor) -> torch.Tensor:
    """tanh(a) * sigmoid(b) for x = [a, b] along channels: [B, 2h, H, W] -> [B, h, H, W]."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedBlock(nn.Module):
    """One layer of both stacks: (v, h) -> (v', h', skip).

    ``first`` makes the horizontal kernel type A (it must not see the current sub-pixel)
    and drops the residual connection, whose input would have the image's channel count.
    For RGB (``groups`` = 3) the horizontal stack's centre taps and 1x1 convolutions keep
    the R -> G -> B order; the vertical stack needs no mask: after the shift it only carries
    rows above.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        skip_channels: int,
        kernel_size: int,
        groups: int,
        first: bool,
        condition: ConditionSpec,
    ):
        super().__init__()
        self.first = first
        self.vertical = VerticalConv2d(in_channels, 2 * channels, kernel_size)
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal = MaskedConv2d(
            in_channels,
            2 * channels,
            kernel_size,
            "A" if first else "B",
            groups,
            row_only=True,
            out_blocks=2,
        )
        self.residual = MaskedConv2d(channels, channels, 1, "B", groups)
        self.skip = MaskedConv2d(channels, skip_channels, 1, "B", groups)
        self.condition = ConditionProjection(condition, 2 * channels) if condition else None

    def biases(
        self, condition: dict[str, torch.Tensor] | None, height: int
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The condition's biases for the vertical and the horizontal gate (None, None
        when unconditional): each [B, 2h, 1 | height, 1 | W]."""
        if self.condition is None:
            return None, None
        return self.condition(condition, height=height)

    def vertical_part(
        self, v: torch.Tensor | None, bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """v -> (gated v_out, v_pre): the vertical stack, and its pre-gate activations that
        the horizontal stack of the row below receives. ``v`` None while stepping: the
        first block's vertical queue is fed with the image directly."""
        v_pre = self.vertical(v)
        return gate(v_pre if bias is None else v_pre + bias), v_pre

    def horizontal_part(
        self, h: torch.Tensor, above: torch.Tensor, bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """h -> (h_out, skip), given ``above`` = the 1x1 link of the vertical stack's
        pre-gate activations one row up."""
        h_pre = self.horizontal(h) + above
        if bias is not None:
            h_pre = h_pre + bias
        h_gated = gate(h_pre)
        h_out = self.residual(h_gated)
        if not self.first:
            h_out = h_out + h
        return h_out, self.skip(h_gated)

    def forward(
        self, v: torch.Tensor, h: torch.Tensor, condition: dict[str, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        v_bias, h_bias = self.biases(condition, v.shape[2])
        v_out, v_pre = self.vertical_part(v, v_bias)
        above = self.vertical_to_horizontal(down_shift(v_pre))
        h_out, skip = self.horizontal_part(h, above, h_bias)
        return v_out, h_out, skip

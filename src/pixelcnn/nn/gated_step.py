"""The Gated PixelCNN's horizontal stack and head stepped one pixel at a time, fused.

A cached sampling step is a chain of small tensor operations whose cost is mostly PyTorch's
per-call overhead, not arithmetic. Stepped through the generic layer steppers
(:mod:`pixelcnn.nn.stepping`), a pixel of the default Gated PixelCNN took 236 operations,
most of them views, slices and copies. This step computes the same function with eight
operations per block, one of them a view:

- every horizontal convolution keeps the last n = k//2 + 1 inputs of the current row in a
  ring [B, n, C] (column j in slot j mod n); its weight is stored once per rotation of the
  ring, so the taps meet their columns in one addmm over the ring as it lies;
- the link from the vertical stack, the convolution's bias and the condition's bias are
  summed once per row into a table [W, B, 2h] whose entry j is that addmm's bias;
- the gated outputs of all blocks lie side by side in one buffer [B, L*h], so the skip
  connections of every block are one addmm with the skip weights stacked;
- buffers are allocated once and written with ``out=``; the last block's residual output,
  which nothing reads, is not computed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pixelcnn.nn.gated import GatedBlock


def _pointwise(conv: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A masked 1x1 convolution as (weight [I, O], bias [O]) for ``addmm``."""
    weight = (conv.weight * conv.mask).detach()
    bias = None if conv.bias is None else conv.bias.detach()
    return weight.flatten(1).t().contiguous(), bias


class _BlockStep:
    """One block's horizontal half at one pixel: input h [B, C] -> h_out [B, h] (None for
    the last block), its gated output written into its slice of the shared skip buffer."""

    def __init__(self, block: GatedBlock, batch: int, gated: torch.Tensor, last: bool):
        weight = (block.horizontal.weight * block.horizontal.mask).detach()  # [2h, C, 1, n]
        doubled, channels, _, taps = weight.shape
        self.taps, self.first = taps, block.first
        self.ring = weight.new_zeros(batch, taps, channels)
        self.flat_ring = self.ring.view(batch, taps * channels)
        self.slots = [self.ring[:, slot] for slot in range(taps)]
        # At column j, tap t (reading column j - n + 1 + t) finds its input in slot
        # (j + 1 + t) mod n: rotation r = j mod n holds slot s's tap (s - r - 1) mod n.
        per_tap = weight[:, :, 0, :].permute(2, 1, 0)  # [n, C, 2h]
        self.rotated = [
            torch.cat([per_tap[(slot - rotation - 1) % taps] for slot in range(taps)]).contiguous()
            for rotation in range(taps)
        ]  # [n * C, 2h] each
        self.bias = block.horizontal.bias.detach()
        self.pre = weight.new_empty(batch, doubled)
        half = doubled // 2
        self.pre_tanh, self.pre_sigmoid = self.pre[:, :half], self.pre[:, half:]
        self.tanh, self.sigmoid = weight.new_empty(batch, half), weight.new_empty(batch, half)
        self.gated = gated
        self.residual = None if last else _pointwise(block.residual)
        self.out = None if last else weight.new_empty(batch, half)
        self.row_bias: torch.Tensor | None = None

    def start_row(self, above: torch.Tensor) -> None:
        """A new row: ``above`` [B, 2h, 1, W] is what the gate receives besides the
        convolution (the vertical stack's link, plus the condition's bias)."""
        self.ring.zero_()  # columns left of the image read as zeros
        row_bias = above[:, :, 0] + self.bias[:, None]  # [B, 2h, W]
        self.row_bias = row_bias.permute(2, 0, 1).contiguous()  # [W, B, 2h]

    def __call__(self, col: int, h: torch.Tensor) -> torch.Tensor | None:
        rotation = col % self.taps
        self.slots[rotation].copy_(h)
        torch.addmm(self.row_bias[col], self.flat_ring, self.rotated[rotation], out=self.pre)
        torch.tanh(self.pre_tanh, out=self.tanh)
        torch.sigmoid(self.pre_sigmoid, out=self.sigmoid)
        torch.mul(self.tanh, self.sigmoid, out=self.gated)
        if self.residual is None:
            return None
        weight, bias = self.residual
        torch.addmm(bias, self.gated, weight, out=self.out)
        if not self.first:
            self.out += h
        return self.out


class HorizontalStackStep:
    """Every block's horizontal half, the skips and the head at one pixel:
    network input [B, C_in, 1, 1] -> likelihood parameters [B, P, 1, 1].

    ``blocks``: the network's :class:`~pixelcnn.nn.gated.GatedBlock` list; ``head``: ReLUs
    and masked 1x1 convolutions applied to the summed skips. Call :meth:`start_row` before
    the first pixel of every row and :meth:`commit` with every finished pixel.
    """

    def __init__(self, blocks: Sequence[GatedBlock], head: nn.Sequential, batch: int):
        hidden = blocks[0].residual.out_channels
        reference = blocks[0].residual.weight
        self.gated = reference.new_zeros(batch, len(blocks) * hidden)
        self.blocks = [
            _BlockStep(
                block, batch, self.gated[:, k * hidden : (k + 1) * hidden], k == len(blocks) - 1
            )
            for k, block in enumerate(blocks)
        ]
        skips = [_pointwise(block.skip) for block in blocks]
        self.skip_weight = torch.cat([weight for weight, _ in skips])  # [L * h, S]
        self.skip_bias = sum(bias for _, bias in skips)
        self.head: list[tuple[torch.Tensor, torch.Tensor | None] | None] = []
        for layer in head:
            if isinstance(layer, nn.ReLU):
                self.head.append(None)
            elif getattr(layer, "kernel_size", None) == 1 and hasattr(layer, "mask"):
                self.head.append(_pointwise(layer))
            else:
                raise TypeError(f"cannot step a head layer {layer!r}")

    def start_row(self, above: Sequence[torch.Tensor]) -> None:
        """Per block, [B, 2h, 1, W]: the link from the vertical stack into this row plus the
        condition's bias for the horizontal gate."""
        for block, block_above in zip(self.blocks, above, strict=True):
            block.start_row(block_above)

    def __call__(self, col: int, x: torch.Tensor) -> torch.Tensor:
        h = x.view(x.shape[0], -1)
        for block in self.blocks:
            h = block(col, h)
        out = torch.addmm(self.skip_bias, self.gated, self.skip_weight)
        for layer in self.head:
            if layer is None:
                out = out.relu_()
            else:
                weight, bias = layer
                out = torch.mm(out, weight) if bias is None else torch.addmm(bias, out, weight)
        return out.view(*out.shape, 1, 1)

    def commit(self, col: int, x: torch.Tensor) -> None:
        """The finished network input at ``col`` [B, C_in, 1, 1]: what the first block's
        ring keeps of the pixel (the passes before saw channels not yet drawn)."""
        first = self.blocks[0]
        first.slots[col % first.taps].copy_(x.view(x.shape[0], -1))

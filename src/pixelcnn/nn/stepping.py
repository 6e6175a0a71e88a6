"""Layers evaluated one step at a time, for fast autoregressive generation.

Naive sampling runs the whole network once per generated sub-pixel. Following Ramachandran
et al. 2017 ("Fast Generation for Convolutional Autoregressive Models"), a generating network
instead computes at each step only what the new pixel changes: every spatial layer keeps a
queue of the input rows its kernel still needs (:class:`RowQueue`), takes its input one piece
at a time, a pixel [B, C, 1, 1] or a whole row [B, C, 1, W], and returns its output piece at
the same place, so its work per generated pixel is constant.

A layer learns to step by returning a stepper from its ``stepper(...)`` method. While its
network's :class:`GenerationSteps` is entered, the layer's ``forward`` hands every call to
that stepper, so the blocks that combine layers (gates, residuals, skips) run unchanged on
pieces. Which piece is current is the :class:`Cursor`, set by the network's generation steps
(each network's ``generation(...)``), which also decide when a lower resolution advances.
The cached sampler drives those steps and knows nothing of any network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def _detach(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.detach()


def _matmul(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """[B, I] @ [I, O] (+ bias) as one pixel [B, O, 1, 1]: one addmm, as F.linear computes
    it, without the extra view operations that dominate a step's cost."""
    out = torch.mm(x, weight_t) if bias is None else torch.addmm(bias, x, weight_t)
    return out.view(*out.shape, 1, 1)


@dataclass
class Cursor:
    """The full-resolution position being computed; a layer at scale s works at
    (row >> s, col >> s). Row-wise layers ignore ``col``."""

    row: int = 0
    col: int = 0


class RowQueue:
    """The newest ``depth`` rows of a layer's input, zero-padded left and right:
    [B, C, depth, left + width + right]. Rows above the image read as zeros (the padding)."""

    def __init__(
        self,
        batch: int,
        channels: int,
        width: int,
        depth: int,
        left: int = 0,
        right: int = 0,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        self.rows = torch.zeros(
            batch, channels, depth, left + width + right, device=device, dtype=dtype
        )
        self.depth, self.left, self.width = depth, left, width
        self.newest = -1  # absolute index of the newest row held

    def _slot(self, row: int) -> int:
        """Advance to ``row`` if it is new; the slot that holds it."""
        shift = row - self.newest
        if shift > 0:
            if shift >= self.depth:
                self.rows.zero_()
            else:
                self.rows[:, :, :-shift] = self.rows[:, :, shift:].clone()
                self.rows[:, :, -shift:] = 0
            self.newest = row
        slot = self.depth - 1 - (self.newest - row)
        if slot < 0:
            raise RuntimeError(f"row {row} has left the queue (newest {self.newest})")
        return slot

    def put(self, row: int, x: torch.Tensor, col: int | None = None) -> None:
        """Store a whole input row [B, C, 1, W] (``col`` None) or one pixel [B, C, 1, 1]."""
        slot = self.rows.select(2, self._slot(row))  # [B, C, left + width + right]
        if col is None:
            slot.narrow(2, self.left, self.width).copy_(x.view(slot.shape[0], -1, self.width))
        else:
            slot.select(2, self.left + col).copy_(x.view(slot.shape[0], -1))

    def window(self, last_row: int, height: int, first_col: int = 0, width: int | None = None):
        """Rows last_row - height + 1 .. last_row, padded columns first_col .. + width
        (all of them when ``width`` is None): [B, C, height, width]."""
        top = self._slot(last_row) - height + 1
        if top < 0:
            raise RuntimeError(f"the queue holds {self.depth} rows, {height} are needed")
        rows = self.rows[:, :, top : top + height]
        return rows if width is None else rows[:, :, :, first_col : first_col + width]


class ConvStepper:
    """A convolution (weight [O, I, kh, kw], stride s) whose input is padded ``left``,
    ``right`` and ``top`` only, stepped row by row (``pixelwise`` False) or pixel by pixel.

    Output row r reads input rows s*r - top .. s*r - top + kh - 1, output column c the padded
    columns s*c .. s*c + kw - 1; a pixelwise stepper therefore needs ``top`` = kh - 1 and
    ``right`` taps that read nothing of the current row (masked or absent).
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        padding: tuple[int, int, int],
        stride: int,
        batch: int,
        width: int,
        cursor: Cursor,
        scale: int,
        pixelwise: bool,
    ):
        out_channels, in_channels, self.kh, self.kw = weight.shape
        self.left, right, self.top = padding
        self.weight, self.bias, self.stride = weight.detach(), _detach(bias), stride
        self.flat_weight_t = self.weight.reshape(out_channels, -1).t()  # for one addmm
        self.cursor, self.scale, self.pixelwise = cursor, scale, pixelwise
        self.queue = RowQueue(
            batch,
            in_channels,
            width,
            self.kh,
            self.left,
            right,
            device=weight.device,
            dtype=weight.dtype,
        )

    def feed(self, row: int, x: torch.Tensor, col: int | None = None) -> None:
        """Store input that arrives from elsewhere (the image, pixel by pixel)."""
        self.queue.put(row, x, col)

    def _last_input_row(self, row: int) -> int:
        return self.stride * row - self.top + self.kh - 1

    def output_row(self, row: int) -> torch.Tensor:
        """Output row ``row``: [B, O, 1, W / stride]."""
        window = self.queue.window(self._last_input_row(row), self.kh)
        return F.conv2d(window, self.weight, self.bias, stride=(1, self.stride))

    def output_pixel(self, row: int, col: int) -> torch.Tensor:
        """Output at (row, col): [B, O, 1, 1]."""
        window = self.queue.window(self._last_input_row(row), self.kh, self.stride * col, self.kw)
        return _matmul(window.reshape(len(window), -1), self.flat_weight_t, self.bias)

    def __call__(self, x: torch.Tensor | None) -> torch.Tensor | None:
        """Store the input piece at the cursor (``x`` None: the queue is fed elsewhere) and
        return the output piece there, or None where the output resolution does not advance."""
        row, col = self.cursor.row >> self.scale, self.cursor.col >> self.scale
        if x is not None:
            self.queue.put(row, x, col if self.pixelwise else None)
        if row % self.stride or (self.pixelwise and col % self.stride):
            return None
        if self.pixelwise:
            return self.output_pixel(row // self.stride, col // self.stride)
        return self.output_row(row // self.stride)


class TransposedConvStepper:
    """A stride-2 transposed convolution (weight [I, O, kh, kw], kh <= 2), cropped to start
    at column ``left``, stepped at its output resolution ``scale``.

    Output row r depends on input row r // 2 only; it keeps that input row. Pixelwise (only
    for kw <= 2, where output column c reads input column c // 2 alone) or row by row.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        left: int,
        batch: int,
        width: int,
        cursor: Cursor,
        scale: int,
        pixelwise: bool,
    ):
        in_channels, _, kh, kw = weight.shape
        if kh > 2 or (pixelwise and (kw > 2 or left)):
            raise ValueError("this transposed convolution cannot be stepped causally")
        self.weight, self.bias, self.left = weight.detach(), _detach(bias), left
        self.cursor, self.scale, self.pixelwise = cursor, scale, pixelwise
        self.queue = RowQueue(
            batch, in_channels, width, 1, device=weight.device, dtype=weight.dtype
        )

    def __call__(self, x: torch.Tensor | None) -> torch.Tensor:
        """Store the input piece (None: no new input at the lower resolution) and return the
        output piece at the cursor."""
        row, col = self.cursor.row >> self.scale, self.cursor.col >> self.scale
        if x is not None:
            self.queue.put(row >> 1, x, (col >> 1) if self.pixelwise else None)
        source = self.queue.window(row >> 1, 1)  # [B, I, 1, W_in]
        if self.pixelwise:
            taps = self.weight[:, :, row & 1, col & 1]  # [I, O]
            return _matmul(source[:, :, 0, col >> 1], taps, self.bias)
        y = F.conv_transpose2d(source, self.weight, self.bias, stride=2, output_padding=1)
        width = 2 * source.shape[3]
        return y[:, :, row & 1 : (row & 1) + 1, self.left : self.left + width]


class PointwiseStepper:
    """A 1x1 convolution (weight [O, I, 1, 1]) on pieces: needs no queue."""

    def feed(self, row: int, x: torch.Tensor, col: int | None = None) -> None:
        """Nothing of earlier positions is needed: input from elsewhere is not kept."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        self.weight, self.bias = weight.detach(), _detach(bias)
        self.flat_weight_t = self.weight.flatten(1).t()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] * x.shape[3] == 1:
            return _matmul(x.view(len(x), -1), self.flat_weight_t, self.bias)
        return F.conv2d(x, self.weight, self.bias)


class Steppable(nn.Module):
    """A layer that can be stepped: while a stepper is attached (by :class:`GenerationSteps`), its
    ``forward`` returns ``self._stepper(x)`` instead of computing on whole images."""

    _stepper = None

    def stepper(self, batch: int, width: int, cursor: Cursor, scale: int, pixelwise: bool):
        """A fresh stepper for ``batch`` inputs ``width`` wide at resolution ``scale``
        (the cursor's position >> scale), row by row or ``pixelwise``."""
        raise NotImplementedError


def steppers(
    module: nn.Module, batch: int, width: int, cursor: Cursor, scale: int, pixelwise: bool
) -> list[tuple[Steppable, object]]:
    """(layer, stepper) for every steppable layer inside ``module`` (itself included)."""
    return [
        (layer, layer.stepper(batch, width, cursor, scale, pixelwise))
        for layer in module.modules()
        if isinstance(layer, Steppable)
    ]


class GenerationSteps:
    """One network generating one batch, step by step: what the cached sampler drives.

    For each row i the sampler calls :meth:`row` once (all that depends only on the rows
    above: the vertical stacks), then for each pixel j :meth:`pixel` once per draw, with the
    pixel's sub-pixels known so far, and :meth:`commit` with the finished pixel. Inside a
    ``with`` block the network's steppable layers defer to their steppers; outside it they
    compute on whole images again.
    """

    def __init__(self, pairs: list[tuple[Steppable, object]], image_layers=()):
        """``pairs``: (layer, stepper) for every steppable layer; ``image_layers``: those
        that read the network input itself, which :meth:`commit` feeds."""
        self._pairs = pairs
        self.stepper_of = dict(pairs)
        self._image_steppers = [self.stepper_of[layer] for layer in image_layers]

    def __enter__(self) -> GenerationSteps:
        for layer, stepper in self._pairs:
            layer._stepper = stepper
        return self

    def __exit__(self, *exc_info) -> None:
        for layer, _ in self._pairs:
            layer._stepper = None

    def row(self, i: int) -> None:
        """Prepare row ``i``: the rows above it are complete."""

    def pixel(self, i: int, j: int, x: torch.Tensor) -> torch.Tensor:
        """Network input at (i, j) [B, C_in, 1, 1], channels not yet drawn holding any
        value -> likelihood parameters there [B, P, 1, 1]."""
        raise NotImplementedError

    def commit(self, i: int, j: int, x: torch.Tensor) -> None:
        """The finished network input at (i, j), [B, C_in, 1, 1], for the layers that read
        the image itself."""
        x = self.image_input(x)
        for stepper in self._image_steppers:
            stepper.feed(i, x, j)

    def image_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the image layers receive of a network input [B, C_in, 1, 1] (itself, unless
        the network's forward adds to it)."""
        return x

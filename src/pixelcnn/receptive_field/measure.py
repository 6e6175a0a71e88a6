"""Receptive fields of real networks, measured by autograd (no pictures here: see draw.py).

The receptive field of the output at pixel (row, col) is the set of input pixels with a
non-zero gradient: d out[:, :, row, col] / d x. Nothing here reads masks or kernel sizes;
every field is measured on the package's own layers and networks, so it shows what the
code does, not what it was meant to do. This module never imports PIL.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from pixelcnn.nn import MaskedConv2d
from pixelcnn.nn.conditioning import neutral_condition

Position = tuple[int, int]

# Networks with at most this many output channels get one exact backward pass per channel;
# wider ones get this many random mixtures of their channels (see _cotangents).
_EXACT_OUTPUTS = 64
_MIXTURES = 16


# ----------------------------------------------------------------------------- measuring
def _check_position(position: Any, height: int, width: int) -> Position:
    """(row, col) as ints inside an H x W image, else a one-line ValueError."""
    try:
        row, col = (int(v) for v in position)
    except (TypeError, ValueError):
        raise ValueError(f"position must be (row, col), got {position!r}") from None
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"position ({row}, {col}) is outside the {height}x{width} image")
    return row, col


def _to_double(condition: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
    """Condition tensors on the CPU, floating ones in float64 (to match the network copy)."""
    if condition is None:
        return None
    return {k: v.cpu().double() if v.is_floating_point() else v.cpu() for k, v in condition.items()}


def _cotangents(trials: int, outputs: int, generator: torch.Generator) -> torch.Tensor:
    """Weights of the output channels for each backward pass: [K, T, P].

    Up to ``_EXACT_OUTPUTS`` channels: one pass per channel (one-hot rows), the exact sum of
    |d out_p / d x| over channels. Beyond that (256 levels, RGB) one pass per channel costs
    too much, and ``_MIXTURES`` random Gaussian mixtures of the channels find the same
    non-zero set: a mixture's gradient at a pixel is exactly zero only by a float64
    coincidence when some channel's is not.
    """
    if outputs <= _EXACT_OUTPUTS:
        return torch.eye(outputs, dtype=torch.float64)[:, None, :].expand(-1, trials, -1)
    shape = (_MIXTURES, trials, outputs)
    return torch.randn(shape, generator=generator, dtype=torch.float64)


def input_sensitivity(
    network: nn.Module,
    input_shape: Sequence[int],
    position: Position,
    trials: int = 4,
    condition: dict[str, torch.Tensor] | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Sum of |d out[t, p, row, col] / d x[t]| over trials t and output channels p.

    ``input_shape`` is (C_in, H, W), what the network receives; ``condition`` (if any) is
    the network's prepared condition dict for a batch of ``trials``. -> float64 [C_in, H, W].

    Each output channel gets its own backward pass and absolute values are summed, so
    gradients of different channels can never cancel (see :func:`_cotangents` for networks
    with many channels). Several random inputs are used because one input can leave a ReLU
    dead and hide a real connection.
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be a positive int, got {trials!r}")
    channels, height, width = (int(v) for v in input_shape)
    row, col = _check_position(position, height, width)
    # A float64 CPU copy in eval mode: the caller's model keeps its device, dtype, mode and
    # gradients, and float64 keeps tiny gradients from rounding to zero.
    net = copy.deepcopy(network).to(device="cpu", dtype=torch.float64).eval()
    net.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(trials, channels, height, width, generator=generator, dtype=torch.float64)
    x.requires_grad_(True)
    out = net(x) if condition is None else net(x, _to_double(condition))
    at = out[:, :, row, col]  # [T, P]
    weights = _cotangents(trials, at.shape[1], generator)
    total = torch.zeros(channels, height, width, dtype=torch.float64)
    # A loop of plain backward passes: on CPU it beats is_grads_batched (vmap) several-fold.
    for index, weight in enumerate(weights):
        last = index == len(weights) - 1
        (grad,) = torch.autograd.grad(at, x, grad_outputs=weight, retain_graph=not last)
        total += grad.abs().sum(dim=0)  # [T, C, H, W] -> [C, H, W]
    return total


def receptive_field(
    network: nn.Module,
    input_shape: Sequence[int],
    position: Position,
    trials: int = 4,
    condition: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Which input pixels reach the network's output at ``position`` = (row, col).

    ``network(x)`` (or ``network(x, condition)``) maps [B, C_in, H, W] to [B, P, H, W];
    ``input_shape`` is (C_in, H, W). -> bool [H, W], True where any input channel of that
    pixel has a non-zero gradient for any output channel and any of ``trials`` random inputs.
    """
    sensitivity = input_sensitivity(network, input_shape, position, trials, condition)
    return sensitivity.sum(dim=0) > 0


def _model_inputs(model: Any, position: Position | None, trials: int):
    """(input_shape, position, condition) for measuring ``model.network``."""
    height, width = model.image_shape[1:]
    if position is None:
        position = (height // 2, width // 2)
    position = _check_position(position, height, width)
    input_shape = (model.encoding.input_channels, height, width)
    spec = getattr(model, "condition_spec", None)
    condition = neutral_condition(spec, trials, (height, width)) if spec else None
    return input_shape, position, condition


def model_receptive_field(
    model: Any, position: Position | None = None, trials: int = 4
) -> torch.Tensor:
    """Receptive field of a :class:`pixelcnn.DensityModel` at ``position`` (default: centre).

    Measured on ``model.network`` with its real input (the image, or a token embedding);
    conditional networks get a neutral condition. -> bool [H, W]. For RGB models the target
    pixel is True: G and B outputs legitimately see the earlier colours of their own pixel.
    """
    input_shape, position, condition = _model_inputs(model, position, trials)
    return receptive_field(model.network, input_shape, position, trials, condition)


# ----------------------------------------------------------------------------- stacks
def masked_stack(mask_types: str, kernel_size: int = 3) -> nn.Sequential:
    """Single-channel MaskedConv2d layers, one per letter of ``mask_types`` (e.g. "ABBB").

    No nonlinearity, no bias, and every open tap weighs 1, so the output is a sum of paths
    with positive weights: no two paths can cancel, and the gradient shows exactly which
    pixels the masks connect. [B, 1, H, W] -> [B, 1, H, W].
    """
    if not mask_types or set(mask_types) - {"A", "B"}:
        raise ValueError(f"mask_types must be a non-empty string of A and B, got {mask_types!r}")
    layers = [MaskedConv2d(1, 1, kernel_size, kind, bias=False) for kind in mask_types]
    with torch.no_grad():
        for layer in layers:
            layer.weight.fill_(1.0)
    return nn.Sequential(*layers)


def causal_reach(shape: tuple[int, int], position: Position, radius: int) -> torch.Tensor:
    """Earlier pixels within ``radius`` rows above and columns either side. -> bool [H, W].

    The rows above (any column within the radius) and the current row to the left: what a
    stack of layers with that total reach could see if it had no blind spot.
    """
    height, width = shape
    row, col = position
    rows = torch.arange(height)[:, None]
    cols = torch.arange(width)[None, :]
    near = (rows >= row - radius) & ((cols - col).abs() <= radius)
    earlier = (rows < row) | ((rows == row) & (cols < col))
    return near & earlier


# ----------------------------------------------------------------------------- figures
def _stack_panels(kinds: list[str], size: int) -> list[tuple]:
    """One panel per stack in ``kinds``, at the centre of a size x size image."""
    position = (size // 2, size // 2)
    panels = []
    for kind in kinds:
        field = receptive_field(masked_stack(kind), (1, size, size), position)
        reach = causal_reach((size, size), position, radius=len(kind))
        caption = f"{len(kind)} layer{'s' if len(kind) > 1 else ''}: {' '.join(kind)}"
        panels.append((caption, field, position, reach))
    return panels


def _blind_spot_panels(size: int, layers: int) -> list[tuple]:
    """PixelCNN (A + layers-1 residual blocks) next to Gated PixelCNN (``layers`` blocks)."""
    from pixelcnn.model import create  # here: the model module imports much of the package

    # The target sits below the centre so the gated field's extra row above still fits.
    n = max(size, 2 * layers + 3)
    position = (min(n - 1, n // 2 + 1), n // 2)
    shape = (1, n, n)
    plain = create(
        "pixelcnn",
        shape,
        levels=2,
        preset="tiny",
        residual_blocks=layers - 1,
        input_kernel=3,
        residual_kernel=3,
    )
    gated = create("gated", shape, levels=2, preset="tiny", layers=layers, input_kernel=3)
    reach = causal_reach((n, n), position, radius=layers)
    return [
        (
            f"PixelCNN: A + {layers - 1} residual B (3x3)",
            model_receptive_field(plain, position),
            position,
            reach,
        ),
        (
            f"Gated PixelCNN: {layers} layers (3x3)",
            model_receptive_field(gated, position),
            position,
            reach,
        ),
    ]


def check_figure_size(size: int, layers: int) -> None:
    """One-line ValueError unless 1 <= size <= 64 and 1 <= layers <= 16."""
    # Upper bounds keep the pictures readable (and their files a few hundred kB at most).
    for name, value, most in (("size", size, 64), ("layers", layers, 16)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            raise ValueError(f"{name} must be an int from 1 to {most}, got {value!r}")


def _model_panel(model: Any, position: Position | None) -> tuple[str, torch.Tensor, Position]:
    """(caption, field, position) for a DensityModel's picture.

    For RGB models the target cell shows whether the LAST colour of the target pixel is
    seen: G and B are meant to see the earlier colours of their own pixel, but no output
    at a pixel may see its last colour.
    """
    input_shape, position, condition = _model_inputs(model, position, trials=4)
    sensitivity = input_sensitivity(model.network, input_shape, position, 4, condition)
    field = sensitivity.sum(dim=0) > 0
    if model.encoding.kind == "image" and model.image_shape[0] > 1:
        field[position] = bool(sensitivity[-1][position] > 0)
    channels, height, width = model.image_shape
    caption = f"{model.config.model} ({channels}x{height}x{width}): output at {position}"
    return caption, field, position


__all__ = [
    "Position",
    "causal_reach",
    "check_figure_size",
    "input_sensitivity",
    "masked_stack",
    "model_receptive_field",
    "neutral_condition",
    "receptive_field",
]

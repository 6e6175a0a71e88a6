"""Receptive fields of real networks, found by autograd and drawn like the PixelCNN figures.

The receptive field of the output at pixel (row, col) is the set of input pixels with a
non-zero gradient: d out[:, :, row, col] / d x. Nothing here reads masks or kernel sizes;
every picture is measured on the package's own layers and networks, so it shows what the
code does, not what it was meant to do.

Classic pictures (van den Oord et al. 2016):

- mask A then mask B layers: the field grows up and to the left, with a blind spot up-right;
- only mask A layers: pixels are lost (a pixel seen by one A layer is hidden by the next);
- only mask B layers: the pixel sees itself, a leak;
- PixelCNN next to Gated PixelCNN: the gated vertical + horizontal stacks have no blind spot.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from pixelcnn.nn import MaskedConv2d
from pixelcnn.pictures import save_png

Position = tuple[int, int]

# Cell colours (RGB).
WHITE = (255, 255, 255)
FIELD = (66, 120, 220)  # an input pixel the output sees
TARGET = (255, 160, 0)  # the output's own pixel, correctly unseen
LEAK = (215, 25, 35)  # the output's own pixel, seen: the model cheats
MISSING = (205, 205, 205)  # an earlier pixel within reach that is not seen (hatched)
GRID = (170, 170, 170)
INK = (20, 20, 20)

LEGEND = {
    FIELD: "input pixel seen",
    TARGET: "target pixel (not seen)",
    LEAK: "target pixel SEEN (leak)",
    MISSING: "earlier pixel in reach, NOT seen",
}

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


def neutral_condition(spec: Any, batch: int, grid: tuple[int, int]) -> dict[str, torch.Tensor]:
    """A prepared condition of zeros for every kind in ``spec`` (a ConditionSpec).

    class -> int64 [batch] (label 0), vector -> [batch, d], spatial -> [batch, s, H, W].
    Conditions add a per-image bias; they never connect pixels, so any value will do.
    """
    condition = {}
    if spec.num_classes:
        condition["class"] = torch.zeros(batch, dtype=torch.int64)
    if spec.vector_dim:
        condition["vector"] = torch.zeros(batch, spec.vector_dim, dtype=torch.float64)
    if spec.spatial_channels:
        condition["spatial"] = torch.zeros(batch, spec.spatial_channels, *grid, dtype=torch.float64)
    return condition


def _model_inputs(model: Any, position: Position | None, trials: int):
    """(input_shape, position, condition) for measuring ``model.network``."""
    height, width = model.image_shape[1:]
    if position is None:
        position = (height // 2, width // 2)
    position = _check_position(position, height, width)
    input_shape = (model.codec.input_channels, height, width)
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


# ----------------------------------------------------------------------------- drawing
def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


def _text_size(font: ImageFont.ImageFont, text: str) -> tuple[int, int]:
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox(
        (0, 0), text, font=font
    )
    return right - left, bottom - top


def _hatch(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int]) -> None:
    """Diagonal lines across a cell, so "not seen" reads without colour vision."""
    x0, y0, x1, y1 = box
    size = x1 - x0
    step = max(4, size // 4)
    for offset in range(-size, size, step):
        start = (x0 + max(0, offset), y0 + max(0, -offset))
        end = (x0 + min(size, size + offset), y0 + min(size, size - offset))
        draw.line([start, end], fill=(120, 120, 120), width=1)


def _cell_colour(field: torch.Tensor, missing: torch.Tensor | None, r: int, c: int, target):
    if (r, c) == target:
        return LEAK if field[r, c] else TARGET
    if field[r, c]:
        return FIELD
    if missing is not None and missing[r, c]:
        return MISSING
    return WHITE


def render_receptive_field(
    field: torch.Tensor,
    position: Position,
    title: str | None = None,
    scale: int = 40,
    missing: torch.Tensor | None = None,
) -> Image.Image:
    """A grid picture of a receptive field, bool [H, W], for the output at ``position``.

    Seen pixels are blue; the target pixel is orange, or red when it is itself in the field
    (a leak); ``missing`` (bool [H, W], optional) marks pixels that should be seen but are
    not (hatched grey); a thick frame marks the target; ``title`` goes above the grid.
    """
    field = torch.as_tensor(field).bool().cpu()
    height, width = field.shape
    target = _check_position(position, height, width)
    font = _font(max(12, scale * 2 // 5))
    text_w, text_h = _text_size(font, title) if title else (0, 0)
    pad = max(4, scale // 5)
    top = text_h + 2 * pad if title else pad
    grid_w, grid_h = width * scale, height * scale
    canvas_w = max(grid_w, text_w) + 2 * pad
    picture = Image.new("RGB", (canvas_w, top + grid_h + pad + 1), WHITE)
    draw = ImageDraw.Draw(picture)
    if title:
        draw.text(((canvas_w - text_w) // 2, pad), title, fill=INK, font=font)
    left = (canvas_w - grid_w) // 2
    for r in range(height):
        for c in range(width):
            box = (left + c * scale, top + r * scale, left + (c + 1) * scale, top + (r + 1) * scale)
            colour = _cell_colour(field, missing, r, c, target)
            draw.rectangle(box, fill=colour, outline=GRID)
            if colour == MISSING:
                _hatch(draw, box)
    r, c = target
    frame = (left + c * scale, top + r * scale, left + (c + 1) * scale, top + (r + 1) * scale)
    draw.rectangle(frame, outline=INK, width=max(2, scale // 12))
    return picture


def _legend(colours: list[tuple[int, int, int]], width: int, font_size: int) -> Image.Image:
    """One row per colour: a swatch and what it means."""
    font = _font(font_size)
    swatch = font_size + 4
    rows = [(colour, LEGEND[colour]) for colour in colours]
    line = swatch + 6
    picture = Image.new("RGB", (width, line * len(rows) + 8), WHITE)
    draw = ImageDraw.Draw(picture)
    for i, (colour, text) in enumerate(rows):
        y = 4 + i * line
        box = (10, y, 10 + swatch, y + swatch)
        draw.rectangle(box, fill=colour, outline=GRID)
        if colour == MISSING:
            _hatch(draw, box)
        draw.text((20 + swatch, y + 2), text, fill=INK, font=font)
    return picture


def render_panels(
    panels: Sequence[tuple],
    columns: int | None = None,
    title: str | None = None,
    scale: int = 40,
) -> Image.Image:
    """Several fields side by side with captions, an optional heading, and a colour legend.

    Each panel is (caption, field bool [H, W], position) or, to mark pixels that should be
    seen but are not, (caption, field, position, missing bool [H, W]).
    """
    if not panels:
        raise ValueError("render_panels needs at least one panel")
    columns = columns or len(panels)
    pictures, used = [], set()
    for panel in panels:
        caption, field, position, *rest = panel
        missing = rest[0] if rest else None
        pictures.append(render_receptive_field(field, position, caption, scale, missing))
        field = torch.as_tensor(field).bool()
        used |= {FIELD} if field.any() else set()
        used |= {LEAK} if field[tuple(position)] else {TARGET}
        used |= {MISSING} if missing is not None and bool((missing & ~field).any()) else set()
    gap = max(8, scale // 3)  # white space between panels
    cell_w = max(p.width for p in pictures) + gap
    cell_h = max(p.height for p in pictures)
    rows = math.ceil(len(pictures) / columns)
    font_size = max(14, scale // 2)
    heading = _font(font_size)
    head_w, head_h = _text_size(heading, title) if title else (0, 0)
    head = head_h + 20 if title else 0
    width = max(columns * cell_w, head_w + 40)
    order = [colour for colour in LEGEND if colour in used]
    legend = _legend(order, width, max(12, scale * 2 // 5))
    sheet = Image.new("RGB", (width, head + rows * cell_h + legend.height), WHITE)
    if title:
        ImageDraw.Draw(sheet).text(((width - head_w) // 2, 10), title, fill=INK, font=heading)
    offset = (width - columns * cell_w) // 2
    for index, picture in enumerate(pictures):
        x = offset + (index % columns) * cell_w + (cell_w - picture.width) // 2
        sheet.paste(picture, (x, head + (index // columns) * cell_h))
    sheet.paste(legend, (0, head + rows * cell_h))
    return sheet


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


def classic_figures(size: int = 7, layers: int = 4) -> dict[str, Image.Image]:
    """The classic PixelCNN receptive-field pictures, each measured by gradients.

    -> {"growth", "all_a", "all_b", "blind_spot"}: PIL images. Stacks act on a
    size x size image at its centre, with 1 .. ``layers`` layers; the blind-spot figure
    uses randomly initialised tiny networks of depth ``layers`` on an image large enough
    to show where their fields end.
    """
    check_figure_size(size, layers)
    depths = range(1, layers + 1)
    # Fixed random inputs and weights: the same pictures every time, caller's RNG untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        growth = _stack_panels(["A" + "B" * (d - 1) for d in depths], size)
        all_a = _stack_panels(["A" * d for d in depths], size)
        all_b = _stack_panels(["B" * d for d in depths], size)
        blind = _blind_spot_panels(size, layers)
    # Cells shrink for large images so a row of panels stays about 1300 pixels wide.
    scale = max(12, min(40, 320 // size))
    panels = {"growth": growth, "all_a": all_a, "all_b": all_b, "blind_spot": blind}
    return {
        name: render_panels(panels[name], title=title, scale=scale)
        for name, title in CLASSIC_FIGURES.items()
    }


# The classic figures, by file name, with their titles.
CLASSIC_FIGURES = {
    "growth": "Mask A, then mask B: the field grows up-left; a blind spot up-right",
    "all_a": "Only mask A: every layer hides its own pixel, so pixels are lost",
    "all_b": "Only mask B: the target pixel sees itself (a leak)",
    "blind_spot": "PixelCNN's blind spot vs Gated PixelCNN's full field",
}


def _model_panel(model: Any, position: Position | None) -> tuple[str, torch.Tensor, Position]:
    """(caption, field, position) for a DensityModel's picture.

    For RGB models the target cell shows whether the LAST colour of the target pixel is
    seen: G and B are meant to see the earlier colours of their own pixel, but no output
    at a pixel may see its last colour.
    """
    input_shape, position, condition = _model_inputs(model, position, trials=4)
    sensitivity = input_sensitivity(model.network, input_shape, position, 4, condition)
    field = sensitivity.sum(dim=0) > 0
    if model.codec.kind == "image" and model.image_shape[0] > 1:
        field[position] = bool(sensitivity[-1][position] > 0)
    channels, height, width = model.image_shape
    caption = f"{model.config.model} ({channels}x{height}x{width}): output at {position}"
    return caption, field, position


FIGURE_KIND = "receptive-field"  # the PNG tag of these pictures (pictures.png_kind)
MODEL_FIGURE = "model_receptive_field"


def figure_paths(out_dir: str | os.PathLike, with_model: bool) -> list[Path]:
    """The files :func:`write_figures` writes into ``out_dir``."""
    names = [*CLASSIC_FIGURES, MODEL_FIGURE] if with_model else list(CLASSIC_FIGURES)
    return [Path(out_dir) / f"{name}.png" for name in names]


def write_figures(
    out_dir: str | os.PathLike,
    size: int = 7,
    layers: int = 4,
    model: Any = None,
    position: Position | None = None,
) -> list[Path]:
    """Write the classic figures as ``<name>.png`` into ``out_dir`` and, given a
    DensityModel, ``model_receptive_field.png`` for its output at ``position`` (default:
    the centre). -> the paths written (those of :func:`figure_paths`)."""
    check_figure_size(size, layers)
    out_dir = Path(out_dir)
    if model is not None:  # fail on a bad position before any file is written
        panel = _model_panel(model, position)
    elif position is not None:
        raise ValueError("a position needs a model")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = figure_paths(out_dir, model is not None)
    for path, picture in zip(paths, classic_figures(size, layers).values(), strict=False):
        save_png(picture, path, FIGURE_KIND)
    if model is not None:
        height, width = model.image_shape[1:]
        # Cells shrink for large images so the picture stays under about 700 pixels.
        scale = max(8, min(40, 700 // max(height, width)))
        title = "Receptive field measured by gradients"
        picture = render_panels([panel], title=title, scale=scale)
        save_png(picture, paths[-1], FIGURE_KIND)
    return paths


__all__ = [
    "causal_reach",
    "check_figure_size",
    "classic_figures",
    "input_sensitivity",
    "masked_stack",
    "model_receptive_field",
    "neutral_condition",
    "receptive_field",
    "render_panels",
    "render_receptive_field",
    "write_figures",
]

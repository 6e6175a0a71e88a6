"""Receptive fields drawn like the PixelCNN figures: PIL pictures of measured fields.

Every picture shows a field measured by gradients in measure.py (this module draws, it
never measures on its own); measure.py never imports this one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageFont

from pixelcnn.pictures import save_png
from pixelcnn.receptive_field.measure import (
    Position,
    _blind_spot_panels,
    _check_position,
    _model_panel,
    _stack_panels,
    check_figure_size,
)

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
    "CLASSIC_FIGURES",
    "FIGURE_KIND",
    "MODEL_FIGURE",
    "classic_figures",
    "figure_paths",
    "render_panels",
    "render_receptive_field",
    "write_figures",
]

"""Pictures for people: grids of images written as PNG files (Pillow)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from pixelcnn.files import atomic_write, open_regular


def image_grid(
    images: torch.Tensor | np.ndarray, columns: int | None = None, padding: int = 2, scale: int = 1
) -> Image.Image:
    """uint8 images [N, C, H, W] (C = 1 or 3) -> one PIL image, ``columns`` per row.

    ``scale`` enlarges every pixel to a ``scale`` x ``scale`` block (nearest neighbour), so
    28x28 digits stay visible; the padding between cells is mid grey.
    """
    array = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.ndim != 4 or array.shape[1] not in (1, 3) or array.dtype != np.uint8:
        raise ValueError(f"need uint8 images [N, 1|3, H, W], got {array.dtype} {array.shape}")
    n, channels, height, width = array.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    cell_h, cell_w = height + padding, width + padding
    canvas = np.full((rows * cell_h + padding, columns * cell_w + padding, 3), 128, np.uint8)
    for index, image in enumerate(array):
        top = padding + (index // columns) * cell_h
        left = padding + (index % columns) * cell_w
        canvas[top : top + height, left : left + width] = np.moveaxis(image, 0, -1)
    picture = Image.fromarray(canvas)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    return picture


def save_image_grid(
    images: torch.Tensor | np.ndarray,
    path: str | os.PathLike,
    columns: int | None = None,
    scale: int | None = None,
    kind: str = "images",
) -> Path:
    """Write ``image_grid(images)`` to ``path`` as PNG, tagged as a pixelcnn picture of
    ``kind`` (see :func:`png_kind`); small images are enlarged."""
    array = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if scale is None:
        scale = max(1, 128 // max(array.shape[-2:])) if array.ndim == 4 else 1
    path = Path(path)
    picture = image_grid(array, columns=columns, scale=scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(picture, path, kind)
    return path


# The PNG text key that marks a picture this library wrote, with its kind as the value.
PNG_KIND_KEY = "pixelcnn"


def png_tag(kind: str) -> PngInfo:
    """PNG metadata saying "written by pixelcnn, a picture of ``kind``"."""
    info = PngInfo()
    info.add_text(PNG_KIND_KEY, kind)
    return info


def save_png(
    picture: Image.Image,
    path: str | os.PathLike,
    kind: str,
    inside: str | os.PathLike | None = None,
) -> None:
    """Write ``picture`` atomically (never half a PNG), tagged with its ``kind``.
    ``inside``: the folder the user named that ``path`` lies in; the folders between are
    made if missing and never followed through a symbolic link (see ``atomic_write``)."""
    atomic_write(
        Path(path),
        lambda temp: picture.save(temp, format="PNG", pnginfo=png_tag(kind)),
        inside=inside,
    )


def png_kind(path: str | os.PathLike) -> str | None:
    """The kind of pixelcnn picture at ``path`` ("samples", ...), or None for any other
    file: an unreadable one, a user's picture, a PNG from another program."""
    try:
        with open_regular(path) as stream, Image.open(stream) as picture:
            text = getattr(picture, "text", {}) if picture.format == "PNG" else {}
            return text.get(PNG_KIND_KEY)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None

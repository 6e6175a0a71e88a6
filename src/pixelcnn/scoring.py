"""Scores for people: one row per image (nats and bits/dim), written as CSV or JSON lines,
and pictures of where the model is surprised (each image beside its per-pixel NLL map).

Built on the model's public log-probabilities only (``evaluate`` for the per-image nats,
``DensityModel.nll_map`` for the maps), so a row's bits/dim averages to what ``eval`` says.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from pixelcnn.evaluate import Evaluation
from pixelcnn.files import atomic_write
from pixelcnn.units import bits_per_dim

SCORE_FORMATS = (".csv", ".jsonl")
HEATMAP_KIND = "heatmap"  # the PNG tag of the pictures written here


def score_rows(
    evaluation: Evaluation,
    dims: int,
    sources: list[str] | None = None,
    labels: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """One record per scored image: index, source (its file, else its index), label when
    known, nats (-log p(x)) and bits/dim."""
    rows = []
    for index, nats in enumerate(evaluation.nats):
        row: dict[str, Any] = {
            "index": index,
            "source": sources[index] if sources is not None else str(index),
        }
        if labels is not None:
            row["label"] = int(labels[index])
        row["nats"] = float(nats)
        row["bits_per_dim"] = float(bits_per_dim(float(nats), dims))
        rows.append(row)
    return rows


def check_score_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() not in SCORE_FORMATS:
        raise ValueError(f"--out must end in {' or '.join(SCORE_FORMATS)}, got {path.name}")
    return path


# The columns of a score row, in order: every table write_rows writes has one of these
# headers (CSV) or key lists (JSON lines), and nothing else.
SCORE_COLUMNS = (
    ("index", "source", "nats", "bits_per_dim"),
    ("index", "source", "label", "nats", "bits_per_dim"),
)


def is_score_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a table :func:`write_rows` wrote, and so an earlier output that
    may be replaced: recognised positively, line by line (an exact header or key list of
    :data:`SCORE_COLUMNS`, then rows numbered 0, 1, ... holding numbers where the scores
    go). A user's table with an extra column, another order or a note is not one."""
    try:
        with open(path, encoding="utf-8", newline="") as table:
            if Path(path).suffix.lower() == ".jsonl":
                return _is_score_jsonl(table)
            return _is_score_csv(table)
    except (OSError, UnicodeDecodeError, csv.Error):
        return False


def _is_score_csv(table) -> bool:
    rows = csv.reader(table)
    header = tuple(next(rows, ()))
    if header not in SCORE_COLUMNS:
        return False
    for position, row in enumerate(rows):
        if not _is_score_row(dict(zip(header, row, strict=False)), len(row), header, position):
            return False
    return True


def _is_score_jsonl(table) -> bool:
    seen = 0
    for position, line in enumerate(table):
        try:
            record = json.loads(line)
        except ValueError:
            return False
        if not isinstance(record, dict) or tuple(record) not in SCORE_COLUMNS:
            return False
        if not _is_score_row(record, len(record), tuple(record), position):
            return False
        seen += 1
    return seen > 0


def _is_score_row(row: dict[str, Any], width: int, header: tuple, position: int) -> bool:
    """Whether ``row`` (``width`` fields under ``header``) is score row number ``position``."""
    if width != len(header) or str(row["index"]) != str(position):
        return False
    try:
        [float(row[key]) for key in ("nats", "bits_per_dim")]
        if "label" in row:
            int(row["label"])
    except (TypeError, ValueError):
        return False
    return True


def write_rows(rows: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write ``rows`` to a .csv (with a header) or .jsonl file, atomically."""
    path = check_score_path(path)
    if path.suffix.lower() == ".jsonl":
        text = "".join(json.dumps(row) + "\n" for row in rows)
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda temp: Path(temp).write_text(text))
    return path


def heatmap_picture(image: torch.Tensor, nll: torch.Tensor, title: str) -> Image.Image:
    """uint8 image [C, H, W] beside its per-pixel NLL [H, W] (nats, magma colormap, with a
    colour bar) -> one picture."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(6.4, 3.2), dpi=100)
    array = image.permute(1, 2, 0).numpy()
    left.imshow(array[:, :, 0] if array.shape[2] == 1 else array, cmap="gray", vmin=0, vmax=255)
    left.set_title("image")
    shown = right.imshow(nll.numpy(), cmap="magma")
    right.set_title("-log p(pixel | earlier), nats")
    figure.colorbar(shown, ax=right, fraction=0.046, pad=0.04)
    for axes in (left, right):
        axes.set_xticks([])
        axes.set_yticks([])
    figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def heatmap_title(
    index: int,
    bits: float,
    label: int | None = None,
    class_names: list[str] | None = None,
    source: str | None = None,
) -> str:
    """A heatmap's title: the image's label first, where a reader looks for it (with its
    class name when known), then its index (and its file, when it has one), then its
    bits/dim. E.g. "label 7 (sneaker), image 12: 3.104 bits/dim"."""
    parts = []
    if label is not None:
        known = class_names is not None and 0 <= label < len(class_names)
        name = class_names[label] if known else None
        parts.append(f"label {label}" + (f" ({name})" if name and name != str(label) else ""))
    named = source is not None and source != str(index)
    parts.append(f"image {index}" + (f" ({source})" if named else ""))
    return f"{', '.join(parts)}: {bits:.3f} bits/dim"


def most_surprising(nats: np.ndarray, top: int | None) -> list[int]:
    """Indices of the ``top`` highest -log p(x) (all when None), most surprising first."""
    order = np.argsort(-nats, kind="stable")
    return [int(i) for i in (order if top is None else order[:top])]


__all__ = [
    "HEATMAP_KIND",
    "SCORE_COLUMNS",
    "SCORE_FORMATS",
    "check_score_path",
    "heatmap_picture",
    "heatmap_title",
    "is_score_file",
    "most_surprising",
    "score_rows",
    "write_rows",
]

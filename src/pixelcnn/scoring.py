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


_FIELDS = ("index", "source", "nats", "bits_per_dim")  # in every row ("label" when known)


def is_score_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a table :func:`write_rows` wrote (its header, or its first JSON
    record, has the fields of a score row): an earlier output that may be replaced."""
    try:
        with open(path, encoding="utf-8") as table:
            first = table.readline()
    except (OSError, UnicodeDecodeError):
        return False
    if Path(path).suffix.lower() == ".jsonl":
        try:
            record = json.loads(first)
        except ValueError:
            return False
        return isinstance(record, dict) and set(_FIELDS) <= set(record)
    return set(_FIELDS) <= set(first.strip().split(",")) and first.startswith("index,source")


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


def most_surprising(nats: np.ndarray, top: int | None) -> list[int]:
    """Indices of the ``top`` highest -log p(x) (all when None), most surprising first."""
    order = np.argsort(-nats, kind="stable")
    return [int(i) for i in (order if top is None else order[:top])]


__all__ = [
    "HEATMAP_KIND",
    "SCORE_FORMATS",
    "check_score_path",
    "heatmap_picture",
    "is_score_file",
    "most_surprising",
    "score_rows",
    "write_rows",
]

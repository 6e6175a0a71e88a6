"""Training metrics: one JSON object per line, and a PNG plot of the training curve."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pixelcnn.files import atomic_write, open_appending, read_regular
from pixelcnn.limits import available_memory_bytes
from pixelcnn.pictures import PNG_KIND_KEY

CURVE_KIND = "training-curve"  # the PNG tag of the training curve (see pictures.png_kind)


def append_metrics(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line (flushed, so a killed run keeps what it logged)."""
    with open_appending(path) as f:
        f.write((json.dumps(record) + "\n").encode())
        f.flush()


def metrics_text(path: str | os.PathLike, errors: str = "replace") -> str:
    """The text of a metrics file: a regular file (a FIFO at the name is refused, never
    waited on) of at most a quarter of the free memory (a huge one is refused unread);
    ``errors``: how bytes that are not UTF-8 are decoded ("strict" raises ValueError)."""
    data = read_regular(path, available_memory_bytes() // 4, "metrics log")
    return data.decode(errors=errors)


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a JSONL metrics file; a torn last line (killed writer) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in metrics_text(path).splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def keep_metrics_up_to(path: str | os.PathLike, step: int) -> None:
    """Rewrite the metrics file with the records of steps <= ``step`` only: what a run
    resumed from that step's checkpoint logged before (it logs the later steps again)."""
    path = Path(path)
    if not path.exists():
        return
    kept = [r for r in read_metrics(path) if isinstance(r, dict) and r.get("step", 0) <= step]
    text = "".join(json.dumps(record) + "\n" for record in kept)
    atomic_write(path, lambda temp: Path(temp).write_text(text))


def plot_training_curve(records: list[dict[str, Any]], path: str | os.PathLike) -> Path | None:
    """Plot train and test bits/dim against step into a PNG; None when nothing to plot."""
    train = [(r["step"], r["train_bpd"]) for r in records if "train_bpd" in r]
    test = [(r["step"], r["test_bpd"]) for r in records if "test_bpd" in r]
    if not train and not test:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    if train:
        axes.plot(*zip(*train, strict=True), label="train", color="tab:blue")
    if test:
        axes.plot(*zip(*test, strict=True), "o-", label="test", color="tab:orange")
    axes.set_xlabel("step")
    axes.set_ylabel("bits / dim")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    metadata = {PNG_KIND_KEY: CURVE_KIND}
    atomic_write(Path(path), lambda temp: figure.savefig(temp, format="png", metadata=metadata))
    plt.close(figure)
    return Path(path)

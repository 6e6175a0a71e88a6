"""Lossless compression with trained models, side by side with the codecs people use.

Run from the repository root (Fashion-MNIST: ``apt-get install -y dataset-fashion-mnist``;
JPEG-XL through ``pip install imagecodecs``, a benchmark-only extra)::

    python benchmarks/compression.py [--minutes 4] [--cifar-minutes 6] [--update-docs BENCHMARKS.md]

Models: the README's demo run (trained first with the README's command if ``--demo-run`` does
not exist) on the mnist5k test digits; a PixelCNN++ on Fashion-MNIST and one on the exact
CIFAR-10 subset, trained for the equal-time budgets of ``compare_models.py``. For each set:
the model's ideal -log2 p(x), the size of the file ``model.compress`` writes (and of its
streams alone), encode and decode images/s, an exact-round-trip check, and per image PNG
(level 9), lossless WebP (method 6) and lossless JPEG-XL (effort 9), and xz over the whole
raw set.
"""

from __future__ import annotations

import argparse
import lzma
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import (
    CIFAR_EXACT,
    add_budget_arguments,
    environment,
    update_marked_section,
    write_results,
)
from compare_models import train_for_time

import pixelcnn
from pixelcnn.coding import unpack
from pixelcnn.data import load_dataset
from pixelcnn.evaluate import evaluate
from pixelcnn.ood import compressed_bits

DEFAULT_OUT = "benchmarks/results/compression.json"
TASKS = [
    {"task": "demo", "data": "mnist5k"},  # the README's main job
    {"task": "fashion-mnist", "data": "fashion-mnist", "budget": "minutes"},
    {"task": "cifar10-exact", "data": CIFAR_EXACT, "budget": "cifar_minutes"},
]


def jpegxl_bits(images: np.ndarray) -> np.ndarray | None:
    """Lossless JPEG-XL length in bits of each uint8 image [N, C, H, W]; None without
    ``imagecodecs``."""
    try:
        import imagecodecs
    except ImportError:
        return None
    lengths = []
    for image in images:
        array = image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)
        data = imagecodecs.jpegxl_encode(np.ascontiguousarray(array), lossless=True, effort=9)
        lengths.append(8 * len(data))
    return np.array(lengths, dtype=float)


def classical(images: np.ndarray) -> dict[str, float | None]:
    """Bits per sub-pixel of each codec (per image, summed; xz over the raw set)."""
    dims = images.size
    per_image = {
        "png": compressed_bits(images, "png"),
        "webp": compressed_bits(images, "webp"),
        "jpegxl": jpegxl_bits(images),
    }
    result = {k: None if v is None else float(v.sum()) / dims for k, v in per_image.items()}
    raw = lzma.compress(images.tobytes(), preset=9 | lzma.PRESET_EXTREME)
    result["xz_whole_set"] = 8 * len(raw) / dims
    return result


def model_for(task: dict[str, Any], args: argparse.Namespace, scratch: Path):
    """The task's model: the demo run (trained by the README's command if absent), or a
    PixelCNN++ trained for the task's time budget."""
    if "budget" not in task:
        if not Path(args.demo_run).exists():
            from pixelcnn.cli import main as cli

            print(f"training the demo run into {args.demo_run} (the README's main job)")
            if cli(["train", "--out", args.demo_run, "--quiet"]) != 0:
                raise SystemExit("the demo run failed")
        return pixelcnn.load(args.demo_run), {"run": args.demo_run}
    train_set = load_dataset(task["data"], "train")
    torch.manual_seed(args.seed)
    model = pixelcnn.create("pixelcnnpp", train_set.image_shape, levels=256)
    minutes = getattr(args, task["budget"])
    images = torch.from_numpy(train_set.images)
    trained = train_for_time(
        model, images, minutes, scratch / task["task"], seed=args.seed, log=lambda *_: None
    )
    return model, {"minutes": minutes, **trained}


def run_task(task: dict[str, Any], args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    model, training = model_for(task, args, scratch)
    model.eval()
    images = model.quantize(load_dataset(task["data"], "test").images[: args.limit])
    dims = images.numel()
    with torch.no_grad():
        ideal = float(evaluate(model, images, 50).nats.sum()) / math.log(2)
    begin = time.perf_counter()
    blob = model.compress(images, batch_size=args.batch_size)
    encode_seconds = time.perf_counter() - begin
    begin = time.perf_counter()
    decoded = model.decompress(blob)
    decode_seconds = time.perf_counter() - begin
    _, streams = unpack(blob)
    payload = 8 * sum(len(s) for s in streams)
    return {
        "task": task["task"],
        "data": task["data"],
        "model": model.config.model,
        "levels": model.levels,
        "training": training,
        "images": len(images),
        "image_shape": list(model.image_shape),
        "ideal_bits_per_dim": ideal / dims,
        "file_bits_per_dim": 8 * len(blob) / dims,
        "stream_bits_per_dim": payload / dims,
        "file_overhead_percent": 100 * (8 * len(blob) / ideal - 1),
        "stream_overhead_percent": 100 * (payload / ideal - 1),
        "header_bytes": len(blob) - payload // 8,
        "exact": bool(torch.equal(decoded, images)),
        "encode_images_per_s": len(images) / encode_seconds,
        "decode_images_per_s": len(images) / decode_seconds,
        "batch_size": args.batch_size,
        "classical_bits_per_dim": classical(images.numpy()),
    }


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def markdown_table(results: dict[str, Any]) -> str:
    lines = [
        "| set (model) | images | ideal | ours (file) | overhead | PNG | WebP | JPEG-XL "
        "| xz (whole set) | exact | encode img/s | decode img/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in results["runs"]:
        codecs = r["classical_bits_per_dim"]
        lines.append(
            f"| {r['task']} ({r['model']}, L = {r['levels']}) | {r['images']} "
            f"| {r['ideal_bits_per_dim']:.3f} | **{r['file_bits_per_dim']:.3f}** "
            f"| {r['file_overhead_percent']:.2f} % | {_cell(codecs['png'])} "
            f"| {_cell(codecs['webp'])} | {_cell(codecs['jpegxl'])} "
            f"| {_cell(codecs['xz_whole_set'])} | {'yes' if r['exact'] else '**no**'} "
            f"| {r['encode_images_per_s']:.1f} | {r['decode_images_per_s']:.1f} |"
        )
    return "\n".join(lines)


def update_docs(path: str, results: dict[str, Any]) -> None:
    env = results["environment"]
    overheads = ", ".join(
        f"{r['task']} {r['stream_overhead_percent']:.2f} % (header {r['header_bytes']} bytes)"
        for r in results["runs"]
    )
    body = (
        f"Bits per sub-pixel (lower is better):\n\n{markdown_table(results)}\n\n"
        f"Overhead of the range-coded streams alone over the ideal: {overheads}. "
        f"Measured {env['date']} on {env['cpu']} ({env['torch_num_threads']} threads), "
        f"coding batch {results['batch_size']}, with `{env['command']}`."
    )
    update_marked_section(
        path,
        "<!-- compression:start -->",
        "<!-- compression:end -->",
        body,
        heading="Lossless compression",
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_budget_arguments(parser, [t["task"] for t in TASKS], DEFAULT_OUT)
    parser.add_argument("--demo-run", default="runs/demo", help="trained here if absent")
    parser.add_argument("--limit", type=int, default=500, help="test images per set at most")
    parser.add_argument("--batch-size", type=int, default=32, help="images coded together")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "environment": environment(__file__, argv),
        "batch_size": args.batch_size,
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as scratch:
        for task in (t for t in TASKS if t["task"] in args.tasks):
            results["runs"].append(run_task(task, args, Path(scratch)))
            print(markdown_table({"runs": results["runs"][-1:]}).splitlines()[-1], flush=True)
    write_results(results, args.out, args.update_docs, update_docs, markdown_table(results))
    return results


if __name__ == "__main__":
    main()

"""Training from a prepared dataset on disk against training from memory: steps per second
and the peak memory of the training process, side by side in one run; and how fast
``prepare-data`` converts an npz and a folder of PNGs.

Every training case runs in a process of its own (its peak resident memory is that
process's own), the cases taking turns for ``--rounds`` rounds, each round starting from the
next case (so no case always runs first); numbers are medians.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import environment, measured, update_marked_section, write_results
from PIL import Image

import pixelcnn
from pixelcnn.data import load_dataset
from pixelcnn.data.prepare import prepare_dataset
from pixelcnn.train import Trainer, TrainOptions
from pixelcnn.train.data import training_data
from pixelcnn.train.distributed import SINGLE

DEFAULT_OUT = "benchmarks/results/streaming.json"
DOCS_START, DOCS_END = "<!-- streaming:start -->", "<!-- streaming:end -->"
# (label, preset): the tiny network's short steps show the reading cost at its largest
MODELS = [("gated tiny", "tiny"), ("gated default", "default")]
# (label, where the images are, DataLoader workers)
CASES = [
    ("memory", "npz", 0),
    ("disk, 0 workers", "prepared", 0),
    ("disk, 1 worker", "prepared", 1),
    ("disk, 2 workers", "prepared", 2),
]


def make_data(folder: Path, count: int, pictures: int, seed: int) -> dict[str, Any]:
    """A random RGB 32x32 npz of ``count`` train images (+ 100 test), prepared; a folder of
    ``pictures`` PNGs, prepared. -> the paths and each preparation's images/s."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (count + 100, 32, 32, 3), dtype=np.uint8)
    np.savez(folder / "set.npz", x_train=x[:count], x_test=x[count:])
    started = time.perf_counter()
    prepare_dataset(folder / "set.npz", folder / "prepared")
    npz_seconds = time.perf_counter() - started
    (folder / "pictures").mkdir()
    for i in range(pictures):
        Image.fromarray(x[i]).save(folder / "pictures" / f"{i:06d}.png")
    started = time.perf_counter()
    prepare_dataset(folder / "pictures", folder / "pictures_prepared")
    folder_seconds = time.perf_counter() - started
    return {
        "images": count,
        "mb": round(x[:count].nbytes / 1e6, 1),
        "prepare_npz_images_per_s": (count + 100) / npz_seconds,
        "prepare_folder_images_per_s": pictures / folder_seconds,
        "pictures": pictures,
    }


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Train ``args.steps`` steps from the npz (in memory) or the prepared directory,
    timing the steps after ``args.warmup``; the process's peak resident memory."""
    torch.manual_seed(args.seed)
    model = pixelcnn.create("gated", (3, 32, 32), preset=args.preset)
    images = load_dataset(args.data, "train").images
    images = model.quantize(torch.from_numpy(images)) if args.source == "npz" else images
    if args.source != "npz":
        images = images.snapped(model.quantizer)
    options = TrainOptions(
        steps=args.warmup + args.steps, batch_size=args.batch, workers=args.workers,
        progress=False, tensorboard=False, seed=args.seed,
    )  # fmt: skip
    data = training_data(model, images, None, options, SINGLE)
    trainer = Trainer(model, options)
    model.train()
    for step in range(args.warmup):
        trainer.step(step, *data.batch(step))
    started, waiting = time.perf_counter(), 0.0
    for step in range(args.warmup, args.warmup + args.steps):
        asked = time.perf_counter()
        batch = data.batch(step)
        waiting += time.perf_counter() - asked  # what the step waited for its images
        trainer.step(step, *batch)
    seconds = time.perf_counter() - started
    data.close()
    gc.collect()  # the loader's workers end with it
    return {
        "steps_per_s": args.steps / seconds,
        "batch_ms": 1000 * waiting / args.steps,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # the largest reading worker (its pages shared with the trainer count in both)
        "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def run_worker(args, folder: Path, preset: str, source: str, workers: int) -> dict[str, Any]:
    data = folder / ("set.npz" if source == "npz" else "prepared")
    command = [
        sys.executable, __file__, "--worker", "--data", str(data), "--source", source,
        "--preset", preset, "--workers", str(workers), "--steps", str(args.steps),
        "--warmup", str(args.warmup), "--batch", str(args.batch), "--seed", str(args.seed),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"environment": environment(__file__, args.argv)}
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        results["data"] = make_data(folder, args.images, args.pictures, args.seed)
        models = []
        for label, preset in MODELS[: args.models]:
            rounds = []
            for r in range(args.rounds):  # the cases take turns, each round from another
                order = [(i + r) % len(CASES) for i in range(len(CASES))]
                measured = {i: run_worker(args, folder, preset, *CASES[i][1:]) for i in order}
                rounds.append([measured[i] for i in range(len(CASES))])
            rows = []
            for i, (case, _, workers) in enumerate(CASES):
                values = [r[i] for r in rounds]
                rows.append(
                    {
                        "case": case,
                        "workers": workers,
                        "steps_per_s": statistics.median(v["steps_per_s"] for v in values),
                        "batch_ms": statistics.median(v["batch_ms"] for v in values),
                        "peak_rss_mb": statistics.median(v["peak_rss_mb"] for v in values),
                        "worker_peak_rss_mb": statistics.median(
                            v["worker_peak_rss_mb"] for v in values
                        ),
                        "rounds": [v["steps_per_s"] for v in values],
                    }
                )
            models.append({"model": label, "batch": args.batch, "cases": rows})
        results["models"] = models
    return results


def markdown(results: dict[str, Any]) -> str:
    data = results["data"]
    lines = [
        "| model | images from | train steps/s | ÷ memory | batch wait ms | peak RSS MB "
        "| reading worker MB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for model in results["models"]:
        memory = model["cases"][0]["steps_per_s"]
        for row in model["cases"]:
            lines.append(
                f"| {model['model']} (batch {model['batch']}) | {row['case']} | "
                f"{row['steps_per_s']:.2f} | {row['steps_per_s'] / memory:.2f}× | "
                f"{row['batch_ms']:.2f} | "
                f"{row['peak_rss_mb']:.0f} | "
                + (f"{row['worker_peak_rss_mb']:.0f} |" if row["workers"] else "– |")
            )
    lines.append("")
    lines.append(
        f"Training set: {data['images']} random RGB 32×32 images ({data['mb']} MB). "
        f"`prepare-data` converted the npz at {data['prepare_npz_images_per_s']:.0f} images/s "
        f"and a folder of {data['pictures']} PNGs at "
        f"{data['prepare_folder_images_per_s']:.0f} images/s."
    )
    return "\n".join(lines)


def update_docs(path: str, results: dict[str, Any]) -> None:
    body = f"{markdown(results)}\n\n{measured(results['environment'])}"
    update_marked_section(path, DOCS_START, DOCS_END, body, "Training from disk")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50_000, help="training images")
    parser.add_argument("--pictures", type=int, default=2000, help="PNG files prepared")
    parser.add_argument("--models", type=int, default=len(MODELS), help="the first N of MODELS")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="seconds, for the tests")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--update-docs", default=None, metavar="MARKDOWN")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.quick:
        args.images, args.pictures, args.models = 300, 20, 1
        args.steps, args.warmup, args.batch, args.rounds = 3, 1, 8, 1
    return args


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.worker:  # print the measurement as one JSON line for the parent
        print(json.dumps(worker(args)))
        return None
    results = run(args)
    write_results(results, args.out, args.update_docs, update_docs, markdown(results))
    return results


if __name__ == "__main__":
    main()

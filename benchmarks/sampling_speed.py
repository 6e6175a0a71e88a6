"""Sampling speed: naive against cached generation, side by side in one run.

Run from the repository root::

    python benchmarks/sampling_speed.py [--quick] [--out benchmarks/results/sampling_speed.json]
                                        [--update-docs BENCHMARKS.md]

For each model in :data:`CASES` (default configurations, 256 levels, random weights: the
cost of a step does not depend on what the weights learned) and each batch size, the same
model samples with ``method="naive"`` (one whole network pass per draw) and
``method="cached"`` (per-layer queues, constant work per pixel) from the same random
stream. The script records seconds per batch, images per second, the speed-up, and whether
the two methods drew identical images (they must). Cached timings are the median of a few
repeats after one warm-up; the much slower naive runs are timed once. One more cached run
counts its tensor operations (ATen calls) per pixel, which with the time gives the average
cost of one operation: small, many operations are what a cached step is made of.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import torch
from common import environment, loadavg, torch_threads, update_marked_section, write_results
from torch.utils._python_dispatch import TorchDispatchMode

import pixelcnn

DEFAULT_OUT = "benchmarks/results/sampling_speed.json"
DOCS_START = "<!-- sampling:start -->"
DOCS_END = "<!-- sampling:end -->"
SCHEMA_VERSION = 1

# The models measured, one line each; ``model``/``preset`` go to ``pixelcnn.create``.
CASES: list[dict[str, Any]] = [
    {"name": "gated", "model": "gated", "image_shape": (1, 28, 28), "preset": "default"},
    {"name": "pixelcnnpp", "model": "pixelcnnpp", "image_shape": (3, 32, 32), "preset": "default"},
    {"name": "pixelsnail", "model": "pixelsnail", "image_shape": (3, 32, 32), "preset": "default"},
]
# --quick: tiny images, tiny nets
QUICK_SHAPES = {"gated": (1, 8, 8), "pixelcnnpp": (3, 8, 8), "pixelsnail": (3, 8, 8)}


class OperationCounter(TorchDispatchMode):
    """Counts the tensor operations (ATen calls) run inside it."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def timed_sample(model: pixelcnn.DensityModel, batch: int, method: str, seed: int):
    """(seconds, images) of one call to ``model.sample``."""
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    images = model.sample(batch, generator=generator, method=method)
    return time.perf_counter() - start, images


def benchmark_case(case: dict[str, Any], batch: int, args: argparse.Namespace) -> dict[str, Any]:
    shape = QUICK_SHAPES[case["model"]] if args.quick else case["image_shape"]
    preset = "tiny" if args.quick else case["preset"]
    torch.manual_seed(args.seed)
    model = pixelcnn.create(case["model"], shape, levels=256, preset=preset)
    timed_sample(model, batch, "cached", args.seed)  # warm-up (allocator, first-call costs)
    cached, cached_images = [], None
    for _ in range(args.repeats):
        seconds, cached_images = timed_sample(model, batch, "cached", args.seed)
        cached.append(seconds)
    naive_seconds, naive_images = timed_sample(model, batch, "naive", args.seed)
    cached_seconds = statistics.median(cached)
    with OperationCounter() as counter:  # what a cached step costs: a chain of small ops
        timed_sample(model, batch, "cached", args.seed)
    pixels = shape[1] * shape[2]
    return {
        "name": case["name"],
        "model": case["model"],
        "preset": preset,
        "image_shape": list(shape),
        "batch": batch,
        "naive_seconds": round(naive_seconds, 4),
        "cached_seconds": round(cached_seconds, 4),
        "cached_seconds_all": [round(s, 4) for s in cached],
        "naive_images_per_second": round(batch / naive_seconds, 3),
        "cached_images_per_second": round(batch / cached_seconds, 3),
        "speedup": round(naive_seconds / cached_seconds, 2),
        "cached_operations_per_pixel": round(counter.count / pixels, 1),
        "cached_microseconds_per_operation": round(cached_seconds / counter.count * 1e6, 2),
        "identical_images": bool(torch.equal(naive_images, cached_images)),
    }


def markdown_table(results: dict[str, Any]) -> str:
    lines = [
        "| model | image | batch | naive s | cached s | naive img/s | cached img/s "
        "| speed-up | identical | cached ops/pixel | µs/op |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for row in results["cases"]:
        shape = "×".join(str(v) for v in row["image_shape"][1:] + row["image_shape"][:1])
        lines.append(
            f"| {row['name']} ({row['preset']}) | {shape} | {row['batch']} "
            f"| {row['naive_seconds']:.2f} | {row['cached_seconds']:.3f} "
            f"| {row['naive_images_per_second']:.3g} | {row['cached_images_per_second']:.3g} "
            f"| {row['speedup']:.1f}× | {'yes' if row['identical_images'] else 'NO'} "
            f"| {row['cached_operations_per_pixel']:.0f} "
            f"| {row['cached_microseconds_per_operation']:.1f} |"
        )
    return "\n".join(lines)


def update_docs(path: str, results: dict[str, Any]) -> None:
    env = results["environment"]
    body = (
        f"{markdown_table(results)}\n\n"
        f"Measured {env['date']} on {env['cpu']} ({env['torch_num_threads']} torch threads, "
        f"torch {env['torch']}), by `{env['command']}`; cached: median of "
        f"{results['repeats']} runs after a warm-up, naive: one run."
    )
    update_marked_section(path, DOCS_START, DOCS_END, body, heading="Sampling speed")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny images and nets (seconds)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"JSON file (default {DEFAULT_OUT})")
    parser.add_argument("--update-docs", metavar="MARKDOWN", help="rewrite its marked section")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=3, help="timed cached runs (median)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for the run")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, write the JSON (and docs), print the table; return the results."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    with torch_threads(args.threads):
        env = environment(__file__, argv)
        cases = [benchmark_case(case, batch, args) for case in CASES for batch in args.batches]
        env["loadavg_end"] = loadavg()
    results = {
        "schema_version": SCHEMA_VERSION,
        "benchmark": "sampling_speed",
        "quick": args.quick,
        "repeats": args.repeats,
        "environment": env,
        "cases": cases,
    }
    write_results(results, args.out, args.update_docs, update_docs, markdown_table(results))
    return results


if __name__ == "__main__":
    main()

"""Training throughput, FLOPs per image and achieved FLOP/s of the pixelcnn models.

Run from the repository root::

    python benchmarks/throughput.py [--quick] [--out benchmarks/results/throughput.json]
                                    [--update-docs BENCHMARKS.md]

One run measures, side by side:

1. training throughput (images/s) of each model in :data:`MODELS`: forward + backward +
   gradient clipping + Adam step on the mean bits/dim, exactly as ``pixelcnn.train`` does;
2. FLOPs per image of one forward pass and of one forward + backward pass, counted with
   ``torch.utils.flop_counter.FlopCounterMode``;
3. the machine's own dense-convolution FLOP/s (plain ``F.conv2d`` forward + backward at
   shapes like the models'), so that each model's achieved FLOP/s can be given as a fraction
   of what this machine reaches on convolutions alone. Absolute numbers drift on a shared
   machine; the fractions drift much less.

Results go to a JSON file, and a Markdown table goes to stdout (and optionally into a
marked section of a Markdown file).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from common import environment, loadavg, torch_threads, update_marked_section, write_results
from torch.utils.flop_counter import FlopCounterMode

import pixelcnn
from pixelcnn.train import TrainOptions, mean_bits_per_dim
from pixelcnn.train.precision import Autocast

DEFAULT_OUT = "benchmarks/results/throughput.json"
DOCS_START = "<!-- throughput:start -->"
DOCS_END = "<!-- throughput:end -->"
SCHEMA_VERSION = 1

# The models measured: one line each. ``model``/``preset``/``hyperparameters`` go straight to
# ``pixelcnn.create``; ``image_shape`` is (C, H, W).
MODELS: list[dict[str, Any]] = [
    {"name": name, "model": name, "image_shape": shape, "preset": "default", "hyperparameters": {}}
    for name in ("pixelcnn", "gated")
    for shape in ((1, 28, 28), (3, 32, 32))
] + [
    {"name": "pixelcnnpp", "model": "pixelcnnpp", "image_shape": (3, 32, 32), "preset": "default"},
    # The paper's configuration: seconds per step on a CPU, so fewer, smaller timed steps;
    # ``heavy`` entries are left out of --quick runs.
    {
        "name": "pixelcnnpp (paper)",
        "model": "pixelcnnpp",
        "image_shape": (3, 32, 32),
        "preset": "paper",
        "heavy": True,
        "batch_size": 8,
        "timing": {"warmup": 1, "repeats": 2, "steps": 1},
    },
    {"name": "pixelsnail", "model": "pixelsnail", "image_shape": (3, 32, 32), "preset": "default"},
    {
        "name": "pixelsnail (paper)",
        "model": "pixelsnail",
        "image_shape": (3, 32, 32),
        "preset": "paper",
        "heavy": True,
        "batch_size": 8,
        "timing": {"warmup": 1, "repeats": 2, "steps": 1},
    },
]

# Dense reference convolutions, [B, C_in, H, W] -> C_out with a k x k kernel, padding k//2.
# The batch is the benchmark's batch size. The channel counts bracket the default models'
# layers (64/32 channels in the residual blocks, 128 and up in the output head).
DENSE_WORKLOADS: list[dict[str, Any]] = [
    {"name": "conv3x3 64->64 @28x28", "in": 64, "out": 64, "kernel": 3, "size": 28},
    {"name": "conv3x3 128->128 @28x28", "in": 128, "out": 128, "kernel": 3, "size": 28},
    {"name": "conv1x1 128->256 @28x28", "in": 128, "out": 256, "kernel": 1, "size": 28},
]

NOTES = [
    "FLOPs are counted by torch.utils.flop_counter.FlopCounterMode: 2 per multiply-add of the "
    "convolutions (and matmuls) actually executed; elementwise work (ReLU, mask multiply, "
    "log-softmax, Adam) is not counted.",
    "MaskedConv2d stores and executes a kernel cropped to the rows up to the centre "
    "((k//2+1) x k taps), so the count is that of the cropped kernel; a masked square k x k "
    "kernel would cost about twice as much for the same function.",
    "Taps masked out inside the cropped kernel (right of the centre, and the centre tap where "
    "the channel groups forbid it) are still counted: they are executed, multiplied by zero.",
    "train FLOPs are forward + backward (input and weight gradients; no input gradient for "
    "the first layer, whose input needs none).",
    "images_per_s is the median over repeats of (steps x batch size) / wall time, each step "
    "being forward + backward + grad-norm clipping + Adam step on mean bits/dim.",
    "fraction_of_dense_conv = achieved training FLOP/s / dense_conv reference FLOP/s, both "
    "measured in this run; the reference is the best per-workload median of plain F.conv2d "
    "forward + backward, measured before and after the models.",
    "Other processes on the machine (e.g. a training job) slow every measurement; see "
    "environment.loadavg_* . Ratios are more stable than absolute numbers, but not immune: "
    "when the cores are oversubscribed, multi-threaded (OpenMP) runs stall at every parallel "
    "region, which hurts a model step (hundreds of small ops) far more than the few large "
    "dense convolutions; compare with --threads 1 when the load average exceeds the cores.",
]


# --------------------------------------------------------------------------- counting
def count_flops(fn: Callable[[], Any]) -> tuple[int, dict[str, int]]:
    """Run ``fn()`` under a FlopCounterMode: (total FLOPs, FLOPs per aten operator)."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    per_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), per_op


def model_flops_per_image(model: pixelcnn.DensityModel, levels: torch.Tensor) -> dict[str, Any]:
    """FLOPs per image of one forward pass and of one forward + backward pass."""
    batch = levels.shape[0]
    with torch.no_grad():
        forward, forward_ops = count_flops(lambda: model(levels))

    def forward_backward() -> None:
        mean_bits_per_dim(model, levels).backward()

    train, train_ops = count_flops(forward_backward)
    model.zero_grad(set_to_none=True)
    return {
        "forward_flops_per_image": forward / batch,
        "train_flops_per_image": train / batch,
        "forward_flops_by_op": forward_ops,
        "train_flops_by_op": train_ops,
    }


# --------------------------------------------------------------------------- timing
def time_repeats(step: Callable[[], Any], warmup: int, repeats: int, steps: int) -> list[float]:
    """Seconds per call of ``step``: ``warmup`` untimed calls, then one mean per repeat."""
    for _ in range(warmup):
        step()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        seconds.append((time.perf_counter() - start) / steps)
    return seconds


def make_train_step(
    model: pixelcnn.DensityModel,
    levels: torch.Tensor,
    learning_rate: float,
    grad_clip: float,
    precision: str = "fp32",
) -> Callable[[], None]:
    """One optimiser step of the training loop on a fixed batch, in ``precision``
    (the loop's own autocast: "bf16" runs the passes in bfloat16)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    autocast = Autocast(levels.device, precision)

    def step() -> None:
        with autocast:
            loss = mean_bits_per_dim(model, levels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        loss.item()  # the loop reads the loss every step

    return step


def random_images(image_shape: tuple[int, int, int], batch: int, seed: int) -> torch.Tensor:
    """uint8 images [batch, C, H, W] of uniform noise (throughput ignores pixel values)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, *image_shape), dtype=torch.uint8, generator=generator)


def benchmark_model(entry: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Parameters, FLOPs per image and training images/s of one entry of :data:`MODELS`."""
    image_shape = tuple(entry["image_shape"])
    torch.manual_seed(args.seed)
    model = pixelcnn.create(
        entry["model"],
        image_shape,
        levels=256,
        preset=entry.get("preset"),
        **entry.get("hyperparameters", {}),
    )
    model.train()
    batch = args.batch_size if args.quick else entry.get("batch_size", args.batch_size)
    timing = {"warmup": args.warmup, "repeats": args.repeats, "steps": args.steps}
    if not args.quick:
        timing.update(entry.get("timing", {}))
    levels = model.images_to_levels(random_images(image_shape, batch, args.seed))
    flops = model_flops_per_image(model, levels)
    rates = {}
    for precision in args.precisions:  # side by side, the same model and batch
        step = make_train_step(model, levels, args.learning_rate, args.grad_clip, precision)
        seconds = time_repeats(step, timing["warmup"], timing["repeats"], timing["steps"])
        rates[precision] = [batch / s for s in seconds]
    per_repeat = rates[args.precisions[0]]
    images_per_s = statistics.median(per_repeat)
    by_precision = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "name": entry["name"],
        "model": entry["model"],
        "image_shape": list(image_shape),
        "preset": entry.get("preset"),
        "hyperparameters": model.config.hyperparameters,
        "parameters": sum(p.numel() for p in model.parameters()),
        **flops,
        "images_per_s": images_per_s,
        "images_per_s_repeats": per_repeat,
        "batch_size": batch,
        "seconds_per_step_median": batch / images_per_s,
        "achieved_train_flops_per_s": flops["train_flops_per_image"] * images_per_s,
        "precision": args.precisions[0],
        "images_per_s_by_precision": by_precision,
        "images_per_s_by_precision_repeats": rates,
    }


def dense_conv_step(workload: dict[str, Any], batch: int, seed: int) -> Callable[[], None]:
    """Forward + backward of one plain dense convolution, as a middle layer would run it."""
    generator = torch.Generator().manual_seed(seed)
    size, k = workload["size"], workload["kernel"]
    x = torch.randn(batch, workload["in"], size, size, generator=generator).requires_grad_()
    w = torch.randn(workload["out"], workload["in"], k, k, generator=generator)
    w = (w / math.sqrt(workload["in"] * k * k)).requires_grad_()
    b = torch.zeros(workload["out"], requires_grad=True)

    def step() -> None:
        x.grad = w.grad = b.grad = None
        F.conv2d(x, w, b, padding=k // 2).sum().backward()

    return step


def benchmark_dense(args: argparse.Namespace) -> list[dict[str, Any]]:
    """FLOPs and seconds per forward + backward of every dense reference workload."""
    results = []
    for workload in DENSE_WORKLOADS:
        step = dense_conv_step(workload, args.batch_size, args.seed)
        flops, _ = count_flops(step)
        seconds = time_repeats(step, args.warmup, args.repeats, args.dense_steps)
        results.append({**workload, "batch": args.batch_size, "flops": flops, "seconds": seconds})
    return results


def summarise_dense(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-workload median FLOP/s over the repeats before and after; the best is the reference."""
    workloads = []
    for first, second in zip(before, after, strict=True):
        rates = [first["flops"] / s for s in first["seconds"] + second["seconds"]]
        workloads.append(
            {
                "name": first["name"],
                "shape": [first["batch"], first["in"], first["size"], first["size"]],
                "out_channels": first["out"],
                "kernel": first["kernel"],
                "train_flops": first["flops"],
                "flops_per_s_median": statistics.median(rates),
                "flops_per_s_before": [first["flops"] / s for s in first["seconds"]],
                "flops_per_s_after": [second["flops"] / s for s in second["seconds"]],
            }
        )
    best = max(workloads, key=lambda w: w["flops_per_s_median"])
    return {
        "reference_flops_per_s": best["flops_per_s_median"],
        "reference_workload": best["name"],
        "workloads": workloads,
    }


# --------------------------------------------------------------------------- report
def add_ratios(models: list[dict[str, Any]], dense: dict[str, Any]) -> None:
    """Give each model its achieved FLOP/s as a fraction of the dense-conv reference."""
    reference = dense["reference_flops_per_s"]
    for result in models:
        result["fraction_of_dense_conv"] = result["achieved_train_flops_per_s"] / reference


def _shape_text(shape: list[int]) -> str:
    channels, height, width = shape
    return f"{height}×{width}×{channels}"


def markdown_table(results: dict[str, Any]) -> str:
    """The results as a Markdown table (one row per model) and a line about the reference."""
    header = (
        "| model | image shape | params | GFLOPs/image fwd | GFLOPs/image train | images/s "
        "| achieved GFLOP/s | fraction of dense conv |"
    )
    others = [p for p in results["precisions"][1:]]
    header += "".join(f" {p} images/s | {p} / {results['precisions'][0]} |" for p in others)
    lines = [header, "| --- | --- |" + " ---: |" * (6 + 2 * len(others))]
    for r in results["models"]:
        rates = r["images_per_s_by_precision"]
        lines.append(
            f"| {r['name']} | {_shape_text(r['image_shape'])} | {r['parameters']:,} "
            f"| {r['forward_flops_per_image'] / 1e9:.3f} | {r['train_flops_per_image'] / 1e9:.3f} "
            f"| {r['images_per_s']:.1f} | {r['achieved_train_flops_per_s'] / 1e9:.1f} "
            f"| {r['fraction_of_dense_conv']:.2f} |"
            + "".join(f" {rates[p]:.1f} | {rates[p] / r['images_per_s']:.2f} |" for p in others)
        )
    dense, env = results["dense_conv"], results["environment"]
    lines.append("")
    lines.append(
        f"Dense-conv reference: {dense['reference_flops_per_s'] / 1e9:.1f} GFLOP/s "
        f"({dense['reference_workload']}, forward + backward, batch {results['batch_size']}); "
        f"torch {env['torch']}, {env['torch_num_threads']} threads, {env['cpu']}."
    )
    return "\n".join(lines)


def update_docs(path: str | os.PathLike, results: dict[str, Any]) -> None:
    """Replace the marked throughput section of ``path`` (append one if not marked)."""
    env = results["environment"]
    body = f"{markdown_table(results)}\n\nMeasured {env['date']} with `{env['command']}`."
    update_marked_section(path, DOCS_START, DOCS_END, body, heading="Training throughput")


# --------------------------------------------------------------------------- driver
def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options; ``--quick`` shrinks every count for a smoke test."""
    defaults = TrainOptions()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (a few seconds)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"JSON file (default {DEFAULT_OUT})")
    parser.add_argument("--update-docs", metavar="MARKDOWN", help="rewrite its marked section")
    parser.add_argument("--batch-size", type=int, help="images per step (default 32; quick 4)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 2)")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 5)")
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["fp32", "bf16"],
        choices=["fp32", "bf16"],
        help="training arithmetic to time side by side; the first gives the FLOP/s columns",
    )
    parser.add_argument("--steps", type=int, help="training steps per repeat (default 3)")
    parser.add_argument("--dense-steps", type=int, help="dense-conv steps per repeat (default 3)")
    parser.add_argument(
        "--threads", type=int, help="torch.set_num_threads for the run (default: leave as is)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--grad-clip", type=float, default=defaults.grad_clip)
    args = parser.parse_args(argv)
    full = {"batch_size": 32, "warmup": 2, "repeats": 5, "steps": 3, "dense_steps": 3}
    quick = {"batch_size": 4, "warmup": 1, "repeats": 2, "steps": 1, "dense_steps": 1}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
        if getattr(args, name) < (0 if name == "warmup" else 1):
            parser.error(f"--{name.replace('_', '-')} is too small: {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    return args


def run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Measure everything and return the results as a JSON-ready dict."""
    env = environment(__file__, argv)
    dense_before = benchmark_dense(args)
    entries = [e for e in MODELS if not (args.quick and e.get("heavy"))]
    models = [benchmark_model(entry, args) for entry in entries]
    dense = summarise_dense(dense_before, benchmark_dense(args))
    add_ratios(models, dense)
    env["loadavg_end"] = loadavg()
    return {
        "schema_version": SCHEMA_VERSION,
        "benchmark": "throughput",
        "quick": args.quick,
        "batch_size": args.batch_size,
        "precisions": args.precisions,
        "timing": {
            "warmup": args.warmup,
            "repeats": args.repeats,
            "steps_per_repeat": args.steps,
            "dense_steps_per_repeat": args.dense_steps,
            "statistic": "median over repeats",
            "clock": "time.perf_counter",
        },
        "training_step": {
            "loss": "mean bits/dim",
            "optimizer": "Adam",
            "learning_rate": args.learning_rate,
            "grad_clip": args.grad_clip,
        },
        "environment": env,
        "notes": NOTES,
        "dense_conv": dense,
        "models": models,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, write the JSON (and docs), print the table; return the results."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    with torch_threads(args.threads):
        results = run(args, argv)
    write_results(results, args.out, args.update_docs, update_docs, markdown_table(results))
    return results


if __name__ == "__main__":
    main()

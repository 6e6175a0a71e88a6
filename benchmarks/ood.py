"""Out-of-distribution detection from exact likelihoods: the trap and the two fixes, measured.

Run from the repository root (Fashion-MNIST: ``apt-get install -y dataset-fashion-mnist``)::

    python benchmarks/ood.py [--minutes 4] [--cifar-minutes 6] [--update-docs BENCHMARKS.md]

For each task a PixelCNN++ (default configuration, L = 256) is trained for the equal-time
budget of ``compare_models.py``, and a background model of the same architecture for as long
on perturbed inputs with L2 weight decay (Ren et al. 2019). Both score the in-distribution
test set and every OOD set once; each method's AUROC, AUPRC and FPR at 95% TPR (the
in-distribution set as the positive class) come from ``pixelcnn.ood``, as in ``pixelcnn ood``.
The OOD sets are other datasets (resized and grey-to-RGB where needed), uniform noise, images
of one random colour, and the in-distribution test set upside down.
"""

from __future__ import annotations

import argparse
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
from pixelcnn.data import load_dataset
from pixelcnn.evaluate import evaluate
from pixelcnn.ood import ScoredSet, evaluate_methods
from pixelcnn.units import bits_per_dim

DEFAULT_OUT = "benchmarks/results/ood.json"
TASKS = [
    {"task": "fashion-mnist", "data": "fashion-mnist", "ood": ["mnist5k", "noise", "constant"]},
    {"task": "mnist5k", "data": "mnist5k", "ood": ["fashion-mnist", "noise", "constant"]},
    {
        "task": "cifar10-exact",
        "data": CIFAR_EXACT,
        "budget": "cifar_minutes",  # the budget of BENCHMARKS.md's CIFAR section
        "ood": ["noise", "constant", "vflip", "fashion-mnist", "mnist5k"],
    },
]
# (column, method, compressor): the complexity score with each lossless codec offered
COLUMNS = [
    ("likelihood", "likelihood", "png"),
    ("complexity (PNG)", "complexity", "png"),
    ("complexity (WebP)", "complexity", "webp"),
    ("ratio", "ratio", "png"),
]


def synthetic_set(name: str, inside: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """uint8 images [count, C, H, W] shaped like ``inside``: uniform noise, one random colour
    per image, or ``inside`` upside down."""
    generator = torch.Generator().manual_seed(seed)
    shape = (count, *inside.shape[1:])
    if name == "noise":
        return torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
    if name == "constant":
        colours = torch.randint(0, 256, (count, shape[1], 1, 1), generator=generator)
        return colours.to(torch.uint8).expand(shape).contiguous()
    if name == "vflip":
        return inside[:count].flip(2).contiguous()
    raise ValueError(f"unknown synthetic set {name!r}")


def ood_images(name: str, inside: torch.Tensor, limit: int, seed: int) -> torch.Tensor:
    """The OOD set ``name`` at the in-distribution images' size and channel count."""
    if name in ("noise", "constant", "vflip"):
        return synthetic_set(name, inside, min(limit, len(inside)), seed)
    channels, size = inside.shape[1], inside.shape[2]
    images = torch.from_numpy(load_dataset(name, "test", size=size).images[:limit])
    if images.shape[1] == 1 and channels == 3:
        images = images.repeat(1, 3, 1, 1)  # grey to RGB, as `pixelcnn ood --rgb`
    return images


def scored(model, background, images: torch.Tensor, batch_size: int) -> tuple[ScoredSet, float]:
    """Both models' -log p of ``images``, and the main model's scoring rate (images/s)."""
    begin = time.perf_counter()
    nats = evaluate(model, images, batch_size).nats
    rate = len(images) / (time.perf_counter() - begin)
    background_nats = evaluate(background, images, batch_size).nats
    return ScoredSet(images.numpy(), nats, background_nats), rate


def run_task(task: dict[str, Any], args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """Train the model and its background model, then score every OOD set against the test set."""
    train_set = load_dataset(task["data"], "train", size=args.size)
    minutes = getattr(args, task.get("budget", "minutes"))
    options = {"batch_size": args.batch_size, "seed": args.seed, "log": lambda *_: None}
    torch.manual_seed(args.seed)
    model = pixelcnn.create("pixelcnnpp", train_set.image_shape, levels=256)
    background = pixelcnn.create("pixelcnnpp", train_set.image_shape, levels=256)
    train_images = torch.from_numpy(train_set.images)
    trained = train_for_time(model, train_images, minutes, scratch / task["task"], **options)
    trained_bg = train_for_time(
        background,
        train_images,
        minutes,
        scratch / f"{task['task']}-background",
        perturb=args.perturb,
        weight_decay=args.weight_decay,
        **options,
    )
    del train_images, train_set
    inside_images = torch.from_numpy(load_dataset(task["data"], "test", size=args.size).images)
    inside_images = inside_images[: args.limit]
    inside, rate = scored(model, background, inside_images, args.score_batch_size)
    dims = int(np.prod(inside_images.shape[1:]))
    run = {"task": task["task"], "in_bits_per_dim": bits_per_dim(inside.nats.mean(), dims)}
    pairs = []
    for name in args.ood or task["ood"]:
        images = ood_images(name, inside_images, args.limit, args.seed)
        outside, _ = scored(model, background, images, args.score_batch_size)
        metrics = {
            column: evaluate_methods([method], inside, outside, compressor)[method]
            for column, method, compressor in COLUMNS
        }
        pairs.append(
            {
                "ood": name,
                "ood_images": len(outside.nats),
                "ood_bits_per_dim": bits_per_dim(outside.nats.mean(), dims),
                "metrics": metrics,
            }
        )
        print(markdown_rows({**run, "pairs": pairs[-1:]}), flush=True)
    return {
        **run,
        "minutes": minutes,
        "model": trained,
        "background": {**trained_bg, "perturb": args.perturb, "weight_decay": args.weight_decay},
        "in_images": len(inside.nats),
        "scoring_images_per_s": rate,
        "pairs": pairs,
    }


def markdown_rows(run: dict[str, Any], metric: str = "auroc") -> str:
    """One table row per OOD set of ``run``: each method's ``metric``."""
    rows = []
    for pair in run["pairs"]:
        cells = " | ".join(f"{pair['metrics'][c][metric]:.3f}" for c, _, _ in COLUMNS)
        rows.append(
            f"| {run['task']} | {pair['ood']} | {run['in_bits_per_dim']:.3f} "
            f"| {pair['ood_bits_per_dim']:.3f} | {cells} |"
        )
    return "\n".join(rows)


def markdown_table(results: dict[str, Any], metric: str = "auroc") -> str:
    methods = " | ".join(c for c, _, _ in COLUMNS)
    lines = [
        f"| in (model) | OOD | bits/dim in | bits/dim OOD | {methods} |",
        "| --- | --- | ---: | ---: |" + " ---: |" * len(COLUMNS),
    ]
    lines += [markdown_rows(run, metric) for run in results["runs"]]
    return "\n".join(lines)


def speed_table(results: dict[str, Any]) -> str:
    lines = [
        "| in (model) | train steps (model / background) | train time | test images "
        "| scoring images/s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for run in results["runs"]:
        model, background = run["model"], run["background"]
        lines.append(
            f"| {run['task']} | {model['steps']} / {background['steps']} "
            f"| {(model['train_seconds'] + background['train_seconds']) / 60:.1f} min "
            f"| {run['in_images']} | {run['scoring_images_per_s']:.0f} |"
        )
    return "\n".join(lines)


def update_docs(path: str, results: dict[str, Any]) -> None:
    env = results["environment"]
    body = (
        f"AUROC (in-distribution positive; 0.5 is chance, below 0.5 ranks the OOD set *more* "
        f"typical):\n\n{markdown_table(results)}\n\n"
        f"FPR at 95% TPR (lower is better):\n\n{markdown_table(results, 'fpr_at_95_tpr')}\n\n"
        f"AUPRC:\n\n{markdown_table(results, 'auprc')}\n\n"
        f"Training and scoring (the main model's rate on the in-distribution test set, "
        f"batch {results['score_batch_size']}):\n\n{speed_table(results)}\n\n"
        f"Measured {env['date']} on {env['cpu']} ({env['torch_num_threads']} threads); "
        f"background models: --perturb {results['perturb']} --weight-decay "
        f"{results['weight_decay']}; with `{env['command']}`."
    )
    update_marked_section(
        path,
        "<!-- ood:start -->",
        "<!-- ood:end -->",
        body,
        heading="Out-of-distribution detection",
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_budget_arguments(parser, [t["task"] for t in TASKS], DEFAULT_OUT)
    parser.add_argument("--ood", nargs="+", default=None, help="these OOD sets instead")
    parser.add_argument("--limit", type=int, default=2000, help="images per set at most")
    parser.add_argument("--perturb", type=float, default=0.2, help="background models' rate")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--size", type=int, default=None, help="resize (smoke tests only)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--score-batch-size", type=int, default=50)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "environment": environment(__file__, argv),
        **{
            k: getattr(args, k)
            for k in ("minutes", "cifar_minutes", "limit", "batch_size", "score_batch_size")
        },
        **{k: getattr(args, k) for k in ("perturb", "weight_decay")},
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as scratch:
        for task in (t for t in TASKS if t["task"] in args.tasks):
            results["runs"].append(run_task(task, args, Path(scratch)))
    table = f"{markdown_table(results)}\n\n{speed_table(results)}"
    write_results(results, args.out, args.update_docs, update_docs, table)
    return results


if __name__ == "__main__":
    main()

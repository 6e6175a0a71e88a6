"""Scoring speed: ``log_prob`` and ``evaluate`` images/s beside the training images/s of
the same model, at every batch size.

Run from the repository root::

    python benchmarks/scoring_speed.py [--quick] [--compile] [--update-docs BENCHMARKS.md]

For each model in :data:`MODELS` (random uint8 images; a pass costs the same whatever the
pixels), side by side:

1. at every batch size in ``--batches``: scoring images/s, by one ``model.log_prob`` call
   per batch and by ``evaluate`` over at least 64 images in batches of that size (what
   ``pixelcnn eval`` / ``score`` / ``ood`` run), with the user and system CPU seconds they
   took; and training images/s (the training step of ``throughput.py``), timed in a
   process of its own;
2. the same scoring "before": a process with glibc's allocator left as it is
   (``PIXELCNN_MALLOC=system``), whole batches at once (``scoring_chunk_bytes = None``) and
   weights recomputed per batch, which is how scoring ran before those fixes. Before,
   after and training processes take ``--rounds`` turns; each number is the median over
   them;
3. bf16 scoring: the model trained briefly on real data (``--bf16-steps``), then its test
   images scored in fp32 and under bfloat16 autocast: per-image bits/dim gap and speed;
4. with ``--compile``: ``torch.compile`` of the network against the eager model, training
   and scoring at batch 32, with the seconds the first (compiling) calls took.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from common import CIFAR_EXACT, environment, measured, update_marked_section, write_results
from throughput import make_train_step, random_images

import pixelcnn
from pixelcnn.data import load_dataset
from pixelcnn.evaluate import evaluate
from pixelcnn.train import TrainOptions, train

DEFAULT_OUT = "benchmarks/results/scoring_speed.json"
DOCS_START = "<!-- scoring:start -->"
DOCS_END = "<!-- scoring:end -->"
BATCHES = [1, 8, 32, 128, 512]
# one line per model: ``data`` is what the bf16 check trains on and scores
MODELS: list[dict[str, Any]] = [
    {"name": "gated", "image_shape": (1, 28, 28), "data": "mnist5k"},
    {"name": "pixelcnnpp", "image_shape": (1, 28, 28), "data": "mnist5k"},
    {"name": "pixelcnnpp", "image_shape": (3, 32, 32), "data": CIFAR_EXACT},
]
COMPILE_BATCH = 32


def label(entry: dict[str, Any]) -> str:
    c, h, w = entry["image_shape"]
    return f"{entry['name']} {h}×{w}×{c}"


def cpu_seconds() -> tuple[float, float]:
    """User and system CPU seconds of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def measure(fn: Callable[[], Any], items: int, seconds: float) -> dict[str, float]:
    """Images/s of ``fn`` (``items`` images a call) over at least ``seconds`` after one
    warm-up call, with the user and system CPU time it took."""
    fn()
    user, system = cpu_seconds()
    calls, start = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    wall = time.perf_counter() - start
    user_after, system_after = cpu_seconds()
    user, system = user_after - user, system_after - system
    return {
        "images_per_s": calls * items / wall,
        "calls": calls,
        "user_s": user,
        "system_s": system,
        "system_over_user": system / user if user else 0.0,
    }


def scorer(model: pixelcnn.DensityModel, images: torch.Tensor) -> Callable[[], None]:
    def score() -> None:
        with torch.no_grad():
            model.log_prob(images)

    return score


def evaluator(model: pixelcnn.DensityModel, images: torch.Tensor, batch: int, before: bool):
    """``evaluate`` over ``images`` in batches; before the fixes it was a loop of log_prob
    calls in eval mode (no weights kept between batches)."""
    if before:

        def score() -> None:
            with torch.no_grad():
                for start in range(0, len(images), batch):
                    model.log_prob(images[start : start + batch])

        return score
    return lambda: evaluate(model, images, batch)


def make_model(entry: dict[str, Any], seed: int) -> pixelcnn.DensityModel:
    torch.manual_seed(seed)
    return pixelcnn.create(entry["name"], tuple(entry["image_shape"]), levels=256)


def worker(entry: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """One process's measurements of one model at every batch size: log_prob and evaluate
    ("before" or "after" the fixes), or the training step (a process of its own, so that
    training's memory does not sit beside the scoring measurements)."""
    images = random_images(tuple(entry["image_shape"]), max(*args.batches, 64), args.seed)
    rows = []
    if args.worker == "training":
        training = make_model(entry, args.seed).train()
        for b in args.batches:
            step = make_train_step(training, training.images_to_levels(images[:b]), 1e-3, 1.0)
            rows.append({"batch": b, "training": measure(step, b, args.seconds)})
        return rows
    before = args.worker == "before"
    scoring = make_model(entry, args.seed).eval()
    if before:
        scoring.scoring_chunk_bytes = None
    for b in args.batches:
        many = images[: max(b, 64)]  # evaluate: at least 64 images in batches of b
        row = {
            "batch": b,
            "log_prob": measure(scorer(scoring, images[:b]), b, args.seconds),
            "evaluate": measure(evaluator(scoring, many, b, before), len(many), args.seconds),
        }
        rows.append(row)
    return rows


def run_worker(kind: str, args: argparse.Namespace) -> list[list[dict[str, Any]]]:
    """Every model's rows from a child process: "before" with glibc's allocator left alone
    (it is set at import) and whole batches, "after" and "training" as the package runs
    now."""
    command = [sys.executable, __file__, "--worker", kind, "--seconds", str(args.seconds)]
    command += ["--batches", *map(str, args.batches), "--models", *map(str, args.models)]
    env = {**os.environ, "PIXELCNN_MALLOC": "system" if kind == "before" else ""}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def interleaved(args: argparse.Namespace) -> list[list[dict[str, Any]]]:
    """Per model and batch, the median over ``--rounds`` of each measurement, "before",
    "after" and "training" processes taking turns (the machine's speed drifts; turns
    spread the drift)."""
    rounds = []
    for _ in range(args.rounds):
        kinds = ("before", "after", "training")
        rounds.append(tuple(run_worker(kind, args) for kind in kinds))
    merged = []
    for m in range(len(args.models)):
        rows = []
        for i, b in enumerate(args.batches):
            row: dict[str, Any] = {"batch": b}
            for side, prefix in ((0, "before_"), (1, ""), (2, "")):
                for key in rounds[0][side][m][i]:
                    if key == "batch":
                        continue
                    values = [r[side][m][i][key] for r in rounds]
                    row[prefix + key] = {
                        name: statistics.median(v[name] for v in values) for name in values[0]
                    }
                    row[prefix + key]["rounds"] = [v["images_per_s"] for v in values]
            rows.append(row)
        merged.append(rows)
    return merged


def bf16_check(entry: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Train briefly on real data, then score the test images in fp32 and in bf16."""
    source = entry["data"]
    if not Path(source).suffix or Path(source).exists():
        train_set = load_dataset(source, "train")
        test_images = load_dataset(source, "test").images[: args.bf16_images]
    else:  # the CIFAR file is not on this machine: random images, said in the results
        source = "random"
        train_set = None
        test_images = random_images(tuple(entry["image_shape"]), args.bf16_images, args.seed)
    model = make_model(entry, args.seed)
    if train_set is not None and args.bf16_steps:
        options = TrainOptions.for_network(
            entry["name"], steps=args.bf16_steps, eval_every=0, checkpoint_every=0,
            log_every=0, progress=False, seed=args.seed,
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as scratch:
            train(model, model.quantize(train_set.images), None, options, scratch, log=None)
    model.eval()
    images = model.quantize(torch.as_tensor(test_images))
    dims = math.prod(model.image_shape)
    with torch.no_grad():
        exact = model.log_prob(images).double()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = model.log_prob(images).double()
    gap = (exact - fast).abs() / (dims * math.log(2))
    batch = min(128, len(images))

    def bf16() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            scorer(model, images[:batch])()

    speeds = in_turns({"fp32": scorer(model, images[:batch]), "bf16": bf16}, batch, args)
    return {
        "data": source,
        "train_steps": args.bf16_steps if train_set is not None else 0,
        "images": len(images),
        "fp32_bits_per_dim": float(-exact.mean() / (dims * math.log(2))),
        "bf16_bits_per_dim": float(-fast.mean() / (dims * math.log(2))),
        "max_gap_bits_per_dim": float(gap.max()),
        "mean_gap_bits_per_dim": float(gap.mean()),
        "batch": batch,
        "fp32_images_per_s": speeds["fp32"],
        "bf16_images_per_s": speeds["bf16"],
    }


def in_turns(
    calls: dict[str, Callable[[], Any]], items: int, args: argparse.Namespace
) -> dict[str, float]:
    """Median images/s of each call over ``--rounds``, the calls taking turns."""
    rates: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, fn in calls.items():
            rates[name].append(measure(fn, items, args.seconds)["images_per_s"])
    return {name: statistics.median(values) for name, values in rates.items()}


def compile_check(entry: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """torch.compile of the network against the same model eager, taking turns: training
    and scoring images/s at COMPILE_BATCH, and the seconds the first (compiling) calls took."""
    torch._dynamo.reset()
    eager, compiled = make_model(entry, args.seed), make_model(entry, args.seed)
    compiled.network.compile()
    images = random_images(tuple(entry["image_shape"]), COMPILE_BATCH, args.seed)
    result: dict[str, Any] = {"batch": COMPILE_BATCH}
    for name, train_mode in (("train", True), ("score", False)):
        calls = {}
        for tag, model in (("eager", eager), ("compiled", compiled)):
            model.train(train_mode)
            levels = model.images_to_levels(images)
            calls[tag] = (
                make_train_step(model, levels, 1e-3, 1.0) if train_mode else scorer(model, images)
            )
        start = time.perf_counter()
        calls["compiled"]()
        result[f"{name}_first_call_s"] = time.perf_counter() - start
        speeds = in_turns(calls, COMPILE_BATCH, args)
        result[f"{name}_eager_images_per_s"] = speeds["eager"]
        result[f"{name}_compiled_images_per_s"] = speeds["compiled"]
    torch._dynamo.reset()
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    chosen = [MODELS[i] for i in args.models]
    results: dict[str, Any] = {"environment": environment(__file__, args.argv), "models": []}
    speeds = interleaved(args)
    for entry, rows in zip(chosen, speeds, strict=True):
        print(f"{label(entry)} ...", flush=True)
        row = {"name": entry["name"], "image_shape": list(entry["image_shape"]), "batches": rows}
        row["bf16"] = bf16_check(entry, args)
        if args.compile:
            row["compiled"] = compile_check(entry, args)
        results["models"].append(row)
    results["summary"] = summary(results)
    return results


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The numbers the goals are judged by: the smallest scoring/training ratio (log_prob
    and evaluate), the largest system/user share, the largest bf16 gap."""
    ratios: dict[str, list[float]] = {"log_prob": [], "evaluate": []}
    fractions = []
    for model in results["models"]:
        for row in model["batches"]:
            for key, values in ratios.items():
                values.append(row[key]["images_per_s"] / row["training"]["images_per_s"])
                fractions.append(row[key]["system_over_user"])
    return {
        "min_log_prob_over_training": min(ratios["log_prob"]),
        "min_evaluate_over_training": min(ratios["evaluate"]),
        "max_system_over_user": max(fractions),
        "max_bf16_gap_bits_per_dim": max(m["bf16"]["max_gap_bits_per_dim"] for m in
                                         results["models"]),
    }  # fmt: skip


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| model | batch | train img/s | log_prob img/s | ÷ train | sys / user | "
        "evaluate img/s | ÷ train | sys / user | before: log_prob | before: evaluate | "
        "before: sys / user | after / before (log_prob, evaluate) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for model in results["models"]:
        for row in model["batches"]:
            train_rate = row["training"]["images_per_s"]
            new, ev = row["log_prob"], row["evaluate"]
            old, old_ev = row["before_log_prob"], row["before_evaluate"]
            worst_old = max(old["system_over_user"], old_ev["system_over_user"])
            worst_new = max(new["system_over_user"], ev["system_over_user"])
            lines.append(
                f"| {label(model)} | {row['batch']} | {train_rate:.1f} | "
                f"{new['images_per_s']:.1f} | {new['images_per_s'] / train_rate:.1f}× | "
                f"{new['system_over_user']:.0%} | {ev['images_per_s']:.1f} | "
                f"{ev['images_per_s'] / train_rate:.1f}× | {worst_new:.0%} | "
                f"{old['images_per_s']:.1f} | {old_ev['images_per_s']:.1f} | {worst_old:.0%} | "
                f"{new['images_per_s'] / old['images_per_s']:.2f}×, "
                f"{ev['images_per_s'] / old_ev['images_per_s']:.2f}× |"
            )
    lines += [
        "",
        "| model | data | train steps | test images | fp32 bits/dim | bf16 bits/dim | "
        "max per-image gap | fp32 img/s | bf16 img/s | bf16 / fp32 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model in results["models"]:
        b = model["bf16"]
        lines.append(
            f"| {label(model)} | {Path(b['data']).stem} | {b['train_steps']} | {b['images']} | "
            f"{b['fp32_bits_per_dim']:.4f} | {b['bf16_bits_per_dim']:.4f} | "
            f"{b['max_gap_bits_per_dim']:.4f} | {b['fp32_images_per_s']:.1f} | "
            f"{b['bf16_images_per_s']:.1f} | "
            f"{b['bf16_images_per_s'] / b['fp32_images_per_s']:.2f}× |"
        )
    compiled = [model for model in results["models"] if "compiled" in model]
    if compiled:
        lines += [
            "",
            f"| model (batch {COMPILE_BATCH}) | train img/s eager | compiled | first call s | "
            "score img/s eager | compiled | first call s |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for model in compiled:
            c = model["compiled"]
            cells = []
            for name in ("train", "score"):
                eager, fast = c[f"{name}_eager_images_per_s"], c[f"{name}_compiled_images_per_s"]
                cells += [f"{eager:.1f}", f"{fast:.1f} ({fast / eager:.2f}×)",
                          f"{c[f'{name}_first_call_s']:.0f}"]  # fmt: skip
            lines.append(f"| {label(model)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def update_docs(path: str, results: dict[str, Any]) -> None:
    body = f"{markdown(results)}\n\n{measured(results['environment'])}"
    update_marked_section(path, DOCS_START, DOCS_END, body, "Scoring speed")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=BATCHES)
    parser.add_argument("--models", type=int, nargs="+", default=list(range(len(MODELS))),
                        help="indices into MODELS")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=1.5, help="timing per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="turns of each measurement")
    parser.add_argument("--bf16-steps", type=int, default=200, help="training before bf16")
    parser.add_argument("--bf16-images", type=int, default=500, help="test images scored")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--quick", action="store_true", help="seconds, for the tests")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--update-docs", default=None, metavar="MARKDOWN")
    parser.add_argument("--worker", choices=["before", "after", "training"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.quick:
        args.batches, args.seconds, args.rounds = [1, 4], 0.05, 1
        args.bf16_steps, args.bf16_images = 2, 8
    return args


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.worker:  # print the rows as one JSON line for the parent
        print(json.dumps([worker(MODELS[i], args) for i in args.models]))
        return None
    results = run(args)
    write_results(results, args.out, args.update_docs, update_docs, markdown(results))
    return results


if __name__ == "__main__":
    main()

"""Learning curves of PixelCNN++ training recipes on CPU: test bits/dim against training time.

Run from the repository root::

    python benchmarks/recipe_curves.py --minutes 6 [--candidates NAME ...] [--merge]
        [--update-docs BENCHMARKS.md]

Each candidate is the network's recipe with a few settings changed (learning rate,
warm-up, batch size, bf16 autocast, torch.compile, width and depth, weight-average decay,
dropout). The script measures the candidate's step rate (the first, compiling step's time
taken off the budget), turns ``--minutes`` into a number of steps so the schedule is
planned, trains on the 7728 exact CIFAR-10 training images with ``pixelcnn.train``, and
scores all 1000 exact test images ``--evals`` times on the way. The time axis is the run's
own ``train_seconds`` (wall time inside the steps at the script's thread count; evaluations
and checkpoints excluded), with the process's CPU seconds beside it to show contention:
their ratio is about the thread count when the run had the cores to itself.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import CIFAR_EXACT, environment, measured, torch_threads, update_marked_section

import pixelcnn
from pixelcnn.data import load_dataset
from pixelcnn.train import TrainOptions, train
from pixelcnn.train.metrics import read_metrics
from pixelcnn.train.recorder import METRICS_FILE
from pixelcnn.train.run_dir import ARGS_FILE
from pixelcnn.train.trainer import Trainer

DEFAULT_OUT = "benchmarks/results/recipe_curves.json"
MODEL = "pixelcnnpp"
# Settings each candidate changes: "hp" goes to the network, everything else to
# TrainOptions. "base" is the recipe PixelCNN++ had before this benchmark, "recipe" the
# registry's now; the others change one thing at a time from "fast-lr" unless their name
# says more.
BASE = {"batch_size": 32, "learning_rate": 1e-3, "warmup_steps": 0}
FAST_LR = {**BASE, "learning_rate": 2e-3, "warmup_steps": 100}
CANDIDATES: dict[str, dict[str, Any]] = {
    "base": BASE,
    "recipe": {},
    "fast-lr": FAST_LR,
    "faster-lr": {**BASE, "learning_rate": 4e-3, "warmup_steps": 200},
    "fast-lr-batch16": {**FAST_LR, "batch_size": 16},
    "fast-lr-batch64": {**FAST_LR, "batch_size": 64},
    "fast-lr-bf16": {**FAST_LR, "precision": "bf16"},
    "fast-lr-compile": {**FAST_LR, "compile": True},
    "fast-lr-wide": {**FAST_LR, "hp": {"filters": 48, "resnets_per_stage": 1}},
    "fast-lr-deep": {**FAST_LR, "hp": {"filters": 24, "resnets_per_stage": 3}},
    "fast-lr-ema9995": {**FAST_LR, "ema_decay": 0.9995},
    "fast-lr-ema995": {**FAST_LR, "ema_decay": 0.995},
    "fast-lr-dropout": {**FAST_LR, "hp": {"dropout": 0.1}},
}


RATES: dict[str, tuple[float, float]] = {}  # measured once per cost of a step


def options_of(settings: dict[str, Any], **extra: Any) -> TrainOptions:
    """The network's recipe under a candidate's training settings and ``extra``."""
    given = {key: value for key, value in settings.items() if key != "hp"}
    return TrainOptions.for_network(MODEL, **{**given, **extra})


def step_rate(model, levels: torch.Tensor, options: TrainOptions, steps: int = 30):
    """(steps per second after warm-up, seconds of the first step) of ``options``' training
    step on a copy of ``model``: the first step of a compiled run compiles."""
    trainer = Trainer(copy.deepcopy(model), options)
    batch = options.batch_size

    def run(i: int) -> None:
        trainer.step(i, levels[(i % 8) * batch : (i % 8 + 1) * batch].long(), None)

    begin = time.perf_counter()
    run(0)
    first = time.perf_counter() - begin
    for i in range(1, 5):
        run(i)
    begin = time.perf_counter()
    for i in range(5, 5 + steps):
        run(i)
    return steps / (time.perf_counter() - begin), first


def curve_point(record: dict[str, Any]) -> dict[str, Any]:
    """A point of a learning curve from an evaluation's metrics record."""
    return {
        "step": record["step"],
        "train_minutes": record["train_seconds"] / 60,
        "cpu_minutes": record["cpu_seconds"] / 60,
        "test_bpd": record["test_bpd"],
    }


def run_candidate(name: str, data: dict, args: argparse.Namespace, scratch: Path) -> dict:
    settings = CANDIDATES[name]
    torch.manual_seed(args.seed)
    model = pixelcnn.create(
        MODEL, data["shape"], levels=256, preset=args.preset, **settings.get("hp", {})
    )
    probe_options = options_of(settings, steps=10_000, progress=False, tensorboard=False)
    # Candidates whose steps cost the same (they change the rate, warm-up, average...) get
    # the same measured rate, so the same steps: the probe's noise does not pick a winner.
    cost = json.dumps(
        [
            probe_options.batch_size,
            probe_options.precision,
            probe_options.compile,
            settings.get("hp", {}),
        ],
        sort_keys=True,
    )
    if cost not in RATES:
        probe = model.images_to_levels(data["train"][: 8 * probe_options.batch_size])
        RATES[cost] = step_rate(model, probe, probe_options, args.probe_steps)
    rate, first = RATES[cost]
    steps = max(1, int((args.minutes * 60 - first) * rate))
    options = options_of(
        settings,
        steps=steps,
        seed=args.seed,
        eval_every=max(1, -(-steps // args.evals)),  # the last evaluation at the end
        eval_images=0,  # all 1000
        checkpoint_every=0,
        log_every=0,
        progress=False,
        tensorboard=False,
    )
    print(f"{name}: {rate:.2f} steps/s (first step {first:.1f} s) -> {steps} steps", flush=True)
    where = scratch / name
    train(model, data["train"], data["test"], options, where, log=lambda _: None)
    curve = [curve_point(r) for r in read_metrics(where / METRICS_FILE) if "test_bpd" in r]
    print(
        f"{name}: " + ", ".join(f"{p['train_minutes']:.1f} min {p['test_bpd']:.4f}" for p in curve)
    )
    return {
        "candidate": name,
        "settings": settings,
        "budget_minutes": args.minutes,
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch_size": options.batch_size,
        "steps": steps,
        "steps_per_s_measured": rate,
        "first_step_seconds": first,
        "test_images": len(data["test"]),
        "curve": curve,
        "final_bpd": curve[-1]["test_bpd"],
    }


def run_from_directory(name: str, run_dir: Path, command: str) -> dict:
    """The curve of a finished ``pixelcnn train`` run (``command``, with --eval-images 0):
    its metrics.jsonl's evaluations against its own train_seconds."""
    stored = json.loads((run_dir / ARGS_FILE).read_text())
    words = shlex.split(command)
    precision = stored.get("precision") or (
        words[words.index("--precision") + 1] if "--precision" in words else "fp32"
    )
    settings = {
        "learning_rate": stored["lr"],
        "warmup_steps": stored.get("warmup", 0),
        "batch_size": stored["batch_size"],
        "ema_decay": stored["ema"],
        "precision": precision,
        "hp": dict(item.split("=", 1) for item in stored["hp"]),
    }
    evaluations = [r for r in read_metrics(run_dir / METRICS_FILE) if "test_bpd" in r]
    whole = max(r["test_images"] for r in evaluations)  # --eval-images 0: every one
    curve = [curve_point(r) for r in evaluations if r["test_images"] == whole]
    model = pixelcnn.load(run_dir)
    return {
        "candidate": name,
        "settings": settings,
        "command": command,
        "budget_minutes": round(curve[-1]["train_minutes"]),
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch_size": stored["batch_size"],
        "steps": stored["steps"],
        "test_images": whole,
        "curve": curve,
        "final_bpd": curve[-1]["test_bpd"],
    }


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for run in results["runs"]:
        points = run["curve"]
        axes.plot(
            [p["train_minutes"] for p in points],
            [p["test_bpd"] for p in points],
            marker="o",
            markersize=3,
            label=f"{run['candidate']} ({run['budget_minutes']:g} min plan)",
        )
    if max(run["budget_minutes"] for run in results["runs"]) > 15:  # screens and long runs
        axes.set_xscale("log")
        ticks = [1, 2, 5, 10, 20, 30, 60, 120]
        axes.set_xticks(ticks, [str(t) for t in ticks])
    axes.set_xlabel("training minutes (2 threads; evaluations excluded)")
    axes.set_ylabel("test bits/dim (1000 exact CIFAR-10 images)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown_table(results: dict[str, Any]) -> str:
    lines = [
        "| candidate | settings (the rest: the registry recipe) | params | batch | steps "
        "| planned min | train min | CPU min / train min | test bits/dim |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in sorted(results["runs"], key=lambda r: (r["budget_minutes"], r["final_bpd"])):
        last = run["curve"][-1]
        changes = ", ".join(f"{k}={v}" for k, v in run["settings"].items() if k != "hp") + "".join(
            f", {k}={v}" for k, v in run["settings"].get("hp", {}).items()
        )
        lines.append(
            f"| {run['candidate']} | {changes.strip(', ') or 'the registry recipe'} | "
            f"{run['parameters']:,} | {run['batch_size']} | {run['steps']} | "
            f"{run['budget_minutes']:g} | {last['train_minutes']:.1f} | "
            f"{last['cpu_minutes'] / max(last['train_minutes'], 1e-9):.2f} | "
            f"**{run['final_bpd']:.4f}** |"
        )
    return "\n".join(lines)


def save(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out.with_suffix(".png"))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="training time per run")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=CANDIDATES)
    parser.add_argument("--evals", type=int, default=4, help="test evaluations per run")
    parser.add_argument("--data", default=CIFAR_EXACT)
    # smoke tests: small images, a tiny network, a short probe
    parser.add_argument("--size", type=int, default=None, help="resize the images to SIZE")
    parser.add_argument("--preset", default=None, help="the network's preset")
    parser.add_argument("--probe-steps", type=int, default=30, help="timed steps per probe")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--merge", action="store_true", help="keep the file's other runs")
    parser.add_argument(
        "--add-run",
        nargs=3,
        action="append",
        default=[],
        metavar=("NAME", "RUN", "COMMAND"),
        help="add the curve of a finished pixelcnn train run (evaluated on all 1000 test "
        "images) made by COMMAND, instead of training",
    )
    parser.add_argument("--update-docs", default=None, metavar="MARKDOWN")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    out = Path(args.out)
    results: dict[str, Any] = {"runs": []}
    if args.merge and out.exists():
        results = json.loads(out.read_text())
    for name, run_dir, command in args.add_run:
        run = run_from_directory(name, Path(run_dir), command)
        run["environment"] = environment(__file__, argv)
        results["runs"] = [r for r in results["runs"] if r["candidate"] != name] + [run]
    candidates = [] if args.add_run else args.candidates
    data = {}
    if candidates:  # an added run needs no data
        train_set = load_dataset(args.data, "train", size=args.size)
        test_set = load_dataset(args.data, "test", size=args.size)
        data = {
            "shape": train_set.image_shape,
            "train": torch.as_tensor(train_set.images),
            "test": torch.as_tensor(test_set.images),
        }
    with torch_threads(args.threads), tempfile.TemporaryDirectory() as scratch:
        for name in candidates:
            run = run_candidate(name, data, args, Path(scratch))
            run["environment"] = environment(__file__, argv)
            key = (name, args.minutes)
            results["runs"] = [
                r for r in results["runs"] if (r["candidate"], r["budget_minutes"]) != key
            ] + [run]
            save(results, out)  # after every run
    save(results, out)
    table = markdown_table(results)
    if args.update_docs:
        # one line per command that made the file's runs (a screen, an added run ...)
        commands = {r["environment"]["command"]: r["environment"] for r in results["runs"]}
        when = "\n\n".join(measured(env) for env in commands.values())
        picture = f"![learning curves]({out.with_suffix('.png')})"
        update_marked_section(
            args.update_docs,
            "<!-- recipe:start -->",
            "<!-- recipe:end -->",
            f"{table}\n\n{picture}\n\n{when}",
            "A CPU training recipe, measured",
        )
    print(table)
    return results


if __name__ == "__main__":
    main()

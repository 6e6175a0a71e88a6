"""Training and sampling speed before and after a change: the same work, timed in processes
that import pixelcnn from two source trees, taking turns.

Run from the repository root::

    python benchmarks/before_after.py [--before REV_OR_DIR] [--rounds 3] [--quick]
                                      [--update-docs BENCHMARKS.md]

``--before`` is a git revision (checked out with ``git worktree add --detach`` into a
temporary folder, removed afterwards) or a folder holding a source tree; the default is the
last commit before the performance work of issue 14. "after" is this repository's ``src``.
Each round runs one "before" and one "after" process (the order alternates); each process
times every case in :data:`CASES`, some untimed calls first, then the median images/s over
its repeats: "train" is the training step of ``throughput.py`` (forward, backward,
gradient clipping, Adam, on random uint8 images), "sample" a batch drawn by cached
sampling (``model.sample``; random weights: a step costs the same whatever the weights
learned). Reported: per case the median over the rounds of each side and their ratio. A
single run on a shared machine cannot show a 10 % change; turns in one run can, because
both sides see the same drift.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common import environment, update_marked_section, write_results

DEFAULT_OUT = "benchmarks/results/before_after.json"
DOCS_START = "<!-- before-after:start -->"
DOCS_END = "<!-- before-after:end -->"
# The last commit before issue 14's performance work (glibc allocator, chunked scoring,
# fused gated sampling steps, cheap dropout masks).
DEFAULT_BEFORE = "f7ea6be"
REPOSITORY = Path(__file__).resolve().parents[1]

# One line per model; ``create`` gets model/shape/preset/hyperparameters.
CASES: list[dict[str, Any]] = [
    {"task": "sample", "model": "gated", "image_shape": (1, 28, 28), "batch": 16},
    {"task": "sample", "model": "pixelcnnpp", "image_shape": (3, 32, 32), "batch": 16},
    {"task": "train", "model": "gated", "image_shape": (1, 28, 28), "batch": 32},
    {
        "task": "train",
        "model": "pixelcnnpp",
        "image_shape": (3, 32, 32),
        "hyperparameters": {"resnets_per_stage": 1},
        "batch": 32,
    },
    {"task": "train", "model": "pixelcnnpp", "image_shape": (3, 32, 32), "batch": 32},
    {
        "task": "train",
        "model": "pixelcnnpp",
        "image_shape": (3, 32, 32),
        "preset": "paper",
        "batch": 8,
        "timing": {"warmup": 1, "repeats": 2},
        "heavy": True,  # seconds per step: left out of --quick runs
    },
]
QUICK_SHAPE = (1, 8, 8)
QUICK_TIMING = {"warmup": 1, "repeats": 2}
TIMING = {"warmup": 2, "repeats": 5}


def label(case: dict[str, Any]) -> str:
    """The model, its preset or hyperparameters, as one short name."""
    extra = case.get("preset") or ", ".join(
        f"{k}={v}" for k, v in case.get("hyperparameters", {}).items()
    )
    return f"{case['model']} ({extra or 'default'})"


def measure_case(case: dict[str, Any], quick: bool, seed: int) -> dict[str, Any]:
    """Images/s of one case in this process (whichever pixelcnn it imported)."""
    import torch
    from throughput import make_train_step, random_images, time_repeats

    import pixelcnn

    shape = QUICK_SHAPE if quick else tuple(case["image_shape"])
    batch = 4 if quick else case["batch"]
    timing = QUICK_TIMING if quick else {**TIMING, **case.get("timing", {})}
    torch.manual_seed(seed)
    model = pixelcnn.create(
        case["model"],
        shape,
        levels=256,
        preset="tiny" if quick else case.get("preset"),
        **({} if quick else case.get("hyperparameters", {})),
    )
    if case["task"] == "train":
        levels = model.train().images_to_levels(random_images(shape, batch, seed))
        step = make_train_step(model, levels, learning_rate=1e-4, grad_clip=1.0)
    else:

        def step() -> None:
            model.sample(batch, generator=torch.Generator().manual_seed(seed))

    seconds = time_repeats(step, timing["warmup"], timing["repeats"], steps=1)
    return {"images_per_s": statistics.median(batch / s for s in seconds), "batch": batch}


def worker(args: argparse.Namespace) -> None:
    """Print this process's measurements of the chosen cases as one JSON line."""
    import pixelcnn

    rows = [measure_case(CASES[i], args.quick, args.seed) for i in args.cases]
    print(json.dumps({"pixelcnn": str(Path(pixelcnn.__file__).resolve()), "cases": rows}))


def run_worker(source: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One process importing pixelcnn from ``source`` (a tree's ``src``)."""
    command = [sys.executable, __file__, "--worker", "--seed", str(args.seed)]
    command += ["--cases", *map(str, args.cases)] + (["--quick"] if args.quick else [])
    env = {**os.environ, "PYTHONPATH": str(source)}
    env.pop("PIXELCNN_MALLOC", None)  # each tree runs as it would for a user
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"a worker on {source} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.splitlines()[-1])
    if not Path(result["pixelcnn"]).is_relative_to(source.resolve()):
        raise SystemExit(f"the worker imported {result['pixelcnn']}, not the tree in {source}")
    return result["cases"]


@contextmanager
def before_tree(before: str):
    """The "before" ``src`` folder: ``before`` itself if it is a folder, else a temporary
    git worktree at that revision."""
    if Path(before).is_dir():
        yield Path(before) / "src"
        return
    with tempfile.TemporaryDirectory(prefix="pixelcnn-before-") as folder:
        tree = Path(folder) / "tree"
        git = ["git", "-C", str(REPOSITORY)]
        subprocess.run([*git, "worktree", "add", "--detach", "-q", str(tree), before], check=True)
        try:
            yield tree / "src"
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=False)


def revision(before: str) -> str | None:
    """The full commit hash of ``before`` (None for a folder)."""
    if Path(before).is_dir():
        return None
    done = subprocess.run(
        ["git", "-C", str(REPOSITORY), "rev-parse", f"{before}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Rounds of before/after processes (alternating which goes first); per case the
    median images/s of each side over the rounds, and after / before."""
    after_source = REPOSITORY / "src"
    rounds: list[tuple[list, list]] = []
    with before_tree(args.before) as before_source:
        for turn in range(args.rounds):
            print(f"round {turn + 1} of {args.rounds} ...", flush=True)
            if turn % 2:
                after = run_worker(after_source, args)
                before = run_worker(before_source, args)
            else:
                before = run_worker(before_source, args)
                after = run_worker(after_source, args)
            rounds.append((before, after))
    cases = []
    for k, index in enumerate(args.cases):
        case = CASES[index]
        before = [r[0][k]["images_per_s"] for r in rounds]
        after = [r[1][k]["images_per_s"] for r in rounds]
        cases.append(
            {
                "task": case["task"],
                "model": f"{case['model']} (tiny)" if args.quick else label(case),
                "image_shape": list(QUICK_SHAPE if args.quick else case["image_shape"]),
                "batch": rounds[0][0][k]["batch"],
                "before_images_per_s": statistics.median(before),
                "after_images_per_s": statistics.median(after),
                "ratio": statistics.median(after) / statistics.median(before),
                "before_rounds": before,
                "after_rounds": after,
            }
        )
    return {
        "benchmark": "before_after",
        "quick": args.quick,
        "before": args.before,
        "before_commit": revision(args.before),
        "rounds": args.rounds,
        "timing": QUICK_TIMING if args.quick else TIMING,
        "environment": environment(__file__, args.argv),
        "cases": cases,
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| task | model | image | batch | before img/s | after img/s | after / before |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in results["cases"]:
        channels, height, width = row["image_shape"]
        lines.append(
            f"| {row['task']} | {row['model']} | {height}×{width}×{channels} | {row['batch']} "
            f"| {row['before_images_per_s']:.2f} | {row['after_images_per_s']:.2f} "
            f"| {row['ratio']:.2f}× |"
        )
    return "\n".join(lines)


def update_docs(path: str, results: dict[str, Any]) -> None:
    env = results["environment"]
    before = results["before_commit"] or results["before"]
    body = (
        f"{markdown(results)}\n\n"
        f"Before: `{before[:12]}`; medians over {results['rounds']} rounds of alternating "
        f"processes. Measured {env['date']} on {env['cpu']} ({env['torch_num_threads']} torch "
        f"threads, torch {env['torch']}) by `{env['command']}`."
    )
    update_marked_section(path, DOCS_START, DOCS_END, body, heading="Before and after")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="git revision or source tree")
    parser.add_argument("--rounds", type=int, default=3, help="before/after process pairs")
    parser.add_argument("--cases", type=int, nargs="+", help="indices into CASES (default all)")
    parser.add_argument("--quick", action="store_true", help="tiny models and images (seconds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"JSON file (default {DEFAULT_OUT})")
    parser.add_argument("--update-docs", metavar="MARKDOWN", help="rewrite its marked section")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.cases is None:
        args.cases = [i for i, case in enumerate(CASES) if not (args.quick and case.get("heavy"))]
    if any(not 0 <= i < len(CASES) for i in args.cases):
        parser.error(f"--cases must be indices below {len(CASES)}")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return None
    results = run(args)
    write_results(results, args.out, args.update_docs, update_docs, markdown(results))
    return results


if __name__ == "__main__":
    main()

"""Quality of the README's main job: test bits/dim at L = 256 and nats per image at L = 2.

Run from the repository root::

    python benchmarks/demo_quality.py [--levels 256 2] [--update-docs BENCHMARKS.md]

Each run is exactly the README's main job, ``pixelcnn train MAIN_JOB --out RUN --force`` on
the embedded mnist5k digits, with ``--levels L`` added, followed by an exact
evaluation of the whole held-out split. Results go to JSON, and the sample grids next to it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import environment, update_marked_section, write_results

import pixelcnn
from pixelcnn.cli import main as pixelcnn_main
from pixelcnn.data import load_dataset
from pixelcnn.evaluate import evaluate

DEFAULT_OUT = "benchmarks/results/demo_quality.json"
DOCS_START = "<!-- demo:start -->"
DOCS_END = "<!-- demo:end -->"


# The README's main job is ``pixelcnn train`` with these arguments, then --out and --force
# (tests/test_readme.py checks that the README says exactly this).
MAIN_JOB: list[str] = []


def run_demo(levels: int, run_dir: Path, extra: list[str]) -> dict[str, Any]:
    """Train as the README does with ``levels`` levels, then score the full test split."""
    argv = ["train", *MAIN_JOB, "--out", str(run_dir), "--force", "--quiet", "--levels"]
    argv += [str(levels), *extra]
    start = time.perf_counter()
    status = pixelcnn_main(argv)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"pixelcnn {' '.join(argv)} failed with status {status}")
    model = pixelcnn.load(run_dir)
    args = json.loads((run_dir / "train_args.json").read_text())
    test = load_dataset(args["data"], "test", root=args["data_dir"], size=args["size"])
    condition = torch.as_tensor(test.labels) if model.condition_spec else None
    result = evaluate(model, model.quantize(test.images), condition=condition)
    return {
        "levels": levels,
        "command": "pixelcnn " + " ".join(argv),
        "data": args["data"],
        "steps": args["steps"],
        "train_and_sample_seconds": seconds,
        **result.as_dict(),
    }


def markdown_table(results: dict[str, Any]) -> str:
    lines = [
        "| levels L | data | steps | test bits/dim | test nats/image | images "
        "| train + sample time |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["runs"]:
        lines.append(
            f"| {r['levels']} | {r['data']} | {r['steps']} | {r['bits_per_dim']:.4f} "
            f"| {r['nats_per_image']:.2f} | {r['images']} "
            f"| {r['train_and_sample_seconds'] / 60:.1f} min |"
        )
    return "\n".join(lines)


def update_docs(path: str, results: dict[str, Any]) -> None:
    env = results["environment"]
    grids = " ".join(
        f"![L = {r['levels']} samples]({r['samples']})" for r in results["runs"] if r.get("samples")
    )
    body = (
        f"{markdown_table(results)}\n\n{grids}\n\n"
        f"Measured {env['date']} on {env['cpu']} ({env['torch_num_threads']} threads) "
        f"with `{env['command']}`."
    )
    update_marked_section(path, DOCS_START, DOCS_END, body, heading="Demo quality")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[256, 2])
    parser.add_argument("--out", default=DEFAULT_OUT, help="results JSON")
    parser.add_argument("--update-docs", default=None, metavar="MARKDOWN")
    parser.add_argument(
        "--train-args", default="", help="extra `pixelcnn train` arguments (smoke tests only)"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"environment": environment(__file__, argv), "runs": []}
    with tempfile.TemporaryDirectory() as scratch:
        for levels in args.levels:
            run_dir = Path(scratch) / f"L{levels}"
            run = run_demo(levels, run_dir, args.train_args.split())
            samples = out.parent / f"demo_L{levels}_samples.png"
            shutil.copyfile(run_dir / "samples.png", samples)
            run["samples"] = str(samples)
            results["runs"].append(run)
            print(markdown_table({"runs": [run]}).splitlines()[-1], flush=True)
    write_results(results, out, args.update_docs, update_docs, markdown_table(results))
    return results


if __name__ == "__main__":
    main()

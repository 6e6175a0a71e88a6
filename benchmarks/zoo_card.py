"""Turn a finished training run into a shipped model: ``pretrained:NAME``.

Run from the repository root, after ``pixelcnn train ... --out RUN`` has finished::

    python benchmarks/zoo_card.py RUN NAME --summary "..." --command "pixelcnn train ..."
        [--data-description "..."] [--check-images 16]
    python benchmarks/zoo_card.py --update-docs README.md   # the cards' table

It copies the run's saved model (``config.json``, ``model.safetensors``) and
``train_args.json`` into ``src/pixelcnn/pretrained/NAME/``, measures the model on its whole
test split with ``pixelcnn eval RUN --json`` (the number the card promises), stores the
first ``--check-images`` test images (and labels) in ``check.npz`` with their bits/dim, and
writes ``card.json``: data, network, command, steps, training time from the run's
``metrics.jsonl``, the weights' SHA-256. ``tests/test_pretrained.py`` checks every card.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from common import update_marked_section

import pixelcnn
from pixelcnn import pretrained
from pixelcnn.data import load_dataset
from pixelcnn.evaluate import evaluate
from pixelcnn.model import CONFIG_FILE, WEIGHTS_FILE
from pixelcnn.train.metrics import read_metrics
from pixelcnn.train.recorder import METRICS_FILE
from pixelcnn.train.run_dir import ARGS_FILE


def eval_json(run: Path, *extra: str) -> dict:
    """What ``pixelcnn eval RUN --json`` prints, parsed."""
    command = [sys.executable, "-m", "pixelcnn", "eval", str(run), "--json", *extra]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def cards_table() -> str:
    """The shipped models' cards as a Markdown table."""
    lines = [
        "| name | data (train / test images) | network | params | levels | steps | "
        "training | test bits/dim |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for card in pretrained.cards():
        network = card.network + (", class-conditional" if card.conditional else "")
        lines.append(
            f"| `pretrained:{card.name}` | {card.data} ({card.train_images} / "
            f"{card.test_images}) | {network} | {card.parameters:,} | {card.levels} | "
            f"{card.steps} | {card.train_minutes:.0f} min at {card.threads} threads | "
            f"**{card.test_bits_per_dim:.4f}** |"
        )
    commands = "\n".join(f"- `{card.name}`: `{card.command}`" for card in pretrained.cards())
    return "\n".join(lines) + "\n\nThe commands that trained them:\n\n" + commands


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="?")
    parser.add_argument("name", nargs="?")
    parser.add_argument("--summary")
    parser.add_argument("--command", help="the command that trained the run")
    parser.add_argument("--data-description", default=None)
    parser.add_argument("--check-images", type=int, default=16)
    parser.add_argument("--update-docs", metavar="MARKDOWN", help="rewrite the cards' table")
    args = parser.parse_args(argv)
    if args.update_docs:
        update_marked_section(
            args.update_docs, "<!-- zoo:start -->", "<!-- zoo:end -->", cards_table(), "Zoo"
        )
        print(cards_table())
        return None
    if not (args.run and args.name and args.summary and args.command):
        parser.error("RUN, NAME, --summary and --command are needed to card a run")

    run, target = args.run, pretrained.ZOO / args.name
    model = pixelcnn.load(run)
    train_args = json.loads((run / ARGS_FILE).read_text())
    records = [r for r in read_metrics(run / METRICS_FILE) if "train_seconds" in r]
    last = records[-1]
    if last["step"] != train_args["steps"]:
        raise SystemExit(f"{run} stopped at step {last['step']} of {train_args['steps']}")
    data_name, size = train_args["data"], train_args.get("size")
    train_set = load_dataset(data_name, "train", root=train_args.get("data_dir"), size=size)
    test_set = load_dataset(data_name, "test", root=train_args.get("data_dir"), size=size)
    whole = eval_json(run)

    check_images = model.quantize(torch.as_tensor(test_set.images[: args.check_images]))
    labels = None if test_set.labels is None else np.asarray(test_set.labels[: args.check_images])
    condition = torch.as_tensor(labels) if model.condition_spec else None
    check = evaluate(model, check_images, condition=condition)
    sliced = eval_json(run, "--limit", str(args.check_images))
    if abs(sliced["bits_per_dim"] - check.bits_per_dim) >= 1e-5:  # eval --limit: the same
        raise SystemExit(f"eval --limit gave {sliced['bits_per_dim']}, not {check.bits_per_dim}")

    target.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_FILE, WEIGHTS_FILE, ARGS_FILE):
        shutil.copyfile(run / name, target / name)
    buffer = io.BytesIO()
    arrays = {"images": check_images.numpy()}
    if labels is not None:
        arrays["labels"] = labels
    np.savez_compressed(buffer, **arrays)
    (target / pretrained.CHECK_FILE).write_bytes(buffer.getvalue())
    config = model.config
    card = {
        "name": args.name,
        "summary": args.summary,
        "data": data_name,
        "data_description": args.data_description
        or f"{data_name}: {len(train_set.images)} training, {len(test_set.images)} test images",
        "train_images": len(train_set.images),
        "test_images": whole["images"],
        "network": config.model,
        "hyperparameters": config.hyperparameters,
        "parameters": sum(p.numel() for p in model.parameters()),
        "levels": config.levels,
        "likelihood": config.likelihood,
        "conditional": bool(model.condition_spec),
        "command": args.command,
        "steps": last["step"],
        "train_minutes": round(last["train_seconds"] / 60, 2),
        "cpu_minutes": round(last["cpu_seconds"] / 60, 2),
        "threads": torch.get_num_threads(),
        "test_bits_per_dim": round(whole["bits_per_dim"], 4),
        "sha256": pretrained.weights_digest(target),
        "check": {
            "file": pretrained.CHECK_FILE,
            "source": f"the first {args.check_images} images of the test split",
            "images": args.check_images,
            "bits_per_dim": check.bits_per_dim,
        },
    }
    (target / pretrained.CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))
    return card


if __name__ == "__main__":
    main()

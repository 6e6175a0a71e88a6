"""``pixelcnn pretrained``: the models shipped with the package, and their cards.

Kept in its own module so the parser stays light: nothing of torch is imported here.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``pretrained`` sub-command to the ``pixelcnn`` sub-parsers."""
    parser = commands.add_parser(
        "pretrained",
        help="list the models shipped with pixelcnn (use one as RUN: pretrained:NAME)",
        description=(
            "The models trained by the pixelcnn project and shipped inside the package: no "
            "download. Every command that takes a run directory takes pretrained:NAME in its "
            "place, and pixelcnn.load('pretrained:NAME') opens one in Python."
        ),
    )
    parser.add_argument("name", nargs="?", default=None, help="show this model's whole card")
    parser.add_argument("--json", action="store_true", help="the cards as JSON")
    return parser


def table(cards) -> str:
    """One line per model: name, data, network, size, test bits/dim, training time."""
    rows = [("name", "data", "network", "params", "levels", "test bits/dim", "trained")]
    for card in cards:
        rows.append(
            (
                f"pretrained:{card.name}",
                f"{card.data} ({card.test_images} test)",
                card.network + (" (class-conditional)" if card.conditional else ""),
                f"{card.parameters:,}",
                str(card.levels),
                f"{card.test_bits_per_dim:.4f}",
                f"{card.train_minutes:.0f} min, {card.steps} steps",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def run(args: argparse.Namespace) -> None:
    from pixelcnn import pretrained

    if args.name is not None:
        card = pretrained.card(args.name)
        if args.json:
            print(json.dumps(asdict(card), indent=2))
            return
        for key, value in asdict(card).items():
            print(f"{key}: {value}")
        return
    cards = pretrained.cards()
    if args.json:
        print(json.dumps([asdict(card) for card in cards], indent=2))
    elif not cards:
        print("no pretrained models are installed")
    else:
        print(table(cards))

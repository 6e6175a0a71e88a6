"""``pixelcnn receptive-field``: draw receptive fields measured by gradients as PNG files.

Kept in its own module so the parser stays light: the library is imported only in ``run``.
"""

from __future__ import annotations

import argparse

from pixelcnn.cli.arguments import RUN_HELP, count, path
from pixelcnn.networks import NETWORKS


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``receptive-field`` sub-command to the ``pixelcnn`` sub-parsers."""
    parser = commands.add_parser(
        "receptive-field",
        help="draw receptive fields (measured by gradients) as PNG pictures",
        description=(
            "Write the classic PixelCNN receptive-field pictures (mask A/B stacks, the blind "
            "spot) and, with --run or --model, the field of one model's output pixel."
        ),
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--run", type=path, default=None, help=RUN_HELP)
    source.add_argument(
        "--model",
        default=None,
        choices=sorted(NETWORKS),
        help="also draw a new default-configuration model of this kind on a --size image",
    )
    parser.add_argument("--size", type=count(1), default=7, help="image size of the pictures")
    parser.add_argument("--layers", type=count(1), default=4, help="depth of the classic stacks")
    parser.add_argument(
        "--row", type=count(0), default=None, help="output pixel row (default centre)"
    )
    parser.add_argument("--col", type=count(0), default=None, help="output pixel column")
    parser.add_argument("--out", type=path, required=True, help="directory for the PNG files")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing files of the same names that pixelcnn did not write",
    )
    return parser


def _position(args: argparse.Namespace, model) -> tuple[int, int] | None:
    """(row, col) from --row/--col; a missing one is the centre coordinate."""
    if args.row is None and args.col is None:
        return None
    if model is None:
        raise ValueError("--row/--col choose a pixel of a model: give --run or --model")
    height, width = model.image_shape[1:]
    row = height // 2 if args.row is None else args.row
    col = width // 2 if args.col is None else args.col
    return row, col


def _load_model(args: argparse.Namespace):
    """The model to draw: loaded from --run, new from --model, or None."""
    import pixelcnn

    if args.run is not None:
        return pixelcnn.load(args.run)
    if args.model is not None:
        return pixelcnn.create(args.model, (1, args.size, args.size), levels=2)
    return None


def run(args: argparse.Namespace) -> None:
    """Write the pictures into --out and print their paths, one per line."""
    from pixelcnn.cli.outputs import check_output
    from pixelcnn.receptive_field import (
        FIGURE_KIND,
        check_figure_size,
        figure_paths,
        write_figures,
    )

    check_figure_size(args.size, args.layers)  # before building or loading a model
    model = _load_model(args)
    position = _position(args, model)
    for out in figure_paths(args.out, model is not None):  # before any is written
        check_output(out, FIGURE_KIND, args.overwrite)
    paths = write_figures(args.out, args.size, args.layers, model=model, position=position)
    for written in paths:
        print(written)

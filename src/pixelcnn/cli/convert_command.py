"""``pixelcnn convert``: a checkpoint of another implementation -> a saved pixelcnn model.

Kept in its own module so the parser stays light: the library is imported only in ``run``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pixelcnn.cli.arguments import ImageSize, path

FORMATS = ("pixel-cnn-pp",)


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``convert`` sub-command to the ``pixelcnn`` sub-parsers."""
    parser = commands.add_parser(
        "convert",
        help="import a checkpoint of another PixelCNN++ implementation as a pixelcnn model",
        description=(
            "Convert a PixelCNN++ state dict saved by pclucas14/pixel-cnn-pp "
            "(torch.save(model.state_dict(), ...)) into a saved model (config.json + "
            "model.safetensors) that every command takes as its RUN. The file is read without "
            "running any code from it; the sizes are read off its tensors."
        ),
    )
    parser.add_argument("checkpoint", type=path, help="the .pth state dict")
    parser.add_argument(
        "--format", required=True, choices=FORMATS, help="the implementation that saved it"
    )
    parser.add_argument("--out", type=path, required=True, help="a new or empty directory")
    parser.add_argument(
        "--size",
        action=ImageSize,
        default=None,
        metavar="SIZE",
        help="the image size the model is for (default: 28 for one channel, 32 for three, "
        "as the reference trained them; the network takes any size)",
    )
    return parser


def run(args: argparse.Namespace) -> None:
    from pixelcnn.importers.pixel_cnn_pp import import_checkpoint

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} exists and is not an empty directory; name a new one")
    model = import_checkpoint(args.checkpoint, args.size)
    model.save(out)
    config = model.config.hyperparameters
    print(
        f"converted: {args.checkpoint} -> {out} (PixelCNN++, {model.image_shape[0]} "
        f"channel(s) at {model.image_shape[1]}x{model.image_shape[2]}, "
        f"{config['resnets_per_stage']} resnets of {config['filters']} filters, "
        f"{model.likelihood.components} logistics)"
    )

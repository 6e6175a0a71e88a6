"""The ``pixelcnn`` command: argument parsing, dispatch, and one-line errors."""

from __future__ import annotations

import argparse
import os
import sys

from pixelcnn.cli import receptive_field_command
from pixelcnn.model import SAMPLING_METHODS
from pixelcnn.models import NETWORKS, PRESETS
from pixelcnn.train.precision import PRECISIONS

EXIT_USAGE = 2


class _OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors as one line and exit status 2, like every other error of the command."""

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(
        prog="pixelcnn",
        description="Train, sample and evaluate PixelCNN-family image models (exact likelihoods).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model into a run directory")
    train.add_argument("--model", default="gated", choices=sorted(NETWORKS))
    train.add_argument(
        "--conditional", action="store_true", help="condition on the dataset's class labels"
    )
    presets = sorted({p for model in PRESETS.values() for p in model})
    train.add_argument("--preset", default=None, choices=presets, help="hyperparameter set")
    train.add_argument(
        "--hp", action="append", default=[], metavar="KEY=VALUE", help="set a hyperparameter"
    )
    train.add_argument("--levels", type=int, default=256, help="colour levels L (2..256)")
    train.add_argument(
        "--likelihood",
        default=None,
        choices=["categorical", "logistic_mixture"],
        help="softmax over levels, or discretized logistic mixture (default: the model's)",
    )
    train.add_argument(
        "--data", default="mnist5k", help="dataset name or path to an .npz file / image folder"
    )
    train.add_argument("--data-dir", default=None, help="where the dataset's files are")
    train.add_argument("--size", type=int, default=None, help="resize images to SIZE x SIZE")
    train.add_argument("--steps", type=int, default=None, help="optimizer steps (default 1500)")
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    train.add_argument("--lr-schedule", default="cosine", choices=["cosine", "constant"])
    train.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0: off)")
    train.add_argument(
        "--no-tensorboard",
        dest="tensorboard",
        action="store_false",
        help="no TensorBoard events even when tensorboard is installed",
    )
    train.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="training arithmetic: bf16 autocast (CPU, GPU), fp16 with loss scaling (GPU)",
    )
    train.add_argument(
        "--ema",
        type=float,
        default=None,
        metavar="DECAY",
        help="average the weights (Polyak) for eval and sampling; default 0.999 for "
        "pixelcnnpp, off (0) for the others",
    )
    train.add_argument(
        "--data-init",
        type=int,
        default=None,
        metavar="N",
        help="initialise weight-normalized layers on N training images; default 256 for "
        "pixelcnnpp, 0 (off) for the others",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--eval-every", type=int, default=500, help="steps between test evals")
    train.add_argument("--eval-images", type=int, default=500, help="test images per eval (0: all)")
    train.add_argument("--checkpoint-every", type=int, default=500)
    train.add_argument("--keep-checkpoints", type=int, default=3)
    train.add_argument("--samples", type=int, default=16, help="images to sample at the end")
    train.add_argument("--out", default="runs/pixelcnn", help="run directory")
    again = train.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run in --out")
    again.add_argument("--force", action="store_true", help="replace the run in --out")
    train.add_argument("--quiet", action="store_true", help="no progress bars")

    sample = commands.add_parser("sample", help="write a PNG grid of samples from a run")
    sample.add_argument("run", help="run directory (or saved model directory)")
    sample.add_argument("--n", type=int, default=16, help="number of images")
    sample.add_argument(
        "--class", dest="class_label", type=int, default=None, help="class to sample"
    )
    sample.add_argument(
        "--per-class", type=int, default=None, metavar="N", help="a grid row of N per class"
    )
    sample.add_argument("--temperature", type=float, default=1.0)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--columns", type=int, default=None)
    sample.add_argument(
        "--method", default="cached", choices=SAMPLING_METHODS, help="cached (fast) or naive"
    )
    sample.add_argument("--out", default=None, help="PNG path (default RUN/samples.png)")
    sample.add_argument("--quiet", action="store_true")

    complete = commands.add_parser(
        "complete", help="write a PNG grid of completions of a picture's top rows"
    )
    complete.add_argument("run", help="run directory (or saved model directory)")
    complete.add_argument(
        "--image", required=True, metavar="FILE", help="picture of the model's exact size"
    )
    complete.add_argument(
        "--rows", type=int, required=True, metavar="R", help="keep the top R rows, draw the rest"
    )
    complete.add_argument("--n", type=int, default=8, help="number of completions")
    complete.add_argument("--seed", type=int, default=0)
    complete.add_argument("--temperature", type=float, default=1.0)
    complete.add_argument(
        "--class",
        dest="class_label",
        type=int,
        default=None,
        metavar="K",
        help="class to complete as (class-conditional models)",
    )
    complete.add_argument(
        "--method", default="cached", choices=SAMPLING_METHODS, help="cached (fast) or naive"
    )
    complete.add_argument(
        "--columns", type=int, default=None, metavar="C", help="grid columns (default N+2)"
    )
    complete.add_argument("--out", default=None, help="PNG path (default RUN/completions.png)")
    complete.add_argument("--quiet", action="store_true")

    evaluate = commands.add_parser("eval", help="exact bits/dim and nats/image on a dataset")
    evaluate.add_argument("run", help="run directory (or saved model directory)")
    evaluate.add_argument("--data", default=None, help="dataset (default: the run's)")
    evaluate.add_argument("--data-dir", default=None)
    evaluate.add_argument("--split", default="test", choices=["train", "test"])
    evaluate.add_argument("--size", type=int, default=None)
    evaluate.add_argument("--limit", type=int, default=None, help="score the first N images")
    evaluate.add_argument("--batch-size", type=int, default=256)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--quiet", action="store_true")

    receptive_field_command.add_parser(commands)
    return parser


def _one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.filename and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Imported here so that `pixelcnn --help` stays fast.
    from pixelcnn.cli import commands

    handler = {
        "train": commands.run_train,
        "sample": commands.run_sample,
        "complete": commands.run_complete,
        "eval": commands.run_eval,
        "receptive-field": receptive_field_command.run,
    }
    try:
        handler[args.command](args)
    except KeyboardInterrupt:
        print("pixelcnn: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as error:
        if os.environ.get("PIXELCNN_DEBUG"):
            raise
        print(f"pixelcnn: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())

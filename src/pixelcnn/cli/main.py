"""The ``pixelcnn`` command: argument parsing, dispatch, and one-line errors."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Any

from pixelcnn.cli import (
    coding_command,
    convert_command,
    pretrained_command,
    receptive_field_command,
)
from pixelcnn.cli.arguments import (
    OVERWRITE_HELP,
    RESIZE_HELP,
    RUN_HELP,
    ImageSize,
    count,
    number,
    path,
)
from pixelcnn.data.datasets import EVERY_SPLIT, SPLITS
from pixelcnn.data.loader import DEFAULT_WORKERS
from pixelcnn.evaluate import BF16_TOLERANCE, SCORING_PRECISIONS
from pixelcnn.likelihoods import LIKELIHOODS
from pixelcnn.networks import NETWORKS
from pixelcnn.ood import COMPRESSORS, OOD_METHODS
from pixelcnn.sampling import SAMPLING_METHODS
from pixelcnn.train.precision import PRECISIONS

EXIT_USAGE = 2


# What --split may be for the commands that score (train and test are the data's own)
SCORING_SPLITS = (*SPLITS, EVERY_SPLIT)
SPLIT_HELP = (
    "train, test, or all: every image (an image folder's every file in reading order; other "
    "data's train then test split)"
)


class _OneLineErrorParser(argparse.ArgumentParser):
    """Usage errors as one line and exit status 2, like every other error of the command."""

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _has_default_to_show(action: argparse.Action) -> bool:
    """Whether --help should say ``action``'s default: an option taking a value whose
    default is one (not None, where the help says what happens then; not a flag's)."""
    default = action.default
    return (
        bool(action.option_strings)
        and action.nargs != 0  # flags: store_true, store_false, --help, --version
        and default is not None
        and default is not argparse.SUPPRESS
        and default != []
    )


class _DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that ends each option's line with its default where it has one (see
    :func:`_has_default_to_show`), unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not _has_default_to_show(action) or "default" in text.lower():
            return text
        return f"{text} (default: %(default)s)"


class _CommandParser(_OneLineErrorParser):
    """A sub-command's parser: one-line usage errors, and every default in its --help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Give options without help text one, so --help shows their default too (argparse
    prints nothing for an option without help)."""
    for action in parser._actions:
        if action.help is None and _has_default_to_show(action):
            action.help = "default: %(default)s"
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _show_defaults(sub)


def _recipe_default(option: str) -> str:
    """What a train option defaults to, network by network: the registry's recipes, then
    TrainOptions' own default ("0.002 for pixelcnnpp, 0.001 for the others")."""
    from dataclasses import fields

    from pixelcnn.train.options import TrainOptions

    base = next(f.default for f in fields(TrainOptions) if f.name == option)
    own = {name: spec.recipe[option] for name, spec in NETWORKS.items() if option in spec.recipe}
    if not own:
        return str(base)
    said = ", ".join(f"{value} for {name}" for name, value in sorted(own.items()))
    return f"{said}, {base} for the others"


def package_version() -> str:
    """The installed pixelcnn's version (its distribution metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pixelcnn")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(
        prog="pixelcnn",
        description="Train, sample and evaluate PixelCNN-family image models (exact likelihoods).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser
    )
    for add in (
        _add_train, _add_sample, _add_complete, _add_eval, _add_score, _add_ood, _add_prepare,
    ):  # fmt: skip
        add(commands)
    receptive_field_command.add_parser(commands)
    coding_command.add_parsers(commands)
    convert_command.add_parser(commands)
    pretrained_command.add_parser(commands)
    _show_defaults(parser)
    return parser


def _add_train(commands: argparse._SubParsersAction) -> None:
    """``pixelcnn train``: the run directory, data, network, likelihood and options."""
    train = commands.add_parser("train", help="train a model into a run directory")
    train.add_argument("--model", default="gated", choices=sorted(NETWORKS), help="the network")
    train.add_argument(
        "--conditional", action="store_true", help="condition on the dataset's class labels"
    )
    presets = sorted({p for spec in NETWORKS.values() for p in spec.presets})
    train.add_argument("--preset", default=None, choices=presets, help="hyperparameter set")
    train.add_argument(
        "--hp", action="append", default=[], metavar="KEY=VALUE", help="set a hyperparameter"
    )
    train.add_argument("--levels", type=count(2, 256), default=256, help="colour levels L (2..256)")
    train.add_argument(
        "--likelihood",
        default=None,
        choices=sorted(LIKELIHOODS),
        help="softmax over levels, or discretized logistic mixture (default: the model's)",
    )
    train.add_argument(
        "--data",
        type=path,
        default="mnist5k",
        help="dataset name, or path to an .npz file, an image folder or a prepared dataset",
    )
    train.add_argument("--data-dir", type=path, default=None, help="where the dataset's files are")
    train.add_argument("--size", action=ImageSize, default=None, metavar="SIZE", help=RESIZE_HELP)
    _add_workers(train)
    train.add_argument(
        "--steps", type=count(1), default=None, help="optimizer steps (default 1500)"
    )
    train.add_argument(
        "--batch-size",
        type=count(1),
        default=None,
        help="images per step (default: " + _recipe_default("batch_size") + ")",
    )
    train.add_argument(
        "--lr",
        type=number(0),
        default=None,
        help="Adam learning rate (default: " + _recipe_default("learning_rate") + ")",
    )
    train.add_argument(
        "--warmup",
        type=count(0),
        default=None,
        metavar="STEPS",
        help="raise the learning rate linearly from 0 over the first STEPS (default: "
        + _recipe_default("warmup_steps")
        + ")",
    )
    train.add_argument(
        "--lr-schedule", default="cosine", choices=["cosine", "constant"], help="learning rate"
    )
    train.add_argument(
        "--grad-clip", type=number(0), default=1.0, help="max gradient norm (0: off)"
    )
    train.add_argument(
        "--perturb",
        type=number(0, below=1),
        default=0.0,
        metavar="RATE",
        help="replace each training sub-pixel by a random level at this rate (a background "
        "model for ood --method ratio; 0.1-0.3)",
    )
    train.add_argument(
        "--weight-decay", type=number(0), default=0.0, help="L2 penalty of Adam (0: none)"
    )
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
        "--compile",
        action="store_true",
        help="torch.compile the training passes: faster steps after minutes of compiling "
        "(see BENCHMARKS.md, Scoring speed)",
    )
    train.add_argument(
        "--ema-decay",  # the name of the option it sets (TrainOptions.ema_decay)
        "--ema",
        dest="ema",
        type=number(0, below=1),
        default=None,
        metavar="DECAY",
        help="average the weights (Polyak) for eval and sampling; default 0.999 for "
        "pixelcnnpp, off (0) for the others",
    )
    train.add_argument(
        "--init-images",  # the name of the option it sets (TrainOptions.init_images)
        "--data-init",
        dest="data_init",
        type=count(0),
        default=None,
        metavar="N",
        help="initialise weight-normalized layers on N training images; default 256 for "
        "pixelcnnpp, 0 (off) for the others",
    )
    train.add_argument("--seed", type=count(0), default=0, help="initial weights and data order")
    train.add_argument("--eval-every", type=count(0), default=500, help="steps between test evals")
    train.add_argument(
        "--eval-images", type=count(0), default=500, help="test images per eval (0: all)"
    )
    train.add_argument(
        "--checkpoint-every", type=count(0), default=500, help="steps between checkpoints"
    )
    train.add_argument(
        "--keep-checkpoints", type=count(0), default=3, help="the newest checkpoints kept"
    )
    train.add_argument("--samples", type=count(0), default=16, help="images to sample at the end")
    train.add_argument("--out", type=path, default="runs/pixelcnn", help="run directory")
    again = train.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run in --out")
    again.add_argument("--force", action="store_true", help="replace the run in --out")
    train.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_sample(commands: argparse._SubParsersAction) -> None:
    """``pixelcnn sample``: a PNG grid of samples from a run."""
    sample = commands.add_parser("sample", help="write a PNG grid of samples from a run")
    sample.add_argument("run", type=path, help=RUN_HELP)
    sample.add_argument("--n", type=count(1), default=16, help="number of images")
    sample.add_argument(
        "--class", dest="class_label", type=count(0), default=None, help="class to sample"
    )
    sample.add_argument(
        "--per-class", type=count(1), default=None, metavar="N", help="a grid row of N per class"
    )
    sample.add_argument(
        "--temperature", type=number(0), default=1.0, help="divides the logits (0: most likely)"
    )
    sample.add_argument("--seed", type=count(0), default=0, help="of the random draws")
    sample.add_argument(
        "--columns", type=count(1), default=None, help="grid columns (default: a square grid)"
    )
    sample.add_argument(
        "--method", default="cached", choices=SAMPLING_METHODS, help="cached (fast) or naive"
    )
    sample.add_argument(
        "--out",
        type=path,
        default=None,
        help="PNG path (default RUN/sampled.png: never the samples.png a training drew)",
    )
    sample.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    sample.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_complete(commands: argparse._SubParsersAction) -> None:
    """``pixelcnn complete``: a PNG grid of completions of a picture's top rows."""
    complete = commands.add_parser(
        "complete", help="write a PNG grid of completions of a picture's top rows"
    )
    complete.add_argument("run", type=path, help=RUN_HELP)
    complete.add_argument(
        "--image",
        type=path,
        required=True,
        metavar="FILE",
        help="picture of the model's exact size",
    )
    complete.add_argument(
        "--rows",
        type=count(0),
        required=True,
        metavar="R",
        help="keep the top R rows, draw the rest",
    )
    complete.add_argument("--n", type=count(1), default=8, help="number of completions")
    complete.add_argument("--seed", type=count(0), default=0, help="of the random draws")
    complete.add_argument(
        "--temperature", type=number(0), default=1.0, help="divides the logits (0: most likely)"
    )
    complete.add_argument(
        "--class",
        dest="class_label",
        type=count(0),
        default=None,
        metavar="K",
        help="class to complete as (class-conditional models)",
    )
    complete.add_argument(
        "--method", default="cached", choices=SAMPLING_METHODS, help="cached (fast) or naive"
    )
    complete.add_argument(
        "--columns", type=count(1), default=None, metavar="C", help="grid columns (default N+2)"
    )
    complete.add_argument(
        "--out", type=path, default=None, help="PNG path (default RUN/completions.png)"
    )
    complete.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    complete.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_eval(commands: argparse._SubParsersAction) -> None:
    """``pixelcnn eval``: exact bits/dim and nats/image on a dataset."""
    evaluate = commands.add_parser("eval", help="exact bits/dim and nats/image on a dataset")
    _add_scoring_data(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_scoring_data(parser: argparse.ArgumentParser) -> None:
    """The run and the data that ``eval`` and ``score`` read (by default the run's own)."""
    parser.add_argument("run", type=path, help=RUN_HELP)
    parser.add_argument("--data", type=path, default=None, help="dataset (default: the run's)")
    parser.add_argument(
        "--data-dir", type=path, default=None, help="where a named dataset's files are"
    )
    parser.add_argument(
        "--split",
        default=None,
        choices=SCORING_SPLITS,
        help=f"{SPLIT_HELP}; default: test, and all for score --data naming an image folder",
    )
    parser.add_argument("--size", action=ImageSize, default=None, metavar="SIZE", help=RESIZE_HELP)
    parser.add_argument(
        "--limit", type=count(1), default=None, metavar="N", help="only the first N images"
    )
    parser.add_argument(
        "--batch-size", type=count(1), default=256, help="images per pass (memory only)"
    )
    _add_workers(parser)
    _add_precision(parser)


def _add_workers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers", type=count(0), default=DEFAULT_WORKERS, metavar="N",
        help="processes reading a prepared dataset a few batches ahead (0: none; data in "
        f"memory needs none; default {DEFAULT_WORKERS})",
    )  # fmt: skip


def _add_prepare(commands: argparse._SubParsersAction) -> None:
    """``pixelcnn prepare-data``: a dataset written once as arrays on disk, for sets larger
    than memory."""
    prepare = commands.add_parser(
        "prepare-data",
        help="write a dataset as uint8 arrays on disk (train from it with --data DIR)",
    )
    prepare.add_argument(
        "source", type=path, metavar="SRC",
        help="an image folder, an .npz file, a folder of downsampled-ImageNet batches, or a "
        "dataset name",
    )  # fmt: skip
    prepare.add_argument("--out", type=path, required=True, metavar="DIR")
    prepare.add_argument("--data-dir", type=path, default=None, help="for a dataset name")
    prepare.add_argument("--size", action=ImageSize, default=None, metavar="SIZE", help=RESIZE_HELP)
    prepare.add_argument(
        "--force", action="store_true", help="replace a dataset already prepared in --out"
    )
    prepare.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_precision(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--precision", default="fp32", choices=SCORING_PRECISIONS,
        help="bf16: the network in bfloat16 autocast, unless that moves a score of the first "
        f"batch by more than {BF16_TOLERANCE} bits/dim (then fp32, with a warning)",
    )  # fmt: skip


def _add_score(commands: argparse._SubParsersAction) -> None:
    """``pixelcnn score``: one row per image, and pictures of where the model is surprised."""
    score = commands.add_parser(
        "score", help="per-image nats and bits/dim (CSV or JSON lines), and NLL heatmaps"
    )
    _add_scoring_data(score)
    score.add_argument("--out", type=path, required=True, help="FILE.csv or FILE.jsonl")
    score.add_argument(
        "--heatmaps", type=path, default=None, metavar="DIR", help="a PNG per image of its NLL"
    )
    score.add_argument(
        "--top", type=count(1), default=None, metavar="K", help="heatmaps of the K least likely"
    )
    score.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    score.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_ood(commands: argparse._SubParsersAction) -> None:
    """``pixelcnn ood``: how well likelihood-based methods tell two datasets apart."""
    ood = commands.add_parser(
        "ood", help="out-of-distribution detection: AUROC, AUPRC, FPR at 95%% TPR per method"
    )
    ood.add_argument("run", type=path, help=RUN_HELP)
    ood.add_argument("--in-data", type=path, required=True, help="the in-distribution set")
    ood.add_argument("--ood-data", type=path, required=True, help="the out-of-distribution set")
    ood.add_argument("--in-data-dir", type=path, default=None, help="where --in-data's files are")
    ood.add_argument("--ood-data-dir", type=path, default=None, help="where --ood-data's files are")
    ood.add_argument(
        "--split", default=None, choices=SCORING_SPLITS, help=f"{SPLIT_HELP}; default: test"
    )
    ood.add_argument(
        "--limit",
        type=count(1),
        default=None,
        metavar="N",
        help="N images of each set, chosen at random (seeded by --seed; never the first N, "
        "which a split sorted by class would make one or two classes)",
    )
    ood.add_argument("--seed", type=count(0), default=0, help="of the --limit choice")
    ood.add_argument("--size", action=ImageSize, default=None, metavar="SIZE", help=RESIZE_HELP)
    ood.add_argument("--rgb", action="store_true", help="repeat grey images into RGB")
    ood.add_argument(
        "--method",
        default="all",
        choices=[*OOD_METHODS, "all"],
        help="all: every method it can (ratio needs --background)",
    )
    ood.add_argument(
        "--background", type=path, default=None, metavar="RUN", help="for ratio: a run trained "
        "with --perturb"
    )  # fmt: skip
    ood.add_argument("--compressor", default="png", choices=COMPRESSORS, help="for complexity")
    ood.add_argument(
        "--batch-size", type=count(1), default=256, help="images per pass (memory only)"
    )
    _add_precision(ood)
    ood.add_argument("--json", action="store_true", help="print one JSON object")
    ood.add_argument("--quiet", action="store_true", help="no progress bar")


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Every action of ``parser`` and of its sub-commands."""
    found = []
    for action in parser._actions:
        found.append(action)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _actions(sub)
    return found


def explicit_options(argv: list[str] | None) -> set[str]:
    """The destinations of the options the user typed (not defaults): a resumed run
    refuses those that differ from what it keeps."""
    parser = build_parser()
    for action in _actions(parser):
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def check_stored_arguments(stored: dict[str, Any], names: tuple[str, ...], source: str) -> None:
    """Check the ``names`` in ``stored`` (a run's train_args.json) as if the user had typed
    them: the same types, ranges and choices, so a tampered file fails in one line."""
    train = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices["train"]
    by_name = {action.dest: action for action in train._actions}
    for name in names:
        if name not in stored:
            continue
        action, value = by_name[name], stored[name]
        problem = _stored_problem(action, value)
        if problem:
            raise ValueError(f"{source}: {name} is {value!r}, {problem}")


def _stored_problem(action: argparse.Action, value: Any) -> str | None:
    """Why ``value`` could not have come from ``action``, or None."""
    if isinstance(action, argparse._StoreTrueAction):
        return None if isinstance(value, bool) else "not true or false"
    if isinstance(action, argparse._AppendAction):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else "not a list of strings"
    if value is None:
        return None if action.default is None else "not set"
    if isinstance(action, ImageSize) and isinstance(value, list):  # --size H W, stored
        if len(value) != 2:
            return "not a height and a width"
        return next(filter(None, (_stored_problem(action, side) for side in value)), None)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return "of the wrong kind"
    try:
        parsed = action.type(str(value)) if action.type else value
    except (argparse.ArgumentTypeError, ValueError) as error:
        return str(error)
    if type(parsed) is not type(value) and not isinstance(parsed, float):
        return f"not a {type(parsed).__name__}"
    if action.choices is not None and parsed not in action.choices:
        return f"not one of {', '.join(map(str, action.choices))}"
    return None


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning from the library, as one line on stderr (not Python's two with a path)."""
    print(f"pixelcnn: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.filename and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.given = explicit_options(argv)
    except SystemExit as stop:  # --help, or a usage error already printed in one line
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    # Imported here so that `pixelcnn --help` stays fast.
    from pixelcnn.cli import commands

    handler = {
        "train": commands.run_train,
        "sample": commands.run_sample,
        "complete": commands.run_complete,
        "eval": commands.run_eval,
        "score": commands.run_score,
        "ood": commands.run_ood,
        "prepare-data": commands.run_prepare,
        "receptive-field": receptive_field_command.run,
        "compress": coding_command.run_compress,
        "decompress": coding_command.run_decompress,
        "convert": convert_command.run,
        "pretrained": pretrained_command.run,
    }
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            handler[args.command](args)
    except KeyboardInterrupt:
        print("pixelcnn: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # every failure ends in one line and status 2
        if os.environ.get("PIXELCNN_DEBUG"):
            raise
        print(f"pixelcnn: error: {describe(error)}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def describe(error: Exception) -> str:
    """One line for any failure; one the library does not expect says so, and how to see
    where it came from."""
    if isinstance(error, MemoryError):
        return "out of memory; try a smaller --batch-size, --size or model"
    text = _one_line(error)
    if isinstance(error, (ValueError, OSError, RuntimeError, ArithmeticError)):
        return text
    return f"unexpected {type(error).__name__}: {text} (PIXELCNN_DEBUG=1 shows the traceback)"


if __name__ == "__main__":
    sys.exit(main())

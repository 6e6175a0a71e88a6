"""What each ``pixelcnn`` sub-command does: thin calls into the library."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import pixelcnn
from pixelcnn import pretrained
from pixelcnn.cli.main import check_stored_arguments
from pixelcnn.cli.outputs import check_output
from pixelcnn.data import load_dataset, read_image_file
from pixelcnn.data.datasets import (
    EVERY_SPLIT,
    SPLITS,
    data_fingerprint,
    is_image_folder,
)
from pixelcnn.data.prepare import prepare_dataset
from pixelcnn.data.readers import image_folder_files
from pixelcnn.data.stored import StoredImages, read_manifest
from pixelcnn.evaluate import evaluate
from pixelcnn.files import check_writable, remove_stale_temporaries
from pixelcnn.networks import hyperparameter_names
from pixelcnn.ood import OOD_METHODS, ScoredSet, evaluate_methods
from pixelcnn.pictures import png_kind, save_image_grid, save_png
from pixelcnn.scoring import (
    HEATMAP_KIND,
    check_score_path,
    heatmap_picture,
    heatmap_title,
    is_score_file,
    most_surprising,
    score_rows,
    write_rows,
)
from pixelcnn.train import TrainOptions, train
from pixelcnn.train.distributed import World, join_from_environment, leave, silent
from pixelcnn.train.precision import check_precision
from pixelcnn.train.run_dir import (
    ARGS_FILE,
    COMPLETIONS_FILE,
    COMPLETIONS_KIND,
    DATA_FINGERPRINT,
    RUN_FILES,
    SAMPLES_FILE,
    SAMPLES_KIND,
    RunLock,
    check_new_run,
    check_resumable,
    check_same_data,
    holds_run,
    prepare_new_run,
    read_run_args,
    write_run_args,
)

EXIT_STOPPED = 130  # stopped on request (SIGTERM, Ctrl-C), the work saved

# Arguments stored in train_args.json that decide what a run is; --resume reuses them.
RUN_ARGUMENTS = (
    "model",
    "likelihood",
    "conditional",
    "preset",
    "hp",
    "levels",
    "data",
    "data_dir",
    "size",
    "batch_size",
    "lr",
    "warmup",
    "lr_schedule",
    "precision",
    "grad_clip",
    "perturb",
    "weight_decay",
    "ema",
    "data_init",
    "seed",
    "eval_every",
    "eval_images",
    "checkpoint_every",
    "keep_checkpoints",
)


def load_split(
    name: str, split: str, data_dir: str | None, size: int | None, labels: bool = False
) -> tuple[torch.Tensor | StoredImages, torch.Tensor | None, int | None]:
    """uint8 images [N, C, H, W] of a dataset split (resized to size x size when given; a
    prepared dataset's stay on disk), and with ``labels`` its int64 labels [N] and number
    of classes."""
    dataset = load_dataset(name, split=split, root=data_dir, size=size)
    images = in_memory_or_stored(dataset.images)
    if not labels:
        return images, None, None
    if dataset.labels is None:
        raise ValueError(f"{name} has no labels, so it cannot train a class-conditional model")
    return images, torch.from_numpy(dataset.labels).long(), dataset.num_classes


def in_memory_or_stored(images) -> torch.Tensor | StoredImages:
    """A dataset's images as a tensor, unless they are a prepared dataset's (on disk)."""
    return images if isinstance(images, StoredImages) else torch.from_numpy(images)


def as_tensor(images) -> torch.Tensor:
    """Images as a tensor, read from disk when they are a prepared dataset's."""
    return images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))


def snapped(model, images):
    """``images`` snapped to ``model``'s levels: now when in memory, as they are read when
    on disk."""
    if isinstance(images, StoredImages):
        return images.snapped(model.quantizer)
    return model.quantize(images)


def parse_hyperparameters(pairs: list[str]) -> dict[str, Any]:
    """``["hidden_channels=32", ...]`` -> {"hidden_channels": 32, ...} (values read as JSON)."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--hp takes KEY=VALUE, got {pair!r}")
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return values


def stored_run_args(run_dir: Path) -> dict[str, Any]:
    """A run's train_args.json, every value checked as if typed on the command line."""
    stored = read_run_args(run_dir)
    check_stored_arguments(stored, (*RUN_ARGUMENTS, "steps"), str(run_dir / ARGS_FILE))
    return stored


def adopt_stored_arguments(args: argparse.Namespace, stored: dict[str, Any]) -> None:
    """Continue with the run's own options. One the user typed that differs is refused,
    not silently ignored; ``--steps`` may only grow."""
    given = getattr(args, "given", set())
    differ = [
        f"--{name.replace('_', '-')} {getattr(args, name)!r} (the run has {stored[name]!r})"
        for name in RUN_ARGUMENTS
        if name in stored and name in given and getattr(args, name) != stored[name]
    ]
    if differ:
        raise ValueError(
            f"a resumed run keeps its options, and these differ: {'; '.join(differ)}; "
            "start a new run (another --out, or --force) to change them"
        )
    for name in RUN_ARGUMENTS:
        if name in stored:
            setattr(args, name, stored[name])
    if "warmup" not in stored:  # a run from before warm-ups had none
        args.warmup = 0
    steps = stored.get("steps", 0)
    if "steps" in given and args.steps < steps:
        raise ValueError(
            f"--steps {args.steps} is below the run's {steps}: a resumed run only grows"
        )
    args.steps = max(args.steps or 0, steps)


def run_train(args: argparse.Namespace) -> None:
    world = join_from_environment()  # one process, or one of torchrun's
    lock = RunLock()  # held by the main process from the first look at the directory
    try:
        _train_in(world, args, lock)
        # the others wait for the main process's samples and evaluation, so that no
        # process tears the group down while another still holds it (gloo aborts then)
        world.barrier()
    finally:
        lock.release()
        leave(world)


def _train_in(world: World, args: argparse.Namespace, lock: RunLock) -> None:
    run_dir = Path(args.out)
    say = print if world.is_main else silent
    if world.is_main and run_dir.is_dir():
        lock.acquire(run_dir)  # a second training of this directory stops here
    if args.resume:
        check_resumable(run_dir)  # no link or FIFO at a run file's name
        stored = stored_run_args(run_dir)
        adopt_stored_arguments(args, stored)
    else:
        check_new_run(run_dir, force=args.force)
        check_writable(run_dir / ARGS_FILE)  # before any data is loaded
    check_precision(args.precision, world.device())  # a resumed run's own, when it has one
    data = _training_data(args)
    if args.resume:  # the same path may hold other data now
        check_same_data(
            stored.get(DATA_FINGERPRINT), data.fingerprint, args.data, run_dir / ARGS_FILE
        )
    model = _training_model(args, data, world)
    options = TrainOptions.for_network(
        args.model,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_steps=args.warmup,
        lr_schedule=args.lr_schedule,
        grad_clip=args.grad_clip,
        perturb=args.perturb,
        weight_decay=args.weight_decay,
        precision=args.precision,
        compile=args.compile,
        tensorboard=args.tensorboard,
        ema_decay=args.ema,
        init_images=args.data_init,
        seed=args.seed,
        eval_every=args.eval_every,
        eval_images=args.eval_images,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        progress=not args.quiet and world.is_main,
        workers=args.workers,
    )
    options.check()
    # what the recipe decided is what the run keeps (and a resume compares against)
    args.steps, args.ema, args.data_init = options.steps, options.ema_decay, options.init_images
    args.batch_size, args.lr, args.warmup = (
        options.batch_size,
        options.learning_rate,
        options.warmup_steps,
    )
    world.check_batch(args.batch_size)
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire(run_dir)
        if not args.resume:
            prepare_new_run(run_dir, force=args.force)  # checks again, now under the lock
    world.barrier()  # the run directory is ready before any process trains
    run_args = {name: getattr(args, name) for name in (*RUN_ARGUMENTS, "steps")}
    run_args[DATA_FINGERPRINT] = data.fingerprint  # what a resume checks the data against
    parameters = sum(p.numel() for p in model.parameters())
    processes = f" in {world.size} processes" if world.distributed else ""
    say(
        f"training {args.model} ({parameters:,} parameters) on {args.data}: "
        f"{len(data.train)} train / {len(data.test)} test images of shape "
        f"{list(data.train.shape[1:])}, {args.levels} levels, {args.steps} steps{processes}"
    )
    trained = train(
        model,
        data.train,
        data.test,
        options,
        run_dir,
        resume=args.resume,
        train_condition=data.train_labels,
        test_condition=data.test_labels,
        # once the run can start (a resume that fails changes nothing)
        on_start=lambda step: start_run(run_dir, run_args),
        world=world,
        log=say,
    )
    if trained.stopped_by:
        say(
            f"pixelcnn: stopped by {trained.stopped_by} at step {trained.step} with a "
            f"checkpoint; continue with: pixelcnn train --out {run_dir} --resume",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_STOPPED)
    if world.is_main:  # samples and the final evaluation: once, in the main process
        _finish(args, trained.eval_model, data, run_dir)


@dataclass
class TrainingSplits:
    """uint8 images [N, C, H, W] of both splits (snapped to the model's levels once it
    exists), with labels and the number of classes for a class-conditional run."""

    train: torch.Tensor | StoredImages
    test: torch.Tensor | StoredImages
    train_labels: torch.Tensor | None
    test_labels: torch.Tensor | None
    classes: int | None
    fingerprint: dict[str, Any] | None = None  # what tells this data from other data


def _training_data(args: argparse.Namespace) -> TrainingSplits:
    """Both splits of --data, checked against each other before any work."""
    train_images, train_labels, classes = load_split(
        args.data, "train", args.data_dir, args.size, labels=args.conditional
    )
    test_images, test_labels, _ = load_split(
        args.data, "test", args.data_dir, args.size, labels=args.conditional
    )
    if args.conditional and len(test_labels) and int(test_labels.max()) >= classes:
        raise ValueError(
            f"{args.data}: test labels reach {int(test_labels.max())} but the training "
            f"split has {classes} classes (0..{classes - 1})"
        )
    counts = {"train": len(train_images), "test": len(test_images)}
    shape = tuple(train_images.shape[1:])
    fingerprint = data_fingerprint(args.data, counts, shape)
    return TrainingSplits(
        train_images, test_images, train_labels, test_labels, classes, fingerprint
    )


def _training_model(
    args: argparse.Namespace, data: TrainingSplits, world: World
) -> pixelcnn.DensityModel:
    """The network --model asks for, sized for the data, on this process's device; the
    data snapped to its levels. A size or condition it cannot take fails here."""
    hyperparameters = parse_hyperparameters(args.hp)
    if args.conditional:
        if "num_classes" not in hyperparameter_names(args.model):
            raise ValueError(f"--conditional needs a model with conditioning, not {args.model}")
        hyperparameters["num_classes"] = data.classes
    torch.manual_seed(args.seed)
    model = pixelcnn.create(
        args.model,
        image_shape=tuple(data.train.shape[1:]),
        levels=args.levels,
        likelihood=args.likelihood,
        preset=args.preset,
        **hyperparameters,
    )
    model.to(world.device())
    data.train, data.test = snapped(model, data.train), snapped(model, data.test)
    with torch.no_grad():  # one image through the model before anything is written
        labels = data.train_labels
        model.log_prob(as_tensor(data.train[:1]), None if labels is None else labels[:1])
    return model


def _finish(
    args: argparse.Namespace, model: pixelcnn.DensityModel, data: TrainingSplits, run_dir: Path
) -> None:
    """The end of a run: a grid of samples (a row per class when conditional) and the
    exact test bits/dim of the model to use (the weight average, when kept)."""
    if args.samples:
        generator = torch.Generator(device=model.device).manual_seed(args.seed)
        progress = not args.quiet
        if args.conditional:  # one row per class
            per_class = max(1, args.samples // data.classes)
            labels = torch.arange(data.classes).repeat_interleave(per_class)
            images = model.sample(len(labels), labels, generator=generator, progress=progress)
            path = save_image_grid(
                images, run_dir / SAMPLES_FILE, columns=per_class, kind=SAMPLES_KIND
            )
        else:
            images = model.sample(args.samples, generator=generator, progress=progress)
            path = save_image_grid(images, run_dir / SAMPLES_FILE, kind=SAMPLES_KIND)
        print(f"samples: {path}")
    result = evaluate(
        model,
        data.test,
        progress=not args.quiet,
        condition=data.test_labels,
        workers=args.workers,
    )
    print(
        f"test bits/dim: {result.bits_per_dim:.4f}  nats/image: {result.nats_per_image:.2f}  "
        f"({result.count} {args.data} test images, {args.levels} levels)"
    )


def start_run(run_dir: Path, run_args: dict[str, Any]) -> None:
    """What a run does once its state is ready: clear the temporaries a killed run left
    (only this library's own, by their names) and record its arguments."""
    remove_stale_temporaries(run_dir, RUN_FILES)
    write_run_args(run_dir, run_args)


def check_class_options(model, given: str | None, also: str = "") -> int:
    """The number of classes of ``model``, after refusing the class flags ``given`` (e.g.
    "--class needs"; None: none given) that it cannot take, or a conditional model given
    none; ``also`` names the other flags that would do, after "--class 0..K-1"."""
    spec = model.condition_spec
    classes = spec.num_classes
    if given:
        if not classes:
            raise ValueError(f"{given} a class-conditional model")
        if spec.vector_dim or spec.spatial_channels:
            raise ValueError("this model also needs vector or spatial conditions; use the API")
    elif spec:
        if not classes:
            raise ValueError("this model needs vector or spatial conditions; use the API")
        raise ValueError(f"this model is conditional: pass --class 0..{classes - 1}{also}")
    return classes


def check_class_label(class_label: int | None, classes: int) -> None:
    if class_label is not None and not 0 <= class_label < classes:
        raise ValueError(f"--class must be in 0..{classes - 1}, got {class_label}")


def sample_condition(model, args: argparse.Namespace) -> tuple[Any, int, int | None]:
    """The condition, number of images and grid columns that ``pixelcnn sample`` asked for."""
    asked = args.per_class is not None or args.class_label is not None
    given = "--class and --per-class need" if asked else None
    classes = check_class_options(model, given, also=" or --per-class N")
    if args.per_class is not None:
        labels = torch.arange(classes).repeat_interleave(args.per_class)
        return labels, len(labels), args.per_class
    check_class_label(args.class_label, classes)
    return args.class_label, args.n, args.columns


def run_folder(run: str) -> Path:
    """The folder of a run, a saved model or a shipped ``pretrained:NAME`` model."""
    return pretrained.model_dir(run) if pretrained.is_pretrained(run) else Path(run)


def default_output(run: str, filename: str) -> Path:
    """Where a command writes ``filename`` when no --out is given: into the run's folder,
    or for a shipped model into the current folder (never into the installed package)."""
    if pretrained.is_pretrained(run):
        return pretrained.output_name(run, filename)
    return Path(run) / filename


def load_run_model(run: str) -> pixelcnn.DensityModel:
    """The model of a run (or saved model) directory, on the GPU when there is one."""
    model = pixelcnn.load(run)
    if torch.cuda.is_available():
        model.to("cuda")
    return model


# ``pixelcnn sample``'s own default name and PNG tag: never the grid a training drew
# (RUN/samples.png, tagged SAMPLES_KIND), which stays as the run left it.
SAMPLED_FILE, SAMPLED_KIND = "sampled.png", "sampled"


def is_earlier_sample(path: Path) -> bool:
    """Whether ``path`` is a grid ``pixelcnn sample`` wrote (tagged SAMPLED_KIND, or
    SAMPLES_KIND as before it had its own tag), and not a training's own samples.png."""
    kind = png_kind(path)
    if kind == SAMPLED_KIND:
        return True
    return kind == SAMPLES_KIND and not (path.name == SAMPLES_FILE and holds_run(path.parent))


def run_sample(args: argparse.Namespace) -> None:
    model = load_run_model(args.run)
    condition, n, columns = sample_condition(model, args)
    out = Path(args.out) if args.out else default_output(args.run, SAMPLED_FILE)
    # before the work, not after
    check_output(out, SAMPLED_KIND, args.overwrite, earlier=is_earlier_sample)
    generator = torch.Generator(device=model.device).manual_seed(args.seed)
    images = model.sample(
        n,
        condition,
        temperature=args.temperature,
        generator=generator,
        progress=not args.quiet,
        method=args.method,
    )
    print(f"samples: {save_image_grid(images, out, columns=columns, kind=SAMPLED_KIND)}")


def read_image(path: str | Path, model) -> torch.Tensor:
    """The picture file at ``path`` as the model's representable values: uint8 [1, C, H, W].

    Decoded by the reader every command uses (16-bit files keep their high byte, as in an
    image folder); a picture that is not the model's H x W is refused, never resized."""
    channels, height, width = model.image_shape
    array = read_image_file(path, channels)  # [C, H, W]
    if array.shape[1:] != (height, width):
        raise ValueError(
            f"{path} is {array.shape[1]}x{array.shape[2]} pixels (HxW) but the model takes "
            f"{height}x{width} images; resize it first (complete does not resize)"
        )
    return model.quantize(torch.from_numpy(array).unsqueeze(0))


def run_complete(args: argparse.Namespace) -> None:
    model = load_run_model(args.run)
    if model.encoding.kind != "image":
        raise ValueError("complete works on image models only; complete token grids with the API")
    classes = check_class_options(model, "--class needs" if args.class_label is not None else None)
    check_class_label(args.class_label, classes)
    _, height, _ = model.image_shape
    if args.rows > height:
        raise ValueError(f"--rows must be in 0..{height} (the image height), got {args.rows}")
    out = Path(args.out) if args.out else default_output(args.run, COMPLETIONS_FILE)
    check_output(out, COMPLETIONS_KIND, args.overwrite, inputs=[args.image])
    image = read_image(args.image, model)  # [1, C, H, W]
    known = torch.zeros(model.image_shape[1:], dtype=torch.bool)
    known[: args.rows] = True
    generator = torch.Generator(device=model.device).manual_seed(args.seed)
    completions = model.complete(
        image.repeat(args.n, 1, 1, 1),
        known,
        condition=args.class_label,
        temperature=args.temperature,
        generator=generator,
        progress=not args.quiet,
        method=args.method,
    )
    visible = image.masked_fill(~known, 0)  # the unknown rows black
    grid = torch.cat([image, visible, completions.cpu()])
    columns = args.columns or args.n + 2
    print(f"completions: {save_image_grid(grid, out, columns=columns, kind=COMPLETIONS_KIND)}")


SIZE_KEEPS_CHANNELS = "--size changes only the height and width"


@dataclass
class ScoringData:
    """The images ``eval``, ``score`` or ``ood`` read, and in words which they are.

    ``images``: uint8 [N, C, H, W] snapped to the model's levels (a prepared dataset's stay
    on disk); ``labels``: int64 [N] or None; ``sources``: where each image came from (an
    image folder's file names) or None; ``class_names[k]`` names label k when known;
    ``described``: e.g. "20 of 500 mnist5k test images", for the command's output.
    """

    name: str
    split: str
    images: Any
    labels: torch.Tensor | None
    sources: list[str] | None
    class_names: list[str] | None
    described: str


def describe_images(name: str, split: str, count: int, available: int) -> str:
    """Which images a command used, in words: how many (of how many), of what data and
    which split; for an image folder, which of its files."""
    number = f"{count} of {available}" if count < available else f"{count}"
    images, files = ("image", "file") if available == 1 else ("images", "files")
    if not is_image_folder(name):
        if split == EVERY_SPLIT:
            return f"{number} {name} {images} (its train and test splits)"
        return f"{number} {name} {split} {images}"
    path = Path(name).expanduser()
    if any((path / part).is_dir() for part in SPLITS):
        return f"{number} {files} of {path if split == EVERY_SPLIT else path / split}"
    if split == EVERY_SPLIT:
        return f"{number} {files} of {path} (every file, in reading order)"
    every, labels, _ = image_folder_files(path)
    of_each = " of each class" if labels is not None else ""
    return (
        f"{number} {files} of {path}: its {split} split of {len(every)} files (every tenth "
        f"file{of_each} is test; --split all for every file)"
    )


def _eval_split(args: argparse.Namespace, model, command: str = "eval") -> ScoringData:
    """The data ``eval`` and ``score`` read: --data (default: the run's own, at the run's
    --size), one --split (default: test; every file when ``score`` is given an image
    folder with --data), the first --limit images, snapped to the model's levels."""
    stored: dict[str, Any] = {}
    if args.data is None or args.size is None:
        try:
            stored = stored_run_args(run_folder(args.run))
        except FileNotFoundError:
            stored = {}
    data = args.data or stored.get("data")
    if data is None:
        raise ValueError("name the data to evaluate on with --data")
    data_dir = args.data_dir if args.data else (args.data_dir or stored.get("data_dir"))
    size = args.size if args.size is not None else stored.get("size")
    if model.condition_spec and not model.condition_spec.num_classes:
        raise ValueError("this model needs vector or spatial conditions; evaluate it with the API")
    split = args.split
    if split is None:  # a folder a user names to score: every one of its files
        folder = command == "score" and args.data and is_image_folder(data)
        split = EVERY_SPLIT if folder else "test"
    dataset = load_dataset(data, split, root=data_dir, size=size)
    images = in_memory_or_stored(dataset.images[: args.limit])
    labels, sources = dataset.labels, dataset.sources
    if model.condition_spec and labels is None:
        raise ValueError(f"{data} has no labels, and this model is class-conditional")
    labels = torch.from_numpy(labels[: args.limit]).long() if labels is not None else None
    sources = sources[: args.limit] if sources is not None else None
    check_model_shape(model, images, data, "use --size", SIZE_KEEPS_CHANNELS)
    described = describe_images(data, split, len(images), len(dataset))
    return ScoringData(
        data, split, snapped(model, images), labels, sources, dataset.class_names, described
    )


def check_model_shape(
    model, images: torch.Tensor, name: str, remedy: str, channel_note: str | None = None
) -> None:
    """Refuse images [N, C, H, W] that are not the model's size, saying what would do:
    ``remedy`` for a height and width (e.g. "use --size"); for a number of channels, which
    no resizing changes, other images or another model (after ``channel_note``, e.g. what
    an option cannot do)."""
    shape, wanted = tuple(images.shape[1:]), tuple(model.image_shape)
    if shape == wanted:
        return
    if len(shape) == len(wanted) == 3 and shape[0] != wanted[0]:
        kinds = {1: "grey", 3: "RGB"}
        fix = (
            f"use {kinds.get(wanted[0], f'{wanted[0]}-channel')} images, or a model trained "
            f"on {kinds.get(shape[0], f'{shape[0]}-channel')} ones"
        )
        raise ValueError(
            f"{name} images have {shape[0]} channel{'s' if shape[0] > 1 else ''} "
            f"(shape {list(shape)}) but the model takes {wanted[0]} ({list(wanted)}); "
            + (f"{channel_note}; {fix}" if channel_note else fix)
        )
    raise ValueError(
        f"{name} images have shape {list(shape)} but the model takes {list(wanted)} ({remedy})"
    )


def _evaluate(args: argparse.Namespace, model, images, condition):
    """``evaluate`` with the scoring options every scoring command shares."""
    return evaluate(
        model,
        images,
        args.batch_size,
        progress=not args.quiet,
        condition=condition,
        precision=args.precision,
        workers=getattr(args, "workers", 0),
    )


def run_eval(args: argparse.Namespace) -> None:
    model = load_run_model(args.run)
    data = _eval_split(args, model)
    condition = data.labels if model.condition_spec else None
    result = _evaluate(args, model, data.images, condition)
    if args.json:
        print(json.dumps({"data": data.name, "split": data.split, **result.as_dict()}))
    else:
        print(
            f"bits/dim: {result.bits_per_dim:.4f}  nats/image: {result.nats_per_image:.2f}  "
            f"({data.described}, {model.levels} levels"
            + (f", {result.precision})" if result.precision != "fp32" else ")")
        )


def run_score(args: argparse.Namespace) -> None:
    """One row per image, and with --heatmaps a picture of each (or the --top K most
    surprising) image beside its per-pixel NLL, plus a grid of the extremes."""
    out = check_score_path(args.out)
    inputs = [args.data] if args.data else []  # never replaced, nor any file inside it
    check_output(out, "scores", args.overwrite, inputs=inputs, earlier=is_score_file)
    model = load_run_model(args.run)
    data = _eval_split(args, model, command="score")
    images, labels = data.images, data.labels
    condition = labels if model.condition_spec else None
    heatmaps = Path(args.heatmaps) if args.heatmaps else None
    if heatmaps is not None and heatmaps.exists() and not heatmaps.is_dir():
        raise ValueError(f"--heatmaps {heatmaps} exists and is not a directory")
    result = _evaluate(args, model, images, condition)
    rows = score_rows(result, math.prod(model.image_shape), data.sources, labels)
    print(f"scores: {write_rows(rows, out)} ({data.described})")
    if heatmaps is not None:
        chosen = most_surprising(result.nats, args.top)
        targets = [heatmaps / f"heatmap_{index:06d}.png" for index in chosen]
        grid = heatmaps / "extremes.png"
        for target in [*targets, grid]:  # every picture's place, before any is drawn
            check_output(target, HEATMAP_KIND, args.overwrite, inputs=inputs)
        heatmaps.mkdir(parents=True, exist_ok=True)
        for index, target in zip(chosen, targets, strict=True):
            cond = None if condition is None else condition[index : index + 1]
            image = as_tensor(images[index : index + 1])
            with torch.no_grad():
                nll = model.nll_map(image, cond)[0].cpu()
            row = rows[index]
            title = heatmap_title(
                index, row["bits_per_dim"], row.get("label"), data.class_names, row["source"]
            )
            save_png(heatmap_picture(image[0], nll.float(), title), target, HEATMAP_KIND)
        order = most_surprising(result.nats, None)
        k = min(args.top or 8, len(order))
        extremes = as_tensor(images[[*order[:k], *order[::-1][:k]]])
        save_image_grid(extremes, grid, columns=k, kind=HEATMAP_KIND)
        print(f"heatmaps: {len(chosen)} in {heatmaps}, and {grid} (top row: least likely)")


def _ood_images(
    model, name: str, data_dir: str | None, args: argparse.Namespace
) -> tuple[torch.Tensor, str]:
    """One set of ``ood``: uint8 images of the model's shape, snapped to its levels, and
    in words which they are. --limit N takes N at random (seeded by --seed), never the
    first N: a split sorted by class (mnist5k's test split) would give one or two
    classes."""
    split = args.split or "test"
    dataset = load_dataset(name, split, root=data_dir, size=args.size)
    available = len(dataset)
    chosen = None
    if args.limit is not None and args.limit < available:
        pick = np.random.default_rng(args.seed).choice(available, args.limit, replace=False)
        chosen = np.sort(pick)  # in the data's order
    # each set is scored many ways: in memory
    images = as_tensor(dataset.images if chosen is None else dataset.images[chosen])
    if args.rgb and images.shape[1] == 1 and model.image_shape[0] == 3:
        images = images.repeat(1, 3, 1, 1)
    note = "--rgb repeats grey images into RGB" if images.shape[1] == 1 else SIZE_KEEPS_CHANNELS
    check_model_shape(model, images, name, "use --size, and --rgb for grey images", note)
    described = describe_images(name, split, len(images), available)
    if chosen is not None:
        described += f", chosen at random (--seed {args.seed})"
    return model.quantize(images), described


def run_prepare(args: argparse.Namespace) -> None:
    """Write a dataset as arrays on disk; say how big it is and how to train from it."""
    manifest = prepare_dataset(
        args.source,
        args.out,
        size=args.size,
        root=args.data_dir,
        force=args.force,
        progress=not args.quiet,
        log=print,  # what the user did not choose, said even with --quiet (the split)
    )
    prepared = read_manifest(manifest.parent)
    counts = " / ".join(f"{entry['images']} {name}" for name, entry in prepared["splits"].items())
    shape = "x".join(map(str, prepared["image_shape"]))
    print(
        f"prepared {counts} images of {shape} in {manifest.parent}; "
        f"train with: pixelcnn train --data {manifest.parent}"
    )


def run_ood(args: argparse.Namespace) -> None:
    """How well each method tells the in-distribution set from the OOD one."""
    model = load_run_model(args.run)
    if model.condition_spec or model.encoding.kind != "image":
        raise ValueError("ood works on unconditional image models")
    methods = list(OOD_METHODS) if args.method == "all" else [args.method]
    skipped = {}
    if args.background is None and "ratio" in methods:
        if args.method == "ratio":
            raise ValueError("the ratio method needs a background model: --background RUN")
        methods.remove("ratio")  # all: what can be computed without one, and said so
        skipped["ratio"] = "needs a background model: --background RUN (trained with --perturb)"
    background = load_run_model(args.background) if args.background else None
    if background is not None and background.config.image_shape != model.config.image_shape:
        raise ValueError("the --background model takes images of another shape")
    if background is not None and background.levels != model.levels:
        raise ValueError("the --background model has another number of levels")
    inside, in_described = _ood_images(model, args.in_data, args.in_data_dir, args)
    outside, ood_described = _ood_images(model, args.ood_data, args.ood_data_dir, args)

    def scored(images: torch.Tensor) -> ScoredSet:  # each model scores each set once
        def nats(of):
            return _evaluate(args, of, images, None).nats

        return ScoredSet(images.numpy(), nats(model), nats(background) if background else None)

    results = evaluate_methods(methods, scored(inside), scored(outside), args.compressor)
    counts = {"in_images": len(inside), "ood_images": len(outside)}
    if args.json:
        sets = {"in_set": in_described, "ood_set": ood_described, "split": args.split or "test"}
        extra = {"skipped": skipped} if skipped else {}
        print(json.dumps({"in": args.in_data, "ood": args.ood_data, **counts, **sets, **results,
                          **extra}))  # fmt: skip
        for method, reason in skipped.items():
            print(f"pixelcnn: note: {method} skipped: it {reason}", file=sys.stderr)
        return
    print(f"in:  {in_described}")
    print(f"ood: {ood_described}")
    for method, metrics in results.items():
        print(
            f"  {method:<10}  AUROC {metrics['auroc']:.4f}  AUPRC {metrics['auprc']:.4f}  "
            f"FPR@95%TPR {metrics['fpr_at_95_tpr']:.4f}"
        )
    for method, reason in skipped.items():
        print(f"  {method:<10}  skipped: it {reason}")

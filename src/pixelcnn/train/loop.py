"""The training loop: the data order, resuming, and when to record, evaluate and
checkpoint around the steps of a :class:`~pixelcnn.train.trainer.Trainer`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pixelcnn.conditions import select
from pixelcnn.data.stored import StoredImages
from pixelcnn.evaluate import evaluate
from pixelcnn.files import remove_stale_temporaries
from pixelcnn.model import CONFIG_FILE, WEIGHTS_FILE, DensityModel
from pixelcnn.nn.data_init import data_dependent_init
from pixelcnn.train.checkpoint import (
    list_checkpoints,
    remove_partial_checkpoints,
    restore_training_state,
    save_training_state,
)
from pixelcnn.train.data import TrainingData, training_data
from pixelcnn.train.distributed import SINGLE, World, silent
from pixelcnn.train.metrics import keep_metrics_up_to, plot_training_curve, read_metrics
from pixelcnn.train.options import TrainOptions
from pixelcnn.train.precision import check_precision
from pixelcnn.train.recorder import METRICS_FILE, Recorder
from pixelcnn.train.stopping import StopRequests
from pixelcnn.train.trainer import Trainer

CURVE_FILE = "training_curve.png"
# The files train() writes with atomic_write, whose temporaries a resume may clear away.
_WRITTEN_FILES = (CONFIG_FILE, WEIGHTS_FILE, METRICS_FILE, CURVE_FILE)


@dataclass
class TrainResult:
    step: int
    train_bpd: float | None
    test_bpd: float | None
    # The weights to evaluate and sample with: the moving average when there is one.
    eval_model: DensityModel | None = None
    # The signal that stopped training early (after a checkpoint), if one did.
    stopped_by: str | None = None


def train(
    model: DensityModel,
    train_images: torch.Tensor | StoredImages,
    test_images: torch.Tensor | StoredImages | None,
    options: TrainOptions,
    run_dir: str | Path,
    resume: bool = False,
    log: Callable[[str], None] = print,
    stop_at: int | None = None,
    train_condition: Any = None,
    test_condition: Any = None,
    on_start: Callable[[int], None] | None = None,
    world: World = SINGLE,
) -> TrainResult:
    """Train ``model`` on uint8 images [N, C, H, W] (valid levels), writing into ``run_dir``.
    Images in memory train from the device; a prepared dataset's :class:`StoredImages`
    (``snapped`` to the model's levels) is read a few batches ahead by ``options.workers``
    processes, each process of a distributed run reading only its share.

    ``run_dir`` receives the latest model (config.json + model.safetensors), checkpoints,
    ``metrics.jsonl`` and ``training_curve.png``. With ``resume`` the newest checkpoint is
    restored and training continues up to ``options.steps``. ``stop_at`` ends this call
    early at that step (with a checkpoint), leaving the schedule as if it went on: training
    in chunks, or a test of resuming. Conditional models take one condition per image in
    ``train_condition`` / ``test_condition`` (class labels [N], vectors [N, d], ...).
    ``on_start(step)`` runs once the state is ready (restored, when resuming) and before
    the first step: a run that cannot start has written nothing.

    ``world`` (see :mod:`pixelcnn.train.distributed`) trains one slice of every batch in
    each of several processes; only its main process writes files and reports.
    """
    options.check()
    check_precision(options.precision, model.device)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = training_data(model, train_images, train_condition, options, world)
    eval_set = eval_condition = None
    if test_images is not None and len(test_images):
        eval_set = test_images[: options.eval_images or None]
        eval_condition = select(test_condition, slice(0, len(eval_set)))
    writes = world.is_main  # files, logs and the progress bar: one process only
    say = log if writes else silent
    # a run stopped before its first checkpoint resumes from the start: nothing was lost
    restoring = resume and bool(list_checkpoints(run_dir))
    if not restoring:
        if resume:
            say(f"{run_dir} has no checkpoint yet: training from step 0")
        _initialise(model, data, options)
    trainer = Trainer(model, options, world)  # after the init: the average starts from it
    step = _restore(trainer, data, run_dir, say, world) if restoring else 0
    result = TrainResult(step=step, train_bpd=None, test_bpd=None, eval_model=trainer.eval_model)
    trainer.remember(step)
    if on_start is not None and writes:
        on_start(step)
    recorder = Recorder(
        run_dir, step, options.steps, data.batch_size, writes, options.progress,
        options.tensorboard, log,
    )  # fmt: skip
    model.train()
    last = options.steps if stop_at is None else min(stop_at, options.steps)
    # SIGTERM / Ctrl-C; the recorder's files and the data's reading workers closed at the end
    with StopRequests() as stop, contextlib.closing(recorder), contextlib.closing(data):
        while step < last:
            with recorder.timed():
                levels, condition = data.batch(step)
                outcome = trainer.step(step, levels, condition)
            recorder.step(step + 1, outcome)
            step += 1
            # a stop request ends here, after a checkpoint: all processes agree on the
            # step, so a distributed run stops as one
            if step < last and not world.all_true(stop.requested is None):
                last, result.stopped_by = step, stop.requested or "another process"
            evaluate_now = eval_set is not None and _every(step, options.eval_every, options)
            checkpoint_now = step == last or _every(step, options.checkpoint_every, options)
            if evaluate_now or checkpoint_now or _every(step, options.log_every, None):
                # every process reaches this at the same steps: the mean is a collective
                mean = recorder.mean_loss()
                train_bpd = world.mean(mean) if mean is not None else None
                if writes:
                    if train_bpd is not None:
                        result.train_bpd = train_bpd
                    if evaluate_now:
                        scores = evaluate(trainer.eval_model, eval_set, condition=eval_condition)
                        result.test_bpd = scores.bits_per_dim
                    test_bpd = result.test_bpd if evaluate_now else None
                    count = len(eval_set) if evaluate_now else None
                    recorder.record(step, trainer.learning_rate, train_bpd, test_bpd, count)
                    if evaluate_now:
                        recorder.samples(trainer.eval_model, step, options.seed)
                recorder.new_window()
            if checkpoint_now:
                if writes:
                    save_training_state(
                        trainer.parts, step, run_dir, options.keep_checkpoints, data.order(step)
                    )
                    plot_training_curve(read_metrics(recorder.metrics_path), run_dir / CURVE_FILE)
                trainer.remember(step)
    result.step = step
    return result


def _every(step: int, period: int, options: TrainOptions | None) -> bool:
    """Whether ``step`` is a multiple of ``period`` (0: never), or the last step of the
    schedule when ``options`` are given."""
    return bool(period and step % period == 0) or (options is not None and step == options.steps)


def _initialise(model: DensityModel, data: TrainingData, options: TrainOptions) -> None:
    """A fresh run: the seed, then data-dependent init of weight-normalized layers."""
    torch.manual_seed(options.seed)
    if options.init_images:
        levels, condition = data.first(options.init_images)
        with torch.no_grad():
            data_dependent_init(model.network, lambda: model(levels, condition))


def _restore(
    trainer: Trainer,
    data: TrainingData,
    run_dir: Path,
    log: Callable[[str], None],
    world: World,
) -> int:
    """Resume from the newest checkpoint (after which what a killed run left half written
    and the metrics it logged past the checkpoint go); its step."""
    step = restore_training_state(trainer.parts, run_dir, log, data.order(0))
    world.barrier()  # every process has read the checkpoint before any file goes
    if world.is_main:
        remove_partial_checkpoints(run_dir)
        remove_stale_temporaries(run_dir, _WRITTEN_FILES)
        keep_metrics_up_to(run_dir / METRICS_FILE, step)
    return step

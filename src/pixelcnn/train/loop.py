"""The training loop: Adam on mean bits/dim, periodic test evaluation, checkpoints, metrics."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from pixelcnn.conditions import select
from pixelcnn.evaluate import evaluate
from pixelcnn.files import remove_stale_temporaries
from pixelcnn.model import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    DensityModel,
    ModelConfig,
    check_finite,
    load_weights,
)
from pixelcnn.networks import network_spec
from pixelcnn.nn.data_init import data_dependent_init
from pixelcnn.train.checkpoint import (
    Checkpoint,
    list_checkpoints,
    load_checkpoint,
    remove_partial_checkpoints,
    save_checkpoint,
)
from pixelcnn.train.distributed import SINGLE, World, silent
from pixelcnn.train.guard import FaultGuard, LastGoodState, weights_finite
from pixelcnn.train.metrics import (
    append_metrics,
    keep_metrics_up_to,
    plot_training_curve,
    read_metrics,
)
from pixelcnn.train.objective import mean_bits_per_dim
from pixelcnn.train.precision import PRECISIONS, Autocast, check_precision
from pixelcnn.train.stopping import StopRequests
from pixelcnn.train.tensorboard import log_record, log_samples, open_writer
from pixelcnn.values import as_float, as_int

METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "training_curve.png"
LR_SCHEDULES = ("constant", "cosine")
# The files train() writes with atomic_write, whose temporaries a resume may clear away.
_WRITTEN_FILES = (CONFIG_FILE, WEIGHTS_FILE, METRICS_FILE, CURVE_FILE)


@dataclass
class TrainOptions:
    steps: int = 1500
    batch_size: int = 32
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"  # cosine decays to 5% of the rate over ``steps``
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    # Polyak averaging of the weights (0: off). The average is what evaluation, the saved
    # model, sampling and eval use; its decay warms up as min(decay, (1 + t) / (10 + t)).
    ema_decay: float = 0.0
    # Images for the data-dependent initialisation of weight-normalized layers (0: none).
    init_images: int = 0
    seed: int = 0
    log_every: int = 50  # steps between train-loss lines in metrics.jsonl
    eval_every: int = 500
    eval_images: int = 500  # test images scored at each periodic evaluation (0: all)
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    progress: bool = True
    # Numerical faults: a step with a non-finite loss or gradient is skipped; after this
    # many in a row the last good weights come back with the learning rate times
    # ``lr_backoff``, and after ``max_restores`` restores without a good step between
    # them training stops with an error.
    max_bad_steps: int = 5
    lr_backoff: float = 0.5
    max_restores: int = 3
    # Arithmetic of the training passes (evaluation always runs in full precision).
    precision: str = "fp32"
    # Scalars and, at each evaluation, a sample grid in run_dir/tensorboard, when the
    # tensorboard package is installed.
    tensorboard: bool = True

    @classmethod
    def for_network(cls, name: str, **options: Any) -> TrainOptions:
        """The options of network ``name``'s training recipe (its registry record, e.g.
        PixelCNN++'s weight average and data-dependent init) under ``options``; an option
        given as None takes the recipe's value (or the default)."""
        given = {key: value for key, value in options.items() if value is not None}
        return cls(**{**network_spec(name).recipe, **given})

    def check(self) -> None:
        """Refuse any option of the wrong kind or out of range (NaN and inf included),
        before any work: a run with an infinite rate would end with NaN weights."""
        for name, low in (("steps", 1), ("batch_size", 1), ("max_bad_steps", 1)):
            as_int(getattr(self, name), name, low)
        for name in (
            "init_images",
            "seed",
            "log_every",
            "eval_every",
            "eval_images",
            "checkpoint_every",
            "keep_checkpoints",
            "max_restores",
        ):
            as_int(getattr(self, name), name, 0)
        if not as_float(self.learning_rate, "learning rate", 0) > 0:
            raise ValueError(f"learning rate must be > 0, got {self.learning_rate}")
        as_float(self.grad_clip, "grad_clip", 0)
        as_float(self.ema_decay, "ema decay", 0, below=1)
        if not as_float(self.lr_backoff, "lr backoff", 0, 1) > 0:
            raise ValueError(f"lr backoff must be in (0, 1], got {self.lr_backoff}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr schedule must be one of {', '.join(LR_SCHEDULES)}")


@dataclass
class TrainResult:
    step: int
    train_bpd: float | None
    test_bpd: float | None
    # The weights to evaluate and sample with: the moving average when there is one.
    eval_model: DensityModel | None = None
    # The signal that stopped training early (after a checkpoint), if one did.
    stopped_by: str | None = None


def _ema(model: DensityModel, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s parameters, with a warm-up so a short
    run is not pulled back towards its random initialisation."""

    def average(averaged: torch.Tensor, current: torch.Tensor, count: torch.Tensor):
        rate = min(decay, (1.0 + float(count)) / (10.0 + float(count)))
        return averaged * rate + current * (1.0 - rate)

    return AveragedModel(model, avg_fn=average)


def data_order(step: int, count: int, batch_size: int, seed: int) -> dict[str, int]:
    """The place of batch ``step`` in the data order (epoch, batch in it) and what decides
    that order; :func:`batch_indices` uses it, checkpoints keep it."""
    epoch, batch = divmod(step, max(1, count // batch_size))
    return {"seed": seed, "batch_size": batch_size, "images": count, "epoch": epoch, "batch": batch}


def batch_indices(step: int, count: int, batch_size: int, seed: int) -> torch.Tensor:
    """Indices of the images in batch ``step``: a fresh seeded permutation every epoch.

    The order is a pure function of (seed, step), so a resumed run sees exactly the batches
    the uninterrupted run would have seen, with no data-loader state to save.
    """
    where = data_order(step, count, batch_size, seed)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + where["epoch"])
    order = torch.randperm(count, generator=generator)
    return order[where["batch"] * batch_size : (where["batch"] + 1) * batch_size]


def _lr_factor(schedule: str, total_steps: int) -> Callable[[int], float]:
    if schedule == "constant":
        return lambda step: 1.0
    floor = 0.05
    return lambda step: (
        floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / total_steps)))
    )


def train(
    model: DensityModel,
    train_images: torch.Tensor,
    test_images: torch.Tensor | None,
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
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = model.device
    # Levels are stored narrow (uint8 for L <= 256) and widened per batch to save memory.
    storage = torch.uint8 if model.levels <= 256 else torch.int32
    train_levels = model.images_to_levels(train_images).to(storage)
    conditions = model.prepare_condition(train_condition, len(train_levels))
    eval_set = eval_condition = None
    if test_images is not None and len(test_images):
        eval_set = test_images[: options.eval_images or None]
        eval_condition = select(test_condition, slice(0, len(eval_set)))
    batch_size = min(options.batch_size, len(train_levels))
    world.check_batch(batch_size)
    writes = world.is_main  # files, logs and the progress bar: one process only

    check_precision(options.precision, device)
    autocast = Autocast(device, options.precision)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_factor(options.lr_schedule, options.steps)
    )
    # a run stopped before its first checkpoint resumes from the start: nothing was lost
    restoring = resume and bool(list_checkpoints(run_dir))
    if resume and not restoring and writes:
        log(f"{run_dir} has no checkpoint yet: training from step 0")
    if not restoring:
        torch.manual_seed(options.seed)
        if options.init_images:
            first = batch_indices(0, len(train_levels), options.init_images, options.seed)
            levels = train_levels[first].to(device=device, dtype=torch.int64)
            condition = select(conditions, first)
            with torch.no_grad():
                data_dependent_init(model.network, lambda: model(levels, condition))
    ema = _ema(model, options.ema_decay) if options.ema_decay else None
    step = 0
    metrics_path = run_dir / METRICS_FILE
    last_good = LastGoodState(model, optimizer, ema)
    parts = TrainingParts(model, optimizer, scheduler, ema, autocast.scaler)
    order = partial(data_order, count=len(train_levels), batch_size=batch_size, seed=options.seed)
    if restoring:
        step = _restore(parts, run_dir, log if writes else silent, order(0))
        world.barrier()  # every process has read the checkpoint before any file goes
        if writes:  # what a killed run left behind: half-written files, later metrics
            remove_partial_checkpoints(run_dir)
            remove_stale_temporaries(run_dir, _WRITTEN_FILES)
            keep_metrics_up_to(metrics_path, step)
    eval_model = ema.module if ema is not None else model

    result = TrainResult(step=step, train_bpd=None, test_bpd=None, eval_model=eval_model)
    last_good.remember(step)
    guard = FaultGuard(last_good, options.max_bad_steps, options.max_restores, options.lr_backoff)
    skipped = 0
    if on_start is not None and writes:
        on_start(step)
    board = open_writer(run_dir, step) if writes and options.tensorboard else None
    forward = world.wrap(model)  # DDP across processes; the model itself in one
    window: list[float] = []
    window_start = time.perf_counter()
    model.train()
    bar = tqdm(
        total=options.steps,
        initial=step,
        desc="training",
        unit="step",
        disable=not (options.progress and writes),
    )
    with StopRequests() as stop:  # SIGTERM / Ctrl-C: finish the step, checkpoint, end
        try:
            last = options.steps if stop_at is None else min(stop_at, options.steps)
            while step < last:
                indices = batch_indices(step, len(train_levels), batch_size, options.seed)
                indices = world.shard(indices)  # this process's slice of the global batch
                levels = train_levels[indices].to(device=device, dtype=torch.int64)
                with autocast:
                    loss = mean_bits_per_dim(model, levels, select(conditions, indices), forward)
                optimizer.zero_grad(set_to_none=True)
                finite = world.all_true(bool(torch.isfinite(loss)))  # all skip, or none
                restored = None  # the event of restoring the last good state, if this does
                if finite:
                    autocast.scaler.scale(loss).backward()
                    autocast.scaler.unscale_(optimizer)
                    # the norm is computed in any case: a non-finite one marks a bad step
                    norm = torch.nn.utils.clip_grad_norm_(
                        model.parameters(), options.grad_clip or math.inf
                    )
                    finite = bool(torch.isfinite(norm))
                    if not finite and autocast.scaler.is_enabled():
                        # fp16 overflow: the scaler lowers its scale; no numerical fault
                        autocast.scaler.update()
                        optimizer.zero_grad(set_to_none=True)
                        skipped += 1
                        finite = None
                broken = False  # an update that left non-finite weights (a huge step)
                if finite:
                    autocast.scaler.step(optimizer)
                    autocast.scaler.update()
                    broken = not weights_finite(model)
                if finite and not broken:
                    if ema is not None:
                        ema.update_parameters(model)
                    window.append(loss.item())
                    guard.good_step()
                elif finite is not None:  # skip the update; the batch is not seen again
                    optimizer.zero_grad(set_to_none=True)
                    skipped += 1
                    restored = guard.bad_step(step + 1, scheduler, broken=broken)
                with warnings.catch_warnings():
                    # a skipped first step calls it before any optimizer.step(): intended here
                    warnings.filterwarnings(
                        "ignore", "Detected call of `lr_scheduler.step", UserWarning
                    )
                    scheduler.step()
                step += 1
                bar.update(1)
                if window:
                    bar.set_postfix(bpd=f"{sum(window[-50:]) / len(window[-50:]):.3f}")
                if restored and writes:
                    cause = (
                        "an update left non-finite weights"
                        if broken
                        else (f"{options.max_bad_steps} non-finite steps in a row")
                    )
                    message = (
                        f"step {step}: {cause}; "
                        f"restored the weights of step {restored['from_step']} and lowered the "
                        f"learning rate to {restored['lr']:.3g}"
                    )
                    if options.progress:
                        bar.write(message)
                    else:
                        log(message)
                    append_metrics(metrics_path, restored)

                evaluate_now = eval_set is not None and (
                    step == options.steps or (options.eval_every and step % options.eval_every == 0)
                )
                # a stop request (SIGTERM, Ctrl-C) ends here, after a checkpoint: all processes
                # agree on the step, so a distributed run stops as one
                if step < last and not world.all_true(stop.requested is None):
                    last, result.stopped_by = step, stop.requested or "another process"
                checkpoint_now = step in (options.steps, last) or (
                    options.checkpoint_every and step % options.checkpoint_every == 0
                )
                log_now = options.log_every and step % options.log_every == 0
                if evaluate_now or checkpoint_now or log_now:
                    # every process reaches this at the same steps: the mean is a collective
                    train_bpd = world.mean(sum(window) / len(window)) if window else None
                if writes and (evaluate_now or checkpoint_now or log_now):
                    elapsed = time.perf_counter() - window_start
                    record = {
                        "step": step,
                        "lr": optimizer.param_groups[0]["lr"],
                        "images_per_s": len(window) * batch_size / max(elapsed, 1e-9),
                    }
                    if train_bpd is not None:  # none when every step since was skipped
                        record["train_bpd"] = result.train_bpd = train_bpd
                    if skipped:
                        record["skipped_steps"] = skipped
                    if evaluate_now:
                        scores = evaluate(eval_model, eval_set, condition=eval_condition)
                        result.test_bpd = scores.bits_per_dim
                        record["test_bpd"] = result.test_bpd
                        bar.write(
                            f"step {step}: train {result.train_bpd or math.nan:.4f} bits/dim, "
                            f"test {result.test_bpd:.4f} bits/dim"
                        )
                    append_metrics(metrics_path, record)
                    if board is not None:
                        log_record(board, record)
                        if evaluate_now:
                            log_samples(board, eval_model, step, seed=options.seed)
                if evaluate_now or checkpoint_now or log_now:
                    window, window_start, skipped = [], time.perf_counter(), 0
                if checkpoint_now:
                    if writes:
                        _save(parts, step, run_dir, options.keep_checkpoints, order(step))
                        plot_training_curve(read_metrics(metrics_path), run_dir / CURVE_FILE)
                    if guard.clean:
                        last_good.remember(step)
        finally:
            bar.close()
            if board is not None:
                board.close()
    result.step = step
    return result


@dataclass
class TrainingParts:
    """What a checkpoint saves and a resume restores, besides the step."""

    model: DensityModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: AveragedModel | None
    scaler: torch.amp.GradScaler


def _save(parts: TrainingParts, step: int, run_dir: Path, keep: int, order: dict) -> None:
    model, ema, scaler = parts.model, parts.ema, parts.scaler
    # the guard restores before any non-finite weights could get here; never save them
    check_finite(model.state_dict(), f"the weights at step {step}")
    if ema is not None:
        check_finite(ema.state_dict(), f"the weight average at step {step}")
    cuda = torch.cuda.is_initialized()
    checkpoint = Checkpoint(
        step=step,
        model=model.state_dict(),
        optimizer=parts.optimizer.state_dict(),
        scheduler=parts.scheduler.state_dict(),
        rng=torch.get_rng_state(),
        cuda_rng=torch.stack(torch.cuda.get_rng_state_all()) if cuda else None,
        model_config=model.config.to_json(),
        ema=ema.state_dict() if ema is not None else None,
        scaler=scaler.state_dict() if scaler.is_enabled() else None,
        data_order=order,
    )
    save_checkpoint(run_dir, checkpoint, keep=keep)
    # The run directory itself always holds the latest loadable model: the average if any.
    (ema.module if ema is not None else model).save(run_dir)


def _restore(parts: TrainingParts, run_dir: Path, log: Callable[[str], None], order: dict) -> int:
    """Load the newest checkpoint into ``parts``; its step. ``order`` is this run's data
    order at step 0: a different one is allowed, but said (the batches will differ)."""
    model, ema = parts.model, parts.ema
    checkpoints = list_checkpoints(run_dir)
    checkpoint = load_checkpoint(checkpoints[-1])
    try:
        stored_config = ModelConfig.from_json(checkpoint.model_config, str(checkpoints[-1]))
    except ValueError:
        stored_config = None
    if stored_config != model.config:
        raise ValueError(f"checkpoint {checkpoints[-1]} belongs to a different model configuration")
    load_weights(model, checkpoint.model, source=str(checkpoints[-1]))
    try:
        parts.optimizer.load_state_dict(checkpoint.optimizer)
        parts.scheduler.load_state_dict(checkpoint.scheduler)
        torch.set_rng_state(checkpoint.rng)
        if checkpoint.cuda_rng is not None and torch.cuda.is_available():
            if len(checkpoint.cuda_rng) != torch.cuda.device_count():
                raise ValueError(
                    f"it holds the random state of {len(checkpoint.cuda_rng)} GPUs, "
                    f"this machine has {torch.cuda.device_count()}"
                )
            torch.cuda.set_rng_state_all(list(checkpoint.cuda_rng))
        if ema is not None:
            if checkpoint.ema is None:
                raise ValueError("it was trained without a weight average (--ema 0)")
            ema.load_state_dict(checkpoint.ema)
        if parts.scaler.is_enabled() and checkpoint.scaler is not None:
            parts.scaler.load_state_dict(checkpoint.scaler)
    except Exception as error:  # noqa: BLE001 - any bad state, one line naming the file
        raise ValueError(
            f"checkpoint {checkpoints[-1]} has unusable training state: {error}"
        ) from None
    log(f"resumed from {checkpoints[-1]} at step {checkpoint.step}")
    stored = {k: v for k, v in (checkpoint.data_order or {}).items() if k in _ORDER_KEYS}
    current = {k: order[k] for k in _ORDER_KEYS}
    if stored and stored != current:
        log(
            f"note: the data order differs from the checkpoint's ({stored} then, {current} "
            "now): the resumed run will not see the batches an uninterrupted one would"
        )
    return checkpoint.step


_ORDER_KEYS = ("seed", "batch_size", "images")  # what decides the order of the batches

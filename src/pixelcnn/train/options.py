"""What a training run is asked to do: its options, checked before any work, and the
learning-rate schedule they name."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pixelcnn.networks import network_spec
from pixelcnn.train.precision import PRECISIONS
from pixelcnn.values import as_float, as_int

LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainOptions:
    steps: int = 1500
    batch_size: int = 32
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"  # cosine decays to 5% of the rate over ``steps``
    # The rate rises linearly from 0 over the first ``warmup_steps`` (0: none); the
    # schedule then runs over the steps that remain.
    warmup_steps: int = 0
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
    # A background model for the likelihood-ratio OOD test (Ren et al. 2019): each training
    # sub-pixel is replaced by a uniformly drawn level with probability ``perturb``, and
    # Adam adds an L2 penalty of ``weight_decay``.
    perturb: float = 0.0
    weight_decay: float = 0.0
    # Numerical faults: a step with a non-finite loss or gradient is skipped; after this
    # many in a row the last good weights come back with the learning rate times
    # ``lr_backoff``, and after ``max_restores`` restores without a good step between
    # them training stops with an error.
    max_bad_steps: int = 5
    lr_backoff: float = 0.5
    max_restores: int = 3
    # Arithmetic of the training passes (evaluation always runs in full precision).
    precision: str = "fp32"
    # torch.compile the training forward (evaluation, sampling and the saved model stay
    # eager): faster steps after a first one that compiles for minutes on a small CPU.
    compile: bool = False
    # Scalars and, at each evaluation, a sample grid in run_dir/tensorboard, when the
    # tensorboard package is installed.
    tensorboard: bool = True
    # Processes reading a training set on disk (a prepared dataset) a few batches ahead;
    # 0 reads in the training process. Sets in memory need none.
    workers: int = 2

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
            "warmup_steps",
            "seed",
            "log_every",
            "eval_every",
            "eval_images",
            "checkpoint_every",
            "keep_checkpoints",
            "max_restores",
            "workers",
        ):
            as_int(getattr(self, name), name, 0)
        if not as_float(self.learning_rate, "learning rate", 0) > 0:
            raise ValueError(f"learning rate must be > 0, got {self.learning_rate}")
        as_float(self.grad_clip, "grad_clip", 0)
        as_float(self.perturb, "perturb", 0, below=1)
        as_float(self.weight_decay, "weight_decay", 0)
        as_float(self.ema_decay, "ema decay", 0, below=1)
        if not as_float(self.lr_backoff, "lr backoff", 0, 1) > 0:
            raise ValueError(f"lr backoff must be in (0, 1], got {self.lr_backoff}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr schedule must be one of {', '.join(LR_SCHEDULES)}")


def lr_factor(schedule: str, total_steps: int, warmup_steps: int = 0) -> Callable[[int], float]:
    """The factor of the base rate at each step: a linear rise over ``warmup_steps``, then
    1, or a cosine from 1 down to 5% at ``total_steps``."""
    floor = 0.05

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if schedule == "constant":
            return 1.0
        done = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, done)))

    return factor

"""One optimizer step at a time: Adam on mean bits/dim with gradient clipping, mixed
precision, the weight average, data-parallel processes and the fault guard, each step
answering with a named outcome. The loop (``loop.train``) decides when to record,
evaluate and checkpoint; this class knows nothing of files."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel

from pixelcnn.model import DensityModel
from pixelcnn.train import objective
from pixelcnn.train.checkpoint import TrainingParts
from pixelcnn.train.distributed import SINGLE, World
from pixelcnn.train.guard import FaultGuard, LastGoodState, weights_finite
from pixelcnn.train.options import TrainOptions, lr_factor
from pixelcnn.train.precision import Autocast, check_precision


class Outcome(Enum):
    GOOD = "good"  # the update was applied
    NON_FINITE = "non-finite"  # loss or gradient not finite (or weights broken): skipped
    OVERFLOW = "fp16 overflow"  # the loss scaler lowers its scale: skipped, no fault
    RESTORED = "restored"  # a bad step that brought back the last good state


@dataclass
class StepResult:
    outcome: Outcome
    loss: float | None = None  # bits/dim of a good step's batch
    event: dict[str, Any] | None = None  # with RESTORED: step, from_step, lr
    cause: str = ""  # with RESTORED: what made it restore


def _ema(model: DensityModel, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s parameters, with a warm-up so a short
    run is not pulled back towards its random initialisation."""

    def average(averaged: torch.Tensor, current: torch.Tensor, count: torch.Tensor):
        rate = min(decay, (1.0 + float(count)) / (10.0 + float(count)))
        return averaged * rate + current * (1.0 - rate)

    return AveragedModel(model, avg_fn=average)


class Trainer:
    """Owns what a step changes: the optimizer, the schedule, the weight average, the loss
    scaler and the guard's last good state (``parts`` is what a checkpoint holds)."""

    def __init__(self, model: DensityModel, options: TrainOptions, world: World = SINGLE):
        options.check()
        check_precision(options.precision, model.device)
        self.model, self.options, self.world = model, options, world
        self.autocast = Autocast(model.device, options.precision)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_factor(options.lr_schedule, options.steps, options.warmup_steps)
        )
        self.ema = _ema(model, options.ema_decay) if options.ema_decay else None
        self.parts = TrainingParts(model, optimizer, scheduler, self.ema, self.autocast.scaler)
        self.last_good = LastGoodState(model, optimizer, self.ema)
        self.guard = FaultGuard(
            self.last_good, options.max_bad_steps, options.max_restores, options.lr_backoff
        )
        self.forward = world.wrap(model)  # DDP across processes; the model itself in one
        if options.compile:  # a wrapper: the model, its weights and their names unchanged
            self.forward = torch.compile(self.forward)

    @property
    def eval_model(self) -> DensityModel:
        """The weights to evaluate and sample with: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def learning_rate(self) -> float:
        return self.parts.optimizer.param_groups[0]["lr"]

    def remember(self, step: int) -> None:
        """The state at a checkpoint becomes the one to come back to, unless it is bad."""
        if self.guard.clean:
            self.last_good.remember(step)

    def step(self, step: int, levels: torch.Tensor, condition: Any) -> StepResult:
        """Step ``step`` (0-based) on this process's batch of levels [b, C, H, W]."""
        optimizer = self.parts.optimizer
        with self.autocast:
            loss = objective.mean_bits_per_dim(self.model, levels, condition, self.forward)
        optimizer.zero_grad(set_to_none=True)
        result = self._update(step, loss)
        if result.outcome is not Outcome.GOOD:
            optimizer.zero_grad(set_to_none=True)  # the batch is not seen again
        with warnings.catch_warnings():
            # a skipped first step calls it before any optimizer.step(): intended here
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            self.parts.scheduler.step()
        return result

    def _update(self, step: int, loss: torch.Tensor) -> StepResult:
        scaler = self.autocast.scaler
        if not self.world.all_true(bool(torch.isfinite(loss))):  # all skip, or none
            return self._bad(step, broken=False)
        scaler.scale(loss).backward()
        scaler.unscale_(self.parts.optimizer)
        # the norm is computed in any case: a non-finite one marks a bad step
        norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), self.options.grad_clip or math.inf
        )
        if not bool(torch.isfinite(norm)):
            if scaler.is_enabled():  # fp16 overflow: the scaler lowers its scale
                scaler.update()
                return StepResult(Outcome.OVERFLOW)
            return self._bad(step, broken=False)
        scaler.step(self.parts.optimizer)
        scaler.update()
        if not weights_finite(self.model):  # a finite step too large: the weights broke
            return self._bad(step, broken=True)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.guard.good_step()
        return StepResult(Outcome.GOOD, loss=loss.item())

    def _bad(self, step: int, broken: bool) -> StepResult:
        event = self.guard.bad_step(step + 1, self.parts.scheduler, broken=broken)
        if event is None:
            return StepResult(Outcome.NON_FINITE)
        cause = (
            "an update left non-finite weights"
            if broken
            else f"{self.options.max_bad_steps} non-finite steps in a row"
        )
        return StepResult(Outcome.RESTORED, event=event, cause=cause)

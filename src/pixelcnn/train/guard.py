"""Numerical faults in training: skip a bad step, and after several in a row come back to
the last good state with a lower learning rate."""

from __future__ import annotations

import math
from typing import Any

import torch


class LastGoodState:
    """A copy (in CPU memory) of the weights, weight average and optimizer state at the
    last checkpoint, for restoring after a run of non-finite steps."""

    def __init__(self, model, optimizer, ema):
        self.model, self.optimizer, self.ema = model, optimizer, ema
        self.step = 0
        self.saved: dict[str, Any] = {}

    def remember(self, step: int) -> None:
        self.step = step
        self.saved = {
            "model": _to_cpu(self.model.state_dict()),
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "ema": _to_cpu(self.ema.state_dict()) if self.ema is not None else None,
        }

    def restore(self, scheduler, backoff: float) -> float:
        """Load the copy back, scale the learning rate by ``backoff``; the new rate."""
        self.model.load_state_dict(self.saved["model"])
        self.optimizer.load_state_dict(self.saved["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(self.saved["ema"])
        # the schedule keeps its position; only its base rate is lowered (and checkpointed)
        scheduler.base_lrs = [rate * backoff for rate in scheduler.base_lrs]
        for group, rate in zip(self.optimizer.param_groups, scheduler.get_last_lr(), strict=True):
            group["lr"] = rate * backoff
        return self.optimizer.param_groups[0]["lr"]


def weights_finite(model: torch.nn.Module) -> bool:
    """Whether every parameter of ``model`` is finite (one flag per tensor, one sync)."""
    flags = [torch.isfinite(p.detach()).all() for p in model.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def _to_cpu(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: _to_cpu(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_to_cpu(v) for v in state)
    return state


class FaultGuard:
    """Counts non-finite steps: after ``max_bad_steps`` in a row (or at once, when an
    update left non-finite weights) it restores the last good state with the learning rate
    times ``backoff``; after ``max_restores`` restores with no good step between them it
    gives up with a FloatingPointError. So training never goes on, saves or finishes
    with non-finite weights."""

    def __init__(
        self, last_good: LastGoodState, max_bad_steps: int, max_restores: int, backoff: float
    ):
        self.last_good = last_good
        self.max_bad_steps, self.max_restores, self.backoff = max_bad_steps, max_restores, backoff
        self.bad_in_a_row = self.restores_in_a_row = 0

    @property
    def clean(self) -> bool:
        """No bad step since the last good one: the state may be remembered as good."""
        return self.bad_in_a_row == 0

    def good_step(self) -> None:
        self.bad_in_a_row = self.restores_in_a_row = 0

    def bad_step(self, step: int, scheduler, broken: bool = False) -> dict[str, Any] | None:
        """Count a skipped step; when that restores the last good state, the event
        (step, from_step, lr) to report. ``broken``: the step's update left non-finite
        weights, which no later step can mend, so the last good state comes back now."""
        self.bad_in_a_row += 1
        if self.bad_in_a_row < self.max_bad_steps and not broken:
            return None
        if self.restores_in_a_row >= self.max_restores:
            raise FloatingPointError(
                f"training keeps producing non-finite losses or gradients at step {step} "
                f"({self.restores_in_a_row} restores of the step-{self.last_good.step} weights "
                "did not help); check the data and lower --lr"
            )
        rate = self.last_good.restore(scheduler, self.backoff)
        if not math.isfinite(rate) or rate <= 0:
            raise FloatingPointError(f"the learning rate became {rate} at step {step}")
        self.restores_in_a_row += 1
        self.bad_in_a_row = 0
        return {"step": step, "event": "restored", "from_step": self.last_good.step, "lr": rate}

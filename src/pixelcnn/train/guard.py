"""Numerical faults in training: the last good state to come back to."""

from __future__ import annotations

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


def _to_cpu(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: _to_cpu(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_to_cpu(v) for v in state)
    return state

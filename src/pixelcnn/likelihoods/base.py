"""The contract of a likelihood: parameters from a network in, log-probabilities or draws
out. Networks know nothing of it beyond ``num_params`` and ``joint_channels``."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Likelihood(Protocol):
    """p(x_i | x_<i) over ``levels`` values for ``channels`` sub-pixels per pixel.

    ``num_params`` P: the network output channels it consumes per position.
    ``joint_channels``: it draws a whole pixel from one parameter vector (coupling R -> G ->
    B itself), so the network must see nothing of the current pixel; otherwise it draws one
    channel per network pass and the network's colour groups do the coupling.

    Optional: ``channel_log_probs(params [B, P, 1, 1], pixel [B, C, 1, 1], channel) -> [B, L]``,
    the log-probabilities of every level of one channel given the pixel's earlier channels,
    for the entropy coder; without it the coder scores all L candidates with ``log_prob``.
    """

    name: str
    levels: int
    channels: int
    joint_channels: bool

    @property
    def num_params(self) -> int: ...

    def log_prob(self, params: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """params [B, P, H, W], integer levels [B, C, H, W] -> log p in nats [B, C, H, W]."""
        ...

    def sample(
        self,
        params: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """params [B, P, H, W] -> drawn levels [B, C, H, W] (int64); temperature 0: the
        most likely value."""
        ...

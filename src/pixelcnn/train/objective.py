"""The training objective: mean bits per dimension of a batch, the exact negative
log-likelihood in the units papers report (see :mod:`pixelcnn.units`)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from pixelcnn.model import DensityModel
from pixelcnn.units import bits_per_dim


def mean_bits_per_dim(
    model: DensityModel,
    levels: torch.Tensor,
    condition: dict[str, torch.Tensor] | None = None,
    forward: Callable[..., torch.Tensor] | None = None,
) -> torch.Tensor:
    """The training loss: mean bits/dim of integer levels [B, C, H, W] -> scalar.

    ``forward`` runs the network in place of ``model`` itself (its DDP wrapper)."""
    params = (model if forward is None else forward)(levels, condition)
    nats = -model.likelihood.log_prob(params, levels).flatten(1).sum(1)
    return bits_per_dim(nats.mean(), math.prod(model.image_shape))

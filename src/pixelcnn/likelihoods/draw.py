"""Drawing from discrete distributions, shared by the likelihoods' samplers."""

from __future__ import annotations

import torch


def draw_index(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row of ``probs`` [N, K] (non-negative, each row summing to about 1)
    -> int64 [N], by inverse CDF: the first index whose cumulative probability exceeds
    u * (row total) for a uniform u. An index of zero probability is never drawn.

    One uniform number per row and a handful of operations: cheaper than
    ``torch.multinomial`` for the small batches of autoregressive sampling, where a draw
    happens at every pixel.
    """
    cdf = probs.to(torch.float64).cumsum(dim=-1)
    uniform = torch.rand(
        len(probs), 1, generator=generator, dtype=torch.float64, device=probs.device
    )
    index = torch.searchsorted(cdf, uniform * cdf[:, -1:], right=True)
    return index.squeeze(1).clamp_(max=probs.shape[-1] - 1)  # u * total < total: never hit

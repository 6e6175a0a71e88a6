"""Drawing from discrete distributions, shared by the likelihoods' samplers."""

from __future__ import annotations

import torch


def tempered(logits: torch.Tensor, temperature: float, dim: int) -> torch.Tensor:
    """``logits / temperature`` along ``dim`` for a softmax, with the largest logit moved
    to 0 first and in float64 (the draw's precision anyway): a tiny temperature then sends
    the others to -inf, never to inf - inf (NaN). Temperature 1 leaves them as they are."""
    if temperature == 1:
        return logits
    return (logits - logits.amax(dim=dim, keepdim=True)).double() / temperature


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

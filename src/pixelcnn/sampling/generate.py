"""The one entry point of generation: what a draw needs, taken from no model object.

A :class:`Source` says how to get parameters (a whole-image function for the naive sampler,
a step factory for the cached one), which likelihood turns them into draws, and how levels
are encoded for the network. :func:`generate` picks the method, checks the temperature and
fills the levels from a raster index on; :func:`known_prefix` (in ``completion``) turns a
user's known mask into that index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pixelcnn.likelihoods.base import Likelihood
from pixelcnn.nn.stepping import GenerationSteps
from pixelcnn.sampling.cached import sample_cached
from pixelcnn.sampling.finite import check_finite_parameters
from pixelcnn.sampling.naive import sample_naive
from pixelcnn.values import as_float

SAMPLING_METHODS = ("cached", "naive")


@dataclass
class Source:
    """Where draws come from.

    ``parameters_of(levels [B, C, h, W]) -> params [B, P, h, W]``: the network on the top
    rows, condition bound (naive). ``steps(batch, height, width) -> GenerationSteps | None``:
    the network step by step (cached; None when it cannot step). ``encode(levels) ->
    network input``. ``row_multiple``: how the naive sampler may crop rows.
    """

    likelihood: Likelihood
    encode: Callable[[torch.Tensor], torch.Tensor]
    parameters_of: Callable[[torch.Tensor], torch.Tensor]
    steps: Callable[[int, int, int], GenerationSteps | None]
    row_multiple: int | None = None
    name: str = "this"  # the network's name, for messages


@torch.no_grad()
def generate(
    source: Source,
    levels: torch.Tensor,
    start: int = 0,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    method: str = "cached",
    progress: bool = False,
    score: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Draw the sub-pixels of ``levels`` [B, C, H, W] (int64) from raster index ``start``
    on (the earlier ones are kept). -> (levels, log p(x_i | x_<i) in nats [B, C, H, W] with
    ``score``, else None). Both methods give the same levels for the same ``generator``.
    Raises :class:`NonFiniteParametersError` (a ValueError) where the network gives NaN or
    infinite parameters to draw from, before any image is returned."""
    if method not in SAMPLING_METHODS:
        raise ValueError(f"method must be one of {SAMPLING_METHODS}, got {method!r}")
    temperature = as_float(temperature, "temperature", minimum=0)
    if method == "cached":
        steps = source.steps(len(levels), *levels.shape[2:])
        if steps is None:
            raise ValueError(f"the {source.name} network cannot step; use method='naive'")
        return sample_cached(
            steps,
            source.likelihood,
            source.encode,
            levels,
            temperature=temperature,
            generator=generator,
            start=start,
            progress=progress,
            score=score,
        )
    levels = sample_naive(
        source.parameters_of,
        source.likelihood,
        levels,
        temperature=temperature,
        generator=generator,
        start=start,
        row_multiple=source.row_multiple,
        progress=progress,
    )
    if not score:
        return levels, None
    params = source.parameters_of(levels)
    check_finite_parameters(params)  # the known part's too: its scores are returned
    return levels, source.likelihood.log_prob(params, levels)

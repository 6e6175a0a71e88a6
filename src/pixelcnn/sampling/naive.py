"""Naive autoregressive sampling: one full network pass per generated sub-pixel (or pixel).

The reference sampler. Its one economy is exact: a network whose outputs at rows <= r never
depend on rows > r (it declares ``row_multiple``) runs on the rows up to the current one only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from pixelcnn.sampling.finite import check_finite_parameters


@torch.no_grad()
def sample_naive(
    parameters_of: Callable[[torch.Tensor], torch.Tensor],
    likelihood,
    levels: torch.Tensor,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    start: int = 0,
    row_multiple: int | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Fill ``levels`` [B, C, H, W] (int64) in raster order from sub-pixel index ``start`` on.

    ``parameters_of`` maps the levels of the top rows [B, C, h, W] to the likelihood's
    parameters [B, P, h, W] (the network, with any condition bound). Sub-pixels before
    ``start`` (raster position, then channel) are kept as given, which is what completion
    needs. Returns a new tensor. Parameters that are not finite are refused
    (:class:`~pixelcnn.sampling.finite.NonFiniteParametersError`, a ValueError).
    """
    levels = levels.clone()
    _, channels, height, width = levels.shape
    step = channels if likelihood.joint_channels else 1
    if start % step:
        raise ValueError("this likelihood draws whole pixels: start must be a pixel boundary")
    positions = range(start, channels * height * width, step)
    for index in tqdm(positions, desc="sampling", disable=not progress, leave=False):
        row, rest = divmod(index, channels * width)
        col, channel = divmod(rest, channels)
        rows = height
        if row_multiple:
            rows = min(height, -(-(row + 1) // row_multiple) * row_multiple)
        params = parameters_of(levels[:, :, :rows])
        pixel_params = params[:, :, row : row + 1, col : col + 1]
        check_finite_parameters(pixel_params, row, col)
        drawn = likelihood.sample(pixel_params, temperature, generator)[:, :, 0, 0]
        if likelihood.joint_channels:
            levels[:, :, row, col] = drawn
        else:
            levels[:, channel, row, col] = drawn[:, channel]
    return levels

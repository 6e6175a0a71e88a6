"""Cached sampling: each step computes only what the new pixel changes.

The network's :class:`~pixelcnn.nn.stepping.GenerationSteps` keep a queue of rows per layer;
this loop knows nothing of any network. It draws exactly what :func:`sample_naive` draws
(the same likelihood calls on the same parameters, in the same order, so the same random
stream gives the same images) at a constant cost per pixel instead of a whole network pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from pixelcnn.nn.stepping import GenerationSteps
from pixelcnn.sampling.finite import check_finite_parameters


@torch.no_grad()
def sample_cached(
    steps: GenerationSteps,
    likelihood,
    encode: Callable[[torch.Tensor], torch.Tensor],
    levels: torch.Tensor,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    start: int = 0,
    progress: bool = False,
    score: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fill ``levels`` [B, C, H, W] (int64) in raster order from sub-pixel index ``start``.

    Sub-pixels before ``start`` (raster position, then channel) are kept as given and only
    run through the network to fill the caches. ``encode`` maps levels [B, C, 1, 1] to the
    network's input there. Returns new levels and, with ``score``, log p(x_i | x_<i) in nats
    of every sub-pixel [B, C, H, W] (None otherwise).
    """
    levels = levels.clone()
    batch, channels, height, width = levels.shape
    joint = likelihood.joint_channels
    if joint and start % channels:
        raise ValueError("this likelihood draws whole pixels: start must be a pixel boundary")
    log_probs = torch.zeros(levels.shape, device=levels.device) if score else None
    bar = tqdm(total=height * width, desc="sampling", disable=not progress, leave=False)
    with steps, bar:
        for i in range(height):
            steps.row(i)
            for j in range(width):
                pixel = levels[:, :, i : i + 1, j : j + 1]  # a view: draws land in levels
                first = (i * width + j) * channels  # sub-pixel index of the pixel's channel 0
                if first + channels <= start:  # known: one pass fills the caches
                    passes = [None]
                elif joint:
                    passes = [0]
                else:
                    passes = range(max(start - first, 0), channels)
                for channel in passes:
                    params = steps.pixel(i, j, encode(pixel))
                    if channel is not None or score:  # parameters a draw or a score uses
                        check_finite_parameters(params, i, j)
                    if channel is not None:
                        drawn = likelihood.sample(params, temperature, generator)
                        if joint:
                            pixel.copy_(drawn)
                        else:
                            pixel[:, channel] = drawn[:, channel]
                    if score:  # channels up to this pass's are conditioned on known values
                        upto = channels if channel is None or joint else channel + 1
                        scores = likelihood.log_prob(params, pixel)[:, :upto, 0, 0]
                        log_probs[:, :upto, i, j] = scores
                steps.commit(i, j, encode(pixel))
            bar.update(width)
    return levels, log_probs

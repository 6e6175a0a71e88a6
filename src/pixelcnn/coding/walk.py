"""The one walk that both the encoder and the decoder take through a batch of images.

An entropy coder needs, for every sub-pixel, the distribution the decoder will see there,
to the last bit. A batched forward pass and the cached one-pixel steps agree only to
rounding, so both sides run this same function: the cached steps in raster order (as the
cached sampler does), each sub-pixel's distribution computed from the sub-pixels the walk
itself has filled in so far, and a ``symbols`` callback that encodes the known values or
decodes new ones. The encoder's images reach the network only through what the callback
returns, so whatever the callback knows, the floating-point work is the same on both sides.
It knows nothing of any network or coder.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from pixelcnn.nn.stepping import GenerationSteps

# (probabilities [B, L] float64, sub-pixel position (channel, i, j)) -> levels [B] int64
Symbols = Callable[[np.ndarray, tuple[int, int, int]], np.ndarray]


def channel_log_probs(likelihood, params: torch.Tensor, pixel: torch.Tensor, channel: int):
    """log p(x_c = l | the pixel's channels before c) for every level l: params
    [B, P, 1, 1], pixel levels [B, C, 1, 1] -> [B, L].

    The likelihood's own ``channel_log_probs`` if it has one; otherwise, for any likelihood
    that honours the contract (``log_prob`` of channel c depends on the channels before c
    only), each of the L candidates is scored in one batch.
    """
    own = getattr(likelihood, "channel_log_probs", None)
    if own is not None:
        return own(params, pixel, channel)
    batch, levels = len(pixel), likelihood.levels
    candidates = pixel.repeat_interleave(levels, dim=0)
    candidates[:, channel] = torch.arange(levels, device=pixel.device).repeat(batch)[:, None, None]
    scores = likelihood.log_prob(params.repeat_interleave(levels, dim=0), candidates)
    return scores[:, channel, 0, 0].reshape(batch, levels)


# A softmax in float64 sums to 1 within a few ulps; anything further off is not a distribution.
_SUM_TOLERANCE = 1e-9


def check_probabilities(probabilities: np.ndarray, position: tuple[int, int, int]) -> None:
    """Refuse distributions [B, L] that are not ones (NaN or infinite entries, from a model
    whose activations overflow; rows not summing to 1): the coder would quantize garbage or
    fail deep inside, and encoder and decoder could not agree on it."""
    finite = np.isfinite(probabilities).all()
    if not finite or np.abs(probabilities.sum(axis=1) - 1).max() > _SUM_TOLERANCE:
        channel, i, j = position
        what = "not finite" if not finite else "do not sum to 1"
        raise ValueError(
            f"the model's probabilities are {what} at sub-pixel (channel {channel}, row {i}, "
            f"column {j}); it cannot code images"
        )


@torch.no_grad()
def walk(
    steps: GenerationSteps,
    likelihood,
    encode: Callable[[torch.Tensor], torch.Tensor],
    shape: tuple[int, int, int, int],
    symbols: Symbols,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> torch.Tensor:
    """Fill int64 levels of ``shape`` [B, C, H, W] sub-pixel by sub-pixel in raster order
    (R -> G -> B inside a pixel) with what ``symbols`` returns for each distribution."""
    levels = torch.zeros(shape, dtype=torch.int64, device=device)
    _, channels, height, width = shape
    joint = likelihood.joint_channels
    bar = tqdm(total=height * width, desc="pixels", disable=not progress, leave=False)
    with steps, bar:
        for i in range(height):
            steps.row(i)
            for j in range(width):
                pixel = levels[:, :, i : i + 1, j : j + 1]  # a view: symbols land in levels
                params = None
                for channel in range(channels):
                    if params is None or not joint:  # one pass a pixel, or one a channel
                        params = steps.pixel(i, j, encode(pixel))
                    log_p = channel_log_probs(likelihood, params, pixel, channel)
                    probabilities = torch.softmax(log_p.double(), dim=1).cpu().numpy()
                    check_probabilities(probabilities, (channel, i, j))
                    chosen = symbols(probabilities, (channel, i, j))
                    pixel[:, channel, 0, 0] = torch.as_tensor(chosen, device=device)
                steps.commit(i, j, encode(pixel))
            bar.update(width)
    return levels

"""Categorical likelihood over L levels per sub-pixel (a softmax over colour levels)."""

from __future__ import annotations

import torch

from pixelcnn.likelihoods.draw import draw_index, tempered


class Categorical:
    """p(x_i | x_<i) as a softmax over ``levels`` values for each of ``channels`` sub-pixels.

    Parameters come as [B, C * L, H, W], channel-major: entries c*L .. c*L + L - 1 are the
    logits of channel c. Each channel needs its own network pass while sampling, because the
    network predicts G from the sampled R (and B from R and G) through its masks.
    """

    name = "categorical"
    # The sampler draws one channel of a pixel per network pass.
    joint_channels = False

    def __init__(self, levels: int, channels: int):
        self.levels = levels
        self.channels = channels

    @property
    def num_params(self) -> int:
        """Network output channels this likelihood consumes."""
        return self.channels * self.levels

    def _logits(self, params: torch.Tensor) -> torch.Tensor:
        """[B, C*L, H, W] -> [B, C, L, H, W]."""
        b, _, h, w = params.shape
        logits = params.reshape(b, self.channels, self.levels, h, w)
        # softmax in at least float32, also under bf16/fp16 autocast
        return logits if logits.dtype == torch.float64 else logits.float()

    def log_prob(self, params: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """log p of integer ``levels`` [B, C, H, W] in nats, per sub-pixel: [B, C, H, W]."""
        log_p = torch.log_softmax(self._logits(params), dim=2)
        return log_p.gather(2, levels.unsqueeze(2)).squeeze(2)

    def channel_log_probs(
        self, params: torch.Tensor, pixel: torch.Tensor, channel: int
    ) -> torch.Tensor:
        """log p(x_c = l) for every level l of one pixel's ``channel``: params [B, P, 1, 1]
        -> [B, L] (the coder's fast path; the generic one scores all L candidates)."""
        return torch.log_softmax(self._logits(params)[:, channel, :, 0, 0], dim=1)

    def sample(
        self,
        params: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw levels [B, C, H, W] (int64), every sub-pixel independently from its logits.

        ``temperature`` divides the logits; 0 picks the most likely level.
        """
        logits = self._logits(params).movedim(2, -1)  # [B, C, H, W, L]
        if temperature == 0:
            return logits.argmax(dim=-1)
        probs = torch.softmax(tempered(logits, temperature, -1), dim=-1).reshape(-1, self.levels)
        return draw_index(probs, generator).reshape(logits.shape[:-1])

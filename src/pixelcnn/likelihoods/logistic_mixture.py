"""Discretized logistic mixture likelihood (Salimans et al. 2017, PixelCNN++).

Each pixel has K logistic components shared by its channels. A level k of L enters as
x = 2k/(L - 1) - 1 in [-1, 1] and owns the bin [x - 1/(L-1), x + 1/(L-1)]; the bins of the
lowest and highest level take the whole tails. For RGB the means are coupled linearly:
mu_g += alpha * r and mu_b += beta * r + gamma * g, with r, g the true values (training) or
the already drawn ones (sampling), so one network pass gives the whole pixel.

Parameter layout (channels-first, as in the reference implementation): ``params[:, :K]``
are the mixture logits; ``params[:, K:]`` reshaped to [B, C, n*K, H, W] holds for each
channel K means, K log-scales and (for C = 3) K coupling coefficients (through tanh).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pixelcnn.likelihoods.draw import draw_index, tempered
from pixelcnn.quantize import Quantizer

LOG_SCALE_MIN = -7.0  # scales below e^-7 would make every bin mass 0 or 1 in float32
TINY_BIN = 1e-6  # below this scaled bin width the mass is taken as density x width


class DiscretizedLogisticMixture:
    """p(pixel | params) for ``channels`` in {1, 3} and ``levels`` colour levels."""

    name = "logistic_mixture"
    # One network pass gives the whole pixel: the network must not see any channel of the
    # current pixel, and the coupling orders R -> G -> B inside the likelihood.
    joint_channels = True

    def __init__(self, levels: int, channels: int, components: int = 10):
        if channels not in (1, 3):
            raise ValueError(f"the logistic mixture takes 1 or 3 channels, got {channels}")
        if components < 1:
            raise ValueError(f"components must be at least 1, got {components}")
        self.levels = levels
        self.channels = channels
        self.quantizer = Quantizer(levels)
        self.components = components
        self._per_channel = 3 if channels == 3 else 2  # means, log-scales (, coefficients)

    @property
    def num_params(self) -> int:
        """K logits + C * (2 or 3) * K: 3K for one channel, 10K for RGB."""
        return self.components * (1 + self.channels * self._per_channel)

    def _split(self, params: torch.Tensor):
        """[B, P, H, W] -> logits [B, K, H, W], means, log-scales, coeffs [B, C, K, H, W]."""
        b, _, h, w = params.shape
        k = self.components
        params = params if params.dtype == torch.float64 else params.float()
        logits = params[:, :k]
        rest = params[:, k:].reshape(b, self.channels, self._per_channel * k, h, w)
        means = rest[:, :, :k]
        log_scales = rest[:, :, k : 2 * k].clamp(min=LOG_SCALE_MIN)
        coeffs = torch.tanh(rest[:, :, 2 * k :]) if self.channels == 3 else None
        return logits, means, log_scales, coeffs

    def _coupled_means(self, means, coeffs, x):
        """Means [B, C, K, H, W] shifted by the R (and G) values x [B, C, H, W]."""
        if self.channels == 1:
            return means
        r, g = x[:, 0:1, None], x[:, 1:2, None]  # [B, 1, 1, H, W]
        alpha, beta, gamma = coeffs[:, 0:1], coeffs[:, 1:2], coeffs[:, 2:3]
        return torch.cat(
            [means[:, 0:1], means[:, 1:2] + alpha * r, means[:, 2:3] + beta * r + gamma * g],
            dim=1,
        )

    def _bin_log_mass(self, x, means, log_scales, levels):
        """log P(bin of x) per component: [B, C, K, H, W], all in log space."""
        half = 1.0 / (self.levels - 1)
        inv_scale = torch.exp(-log_scales)
        centred = x[:, :, None] - means
        upper = inv_scale * (centred + half)
        lower = inv_scale * (centred - half)
        # log(sigmoid(u) - sigmoid(l)) = logsig(u) + logsig(-l) + log(1 - exp(l - u)): exact
        # and finite for every u > l, however far both lie in a tail.
        width = (2 * half) * inv_scale  # = upper - lower, without the cancellation
        inner = F.logsigmoid(upper) + F.logsigmoid(-lower) + torch.log(-torch.expm1(-width))
        # density at the midpoint times the bin width, for bins too small to resolve
        mid = inv_scale * centred
        density = mid - log_scales - 2.0 * F.softplus(mid) + math.log(2 * half)
        inner = torch.where(width > TINY_BIN, inner, density)
        level = levels[:, :, None]
        first = F.logsigmoid(upper)  # the lowest level takes (-inf, x + half]
        last = F.logsigmoid(-lower)  # the highest level takes [x - half, inf)
        return torch.where(level == 0, first, torch.where(level == self.levels - 1, last, inner))

    def log_prob(self, params: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """log p(x_c | earlier sub-pixels) of integer ``levels`` [B, C, H, W], in nats.

        Given the channels before c, the components are weighted by their posterior
        w_k proportional to pi_k * p_k(earlier channels); then log p(x_c | ...) is
        log sum_k w_k p_k(x_c). Each conditional is normalized over x_c, even in contexts
        of vanishing probability, and the channels sum to the pixel's exact log-probability.
        """
        logits, means, log_scales, coeffs = self._split(params)
        x = self.quantizer.to_input(levels, means.dtype)  # each level's bin centre
        means = self._coupled_means(means, coeffs, x)
        per_channel = self._bin_log_mass(x, means, log_scales, levels)  # [B, C, K, H, W]
        # log p_k of the channels before c: an exclusive running sum (subtracting a channel
        # back out of an inclusive one would cancel catastrophically for tiny masses)
        earlier = F.pad(per_channel[:, :-1].cumsum(1), (0, 0, 0, 0, 0, 0, 1, 0))
        prior = torch.log_softmax(logits, dim=1)[:, None]  # [B, 1, K, H, W]
        posterior = torch.log_softmax(prior + earlier, dim=2)
        return torch.logsumexp(posterior + per_channel, dim=2)

    def channel_log_probs(
        self, params: torch.Tensor, pixel: torch.Tensor, channel: int
    ) -> torch.Tensor:
        """log p(x_c = l | the pixel's channels before c) for every level l: params
        [B, P, 1, 1], levels ``pixel`` [B, C, 1, 1] -> [B, L] in float64 (the coder's fast
        path). Each component's L bin masses come from one sigmoid per bin edge, taken on
        the side of the mean where the difference does not cancel."""
        logits, means, log_scales, coeffs = self._split(params)
        x = self.quantizer.to_input(pixel, means.dtype)
        means = self._coupled_means(means, coeffs, x)  # channel c's uses channels < c only
        prior = torch.log_softmax(logits, dim=1)  # [B, K, 1, 1]
        if channel:  # components weighted by how well they explain the earlier channels
            earlier = slice(0, channel)
            known = self._bin_log_mass(
                x[:, earlier], means[:, earlier], log_scales[:, earlier], pixel[:, earlier]
            )
            prior = prior + known.sum(1)
        weights = torch.softmax(prior[:, :, 0, 0].double(), dim=1)  # [B, K]
        mean = means[:, channel, :, 0, 0].double()[..., None]  # [B, K, 1]
        inv_scale = torch.exp(-log_scales[:, channel, :, 0, 0].double())[..., None]
        centres = self.quantizer.to_input(
            torch.arange(self.levels, device=pixel.device), torch.float64
        )
        centred = (centres - mean) * inv_scale  # [B, K, L]
        half = inv_scale / (self.levels - 1)
        upper, lower = centred + half, centred - half
        below = torch.sigmoid(upper) - torch.sigmoid(lower)  # exact left of the mean
        above = torch.sigmoid(-lower) - torch.sigmoid(-upper)  # exact right of it
        mass = torch.where(centred > 0, above, below)
        mass[..., 0] = torch.sigmoid(upper[..., 0])  # the edge bins take the tails
        mass[..., -1] = torch.sigmoid(-lower[..., -1])
        return torch.einsum("bk,bkl->bl", weights, mass).log()

    def sample(
        self,
        params: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw levels [B, C, H, W]: a component per pixel, then R, G, B by the inverse
        logistic CDF, each rounded to its level before it shifts the next channel's mean.

        ``temperature`` divides the mixture logits and multiplies the scales; 0 takes the
        most likely component's mean.
        """
        logits, means, log_scales, coeffs = self._split(params)
        b, k, h, w = logits.shape
        if temperature == 0:
            component = logits.argmax(dim=1)
        else:
            flat = torch.softmax(tempered(logits, temperature, 1), dim=1)
            flat = flat.permute(0, 2, 3, 1).reshape(-1, k)
            component = draw_index(flat, generator).reshape(b, h, w)
        pick = component[:, None, None].expand(b, self.channels, 1, h, w)
        means = means.gather(2, pick)[:, :, 0]  # [B, C, H, W]
        scales = torch.exp(log_scales.gather(2, pick)[:, :, 0]) * temperature
        if coeffs is not None:
            coeffs = coeffs.gather(2, pick)[:, :, 0]
        noise = torch.rand(means.shape, generator=generator, device=means.device)
        noise = noise.to(means.dtype).clamp(1e-5, 1.0 - 1e-5)
        logistic = torch.log(noise) - torch.log1p(-noise)
        levels = torch.empty(means.shape, dtype=torch.int64, device=means.device)
        drawn = torch.empty_like(means)  # channel values already drawn, as the model sees them
        for c in range(self.channels):
            mean = means[:, c]
            if c == 1:
                mean = mean + coeffs[:, 0] * drawn[:, 0]
            elif c == 2:
                mean = mean + coeffs[:, 1] * drawn[:, 0] + coeffs[:, 2] * drawn[:, 1]
            x = (mean + scales[:, c] * logistic[:, c]).clamp(-1.0, 1.0)
            levels[:, c] = torch.round((x + 1.0) * (self.levels - 1) / 2.0).long()
            drawn[:, c] = self.quantizer.to_input(levels[:, c], means.dtype)
        return levels

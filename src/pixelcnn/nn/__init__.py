"""Layers: masked and shifted convolutions, gated blocks, conditioning projections."""

from pixelcnn.nn.masked_conv import MaskedConv2d, causal_mask, channel_groups

__all__ = ["MaskedConv2d", "causal_mask", "channel_groups"]

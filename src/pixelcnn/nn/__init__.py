"""Layers: masked and shifted convolutions, gated blocks, conditioning projections."""

from pixelcnn.nn.conditioning import CONDITION_KINDS, ConditionProjection, ConditionSpec
from pixelcnn.nn.gated import GatedBlock, VerticalConv2d, gate
from pixelcnn.nn.masked_conv import MaskedConv2d, causal_mask, channel_groups

__all__ = [
    "CONDITION_KINDS",
    "ConditionProjection",
    "ConditionSpec",
    "GatedBlock",
    "MaskedConv2d",
    "VerticalConv2d",
    "causal_mask",
    "channel_groups",
    "gate",
]

"""The contract between a network and the rest of the package, and the registry record
that makes a network available to the API, the trainer, the sampler and the CLI.

A network maps the encoded image [B, C_in, H, W] (and a prepared condition) to the
likelihood's parameters [B, P, H, W] such that the parameters at each sub-pixel see only
the sub-pixels before it in raster order (R -> G -> B inside a pixel, by colour groups).
Registering a :class:`NetworkSpec` is all it takes for a new network to be built by
``pixelcnn.create``, trained, sampled (naively, or cached when it can step), saved, and
certified by the contract suite in ``tests/test_contracts.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pixelcnn.nn.conditioning import ConditionSpec
from pixelcnn.nn.stepping import GenerationSteps

# Constructor arguments that the model composition fills in, not the user.
STRUCTURAL_ARGUMENTS = ("colour_groups", "out_channels", "input_channels")


class Network(nn.Module):
    """Base of every network. Subclasses take the structural arguments first
    (``colour_groups``: 3 for R -> G -> B groups, 1 for grey images or a likelihood that
    draws whole pixels; ``out_channels``: parameters per position;
    ``input_channels``: what the first layer receives when it is not the image itself, e.g.
    token embeddings), then their hyperparameters as keyword arguments with defaults (the
    defaults' types are what configs and ``--hp`` are checked against).
    """

    # The naive sampler may run the network on the top rows only, cropped to a multiple of
    # this: outputs at rows <= r must not depend on input rows past that multiple. None:
    # it always runs on the whole image.
    row_multiple: int | None = None

    def __init__(
        self,
        colour_groups: int,
        out_channels: int,
        input_channels: int | None = None,
        condition: ConditionSpec | None = None,
    ):
        super().__init__()
        self.colour_groups = colour_groups
        self.out_channels = out_channels
        self.input_channels = input_channels or colour_groups
        self.condition_spec = condition or ConditionSpec()

    def check_condition(self, condition: dict[str, torch.Tensor] | None) -> None:
        """A prepared condition is given exactly when the network is conditional."""
        if bool(self.condition_spec) != (condition is not None):
            name = type(self).__name__
            if not self.condition_spec:
                raise ValueError(f"{name} takes no condition")
            raise ValueError(f"{name} needs a condition: {', '.join(self.condition_spec.kinds)}")

    def forward(
        self, x: torch.Tensor, condition: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Encoded input [B, C_in, H, W] (+ condition) -> parameters [B, P, H, W]."""
        raise NotImplementedError

    def generation(
        self, batch: int, height: int, width: int, condition: dict | None = None
    ) -> GenerationSteps | None:
        """Step-by-step evaluation for the cached sampler (see :mod:`pixelcnn.nn.stepping`),
        or None when this network cannot step (the naive sampler serves it then)."""
        return None


@dataclass
class NetworkSpec:
    """One registry entry, like :class:`pixelcnn.data.DatasetSpec`: the network class, its
    named hyperparameter sets, the likelihood its paper uses (any network takes any), and
    the training settings its recipe changes (``TrainOptions`` fields)."""

    name: str
    network: type[Network]
    presets: dict[str, dict[str, Any]] = field(default_factory=lambda: {"default": {}})
    likelihood: str = "categorical"
    recipe: dict[str, Any] = field(default_factory=dict)
    description: str = ""

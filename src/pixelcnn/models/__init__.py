"""Networks: image tensor (+ condition) -> likelihood parameter tensor."""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn

from pixelcnn.limits import check_memory
from pixelcnn.models.gated import GatedPixelCNN
from pixelcnn.models.pixelcnn import PixelCNN
from pixelcnn.models.pixelcnnpp import PixelCNNPlusPlus
from pixelcnn.values import as_float, as_int

NETWORKS: dict[str, type[nn.Module]] = {
    "pixelcnn": PixelCNN,
    "gated": GatedPixelCNN,
    "pixelcnnpp": PixelCNNPlusPlus,
}
# The likelihood each network comes with in its paper; any network takes either.
DEFAULT_LIKELIHOODS = {"pixelcnnpp": "logistic_mixture"}
# Training settings each network's recipe uses (TrainOptions fields); others take defaults.
TRAINING_DEFAULTS: dict[str, dict[str, Any]] = {
    "pixelcnnpp": {"ema_decay": 0.999, "init_images": 256},
}

# Named hyperparameter sets; the defaults of each class suit 28x28 images on a CPU.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "pixelcnn": {
        "default": {},
        "tiny": {"hidden_channels": 12, "residual_blocks": 1, "output_hidden": 24},
        # van den Oord et al. 2016: h = 128 (2h = 256 outside the blocks), 15 residual blocks.
        "paper": {"hidden_channels": 256, "residual_blocks": 15, "output_hidden": 1024},
    },
    "gated": {
        "default": {},
        "tiny": {"hidden_channels": 6, "layers": 2, "skip_channels": 12, "output_hidden": 24},
        # van den Oord et al. 2016 (Conditional PixelCNN): 20 layers of 384 feature maps.
        "paper": {
            "hidden_channels": 384,
            "layers": 20,
            "kernel_size": 5,
            "skip_channels": 384,
            "output_hidden": 1024,
        },
    },
    "pixelcnnpp": {
        "default": {},
        "tiny": {"filters": 8, "resnets_per_stage": 1},
        # Salimans et al. 2017: 5 blocks per stage, 160 filters, dropout 0.5.
        "paper": {"filters": 160, "resnets_per_stage": 5, "dropout": 0.5},
    },
}

# Constructor arguments that the model composition fills in, not the user.
_STRUCTURAL = ("image_channels", "out_channels", "input_channels")

# Bounds of every hyperparameter, by name (the networks share names). Sizes beyond these
# are typos or hostile files: 10^9 layers would hang the constructor, 10^9 classes ask for
# a 96 GB embedding. The type comes from the constructor's default (int or float).
HYPERPARAMETER_BOUNDS: dict[str, tuple[float, float]] = {
    "hidden_channels": (1, 8192),
    "skip_channels": (1, 8192),
    "output_hidden": (1, 16384),
    "filters": (1, 8192),
    "layers": (1, 1000),
    "residual_blocks": (0, 1000),
    "resnets_per_stage": (1, 1000),
    "kernel_size": (1, 63),
    "input_kernel": (1, 63),
    "residual_kernel": (1, 63),
    "num_classes": (0, 100_000),
    "vector_dim": (0, 100_000),
    "spatial_channels": (0, 8192),
    "dropout": (0.0, 0.99),
}
_OTHER_INTS = (0, 100_000)  # a hyperparameter a later network adds without bounds here
# Bytes a parameter costs in training: weights, gradients and Adam's two moments (float32).
_TRAINING_BYTES_PER_PARAMETER = 16


def hyperparameter_names(name: str) -> list[str]:
    """The keyword arguments a user may set for network ``name``."""
    params = inspect.signature(NETWORKS[name]).parameters
    return [p for p in params if p not in _STRUCTURAL]


def resolve_hyperparameters(
    name: str, preset: str | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Preset values updated by ``overrides``, checked against the network's arguments."""
    if name not in NETWORKS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(NETWORKS)}")
    presets = PRESETS.get(name, {"default": {}})
    preset = preset or "default"
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r} for {name}; choose from {', '.join(presets)}")
    values = {**presets[preset], **(overrides or {})}
    allowed = hyperparameter_names(name)
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {', '.join(unknown)} for {name}; "
            f"accepted: {', '.join(allowed)}"
        )
    defaults = inspect.signature(NETWORKS[name]).parameters
    return {key: _checked(key, value, defaults[key].default) for key, value in values.items()}


def _checked(key: str, value: Any, default: Any) -> Any:
    """A hyperparameter of the default's type within its bounds: 1.5 layers, "abc"
    channels, [1] or true are refused here, not deep inside a constructor."""
    low, high = HYPERPARAMETER_BOUNDS.get(key, _OTHER_INTS)
    if isinstance(default, float):
        return as_float(value, f"hyperparameter {key}", low, high)
    return as_int(value, f"hyperparameter {key}", int(low), int(high))


def _parameter_count(network_class: type[nn.Module], **arguments) -> int:
    """Parameters the network would have, counted on the meta device (no memory used)."""
    with torch.device("meta"):
        probe = network_class(**arguments)
    return sum(math.prod(p.shape) for p in probe.parameters())


def build_network(
    name: str,
    image_channels: int,
    out_channels: int,
    input_channels: int | None = None,
    **hyperparameters,
) -> nn.Module:
    """Instantiate network ``name`` producing ``out_channels`` parameters per position.

    ``input_channels`` is given when the first layer does not receive the image itself
    (token embeddings); the colour groups always follow ``image_channels``.
    """
    values = resolve_hyperparameters(name, overrides=hyperparameters)
    arguments = dict(
        image_channels=image_channels,
        out_channels=out_channels,
        input_channels=input_channels,
        **values,
    )
    count = _parameter_count(NETWORKS[name], **arguments)
    check_memory(count * _TRAINING_BYTES_PER_PARAMETER, f"a {name} network of {count:,} parameters")
    return NETWORKS[name](**arguments)


__all__ = [
    "DEFAULT_LIKELIHOODS",
    "HYPERPARAMETER_BOUNDS",
    "GatedPixelCNN",
    "PixelCNNPlusPlus",
    "NETWORKS",
    "PRESETS",
    "TRAINING_DEFAULTS",
    "PixelCNN",
    "build_network",
    "hyperparameter_names",
    "resolve_hyperparameters",
]

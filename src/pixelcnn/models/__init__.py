"""Networks: image tensor (+ condition) -> likelihood parameter tensor."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from pixelcnn.models.gated import GatedPixelCNN
from pixelcnn.models.pixelcnn import PixelCNN
from pixelcnn.models.pixelcnnpp import PixelCNNPlusPlus

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
    return values


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
    return NETWORKS[name](
        image_channels=image_channels,
        out_channels=out_channels,
        input_channels=input_channels,
        **values,
    )


__all__ = [
    "DEFAULT_LIKELIHOODS",
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

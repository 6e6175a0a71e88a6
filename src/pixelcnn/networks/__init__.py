"""Networks: image tensor (+ condition) -> likelihood parameter tensor."""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch

from pixelcnn.limits import check_memory
from pixelcnn.networks.base import STRUCTURAL_ARGUMENTS, Network, NetworkSpec
from pixelcnn.networks.gated import GatedPixelCNN
from pixelcnn.networks.pixelcnn import PixelCNN
from pixelcnn.networks.pixelcnnpp import PixelCNNPlusPlus
from pixelcnn.networks.pixelsnail import PixelSNAIL
from pixelcnn.values import as_float, as_int

NETWORKS: dict[str, NetworkSpec] = {}  # name -> record; register_network adds to it


def register_network(spec: NetworkSpec) -> NetworkSpec:
    """Make a network available everywhere (API, CLI, trainer, samplers, contract suite)."""
    if not (isinstance(spec.network, type) and issubclass(spec.network, Network)):
        raise TypeError(f"{spec.name}: a network must subclass pixelcnn.networks.Network")
    if "default" not in spec.presets:
        raise ValueError(f"{spec.name}: the presets need a 'default' entry")
    NETWORKS[spec.name] = spec
    return spec


def network_spec(name: str) -> NetworkSpec:
    if name not in NETWORKS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(NETWORKS)}")
    return NETWORKS[name]


# The defaults of each class suit 28x28 images on a CPU.
register_network(
    NetworkSpec(
        "pixelcnn",
        PixelCNN,
        presets={
            "default": {},
            "tiny": {"hidden_channels": 12, "residual_blocks": 1, "output_hidden": 24},
            # van den Oord et al. 2016: h = 128 (2h = 256 outside the blocks), 15 blocks.
            "paper": {"hidden_channels": 256, "residual_blocks": 15, "output_hidden": 1024},
        },
        description="masked convolutions A/B with R->G->B groups (van den Oord et al. 2016)",
    )
)
register_network(
    NetworkSpec(
        "gated",
        GatedPixelCNN,
        presets={
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
        description="vertical and horizontal stacks, gated units, conditioning",
    )
)
register_network(
    NetworkSpec(
        "pixelcnnpp",
        PixelCNNPlusPlus,
        presets={
            "default": {},
            "tiny": {"filters": 8, "resnets_per_stage": 1},
            # Salimans et al. 2017: 5 blocks per stage, 160 filters, dropout 0.5.
            "paper": {"filters": 160, "resnets_per_stage": 5, "dropout": 0.5},
        },
        likelihood="logistic_mixture",
        # Measured on CPUs (BENCHMARKS.md, "A CPU training recipe"): at equal training time
        # batch 16 and a 2e-3 rate after 100 warm-up steps beat the earlier batch 32 at 1e-3.
        recipe={
            "ema_decay": 0.999,
            "init_images": 256,
            "batch_size": 16,
            "learning_rate": 2e-3,
            "warmup_steps": 100,
        },
        description="U-Net of shifted convolutions, logistic mixture (Salimans et al. 2017)",
    )
)

register_network(
    NetworkSpec(
        "pixelsnail",
        PixelSNAIL,
        presets={
            "default": {},
            "tiny": {
                "filters": 8,
                "blocks": 1,
                "resnets_per_block": 1,
                "key_size": 4,
                "value_size": 8,
            },  # fmt: skip
            # Chen et al. 2018's CIFAR-10 model as its public code (neocxi/pixelsnail-public)
            # trains it: README, --model h12_noup_smallkey --nr_filters 256 --dropout_p 0.5;
            # train.py, nr_resnet 4; model.py, h12_noup_smallkey = 12 attention blocks, keys
            # and queries of q_size 16, values of nr_filters // 2, causal_attention with one
            # head. (Its train.py defaults the blocks' nonlinearity to elu; the paper's and
            # this network's blocks use concat-ELU.)
            "paper": {
                "filters": 256,
                "blocks": 12,
                "resnets_per_block": 4,
                "key_size": 16,
                "value_size": 128,
                "heads": 1,
                "dropout": 0.5,
            },  # fmt: skip
        },
        likelihood="logistic_mixture",
        # the reference's --polyak_decay 0.9995 on CIFAR-10; data-dependent init as PixelCNN++
        recipe={"ema_decay": 0.9995, "init_images": 256},
        description="gated residual blocks and causal self-attention (Chen et al. 2018)",
    )
)


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
    "blocks": (1, 1000),
    "resnets_per_block": (0, 1000),
    "key_size": (1, 8192),
    "value_size": (1, 8192),
    "heads": (1, 1024),
}
_OTHER_INTS = (0, 100_000)  # a hyperparameter a later network adds without bounds here
# Bytes a parameter costs in training: weights, gradients and Adam's two moments (float32).
_TRAINING_BYTES_PER_PARAMETER = 16


def hyperparameter_names(name: str) -> list[str]:
    """The keyword arguments a user may set for network ``name``."""
    params = inspect.signature(network_spec(name).network).parameters
    return [p for p in params if p not in STRUCTURAL_ARGUMENTS]


def resolve_hyperparameters(
    name: str, preset: str | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Preset values updated by ``overrides``, checked against the network's arguments."""
    presets = network_spec(name).presets
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
    defaults = inspect.signature(network_spec(name).network).parameters
    return {key: _checked(key, value, defaults[key].default) for key, value in values.items()}


def _checked(key: str, value: Any, default: Any) -> Any:
    """A hyperparameter of the default's type within its bounds: 1.5 layers, "abc"
    channels, [1] or true are refused here, not deep inside a constructor."""
    low, high = HYPERPARAMETER_BOUNDS.get(key, _OTHER_INTS)
    if isinstance(default, float):
        return as_float(value, f"hyperparameter {key}", low, high)
    return as_int(value, f"hyperparameter {key}", int(low), int(high))


def _parameter_count(network_class: type[Network], **arguments) -> int:
    """Parameters the network would have, counted on the meta device (no memory used)."""
    with torch.device("meta"):
        probe = network_class(**arguments)
    return sum(math.prod(p.shape) for p in probe.parameters())


def build_network(
    name: str,
    colour_groups: int,
    out_channels: int,
    input_channels: int | None = None,
    **hyperparameters,
) -> Network:
    """Instantiate network ``name`` producing ``out_channels`` parameters per position.

    ``input_channels`` is given when the first layer does not receive the image itself
    (token embeddings); the colour groups always follow ``colour_groups``.
    """
    values = resolve_hyperparameters(name, overrides=hyperparameters)
    arguments = dict(
        colour_groups=colour_groups,
        out_channels=out_channels,
        input_channels=input_channels,
        **values,
    )
    network_class = network_spec(name).network
    count = _parameter_count(network_class, **arguments)
    check_memory(count * _TRAINING_BYTES_PER_PARAMETER, f"a {name} network of {count:,} parameters")
    return network_class(**arguments)


__all__ = [
    "HYPERPARAMETER_BOUNDS",
    "NETWORKS",
    "GatedPixelCNN",
    "Network",
    "NetworkSpec",
    "PixelCNN",
    "PixelCNNPlusPlus",
    "PixelSNAIL",
    "build_network",
    "hyperparameter_names",
    "network_spec",
    "register_network",
    "resolve_hyperparameters",
]

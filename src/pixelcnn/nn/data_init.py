"""Data-dependent initialisation of weight-normalized layers (Salimans & Kingma 2016).

Run one batch through the network; each weight-normalized convolution, in the order the
forward pass reaches it, gets its scale g and bias b set so that its outputs on that batch
have zero mean and unit variance per channel, and passes the normalized outputs on, so every
later layer is initialised on the activations it will really see.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize


def _weight_normalized(module: nn.Module) -> bool:
    return isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and parametrize.is_parametrized(
        module, "weight"
    )


@torch.no_grad()
def data_dependent_init(network: nn.Module, run: Callable[[], torch.Tensor]) -> int:
    """Initialise every weight-normalized conv of ``network`` on the batch that ``run()``
    pushes through it (e.g. ``lambda: model(levels)``). Returns the number of layers set."""
    done: set[nn.Module] = set()

    def normalize(module: nn.Module, _inputs, output: torch.Tensor) -> torch.Tensor:
        if module in done:  # a layer used twice keeps its first initialisation
            return output
        done.add(module)
        channel_dims = [d for d in range(output.dim()) if d != 1]
        pre_bias = output - module.bias.view(1, -1, *([1] * (output.dim() - 2)))
        mean = pre_bias.mean(channel_dims)
        std = pre_bias.std(channel_dims).clamp(min=1e-6)
        g = module.parametrizations.weight.original0  # the scale, shaped for broadcasting
        g.div_(std.view(g.shape))
        module.bias.copy_(-mean / std)
        shape = (1, -1, *([1] * (output.dim() - 2)))
        return (pre_bias - mean.view(shape)) / std.view(shape)

    layers = [m for m in network.modules() if _weight_normalized(m)]
    handles = [layer.register_forward_hook(normalize) for layer in layers]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return len(done)

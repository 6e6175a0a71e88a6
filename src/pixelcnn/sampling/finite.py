"""The one check every draw passes: the likelihood parameters a step draws from are finite.

A model with NaN or overflowing weights gives NaN or infinite parameters; drawn from, they
become plausible-looking images (all 255, all 0) and nothing says they are garbage. Scoring
refuses such a model (``evaluate`` checks the log-likelihoods); generation refuses it here,
at the step that would draw from it, before any image leaves the sampler.
"""

from __future__ import annotations

import math

import torch


class NonFiniteParametersError(ValueError):
    """The network gave NaN or infinite likelihood parameters where a draw needed them."""


def check_finite_parameters(params: torch.Tensor, row: int = 0, col: int = 0) -> None:
    """Refuse parameters [B, P, h, w] whose top-left position is (``row``, ``col``) when
    they hold NaN or infinity, naming the first such position in raster order.

    Called at every step of the samplers, so the finite case is one kernel: a float64 sum
    is NaN or infinite exactly when an element is (float32 values cannot overflow it),
    about 4 us against 14 for ``isfinite().all()``, whose cost was 8 % of a cached Gated
    step on 2 CPU cores (measured with a 28x28 model drawing 16 images)."""
    if math.isfinite(params.sum(dtype=torch.float64).item()):
        return
    broken = (~torch.isfinite(params)).flatten(0, 1).any(0).flatten()  # [h * w]
    first = int(broken.nonzero()[0, 0])
    row, col = row + first // params.shape[-1], col + first % params.shape[-1]
    raise NonFiniteParametersError(
        f"the model gives non-finite likelihood parameters (NaN or infinity) at row {row}, "
        f"column {col}; its weights or the condition are broken, so nothing was drawn"
    )

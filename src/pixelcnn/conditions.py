"""A user's condition -> the network's form, with one-line errors for every mistake.

Users pass, for a network conditioned on one kind, just that value; for several kinds, a
dict with keys "class", "vector", "spatial". Accepted values:

- class: an int, or integers [B] in 0..num_classes-1;
- vector: floats [B, d] (or [d], shared by the batch);
- spatial: floats [B, s, h, w] (or [s, h, w]); resized to the image grid (bilinear).

The network receives a dict of tensors with batch size B on the model's device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pixelcnn.nn import CONDITION_KINDS, ConditionSpec


def _tensor(value: Any, kind: str) -> torch.Tensor:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    ):
        return torch.tensor(value.item() if isinstance(value, np.generic) else value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, torch.Tensor):
        return value
    raise ValueError(f"the {kind} condition must be a tensor, array or number, got {type(value)}")


def _batch(tensor: torch.Tensor, rank: int, batch: int, kind: str, shape: str) -> torch.Tensor:
    """Add a batch dimension to a shared condition, and check the batch size."""
    if tensor.dim() == rank - 1:
        tensor = tensor.unsqueeze(0).expand(batch, *tensor.shape)
    if tensor.dim() != rank:
        raise ValueError(f"the {kind} condition must have shape {shape}, got {list(tensor.shape)}")
    if tensor.shape[0] != batch:
        raise ValueError(
            f"the {kind} condition has {tensor.shape[0]} entries for a batch of {batch}"
        )
    return tensor


def _classes(value: Any, spec: ConditionSpec, batch: int) -> torch.Tensor:
    labels = _batch(_tensor(value, "class"), 1, batch, "class", "[B] (or one int)")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"class labels must be integers, got {labels.dtype}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise ValueError(
            f"class labels must lie in 0..{spec.num_classes - 1}, "
            f"got {labels.min().item()}..{labels.max().item()}"
        )
    return labels.long()


def _vectors(value: Any, spec: ConditionSpec, batch: int) -> torch.Tensor:
    vectors = _batch(_tensor(value, "vector"), 2, batch, "vector", f"[B, {spec.vector_dim}]")
    if vectors.shape[1] != spec.vector_dim:
        raise ValueError(
            f"the vector condition must have {spec.vector_dim} entries, got {vectors.shape[1]}"
        )
    return _finite(vectors, "vector")


def _finite(values: torch.Tensor, kind: str) -> torch.Tensor:
    """Numbers that are real: a NaN in a condition would make every score NaN, silently."""
    if values.dtype == torch.bool or values.is_complex():
        raise ValueError(f"the {kind} condition must hold real numbers, got {values.dtype}")
    if values.is_floating_point() and not bool(torch.isfinite(values).all()):
        raise ValueError(f"the {kind} condition holds NaN or infinite values")
    return values


def _maps(value: Any, spec: ConditionSpec, batch: int, grid: tuple[int, int]) -> torch.Tensor:
    maps = _batch(
        _tensor(value, "spatial"), 4, batch, "spatial", f"[B, {spec.spatial_channels}, h, w]"
    )
    if maps.shape[1] != spec.spatial_channels:
        raise ValueError(
            f"the spatial condition must have {spec.spatial_channels} channels, got {maps.shape[1]}"
        )
    maps = _finite(maps, "spatial")
    maps = maps.float() if not maps.is_floating_point() else maps
    if tuple(maps.shape[2:]) != tuple(grid):
        maps = F.interpolate(maps, size=tuple(grid), mode="bilinear", align_corners=False)
    return maps


def prepare_condition(
    spec: ConditionSpec,
    condition: Any,
    batch: int,
    grid: tuple[int, int],
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, torch.Tensor] | None:
    """The network's condition dict for ``batch`` items, or None for an unconditional one."""
    if not spec:
        if condition is not None:
            raise ValueError("this model is unconditional: pass no condition")
        return None
    if condition is None:
        raise ValueError(f"this model needs a condition: {', '.join(spec.kinds)}")
    if not isinstance(condition, dict):
        if len(spec.kinds) > 1:
            raise ValueError(
                f"this model is conditioned on {', '.join(spec.kinds)}: pass a dict with those keys"
            )
        condition = {spec.kinds[0]: condition}
    unknown = sorted(set(condition) - set(spec.kinds))
    missing = [kind for kind in spec.kinds if kind not in condition]
    if unknown or missing:
        raise ValueError(
            f"condition keys must be {', '.join(spec.kinds)} "
            f"(missing {missing or 'none'}, unexpected {unknown or 'none'}; "
            f"known kinds: {', '.join(CONDITION_KINDS)})"
        )
    prepared = {}
    if "class" in condition:
        prepared["class"] = _classes(condition["class"], spec, batch).to(device)
    if "vector" in condition:
        prepared["vector"] = _vectors(condition["vector"], spec, batch).to(device, dtype)
    if "spatial" in condition:
        prepared["spatial"] = _maps(condition["spatial"], spec, batch, grid).to(device, dtype)
    return prepared


def select(condition: Any, index: torch.Tensor | slice) -> Any:
    """The entries ``index`` of a per-item condition (tensor, array or dict of them)."""
    if condition is None:
        return None
    if isinstance(condition, dict):
        return {kind: select(value, index) for kind, value in condition.items()}
    if isinstance(condition, np.ndarray):
        condition = torch.from_numpy(condition)
    return condition[index]

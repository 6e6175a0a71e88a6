"""Nested training state (optimizer, scheduler, RNG) <-> safetensors + JSON, never pickle.

``torch.optim`` state dicts nest dicts (some with int keys), lists, numbers and tensors. The
tensors go to a safetensors file under path-like names; everything else goes to a JSON
skeleton in which each tensor is replaced by ``{"__tensor__": name}``.
"""

from __future__ import annotations

from typing import Any

import torch

_TENSOR = "__tensor__"
_DICT = "__dict__"  # dicts whose keys are not all strings: a list of [key, value] pairs


def flatten_state(state: Any, prefix: str = "") -> tuple[Any, dict[str, torch.Tensor]]:
    """Split ``state`` into a JSON-able skeleton and a dict of named tensors."""
    tensors: dict[str, torch.Tensor] = {}

    def visit(value: Any, path: str) -> Any:
        if isinstance(value, torch.Tensor):
            tensors[path] = value.detach().cpu().contiguous()
            return {_TENSOR: path}
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value):
                return {k: visit(v, f"{path}/{k}") for k, v in value.items()}
            return {_DICT: [[k, visit(v, f"{path}/{k}")] for k, v in value.items()]}
        if isinstance(value, (list, tuple)):
            return [visit(v, f"{path}/{i}") for i, v in enumerate(value)]
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"cannot store {type(value).__name__} at {path or '/'} in a checkpoint")

    return visit(state, prefix), tensors


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`; a missing tensor raises ValueError."""

    def visit(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {_TENSOR}:
                name = value[_TENSOR]
                if name not in tensors:
                    raise ValueError(f"checkpoint lacks tensor {name}")
                return tensors[name]
            if set(value) == {_DICT}:
                return {k: visit(v) for k, v in value[_DICT]}
            return {k: visit(v) for k, v in value.items()}
        if isinstance(value, list):
            return [visit(v) for v in value]
        return value

    return visit(skeleton)

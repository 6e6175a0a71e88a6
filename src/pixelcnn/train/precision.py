"""Mixed precision for training: which arithmetic the training passes run in."""

from __future__ import annotations

import torch

# fp32; bf16 autocast (CPU and GPU); fp16 autocast with loss scaling (GPU only)
PRECISIONS = ("fp32", "bf16", "fp16")


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision that ``device`` cannot train in."""
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 training needs a GPU (loss scaling); use bf16 on a CPU")


class Autocast:
    """Mixed precision for the training passes: autocast to bf16 or fp16, and for fp16 a
    gradient scaler (a disabled one, whose methods pass through, otherwise)."""

    def __init__(self, device: torch.device, precision: str):
        dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
        self.dtype = dtypes.get(precision)
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self._context = None

    def __enter__(self):
        self._context = torch.autocast(
            self.device_type, dtype=self.dtype, enabled=self.dtype is not None
        )
        return self._context.__enter__()

    def __exit__(self, *exc_info):
        return self._context.__exit__(*exc_info)

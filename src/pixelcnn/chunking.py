"""How many images a scoring pass takes at once: as many as keep its largest temporary
under a byte budget.

Scoring needs no graph, so a batch of any size can be scored a chunk at a time with the
same result. The chunk is what keeps it fast: every temporary stays below glibc's mmap
ceiling (:data:`pixelcnn.allocator.MMAP_CEILING`), so freed blocks are reused instead of
being mapped and faulted in afresh on every pass, and a chunk's activations stay near the
caches. Which temporary is largest depends on the network and the likelihood (a softmax
over 256 levels, a U-Net's widest concatenation), so it is measured, once per input shape,
by running one image under a dispatch mode that sees every operation's output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

# Three quarters of the mmap ceiling: in a sweep on the default models 16-24 MiB chunks
# scored fastest; larger ones meet the ceiling
CHUNK_BYTES = 24 * 2**20


class _LargestOutput(TorchDispatchMode):
    """Records the size in bytes of the largest tensor any operation returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self.largest = max(self.largest, leaf.numel() * leaf.element_size())
        return out


def largest_temporary(fn: Callable[[], Any]) -> int:
    """Bytes of the largest tensor that any operation inside ``fn()`` creates."""
    recorder = _LargestOutput()
    with recorder:
        fn()
    return recorder.largest


def chunk_length(bytes_per_item: int, budget: int = CHUNK_BYTES) -> int:
    """Items per chunk whose largest temporary (``bytes_per_item`` for one item) stays within
    ``budget``; at least one."""
    return max(1, budget // max(bytes_per_item, 1))


__all__ = ["CHUNK_BYTES", "chunk_length", "largest_temporary"]

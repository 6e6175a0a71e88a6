"""Refusing allocations that a file header or a user number makes too large to fit.

A header that declares 10^14 elements, or ``--size 100000``, should end in a one-line error
naming the culprit, not in a ``MemoryError`` traceback, a swap storm or the OOM killer. Every
reader asks ``check_allocation`` before it allocates an array whose size it did not choose.

``DataFormatError`` lives here (and is re-exported by ``readers``) so that this module
depends on nothing else in the data package and every reader can import it without a cycle.
"""

from __future__ import annotations

from pixelcnn.limits import available_memory_bytes, check_memory, format_bytes

__all__ = ["DataFormatError", "available_memory_bytes", "check_allocation", "format_bytes"]


class DataFormatError(ValueError):
    """A file exists but its contents are not what its format promises."""


def check_allocation(nbytes: int, what: str) -> None:
    """Raise ``DataFormatError`` if allocating ``nbytes`` would exceed available memory."""
    check_memory(nbytes, what, DataFormatError)

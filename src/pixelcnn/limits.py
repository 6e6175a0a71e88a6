"""Bounds on work a small input can ask for: memory checked before it is allocated.

A 100-byte file can declare 10^14 pixels, a config 10^9 layers, a label 10^9 classes. Each
such size is compared with the memory this machine has free before anything is allocated,
so the answer is one clear line naming the culprit, not a MemoryError, a swap storm, the
OOM killer or a hang.
"""

from __future__ import annotations

import os
from pathlib import Path

# When the operating system does not say, assume a large machine: refusing a legitimate
# allocation would be worse than letting numpy raise MemoryError on an absurd one.
_UNKNOWN_MEMORY_BYTES = 1 << 40
_CGROUP_DIR = Path("/sys/fs/cgroup")


def _meminfo_available() -> int | None:
    """``MemAvailable`` from ``/proc/meminfo`` in bytes (Linux), or ``None``."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _physical_memory() -> int | None:
    """Physical memory in bytes from ``sysconf``, or ``None`` where it is not offered."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def _cgroup_headroom() -> int | None:
    """Bytes left under a cgroup v2 memory limit (containers), or ``None`` if unlimited.

    Inside a container ``MemAvailable`` describes the host, but exceeding the cgroup's
    ``memory.max`` gets the process killed outright, so the tighter of the two counts.
    """
    try:
        limit = (_CGROUP_DIR / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int((_CGROUP_DIR / "memory.current").read_text().strip())
        return max(int(limit) - used, 0)
    except (OSError, ValueError):
        return None


def _address_space_headroom() -> int | None:
    """Bytes left under this process's address-space limit (``ulimit -v``, RLIMIT_AS), or
    ``None`` when there is none: beyond it every allocation fails."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return max(limit - int(line.split()[1]) * 1024, 0)
    except (ImportError, OSError, ValueError, IndexError):
        pass
    return None


def available_memory_bytes() -> int:
    """Bytes this process can allocate without swapping: the OS's estimate, capped by a
    container limit and an address-space limit if there are any; a large constant when
    none can be read."""
    available = _meminfo_available() or _physical_memory() or _UNKNOWN_MEMORY_BYTES
    for headroom in (_cgroup_headroom(), _address_space_headroom()):
        if headroom is not None:
            available = min(available, headroom)
    return available


def format_bytes(nbytes: int) -> str:
    """``93123456789`` -> ``"93.1 GB"`` (decimal units, one decimal place)."""
    value = float(nbytes)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def check_memory(nbytes: int, what: str, error: type[Exception] = ValueError) -> None:
    """Raise ``error`` when allocating ``nbytes`` would exceed the available memory; ``what``
    names the array and where its size came from, so the one line says what to fix:
    "{what} would need 93.1 GB of memory, more than the 20.4 GB available"."""
    available = available_memory_bytes()
    if nbytes > available:
        raise error(
            f"{what} would need {format_bytes(nbytes)} of memory, "
            f"more than the {format_bytes(available)} available"
        )

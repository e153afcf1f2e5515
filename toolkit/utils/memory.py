"""Process-level allocator settings for CPU training."""

from __future__ import annotations

__all__ = ["tune_glibc_malloc"]


def tune_glibc_malloc() -> bool:
    """Keep freed memory in the process (glibc only): ``M_MMAP_MAX=0``, ``M_TRIM_THRESHOLD``
    at its maximum. Big tensors then come from the heap and are reused, instead of being
    mmap-ed and page-faulted in on every allocation. Returns False where it does not apply.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_max = -1, -4  # from <malloc.h>
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):
        return False

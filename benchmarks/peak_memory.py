"""Exact peak-RSS growth of one block of work (Linux), shared by the benchmark workers."""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Iterator
from contextlib import contextmanager


def rss_kb(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in kB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def release_free_memory() -> None:
    """Collect garbage and hand freed heap back to the OS, so earlier work cannot hide
    the next block's allocations inside already-resident memory."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@contextmanager
def peak_increase() -> Iterator[dict[str, float]]:
    """Measure the block's peak RSS increase; the yielded dict gets ``"MB"`` on exit.

    Freed memory is released, the kernel's peak counter is reset (``clear_refs``), and the
    new peak (``VmHWM``) minus the RSS before the block is reported: exact, no sampling.
    """
    release_free_memory()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = rss_kb("VmRSS")
    out: dict[str, float] = {}
    yield out
    out["MB"] = (rss_kb("VmHWM") - before) / 1024

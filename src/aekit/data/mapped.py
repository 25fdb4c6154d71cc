"""Data larger than memory: memory-mapped ``.npy`` files, read a piece at a time.

A file of at least :data:`MMAP_MIN_BYTES` is not loaded: it stays a read-only ``np.memmap``, its
train/validation/test parts are contiguous slices of the map (views, no copy), and every reader
(training batches, validation, evaluation, encoding) takes rows a piece at a time. Pages the
kernel maps in while reading count towards the process's resident memory, so readers hand them
back (``madvise(MADV_DONTNEED)``) every :data:`RELEASE_BYTES`; the data is read again from the
page cache or the disk when it is needed next.
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Iterator

import numpy as np

MMAP_MIN_BYTES = 256 << 20
RELEASE_BYTES = 128 << 20
# A page fault on a cached file maps in up to 16 pages around it (the kernel's fault-around).
READ_AROUND_BYTES = 64 << 10


def is_mapped(x: object) -> bool:
    return isinstance(x, np.memmap) and getattr(x, "_mmap", None) is not None


def release(x: object) -> None:
    """Drop the pages of ``x``'s file mapping from this process's resident memory."""
    mm = getattr(x, "_mmap", None)
    if mm is not None and hasattr(mmap, "MADV_DONTNEED"):
        # A closed map, or a platform without madvise: nothing to release.
        with contextlib.suppress(OSError, ValueError):
            mm.madvise(mmap.MADV_DONTNEED)


class PageBudget:
    """Counts bytes read from a mapped array and releases its pages every ``RELEASE_BYTES``."""

    def __init__(self, x: object) -> None:
        self.x = x if is_mapped(x) else None
        self.read = 0

    def add_rows(self, n: int, row_bytes: int) -> None:
        """Count ``n`` rows read at random places: each may map in a whole read-ahead window."""
        self.add(n * max(row_bytes, READ_AROUND_BYTES))

    def add(self, nbytes: int) -> None:
        if self.x is None:
            return
        self.read += nbytes
        if self.read >= RELEASE_BYTES:
            release(self.x)
            self.read = 0


def chunks(x: np.ndarray, rows: int) -> Iterator[np.ndarray]:
    """``x`` in consecutive pieces of ``rows`` rows; a mapped ``x``'s pages are released as it goes."""
    budget = PageBudget(x)
    for i in range(0, len(x), rows):
        piece = x[i : i + rows]
        yield piece
        budget.add(piece.nbytes)
    if budget.x is not None:
        release(x)


def chunk_rows(x: np.ndarray, target_bytes: int = 32 << 20) -> int:
    """Rows per piece so that a piece holds about ``target_bytes``."""
    row = max(1, int(np.prod(x.shape[1:])) * x.dtype.itemsize)
    return max(1, target_bytes // row)


def all_finite(x: np.ndarray) -> bool:
    if x.dtype == np.uint8:
        return True
    return all(np.isfinite(c).all() for c in chunks(x, chunk_rows(x)))


def min_max(x: np.ndarray) -> tuple[float, float]:
    lo, hi = np.inf, -np.inf
    for c in chunks(x, chunk_rows(x)):
        if len(c):
            lo, hi = min(lo, float(c.min())), max(hi, float(c.max()))
    return lo, hi

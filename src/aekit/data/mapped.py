"""Data larger than memory: memory-mapped ``.npy`` files, read a piece at a time.

A file of at least :data:`MMAP_MIN_BYTES` is not loaded: it stays a read-only ``np.memmap``, its
train/validation/test parts are contiguous slices of the map (views, no copy), and every reader
takes rows a piece at a time. Sequential readers (validation, evaluation, encoding, checks) go
through the map; the pages the kernel maps in count towards the process's resident memory, so
they hand them back (``madvise(MADV_DONTNEED)``) every :data:`RELEASE_BYTES`. Training batches,
rows at random places, are read with ``pread`` instead (:class:`RowReader`).
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator
from typing import TypeGuard

import numpy as np

MMAP_MIN_BYTES = 256 << 20
RELEASE_BYTES = 128 << 20


def is_mapped(x: object) -> TypeGuard[np.memmap]:
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

    def add(self, nbytes: int) -> None:
        if self.x is None:
            return
        self.read += nbytes
        if self.read >= RELEASE_BYTES:
            release(self.x)
            self.read = 0


class RowReader:
    """Rows of a mapped array by index, read with ``os.pread`` instead of through the map.

    Random rows read through the map would each fault in a whole page-cache folio (up to 2 MB on
    current kernels: one batch of 256 random MNIST rows mapped 277 MB), all of it counted as this
    process's memory. Reading them with ``pread`` copies just the rows' bytes.
    """

    def __init__(self, x: np.memmap) -> None:
        if not x.flags.c_contiguous:
            raise ValueError("RowReader needs a C-contiguous memory map")
        mm = x._mmap  # type: ignore[attr-defined]  # numpy's own mmap object, private: not in its stubs
        map_start = x.offset - x.offset % mmap.ALLOCATIONGRANULARITY  # file position of the map's first byte
        map_addr = np.frombuffer(mm, dtype=np.uint8).ctypes.data
        self.base = map_start + (x.ctypes.data - map_addr)  # file position of x[0]
        self.row_shape, self.dtype = x.shape[1:], x.dtype
        self.row_bytes = int(np.prod(self.row_shape)) * x.dtype.itemsize
        if x.filename is None:  # (a map of an anonymous buffer: no file to read rows from)
            raise ValueError("RowReader needs a memory map of a file")
        self.fd = os.open(x.filename, os.O_RDONLY)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), *self.row_shape), self.dtype)
        flat = out.reshape(len(idx), -1).view(np.uint8)
        for j, i in enumerate(idx):
            flat[j] = np.frombuffer(os.pread(self.fd, self.row_bytes, self.base + int(i) * self.row_bytes), np.uint8)
        return out

    def __del__(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.close(self.fd)


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

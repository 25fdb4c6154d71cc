"""Batches as slices of one tensor: the whole split on the device, uint8 widened per batch only."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from aekit.data import mapped


def to_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """The whole split as one tensor (uint8 stays uint8), on the device."""
    return torch.from_numpy(np.ascontiguousarray(x)).to(device)


def as_batch(xb: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 in [0, 1]; float data passes through."""
    return xb.float().mul_(1.0 / 255.0) if xb.dtype == torch.uint8 else xb


def mean_image(x: torch.Tensor | np.ndarray, chunk: int = 8192, device: torch.device | None = None) -> torch.Tensor:
    """Per-value mean of a dataset in fp32, summed in chunks (uint8 data is never widened whole)."""
    if isinstance(x, torch.Tensor):
        pieces = (x[i : i + chunk] for i in range(0, len(x), chunk))
        device = x.device
    else:  # a memory map: read-only pieces, copied
        pieces = (torch.from_numpy(np.array(p)) for p in mapped.chunks(x, chunk))
        device = device or torch.device("cpu")
    total = torch.zeros(x.shape[1:], dtype=torch.float32, device=device)
    for piece in pieces:
        total += as_batch(piece.to(device)).sum(0)
    return total / max(len(x), 1)


def take_rows(x: torch.Tensor | mapped.RowReader, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Rows ``idx`` of the training data: ``index_select`` on a tensor; sorted reads from a mapped file."""
    if isinstance(x, torch.Tensor):
        return x.index_select(0, idx)
    rows = torch.from_numpy(x(np.sort(idx.cpu().numpy())))
    if device.type == "cuda":  # from pinned memory the copy is queued, not waited for
        return rows.pin_memory().to(device, non_blocking=True)
    return rows.to(device)


def pieces_of(x: torch.Tensor | np.ndarray, batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Float batches of a whole split, a tensor or a memory map."""
    if isinstance(x, torch.Tensor):
        return (as_batch(x[i : i + batch_size]) for i in range(0, len(x), batch_size))
    return (as_batch(torch.from_numpy(np.array(p)).to(device)) for p in mapped.chunks(x, batch_size))


def random_shift(x: torch.Tensor, s: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of (B, C, H, W) moved by its own integer offset in [-s, s] both ways, zero-filled."""
    b, _, h, w = x.shape
    xp = F.pad(x, (s, s, s, s))
    # Drawn where the generator lives (the loop's augmentation generator is on the training device).
    oy = torch.randint(0, 2 * s + 1, (b, 1), generator=generator, device=generator.device).to(x.device)
    ox = torch.randint(0, 2 * s + 1, (b, 1), generator=generator, device=generator.device).to(x.device)
    rows = oy + torch.arange(h, device=x.device)  # (B, H)
    cols = ox + torch.arange(w, device=x.device)  # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None]
    return xp[bi, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)

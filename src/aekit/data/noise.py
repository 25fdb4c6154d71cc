"""Corruptions for denoising autoencoders (Vincent et al., "Extracting and composing robust
features with denoising autoencoders", ICML 2008; "Stacked denoising autoencoders", JMLR 2010).

A spec is ``kind:level``:
- ``gaussian:σ``: add N(0, σ²) noise to every value;
- ``masking:ν``: set a fraction ν of the values, chosen at random, to 0;
- ``salt-pepper:ν``: set a fraction ν of the values to 0 or 1, each with probability 1/2;
- ``block:S``: replace an S x S square of each image, at a random place, with the training set's
  mean image (0 when no mean is given). This trains infilling: the inpainting iteration starts
  from the mean image in the missing pixels, so the model learns from exactly that input. The
  training loop also shows the model its own later iterations (see ``training/infill.py``);
- ``center:S``: the same fill, always in the S x S square in the middle (where ``aekit inpaint
  --mask center:S`` hides pixels): a specialist for that one hole, which fills it in one pass.
  Learning one hole instead of every place a square can be is worth about 0.75 dB there on MNIST
  (centre 14 x 14: 11.9 dB in one pass, against 11.2 for a ``block:14`` model at its best number of
  passes; docs/benchmarks.md).
For data in [0, 1] the corrupted input is clipped back to [0, 1]. During training a corruption is
drawn afresh for every batch; the target is the clean input (but for ``block:S``'s guess batches).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from aekit.errors import AekitError

KINDS = ("gaussian", "masking", "salt-pepper", "block", "center")
SQUARES = ("block", "center")  # the kinds that fill a square with the training mean image


@dataclass(frozen=True)
class Noise:
    kind: str
    level: float
    clip: bool = True
    # What block:S writes into the square: the training mean image (set by the training loop).
    fill: torch.Tensor | None = field(default=None, compare=False, repr=False)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Corrupt a batch (a new tensor); ``generator`` makes the draw repeatable."""
        if self.kind == "gaussian":
            out = x + self.level * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        elif self.kind in SQUARES:
            out = self.block(x, generator)[0]
        else:
            hit = torch.rand(x.shape, generator=generator, device=x.device) < self.level
            if self.kind == "masking":
                out = x.masked_fill(hit, 0.0)
            else:
                salt = torch.rand(x.shape, generator=generator, device=x.device) < 0.5
                out = torch.where(hit, salt.to(x.dtype), x)
        return out.clamp_(0.0, 1.0) if self.clip else out

    def block(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``block:S`` or ``center:S``: the filled batch and the (B, 1, H, W) mask of the square."""
        mask = self._block_mask(x, generator)
        out = x.masked_fill(mask, 0.0) if self.fill is None else torch.where(mask, self.fill.to(x.dtype), x)
        return out, mask

    def _block_mask(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """(B, 1, H, W) mask of one S x S square per image at a uniformly random position (``block``),
        or in the middle (``center``, placed as :func:`aekit.tasks.inpaint.parse_mask` places it)."""
        if x.ndim != 4:
            raise AekitError(f"{self.kind} noise needs images (N, C, H, W)")
        b, _, h, w = x.shape
        s = int(self.level)
        if s > min(h, w):
            raise AekitError(f"{self.kind}:{s} does not fit in {h}x{w} images")
        if self.kind == "center":
            top = torch.full((b, 1), (h - s) // 2, device=x.device)
            left = torch.full((b, 1), (w - s) // 2, device=x.device)
        else:
            top = torch.randint(0, h - s + 1, (b, 1), generator=generator, device=x.device)
            left = torch.randint(0, w - s + 1, (b, 1), generator=generator, device=x.device)
        rows = torch.arange(h, device=x.device)
        cols = torch.arange(w, device=x.device)
        in_r = (rows >= top) & (rows < top + s)  # (B, H)
        in_c = (cols >= left) & (cols < left + s)  # (B, W)
        return (in_r[:, :, None] & in_c[:, None, :])[:, None]

    def apply_numpy(self, x: np.ndarray, seed: int = 0) -> np.ndarray:
        """Corrupt float NumPy data with a fixed seed (evaluation and pictures)."""
        g = torch.Generator().manual_seed(seed)
        return self(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), g).numpy()

    def __str__(self) -> str:
        return f"{self.kind}:{self.level:g}"


def parse_noise(spec: str, clip: bool = True) -> Noise:
    """``"gaussian:0.5"`` -> Noise; a clear error for an unknown kind or an impossible level."""
    kind, sep, value = spec.partition(":")
    if kind not in KINDS or not sep:
        raise AekitError(f"unknown noise {spec!r}; use gaussian:SIGMA, masking:F, salt-pepper:F, block:S or center:S")
    try:
        level = float(value)
    except ValueError:
        raise AekitError(f"noise {spec!r}: {value!r} is not a number") from None
    if not np.isfinite(level) or level < 0:
        raise AekitError(f"noise {spec!r}: the level must be a non-negative number")
    if kind in SQUARES:
        if level < 1 or level != int(level):
            raise AekitError(f"noise {spec!r}: {kind} takes a whole number of pixels, at least 1")
    elif kind != "gaussian" and level > 1:
        raise AekitError(f"noise {spec!r}: {kind} takes a fraction between 0 and 1")
    return Noise(kind, level, clip)

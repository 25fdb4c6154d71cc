"""Reconstruction metrics, named by what they measure.

- ``sse_per_image``: squared error summed over all values of a sample and averaged over samples,
  values scaled to [0, 1] -- the unit of Hinton & Salakhutdinov (Science, 2006).
- ``mse``: mean squared error per value (pixel).
- ``psnr``: 10 log10(1 / mse) in dB, from the dataset-level ``mse``; only for [0, 1] data.
- ``bce``: mean binary cross-entropy per value, outputs clipped to [1e-7, 1 - 1e-7]; only for
  [0, 1] data.
Sums are accumulated in float64 so the figures do not depend on the batch size.
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-7


class ReconMeter:
    """Accumulates reconstruction metrics over batches of (clean target, reconstruction)."""

    def __init__(self, unit_range: bool = True) -> None:
        self.unit = unit_range
        self.n = 0
        self.values = 0
        self.sse = 0.0
        self.bce = 0.0

    def update(self, target: np.ndarray, recon: np.ndarray) -> None:
        t = np.asarray(target, dtype=np.float64).reshape(len(target), -1)
        r = np.asarray(recon, dtype=np.float64).reshape(len(recon), -1)
        self.n += len(t)
        self.values += t.size
        self.sse += float(np.square(t - r).sum())
        if self.unit:
            rc = np.clip(r, EPS, 1 - EPS)
            self.bce += float(-(t * np.log(rc) + (1 - t) * np.log1p(-rc)).sum())

    def result(self) -> dict[str, float | int | None]:
        if self.n == 0:
            return {"sse_per_image": None, "mse": None, "psnr": None, "bce": None, "n": 0}
        mse = self.sse / self.values
        return {
            "sse_per_image": self.sse / self.n,
            "mse": mse,
            "psnr": (10 * math.log10(1.0 / mse) if mse > 0 else math.inf) if self.unit else None,
            "bce": self.bce / self.values if self.unit else None,
            "n": self.n,
        }


def reconstruction_metrics(target: np.ndarray, recon: np.ndarray, unit_range: bool = True) -> dict:
    m = ReconMeter(unit_range)
    m.update(target, recon)
    return m.result()


def as_float(x: np.ndarray) -> np.ndarray:
    """uint8 images to float32 in [0, 1]; float data unchanged."""
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else np.asarray(x, dtype=np.float32)


def evaluate_model(model: object, x: np.ndarray, batch_size: int = 2048,
                   labels: np.ndarray | None = None) -> dict[str, float | int | None]:
    """Reconstruction metrics of a trained model on a whole array (in memory or memory-mapped);
    ``labels``, one per row, go to a model conditioned on them (``takes_labels``), and only there."""
    from aekit.data.mapped import chunks

    meter = ReconMeter(getattr(model, "output", "sigmoid") == "sigmoid")
    conditional, start = labels is not None and getattr(model, "takes_labels", False), 0
    for xb in chunks(x, batch_size):
        kw = {"labels": labels[start : start + len(xb)]} if conditional and labels is not None else {}
        meter.update(as_float(xb), model.reconstruct(xb, **kw))  # type: ignore[attr-defined]
        start += len(xb)
    return meter.result()

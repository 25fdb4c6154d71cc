"""PCA, the baseline every autoencoder is measured against.

Fitted exactly: the covariance of the training data is accumulated in float64 in chunks and
eigendecomposed (784 x 784 for MNIST), which is faster than an SVD of the data and needs no
second copy of it. Reconstructions are not clipped, matching the usual PCA figures (13.87
sse_per_image for 30 components on MNIST, Hinton & Salakhutdinov 2006).
"""

from __future__ import annotations

import numbers

import numpy as np

from aekit.errors import AekitError
from aekit.metrics import ReconMeter, as_float


class PCA:
    """PCA fitted exactly (float64 covariance, eigendecomposition), scored like an autoencoder.

    Args:
        n_components: The number of components (the code size it is compared at).
        name: What the caller calls the count, for the error message.

    Raises:
        AekitError: ``n_components`` is not a whole number of at least 1.
    """
    def __init__(self, n_components: int, name: str = "n_components") -> None:
        # name: what the caller called the count, for the error (aekit.api.baseline_pca's `code`).
        if isinstance(n_components, bool) or not isinstance(n_components, numbers.Integral) or n_components < 1:
            raise AekitError(f"{name} must be a whole number of PCA components, at least 1, got {n_components!r:.40}")
        self.k: int = int(n_components)

    def fit(self, x: np.ndarray, chunk: int = 8192) -> PCA:
        """Fit on ``x`` (uint8 images are scaled to [0, 1]), ``chunk`` rows at a time.

        Returns:
            ``self``, with ``mean_``, ``components_`` (``(k, d)``, orthonormal rows) and ``explained_variance_``.
        """
        n = len(x)
        d = int(np.prod(x.shape[1:]))
        if self.k > d:
            raise AekitError(f"PCA with {self.k} components needs data of at least {self.k} dimensions (got {d})")
        total = np.zeros(d)
        gram = np.zeros((d, d))
        for i in range(0, n, chunk):
            b = as_float(x[i : i + chunk]).reshape(-1, d).astype(np.float64)
            total += b.sum(0)
            gram += b.T @ b
        self.mean_ = total / n
        cov = gram / n - np.outer(self.mean_, self.mean_)
        vals, vecs = np.linalg.eigh(cov)
        order = np.argsort(vals)[::-1][: self.k]
        self.components_ = vecs[:, order].T  # (k, d), rows orthonormal
        self.explained_variance_ = vals[order]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """The ``k`` principal coordinates of each sample: ``(N, k)`` float64."""
        b = as_float(x).reshape(len(x), -1).astype(np.float64)
        return (b - self.mean_) @ self.components_.T

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """Samples ``(N, d)`` back from their principal coordinates (not clipped)."""
        return z @ self.components_ + self.mean_

    def evaluate(self, x: np.ndarray, unit_range: bool = True, chunk: int = 8192) -> dict:
        """The reconstruction metrics of ``x``'s projections, as ``aekit evaluate`` reports an autoencoder's.

        Returns:
            ``sse_per_image``, ``mse``, ``psnr``, ``bce`` and ``n``; ``psnr`` and ``bce`` are None unless the data
            are in [0, 1] (``unit_range``).
        """
        meter = ReconMeter(unit_range)
        for i in range(0, len(x), chunk):
            b = as_float(x[i : i + chunk])
            meter.update(b, self.inverse_transform(self.transform(b)))
        return meter.result()

"""The lecture's "4 dimensions to 2 dimensions" example as data.

``plane``: points on a 2-D linear subspace of R^4; ``curve``: points on a curved 2-D surface in
R^4. Both get the same isotropic Gaussian noise (``NOISE_STD`` per coordinate) and are rotated by
the same fixed random orthogonal matrix, so neither lines up with the axes. The labels are the
true surface coordinate ``u`` (for colouring a 2-D code), as float32.
"""

from __future__ import annotations

import numpy as np

from aekit.data.dataset import Dataset, holdout

NOISE_STD = 0.05
N_SAMPLES = 6000


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((4, 4)))
    return q * np.sign(np.diag(r))


def make_surface(kind: str, n: int = N_SAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(x, u)``: n points in R^4 on the named surface, and their first coordinate."""
    rng = np.random.default_rng(seed)
    u, v = rng.uniform(-1.0, 1.0, size=(2, n))
    if kind == "plane":
        clean = np.stack([u, v, np.zeros(n), np.zeros(n)], axis=1)
    elif kind == "curve":
        # A bent sheet: both extra coordinates are non-linear in (u, v), so no 2-D plane fits it.
        clean = np.stack([u, v, np.sin(np.pi * u) * 0.8, np.cos(np.pi * v) * 0.8 * u], axis=1)
    else:
        raise ValueError(kind)
    x = clean @ _rotation(np.random.default_rng(1234)).T + rng.normal(0.0, NOISE_STD, size=(n, 4))
    return x.astype(np.float32), u.astype(np.float32)


def load_synthetic(kind: str) -> Dataset:
    x, u = make_surface(kind)
    train, test = holdout(x, u)
    # The lowest MSE a 2-D code can reach: the noise in the two directions off the surface.
    return Dataset(
        f"synthetic:{kind}",
        train,
        test,
        kind="tabular",
        meta={"value_range": "real", "noise_floor_mse": NOISE_STD**2 * 2 / 4, "label_kind": "continuous"},
    )

"""Denoising with a trained autoencoder, measured against classical baselines.

The test images are corrupted once with a fixed seed; the autoencoder's output is compared with
three baselines, each given its best setting on the validation split (never on test):
a 3x3 median filter, a Gaussian blur (σ from a grid), and a projection onto the top-k principal
components of the clean training images (k from a grid). All figures are PSNR in dB from the
mean squared error over the whole split, against the clean images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aekit.data.noise import parse_noise
from aekit.metrics import as_float, reconstruction_metrics

BLUR_SIGMAS = (0.3, 0.5, 0.7, 0.9, 1.1, 1.4, 1.8, 2.4)
PCA_KS = (5, 10, 20, 30, 40, 60, 80, 120, 200)


def psnr(clean: np.ndarray, est: np.ndarray) -> float:
    return float(reconstruction_metrics(clean, est)["psnr"])


def median3(x: np.ndarray) -> np.ndarray:
    from scipy.ndimage import median_filter

    return median_filter(x, size=(1, 1, 3, 3), mode="nearest")


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(x, sigma=(0, 0, sigma, sigma), mode="nearest")


def _best(options, make, noisy_val, clean_val) -> tuple[Any, float]:
    scores = {o: psnr(clean_val, np.clip(make(noisy_val, o), 0, 1)) for o in options}
    best = max(scores, key=scores.get)
    return best, scores[best]


def denoise_report(model: Any, train_x: np.ndarray, val_x: np.ndarray, test_x: np.ndarray, noise_spec: str,
                   seed: int = 0, picture: str | Path | None = None, n_show: int = 8) -> dict[str, Any]:
    """PSNR of the noisy input, the autoencoder and the three baselines on ``test_x``."""
    from aekit.baselines import PCA

    noise = parse_noise(noise_spec)
    if picture is not None:
        from aekit.outputs import check_picture_file

        check_picture_file(picture)
    clean_te, clean_va = as_float(test_x), as_float(val_x)
    noisy_te, noisy_va = noise.apply_numpy(clean_te, seed), noise.apply_numpy(clean_va, seed + 1)
    ae = model.reconstruct(noisy_te)
    out: dict[str, Any] = {"noise": str(noise), "n": len(test_x), "psnr_noisy": psnr(clean_te, noisy_te),
                           "psnr_autoencoder": psnr(clean_te, ae)}
    baselines: dict[str, dict[str, Any]] = {}
    images = clean_te.ndim == 4
    if images:
        baselines["median3x3"] = {"psnr": psnr(clean_te, median3(noisy_te))}
        sigma, _ = _best(BLUR_SIGMAS, blur, noisy_va, clean_va)
        baselines["gaussian_blur"] = {"psnr": psnr(clean_te, np.clip(blur(noisy_te, sigma), 0, 1)), "sigma": sigma}
    d = int(np.prod(clean_te.shape[1:]))
    ks = [k for k in PCA_KS if k < d]
    if ks:
        pca = PCA(max(ks)).fit(train_x)

        def project(x: np.ndarray, k: int) -> np.ndarray:
            z = pca.transform(x)[:, :k]
            return (z @ pca.components_[:k] + pca.mean_).reshape(x.shape).astype(np.float32)

        k, _ = _best(ks, project, noisy_va, clean_va)
        baselines["pca_projection"] = {"psnr": psnr(clean_te, np.clip(project(noisy_te, k), 0, 1)), "k": k}
    out["baselines"] = baselines
    best_name = max(baselines, key=lambda b: baselines[b]["psnr"]) if baselines else None
    out["best_baseline"] = best_name
    out["gain_db"] = out["psnr_autoencoder"] - baselines[best_name]["psnr"] if best_name else None
    if picture is not None and images:
        from aekit import plots

        rows = [noisy_te[:n_show], ae[:n_show], clean_te[:n_show]]
        labels = ["noisy", "autoencoder", "clean"]
        title = f"{noise}: noisy {out['psnr_noisy']:.1f} dB -> autoencoder {out['psnr_autoencoder']:.1f} dB"
        plots.image_rows(rows, clean_te.shape[1:], picture, labels=labels, title=title)
        out["picture"] = str(picture)
    return out

"""Denoising with a trained autoencoder, measured against classical baselines.

The test images are corrupted once with a fixed seed; the autoencoder's output is compared with
classical baselines, each given its best setting on the validation split (never on test):
a 3x3 median filter, a median filter (window from a grid: the classical answer to salt-and-pepper
noise), a Gaussian blur (σ from a grid), a projection onto the top-k principal components of the
clean training images (k from a grid), and from the optional extra ``aekit[baselines]``
(:mod:`aekit.tasks.classical`) BM3D (its noise σ from a grid), non-local means (its filter
strength h) and total-variation denoising (its weight). These four choose on the first
``CHOICE_IMAGES`` validation images (BM3D, NLM and TV work image by image). Where the extra is
missing its three are skipped, and the report names them. All figures are PSNR in dB from the
mean squared error over the whole split, against the clean images.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from aekit.data.noise import parse_noise
from aekit.metrics import as_float, reconstruction_metrics

BLUR_SIGMAS = (0.3, 0.5, 0.7, 0.9, 1.1, 1.4, 1.8, 2.4)
PCA_KS = (5, 10, 20, 30, 40, 60, 80, 120, 200)
MEDIAN_WINDOWS = (3, 5, 7)
BM3D_SIGMAS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7)
NLM_HS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.6)
TV_WEIGHTS = (0.03, 0.06, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8)
# Validation images the median window, BM3D, NLM and TV choose their setting on: 200 digits
# (157k pixels) chose what 2,000 chose for the median, NLM and TV at each of gaussian:0.5,
# masking:0.5, salt-pepper:0.2 and 0.3, and BM3D's choice over its 7 sigmas costs 8 s of CPU
# instead of 4 minutes (6 ms a digit). The blur and PCA choose on the whole split, as before.
CHOICE_IMAGES = 200
DENOISERS = ("median3x3", "median", "gaussian_blur", "pca_projection", "bm3d", "nl_means", "total_variation")


def psnr(clean: np.ndarray, est: np.ndarray) -> float:
    return float(reconstruction_metrics(clean, est)["psnr"])


def median(x: np.ndarray, window: int) -> np.ndarray:
    from scipy.ndimage import median_filter

    return median_filter(x, size=(1, 1, window, window), mode="nearest")


def median3(x: np.ndarray) -> np.ndarray:
    return median(x, 3)


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(x, sigma=(0, 0, sigma, sigma), mode="nearest")


def _best(options: Iterable[Any], make: Callable[[np.ndarray, Any], np.ndarray], noisy_val: np.ndarray,
          clean_val: np.ndarray) -> tuple[Any, float]:
    scores = {o: psnr(clean_val, np.clip(make(noisy_val, o), 0, 1)) for o in options}
    best = max(scores, key=scores.__getitem__)
    return best, scores[best]


def _choose(name: str, train_x: np.ndarray, noisy_va: np.ndarray, clean_va: np.ndarray
            ) -> tuple[dict[str, Any], Callable[[np.ndarray], np.ndarray]] | None:
    """A baseline's setting, chosen on the validation images, and the denoiser with that setting
    (None for the PCA projection of samples of 5 values or fewer: no k to choose)."""
    from aekit.tasks import classical

    if name == "median3x3":
        return {}, median3
    if name == "pca_projection":
        from aekit.baselines import PCA

        ks = [k for k in PCA_KS if k < int(np.prod(noisy_va.shape[1:]))]
        if not ks:
            return None
        pca = PCA(max(ks)).fit(train_x)

        def project(x: np.ndarray, k: int) -> np.ndarray:
            z = pca.transform(x)[:, :k]
            return (z @ pca.components_[:k] + pca.mean_).reshape(x.shape).astype(np.float32)

        k, _ = _best(ks, project, noisy_va, clean_va)
        return {"k": k}, lambda x: project(x, k)
    key, grid, make = {"median": ("window", MEDIAN_WINDOWS, median), "gaussian_blur": ("sigma", BLUR_SIGMAS, blur),
                       "bm3d": ("sigma", BM3D_SIGMAS, classical.bm3d), "nl_means": ("h", NLM_HS, classical.nl_means),
                       "total_variation": ("weight", TV_WEIGHTS, classical.total_variation)}[name]
    n = None if name == "gaussian_blur" else CHOICE_IMAGES
    best, _ = _best(grid, make, noisy_va[:n], clean_va[:n])
    return {key: best}, lambda x: make(x, best)


def denoise_report(model: Any, train_x: np.ndarray, val_x: np.ndarray, test_x: np.ndarray, noise_spec: str,
                   seed: int = 0, picture: str | Path | None = None, n_show: int = 8,
                   baselines: str | Iterable[str] | None = None) -> dict[str, Any]:
    """PSNR of the noisy input, the autoencoder and the classical baselines on ``test_x``.

    ``baselines``: names from ``DENOISERS`` (a list, or comma-separated), or None or "all" for
    every one that applies (the image filters need images); one left out for a missing package is
    named in ``skipped`` with that package. ``seconds`` holds each baseline's time to choose its
    setting and to denoise ``test_x`` (wall clock), and the CPU time of the latter (``apply_cpu``).
    """
    from aekit.tasks.classical import cpu_seconds, pick

    noise = parse_noise(noise_spec)
    names, skipped = pick(baselines, DENOISERS, set(DENOISERS) - {"pca_projection"}, test_x.ndim == 4, "denoising")
    if picture is not None:
        from aekit.outputs import check_picture_file

        check_picture_file(picture)
    clean_te, clean_va = as_float(test_x), as_float(val_x)
    noisy_te, noisy_va = noise.apply_numpy(clean_te, seed), noise.apply_numpy(clean_va, seed + 1)
    ae = model.reconstruct(noisy_te)
    out: dict[str, Any] = {"noise": str(noise), "n": len(test_x), "psnr_noisy": psnr(clean_te, noisy_te),
                           "psnr_autoencoder": psnr(clean_te, ae)}
    found: dict[str, dict[str, Any]] = {}
    seconds: dict[str, dict[str, float]] = {}
    images = clean_te.ndim == 4
    for name in names:
        t0 = time.perf_counter()
        chosen = _choose(name, train_x, noisy_va, clean_va)
        if chosen is None:
            continue
        t1, c1 = time.perf_counter(), cpu_seconds()
        found[name] = {"psnr": psnr(clean_te, np.clip(chosen[1](noisy_te), 0, 1)), **chosen[0]}
        seconds[name] = {"choose": round(t1 - t0, 3), "apply": round(time.perf_counter() - t1, 3),
                         "apply_cpu": round(cpu_seconds() - c1, 3)}
    out["baselines"], out["skipped"], out["seconds"] = found, skipped, seconds
    best_name = max(found, key=lambda b: found[b]["psnr"]) if found else None
    out["best_baseline"] = best_name
    out["gain_db"] = out["psnr_autoencoder"] - found[best_name]["psnr"] if best_name else None
    if picture is not None and images:
        from aekit import plots

        rows = [noisy_te[:n_show], ae[:n_show], clean_te[:n_show]]
        labels = ["noisy", "autoencoder", "clean"]
        title = f"{noise}: noisy {out['psnr_noisy']:.1f} dB -> autoencoder {out['psnr_autoencoder']:.1f} dB"
        plots.image_rows(rows, clean_te.shape[1:], picture, labels=labels, title=title)
        out["picture"] = str(picture)
    return out

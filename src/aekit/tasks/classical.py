"""The strongest classical denoisers and fills, the baselines of ``aekit denoise`` and ``aekit inpaint``.

- BM3D: Dabov, Foi, Katkovnik & Egiazarian, "Image denoising by sparse 3-D transform-domain
  collaborative filtering", IEEE Trans. Image Processing 2007 (the ``bm3d`` package).
- Non-local means: Buades, Coll & Morel, "A non-local algorithm for image denoising", CVPR 2005.
- Total variation: Rudin, Osher & Fatemi, Physica D 1992, by Chambolle's projection (J. Math.
  Imaging Vision 2004). Both from scikit-image.
- Biharmonic inpainting: Damelin & Hoang, "On surface completion and image inpainting by
  biharmonic functions", Int. J. Math. Math. Sci. 2018 (scikit-image).
- Telea, "An image inpainting technique based on the fast marching method", J. Graphics Tools
  2004 (OpenCV).

They come with the optional extra ``aekit[baselines]``; :func:`unavailable` names those whose
package is missing, so a command runs the rest and says which it skipped. Every function takes
images ``(..., H, W)`` in [0, 1] (a colour image's channels are treated as grey images one by one).
BM3D and non-local means work one image at a time, so a batch is spread over threads, one for
each CPU this process may use (:func:`per_image`): BM3D's library (through ctypes) and
scikit-image's non-local means loop release the GIL. On a quiet 2-CPU machine two threads took
1,000 digits from 5.4 to 2.9 s for BM3D and from 1.15 to 0.61 s for NLM. Total variation (numpy
on small arrays, which holds the GIL) went from 0.64 to 1.30 s on two threads, so it runs on one.
Threads, not processes: a worker process would have to start afresh (forking a parent that runs
torch's threads is unsafe), import numpy and the packages again and re-run the caller's main
module (a script without a ``__main__`` guard would run twice): 6 to 13 s for two workers on a
busy 2-CPU machine. The biharmonic fill solves one sparse system for every image at once, since
the mask is shared.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

EXTRA = "pip install 'aekit[baselines]'"
# Each baseline of the extra: the module it imports and the package that brings it.
NEEDS = {"bm3d": ("bm3d", "bm3d"), "nl_means": ("skimage.restoration", "scikit-image"),
         "total_variation": ("skimage.restoration", "scikit-image"),
         "biharmonic": ("skimage.restoration", "scikit-image"), "telea": ("cv2", "opencv-python-headless")}
POOL_MIN = 64  # images: fewer are denoised on the calling thread


def unavailable(names: Iterable[str]) -> dict[str, str]:
    """The baselines among ``names`` whose package cannot be imported -> that package's name."""
    out: dict[str, str] = {}
    for name in names:
        if name in NEEDS:
            module, package = NEEDS[name]
            try:
                importlib.import_module(module)
            except ImportError:
                out[name] = package
    return out


def skipped_line(skipped: dict[str, str]) -> str:
    """The one line a command prints on stderr for the baselines it skipped."""
    packages = ", ".join(dict.fromkeys(skipped.values()))
    return f"{', '.join(skipped)} skipped ({packages} not installed): {EXTRA}"


def pick(requested: str | Iterable[str] | None, known: tuple[str, ...], image_only: Iterable[str],
         images: bool, what: str) -> tuple[list[str], dict[str, str]]:
    """The baselines to run, and those skipped for a missing package (name -> package).

    ``requested`` is None or "all" (every baseline that applies to the data; one whose package is
    missing is skipped), or names, as a list or comma-separated: a name asked for by name must
    apply and its package must be installed, else an :class:`~aekit.errors.AekitError` says so.
    """
    from aekit.errors import AekitError

    if requested is None or requested == "all":
        names = [n for n in known if images or n not in image_only]
        skipped = unavailable(names)
        return [n for n in names if n not in skipped], skipped
    names = [n.strip() for n in requested.split(",")] if isinstance(requested, str) else list(requested)
    if "all" in names:
        return pick(None, known, image_only, images, what)
    if not names or any(not isinstance(n, str) for n in names):
        raise AekitError(f"--baselines: name the {what} baselines ({', '.join(known)}) or all")
    for n in names:
        if n not in known:
            raise AekitError(f"unknown {what} baseline {n[:40]!r}; use {', '.join(known)} or all")
        if not images and n in image_only:
            raise AekitError(f"the {n} baseline needs images (samples of shape C, H, W)")
    missing = unavailable(names)
    if missing:
        raise AekitError(skipped_line(missing).replace("skipped", "cannot run", 1))
    return list(dict.fromkeys(names)), {}


def cpu_seconds() -> float:
    """CPU time of this process, all its threads: what a baseline costs, whatever else runs."""
    t = os.times()
    return t.user + t.system


def workers() -> int:
    """Threads for image-by-image work: AEKIT_THREADS (or OMP_NUM_THREADS) where set, else the CPUs
    this process may use (its affinity mask within a cgroup's quota)."""
    from aekit.cpu_share import usable_cpus
    from aekit.device import fixed_threads

    return fixed_threads() or usable_cpus()


def per_image(fn: Callable[..., np.ndarray], x: np.ndarray, *args: Any) -> np.ndarray:
    """``fn(chunk (M, H, W), *args)`` over the images of ``x`` (..., H, W), on a thread for each
    usable CPU when there are enough images; the result has the shape of ``x``."""
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, *x.shape[-2:])
    n = workers() if len(flat) >= POOL_MIN else 1
    if n <= 1:
        return fn(flat, *args).reshape(x.shape)
    from concurrent.futures import ThreadPoolExecutor

    # a few chunks a thread (one slow chunk leaves no CPU idle), and none empty
    chunks = np.array_split(flat, min(len(flat), 4 * n))
    with ThreadPoolExecutor(n, thread_name_prefix="aekit-baseline") as pool:
        parts = list(pool.map(fn, chunks, *([a] * len(chunks) for a in args)))
    return np.concatenate(parts).reshape(x.shape)


def _bm3d_chunk(x: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d

    h, w = x.shape[1:]
    # BM3D's 8x8 blocks need a larger image: the library refuses a 7-pixel side and crashes (a
    # segmentation fault, in bm3d 4.0.3) on an 8-pixel one, so smaller images are mirrored to 9
    ph, pw = max(0, 9 - h), max(0, 9 - w)
    out = np.empty_like(x)
    for i, im in enumerate(x):
        profile = bm3d.BM3DProfile()
        # Conventional, white-noise BM3D. The default profile also shapes its thresholds to a
        # noise spectrum computed on a 32x32 FFT grid, which costs 0.6 s a call whatever the
        # image (100x all the rest for a 28x28 digit); at the best sigma on 20 gaussian:0.5 digits
        # the two modes' PSNRs differed by 0.02 dB.
        profile.nf = 0
        profile.num_threads = 1  # per_image spreads the images; a digit is too small to share
        big = np.pad(im, ((0, ph), (0, pw)), mode="symmetric") if ph or pw else im
        out[i] = np.asarray(bm3d.bm3d(big, sigma, profile=profile)).reshape(big.shape)[:h, :w]
    return out


def bm3d(x: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D with noise standard deviation ``sigma`` (hard thresholding, then Wiener filtering)."""
    return per_image(_bm3d_chunk, x, float(sigma))


def _nl_means_chunk(x: np.ndarray, h: float) -> np.ndarray:
    from skimage.restoration import denoise_nl_means

    # 5x5 patches searched within 6 pixels: a digit's scale (the defaults, 7 and 11, are for
    # photographs, and take 3x as long for a lower PSNR on 28x28 digits)
    return np.stack([denoise_nl_means(im, h=h, patch_size=5, patch_distance=6, fast_mode=True) for im in x]
                    ).astype(np.float32)


def nl_means(x: np.ndarray, h: float) -> np.ndarray:
    """Non-local means with filter strength ``h`` (the patch distance at which weights fall by e)."""
    return per_image(_nl_means_chunk, x, float(h))


def _tv_chunk(x: np.ndarray, weight: float) -> np.ndarray:
    from skimage.restoration import denoise_tv_chambolle

    # channel_axis=0: each image on its own (no smoothing across the batch), in one call
    return np.asarray(denoise_tv_chambolle(x, weight=weight, channel_axis=0), dtype=np.float32)


def total_variation(x: np.ndarray, weight: float) -> np.ndarray:
    """Total-variation denoising (Chambolle) with ``weight``: larger is smoother."""
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, *x.shape[-2:])
    return _tv_chunk(flat, float(weight)).reshape(x.shape)  # one thread: see the module's docstring


BIHARMONIC_BATCH = 2048  # images a solve: bounds the float64 right-hand sides (H*W*8 bytes an image)


def biharmonic(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Biharmonic fill of ``x`` (..., H, W) where ``mask`` (H, W) is True."""
    from skimage.restoration import inpaint_biharmonic

    flat = np.asarray(x, dtype=np.float32).reshape(-1, *x.shape[-2:])
    out = np.empty_like(flat)
    for i in range(0, len(flat), BIHARMONIC_BATCH):
        # The images as the channels of one image: skimage builds the sparse system of the shared
        # mask once and solves it for all of them (10,000 digits in 0.6 s, against 19 s one by one).
        part = np.moveaxis(flat[i : i + BIHARMONIC_BATCH], 0, -1)
        out[i : i + BIHARMONIC_BATCH] = np.moveaxis(inpaint_biharmonic(part, mask, channel_axis=-1), -1, 0)
    return out.reshape(x.shape)


def _telea_chunk(x: np.ndarray, mask: np.ndarray, radius: int) -> np.ndarray:
    import cv2

    m = mask.astype(np.uint8)
    return np.stack([cv2.inpaint(im, m, radius, cv2.INPAINT_TELEA) for im in x])


def telea(x: np.ndarray, mask: np.ndarray, radius: int) -> np.ndarray:
    """Telea's fast-marching fill of ``x`` (..., H, W) where ``mask`` (H, W) is True, each missing
    pixel from the observed ones within ``radius`` pixels."""
    # In 16-bit integers: OpenCV 5.1's float32 path gave values far outside the image's range
    # (-1.3 to 1.6 for a digit in [0, 1]); 16 bits keep the values to 1/65535 of their range.
    flat = np.asarray(x, dtype=np.float32).reshape(-1, *x.shape[-2:])
    lo, hi = float(flat.min(initial=0.0)), float(flat.max(initial=1.0))
    scale = (hi - lo) / 65535 or 1.0
    q = np.round((flat - lo) / scale).astype(np.uint16)
    return (_telea_chunk(q, mask, int(radius)).astype(np.float32) * scale + lo).reshape(x.shape)

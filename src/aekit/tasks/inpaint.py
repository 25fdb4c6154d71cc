"""Infilling missing pixels with an autoencoder (the lecture's "infilling").

Start from the mean training image in the missing pixels, then repeat "reconstruct, keep the
observed pixels, replace the missing ones with the reconstruction". An autoencoder trained with
masking noise (``--noise masking:ν``) has learnt exactly this map. PSNR is measured on the masked
pixels only, against baselines: the mean image, each missing pixel copied from its nearest
observed pixel, and from the optional extra ``aekit[baselines]`` (:mod:`aekit.tasks.classical`)
the biharmonic fill (the smoothest surface through the observed pixels) and Telea's fast-marching
fill (its radius chosen on the first ``CHOICE_IMAGES`` validation images). Where the extra is
missing those two are skipped, and the report names them.

Mask specs: ``center:S`` (an S x S square in the middle), ``random:F`` (a fraction F of the
pixels, seeded), ``rows:A-B`` (rows A to B inclusive), or a PNG file whose non-black pixels mark
what is missing (the image's size must match the data's).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from aekit.errors import AekitError


def parse_mask(spec: str, hw: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A boolean (H, W) mask, True where pixels are missing; ``hw`` is (H, W)."""
    h, w = hw
    kind, sep, arg = spec.partition(":")
    mask = np.zeros((h, w), bool)
    try:
        if kind == "center" and sep:
            s = int(arg)
            if not 0 < s <= min(h, w):
                raise AekitError(f"mask {spec!r}: the square must be 1 to {min(h, w)} pixels wide")
            top, left = (h - s) // 2, (w - s) // 2
            mask[top : top + s, left : left + s] = True
            return mask
        if kind == "random" and sep:
            f = float(arg)
            if not 0 < f < 1:
                raise AekitError(f"mask {spec!r}: the fraction must lie strictly between 0 and 1")
            return np.random.default_rng(seed).random((h, w)) < f
        if kind == "rows" and sep:
            a, _, b = arg.partition("-")
            lo, hi = int(a), int(b or a)
            if not 0 <= lo <= hi < h:
                raise AekitError(f"mask {spec!r}: rows must satisfy 0 <= A <= B < {h}")
            mask[lo : hi + 1] = True
            return mask
    except AekitError:  # a ValueError too: the range errors above are not number syntax
        raise
    except ValueError:
        raise AekitError(f"mask {spec!r}: expected a number after '{kind}:'") from None
    p = Path(spec)
    if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".gif"):
        from aekit.data.arrays import image_header, read_image

        # The size from the header alone, before decoding: a mask the wrong size is refused
        # without unpacking its pixels (a small PNG can declare 30000 x 30000).
        mw, mh, _ = image_header(p, "mask")
        if (mh, mw) != (h, w):
            raise AekitError(f"{p}: the mask is {mh}x{mw} but the images are {h}x{w}")
        m = read_image(p, "L", what="mask") > 0
        if not m.any():
            raise AekitError(f"{p}: the mask marks no pixel as missing (use non-black pixels)")
        return m
    raise AekitError(f"unknown mask {spec!r}; use center:S, random:F, rows:A-B or a PNG file")


MAX_ITERS = 1000  # each pass reconstructs the whole split; the fill settles within tens
PASSES = 20  # the default number of passes


def default_passes(noise: str | None) -> int:
    """How many passes a model trained with ``noise`` fills in by default: 20, or 1 for a model trained
    on one fixed hole (``center:S``). Its first guess is what it was trained to give; further passes
    read that guess as input it never saw and drift from it (MNIST, centre 14 x 14, configs/infill-center-14:
    11.9 dB after one pass, 11.2 after 20)."""
    return 1 if isinstance(noise, str) and noise.startswith("center:") else PASSES


def check_iters(iters: Any) -> int:
    from aekit.outputs import check_count

    return check_count("--iters", iters, 1, MAX_ITERS)


def fill(model: Any, x: np.ndarray, mask: np.ndarray, start: np.ndarray, iters: int = 20) -> np.ndarray:
    """Iterative infilling of ``x`` (N, C, H, W) where ``mask`` (H, W) is True.

    A model that infills by construction has an ``infill(x, mask)`` hook (the mae family predicts the
    patches that hold a missing pixel from the whole ones, in one pass): its fill is used where it
    gives one, and the iteration of ``reconstruct`` where it gives None."""
    return fill_counted(model, x, mask, start, iters)[0]


def fill_counted(model: Any, x: np.ndarray, mask: np.ndarray, start: np.ndarray,
                 iters: int = 20) -> tuple[np.ndarray, int]:
    """:func:`fill`, and the passes it made (1 for a model's own ``infill``)."""
    check_iters(iters)
    m = np.broadcast_to(mask, x.shape)
    cur = np.where(m, np.broadcast_to(start, x.shape), x).astype(np.float32)
    own = getattr(model, "infill", None)
    guess = own(cur, mask) if own is not None else None
    if guess is not None:
        return np.where(m, guess, x).astype(np.float32), 1
    for _ in range(iters):
        cur = np.where(m, model.reconstruct(cur), x).astype(np.float32)
    return cur, iters


def nearest_fill(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each missing pixel takes the value of its nearest observed pixel (same for every image)."""
    from scipy.ndimage import distance_transform_edt

    _, (ri, ci) = distance_transform_edt(mask, return_indices=True)
    return x[..., ri, ci]


def masked_psnr(clean: np.ndarray, est: np.ndarray, mask: np.ndarray) -> float:
    m = np.broadcast_to(mask, clean.shape)
    mse = float(np.mean(np.square(clean[m] - est[m]).astype(np.float64)))
    return 10 * np.log10(1.0 / mse) if mse > 0 else float("inf")


FILLS = ("mean_image", "nearest_observed", "biharmonic", "telea")
TELEA_RADII = (1, 2, 3, 5, 8, 13)
CHOICE_IMAGES = 1000  # validation images Telea's radius is chosen on (its six radii take about 3 s)


def inpaint_report(model: Any, train_x: np.ndarray, test_x: np.ndarray, mask_spec: str, iters: int = 20,
                   picture: str | Path | None = None, n_show: int = 8, start: str = "mean",
                   val_x: np.ndarray | None = None, baselines: str | Iterable[str] | None = None) -> dict[str, Any]:
    """PSNR on the missing pixels of ``test_x`` of the autoencoder's fill and the baselines' fills.

    ``val_x``: the images Telea's radius is chosen on (default: the first training images, never
    the test images). ``baselines``: names from ``FILLS`` (a list, or comma-separated), or None or
    "all"; one left out for a missing package is named in ``skipped`` with that package (and a mask
    that leaves no pixel observed leaves out the biharmonic and Telea fills). The chosen radius is
    in ``settings``; ``seconds`` holds each baseline's time to choose and to fill (wall clock), and
    the CPU time of the fill (``apply_cpu``).
    """
    from aekit.metrics import as_float
    from aekit.tasks import classical

    if len(model.input_shape) != 3:
        raise AekitError("inpainting needs an image model (samples of shape C, H, W)")
    check_iters(iters)
    if picture is not None:
        from aekit.outputs import check_picture_file

        check_picture_file(picture)
    clean = as_float(test_x)
    mask = parse_mask(mask_spec, clean.shape[2:])
    names, skipped = classical.pick(baselines, FILLS, (), True, "infilling")
    if mask.all():  # nothing observed: the biharmonic and Telea fills have nothing to start from
        names = [n for n in names if n not in ("biharmonic", "telea")]
    mean_img = as_float(train_x).mean(0)
    if start not in ("mean", "zeros"):
        raise AekitError(f"unknown start {start!r}; use mean or zeros")
    # "zeros" matches what a model trained with --noise block:S or masking:ν saw in its holes.
    ae, passes = fill_counted(model, clean, mask, mean_img if start == "mean" else np.zeros_like(mean_img), iters)
    near = nearest_fill(clean, mask)
    fills: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "mean_image": lambda x: np.where(np.broadcast_to(mask, x.shape), mean_img, x),
        "nearest_observed": lambda x: near if x is clean else nearest_fill(x, mask),
        "biharmonic": lambda x: classical.biharmonic(x, mask)}
    found: dict[str, float] = {}
    settings: dict[str, dict[str, Any]] = {}
    seconds: dict[str, dict[str, float]] = {}
    for name in names:
        t0 = time.perf_counter()
        if name == "telea":
            va = as_float(val_x[:CHOICE_IMAGES] if val_x is not None else train_x[:CHOICE_IMAGES])
            radius = max(TELEA_RADII, key=lambda r: masked_psnr(va, classical.telea(va, mask, r), mask))
            settings["telea"] = {"radius": radius}
            fills["telea"] = functools.partial(classical.telea, mask=mask, radius=radius)
        t1, c1 = time.perf_counter(), classical.cpu_seconds()
        found[name] = masked_psnr(clean, fills[name](clean), mask)
        seconds[name] = {"choose": round(t1 - t0, 3), "apply": round(time.perf_counter() - t1, 3),
                         "apply_cpu": round(classical.cpu_seconds() - c1, 3)}
    out: dict[str, Any]
    out = {"mask": mask_spec, "missing_fraction": float(mask.mean()), "iters": iters, "passes": passes,
           "start": start, "n": len(clean),
           "psnr_autoencoder": masked_psnr(clean, ae, mask), "baselines": found, "settings": settings,
           "skipped": skipped, "seconds": seconds}
    best = max(found, key=found.__getitem__)
    out["best_baseline"], out["gain_db"] = best, out["psnr_autoencoder"] - found[best]
    if picture is not None:
        from aekit import plots

        shown = np.where(np.broadcast_to(mask, clean.shape), 0.5, clean)  # missing pixels grey
        plots.image_rows([shown[:n_show], ae[:n_show], near[:n_show], clean[:n_show]], clean.shape[1:], picture,
                         labels=["masked", "autoencoder", "nearest", "clean"],
                         title=f"infilling {mask_spec}: {out['psnr_autoencoder']:.1f} dB on the missing pixels")
        out["picture"] = str(picture)
    return out

"""What each API call computes on one opened run, in NumPy; the app only parses and answers.

Single images go through the same task functions as the commands (:mod:`aekit.tasks`); where a
baseline needs a setting (the blur's σ, the PCA projection's k) it is chosen on validation images,
never on the image being shown, and remembered per noise setting (the last :data:`N_BASELINES`).

A request waits for a run's model without holding a thread (:func:`locked`): only the request using
the model runs, in the event loop or in one worker thread.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from aekit.errors import AekitError
from aekit.serve.runs import Served
from aekit.tasks.anomaly import score_of, shares

N_CHOOSE = 100  # validation images a denoising baseline's setting is chosen on
MAX_BATCH = 64  # images in one forward pass of the fast calls
N_BASELINES = 32  # noise settings whose baseline a run remembers (a client chooses the level freely)
MASK_KINDS = ("center:", "random:", "rows:")
# Decoded values in one answer of generated images: the largest manifold of MNIST digits (20 x 20 of
# 28 x 28, 1.3 MB of float32 and ~2.5 MB of JSON). A run of larger images gets fewer of them.
MAX_VALUES = 20 * 20 * 28 * 28
N_TRAVERSED = 3  # latent dimensions a traversal sweeps when the request names none
T = TypeVar("T")


def forward(s: Served, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reconstructions and codes of a batch of samples, from one pass (no loss computed)."""
    import torch

    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(xs, dtype=np.float32))
        # recon_tensor, not decode(encode(x)): a ladder VAE's reconstruction follows every layer's
        # posterior mean, as `aekit reconstruct`, the run's threshold and an exported model do
        code, recon = s.model.encode(x), s.model.recon_tensor(x)
    return recon.float().numpy(), code.float().numpy()


def scored(s: Served, x: np.ndarray, recon: np.ndarray, code: np.ndarray) -> dict[str, Any]:
    """Reconstruction, code, per-pixel error map and the anomaly score against the run's threshold."""
    share = shares(np.square(x - recon)[None], s.error_scale)  # each value's share, as aekit anomaly maps it
    score = float(score_of(share)[0])  # the one definition, as `aekit anomaly` and the threshold use
    err = share[0].astype(np.float32, copy=False)
    return {"input": x, "recon": recon, "code": code, "error_map": err,
            "score": score, "threshold": s.threshold, "anomaly": score > s.threshold}


async def locked(s: Served, fn: Callable[..., T], *args: Any, thread: bool = False) -> T:
    """``fn(*args)`` with the run's model to itself. The wait for it is asynchronous (``s.gate``): a
    request queued behind a slow one (an inpainting, the latent map) holds no worker thread. Then
    ``fn`` runs in the event loop (a forward pass of a few images), or with ``thread`` in a worker
    thread (longer work), or there too if something outside the gate holds ``s.lock``."""
    async with s.gate:
        return await _held(s, fn, args, thread)


async def _held(s: Served, fn: Callable[..., T], args: tuple[Any, ...], thread: bool) -> T:
    """``fn(*args)`` under ``s.lock``; the caller holds ``s.gate``."""
    if not thread and s.lock.acquire(blocking=False):
        try:
            return fn(*args)
        finally:
            s.lock.release()
    from starlette.concurrency import run_in_threadpool

    def wait() -> T:
        with s.lock:
            return fn(*args)

    return await run_in_threadpool(wait)


class Batcher:
    """One forward pass for the images that arrive together.

    A request's image joins the waiting list; the first to join starts a task that runs after the
    requests already read have joined too, and answers them all from one batch. At batch 1 the pass
    of a 784-1000-500-250-30 network reads its 11 MB of weights for one image; 16 images cost a
    fraction of 16 passes. Nothing waits for a batch to fill: a lone request goes through at once.
    """

    def __init__(self, s: Served) -> None:
        self.s = s
        self.waiting: list[tuple[np.ndarray, asyncio.Future]] = []
        self.tasks: set[asyncio.Task] = set()  # referenced until done (the loop keeps weak references)

    async def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(reconstruction, code) of one sample."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self.waiting.append((x, done))
        if len(self.waiting) == 1:
            self._start()
        return await done

    def _start(self) -> None:
        task = asyncio.get_running_loop().create_task(self._run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self) -> None:
        batch: list[tuple[np.ndarray, asyncio.Future]] = []
        try:
            async with self.s.gate:  # images that arrive while the model is busy join this batch
                batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
                if self.waiting:  # the rest in a pass of its own: one pass in the event loop stays short
                    self._start()
                if not batch:
                    return
                recon, code = await _held(self.s, forward, (self.s, np.stack([x for x, _ in batch])), False)
        except Exception as exc:
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for i, (_, done) in enumerate(batch):
            if not done.done():  # a client that went away
                done.set_result((recon[i], code[i]))


def batcher(s: Served) -> Batcher:
    if "batcher" not in s.cache:
        s.cache["batcher"] = Batcher(s)
    return s.cache["batcher"]


def _pca(s: Served) -> Any:
    from aekit.baselines import PCA

    if "pca" not in s.cache:
        d = int(np.prod(s.shape))
        ks = [k for k in (5, 10, 20, 30, 40, 60, 80, 120, 200) if k < d]
        s.cache["pca"] = PCA(max(ks)).fit(s.train_x.reshape(len(s.train_x), -1)) if ks else None
    return s.cache["pca"]


def _baselines(s: Served) -> dict[str, Any]:
    """name -> (setting, function of a batch) for every classical denoiser with each of its settings."""
    from aekit.tasks.denoise import BLUR_SIGMAS, PCA_KS, blur, median3

    out: dict[str, Any] = {}
    if len(s.shape) == 3:
        out["median3x3"] = [(None, median3)]
        out["gaussian_blur"] = [(sg, lambda x, sg=sg: blur(x, sg)) for sg in BLUR_SIGMAS]
    pca = _pca(s)
    if pca is not None:
        def project(x: np.ndarray, k: int) -> np.ndarray:
            z = pca.transform(x.reshape(len(x), -1))[:, :k]
            return (z @ pca.components_[:k] + pca.mean_).reshape(x.shape).astype(np.float32)

        out["pca_projection"] = [(k, lambda x, k=k: project(x, k)) for k in PCA_KS if k <= len(pca.components_)]
    return out


def _choose_baseline(s: Served, noise: Any) -> tuple[str, Any, Any]:
    """The classical denoiser with the highest PSNR on validation images for this noise (~0.2 s; no model)."""
    from aekit.tasks.denoise import psnr

    clean = s.val_x[:N_CHOOSE]
    noisy = noise.apply_numpy(clean, 1)
    return max(((name, setting, fn) for name, opts in _baselines(s).items() for setting, fn in opts),
               key=lambda c: psnr(clean, np.clip(c[2](noisy), 0, 1)))


async def best_baseline(s: Served, noise: Any) -> tuple[str, Any, Any]:
    """:func:`_choose_baseline`, remembered for the last :data:`N_BASELINES` noise settings. It uses no
    model, so it is computed outside the run's gate (the fast calls go on meanwhile), one at a time
    per run, in a worker thread."""
    from starlette.concurrency import run_in_threadpool

    chosen: OrderedDict[str, Any] = s.cache.setdefault("baselines", OrderedDict())
    key = str(noise)
    if key not in chosen:
        async with s.choosing:
            if key not in chosen:  # chosen while this request waited
                chosen[key] = await run_in_threadpool(_choose_baseline, s, noise)
                while len(chosen) > N_BASELINES:
                    chosen.popitem(last=False)
    chosen.move_to_end(key)
    return chosen[key]


def finite_psnr(r: dict[str, Any]) -> dict[str, Any]:
    """``r`` with each infinite PSNR (an estimate equal to the original: no error at all) as null and a
    ``psnr_note`` saying why; JSON has no infinity, and ``aekit ... --json`` writes null alike."""
    exact = [k for k, v in r.items() if k.startswith("psnr_") and isinstance(v, float) and not math.isfinite(v)]
    if exact:
        r = {**r, **dict.fromkeys(exact)}
        r["psnr_note"] = (f"{', '.join(exact)}: null, as the image equals the original exactly "
                          "(no error, so the PSNR is infinite)")
    return r


def noise_of(kind: str, level: float) -> Any:
    from aekit.data.noise import parse_noise

    if kind != "gaussian" and level >= 1:
        raise AekitError("level: a fraction for masking and salt-pepper noise must lie below 1")
    return parse_noise(f"{kind}:{level!r}")


def denoise(s: Served, x: np.ndarray, noise: Any, seed: int, baseline: tuple[str, Any, Any]) -> dict[str, Any]:
    """The noisy image, the model's output and ``baseline``'s (from :func:`best_baseline`), with PSNRs."""
    from aekit.tasks.denoise import psnr

    noisy = noise.apply_numpy(x[None], seed)
    model_out = s.model.reconstruct(noisy)
    name, setting, fn = baseline
    base = np.clip(fn(noisy), 0, 1)
    return finite_psnr({"noise": str(noise), "clean": x, "noisy": noisy[0], "model": model_out[0],
                        "baseline": base[0], "baseline_name": name, "baseline_setting": setting,
                        "psnr_noisy": psnr(x[None], noisy), "psnr_model": psnr(x[None], model_out),
                        "psnr_baseline": psnr(x[None], base)})


def parse_mask(s: Served, spec: str) -> np.ndarray:
    """A mask spec from a request: only the drawn shapes, never a file name (no path reaches the disk)."""
    from aekit.tasks.inpaint import parse_mask as parse

    if not spec.startswith(MASK_KINDS):
        raise AekitError(f"mask: unknown mask {spec[:40]!r}; use center:S, random:F, rows:A-B or a painted array")
    return parse(spec, s.shape[1:])


def inpaint(s: Served, x: np.ndarray, mask: np.ndarray, iters: int | None) -> dict[str, Any]:
    from aekit.tasks.inpaint import default_passes, fill, masked_psnr

    if iters is None:
        iters = default_passes(s.noise)  # the run's own, as `aekit inpaint` without --iters
    mean = s.mean_image
    ae = fill(s.model, x[None], mask, mean, iters)[0]
    mean_fill = np.where(np.broadcast_to(mask, x.shape), mean, x)
    shown = np.where(np.broadcast_to(mask, x.shape), 0.5, x)  # missing pixels grey
    return finite_psnr({"masked": shown, "model": ae, "mean_fill": mean_fill, "mask": mask.astype(np.float32),
                        "missing_fraction": float(mask.mean()), "iters": iters,
                        "psnr_model": masked_psnr(x[None], ae[None], mask),
                        "psnr_mean": masked_psnr(x[None], mean_fill[None], mask)})


def blend(s: Served, a: np.ndarray, b: np.ndarray, t: float) -> dict[str, Any]:
    """The decoded point at weight ``t`` on the line between the two codes, and the pixel cross-fade."""
    za, zb = s.model.encode(np.stack([a, b]))
    z = ((1 - t) * za + t * zb)[None].astype(np.float32)
    return {"decoded": s.model.decode(z)[0], "fade": ((1 - t) * a + t * b).astype(np.float32), "t": t}


def latent(s: Served) -> dict[str, Any]:
    """The first test images' codes in 2-D (:data:`~aekit.serve.runs.N_MAP`, in index order): the code itself
    when it is 2-D, else its top two PCA axes."""
    if "latent" not in s.cache:
        from aekit.baselines import PCA

        codes = s.model.encode(s.test_x).astype(np.float64)
        if codes.shape[1] == 2:
            pts, method = codes, "code"
        elif codes.shape[1] == 1:
            pts, method = np.column_stack([codes[:, 0], np.zeros(len(codes))]), "code"
        else:
            pts, method = PCA(2).fit(codes).transform(codes), "pca"
        labels = None if s.test_y is None else [int(v) for v in s.test_y[:len(codes)]]
        s.cache["latent"] = {"points": np.round(pts, 4).tolist(), "labels": labels, "method": method,
                             "code_size": int(codes.shape[1])}
    return s.cache["latent"]


def decode_point(s: Served, x: float, y: float, label: int | None = None) -> np.ndarray:
    """The decoded 2-D code (x, y); ``label`` for a conditional VAE (the Sample panel's manifold)."""
    if s.model.code_size != 2:
        raise AekitError("only a run with a 2-D code decodes a point of the map")
    z = np.array([[x, y]], np.float32)
    if label is None:
        return s.model.decode(z)[0]
    if not getattr(s.model, "takes_labels", False):  # a plain model's decode takes no labels at all
        raise AekitError(f"label: run {s.id} is not conditional; it takes no label")
    return s.model.decode(z, [label])[0]


# -- variational runs: what aekit.tasks.generate computes, for the page's Sample panel ----------------
def generating(s: Served, what: str, count: int) -> None:
    """Before a request makes ``count`` images: the run is a VAE (else one line naming what it is), and
    the answer stays within :data:`MAX_VALUES` (refused, not computed, past it)."""
    from aekit.tasks.generate import check_variational

    check_variational(s.model, what)
    values = count * math.prod(s.shape)
    if values > MAX_VALUES:
        raise AekitError(f"{what}: {count:,} images of shape {s.shape} are {values:,} values, more than the "
                         f"{MAX_VALUES:,} one answer holds; ask for fewer")


def sample(s: Served, n: int, temperature: float, label: int | None, seed: int) -> dict[str, Any]:
    """``n`` decoded draws from the run's prior, ``(n, *shape)``: the same seed gives the same bytes."""
    from aekit.tasks.generate import sample as draw

    images = draw(s.model, n, temperature, label, seed)
    return {"images": images, "shape": list(images.shape), "temperature": temperature, "seed": seed,
            "label": label}


def traversal_dims(s: Served, dims: list[int] | None) -> list[int]:
    """The request's latent dimensions, or the first :data:`N_TRAVERSED` of the code."""
    return list(range(min(N_TRAVERSED, s.model.code_size))) if dims is None else dims


def traverse(s: Served, dims: list[int], steps: int, span: float, label: int | None) -> dict[str, Any]:
    """Each dimension of ``dims`` swept over ``steps`` points from -span to +span prior standard
    deviations, the others at the prior's mean: ``strips`` ``(len(dims), steps, *shape)``."""
    from aekit.tasks.generate import traverse as sweep

    strips = sweep(s.model, dims, steps, span, label=label)
    return {"strips": strips, "shape": list(strips.shape), "dims": dims, "span": span,
            "offsets": np.linspace(-span, span, steps).round(4).tolist()}


def manifold(s: Served, grid: int, span: float, label: int | None) -> dict[str, Any]:
    """For a 2-number code: the decoded ``grid`` x ``grid`` square of prior quantiles ``(grid, grid, *shape)``
    and its codes ``(grid, grid, 2)``, rows from high to low z[1], columns from low to high z[0]."""
    from aekit.tasks.generate import manifold as square

    images, codes = square(s.model, grid, span, label)
    codes = codes.astype(np.float64).round(4) + 0.0  # + 0.0: the median's -0.0 as 0.0
    return {"images": images, "codes": codes.tolist(), "shape": list(images.shape), "span": span}


# -- linear vs non-linear: the Linear panel's PCA beside the model ----------------------------------
N_PCA_FIT = 10_000  # training images the code-sized PCA is fitted on (the run's training split, up to this)
MAX_PCA_DIMS = 4096  # values per sample an exact PCA is fitted for here (its covariance is d x d float64)


def _fit_code_pca(s: Served) -> tuple[Any, int]:
    """PCA with as many components as the model's code (at most the sample's values), fitted on the first
    :data:`N_PCA_FIT` images of the run's own training split; and how many it was fitted on."""
    from aekit.baselines import PCA

    x = s.opened.split("train").x[:N_PCA_FIT]  # as the dataset stores them: PCA.fit converts per chunk
    return PCA(min(s.model.code_size, math.prod(s.shape))).fit(x), len(x)


async def code_pca(s: Served) -> tuple[Any, int]:
    """:func:`_fit_code_pca`, once per run (kept with the run: one PCA of the code's size each). It uses
    no model, so it runs outside the run's gate, in a worker thread, one fit or baseline choice at a time
    per run (``s.choosing``). Refused, before any work, for samples too large for an exact PCA here."""
    from starlette.concurrency import run_in_threadpool

    d = math.prod(s.shape)
    if d > MAX_PCA_DIMS:
        raise AekitError(f"pca: samples of {d:,} values are more than the {MAX_PCA_DIMS:,} an exact PCA is fitted "
                         "for here; compare with `aekit baseline pca` instead")
    if getattr(s.model, "takes_labels", False):
        raise AekitError(f"{s.id}: a conditional VAE reconstructs only with each image's label; pick another run")
    if "pca_code" not in s.cache:
        async with s.choosing:
            if "pca_code" not in s.cache:  # fitted while this request waited
                s.cache["pca_code"] = await run_in_threadpool(_fit_code_pca, s)
    return s.cache["pca_code"]


def linear(s: Served, x: np.ndarray, fitted: tuple[Any, int]) -> dict[str, Any]:
    """The PCA reconstruction of ``x`` with as many components as the code (``fitted``, from
    :func:`code_pca`) beside the model's, each with its squared error summed over the image (the unit of
    ``sse_per_image``; the PCA's unclipped, as the usual PCA figures are)."""
    pca, n_fit = fitted
    projected = pca.inverse_transform(pca.transform(x[None]))[0].reshape(x.shape).astype(np.float32)
    recon = forward(s, x[None])[0][0]
    return {"input": x, "pca": projected, "model": recon, "components": pca.k, "code_size": int(s.model.code_size),
            "fit_images": n_fit, "sse_pca": float(np.square(x - projected, dtype=np.float64).sum()),
            "sse_model": float(np.square(x - recon, dtype=np.float64).sum())}


# -- classify: the Classify panel's class probabilities of a fine-tuned classifier ------------------
def classify(s: Served, x: np.ndarray) -> dict[str, Any]:
    """The classifier's probability of each class for ``x`` (a softmax of its outputs), the most likely
    class, and the run's test accuracy as ``aekit finetune`` measured it (None where not recorded)."""
    import torch

    from aekit.serve.runs import classifier_facts

    with torch.inference_mode():
        logits = s.model(torch.from_numpy(np.ascontiguousarray(x[None], dtype=np.float32)))
        p = torch.softmax(logits.double(), 1)[0].numpy()
    if "facts" not in s.cache:
        s.cache["facts"] = classifier_facts(s.opened.info, s.opened.dir)
    facts = s.cache["facts"]
    return {"input": x, "probabilities": [round(float(v), 6) for v in p], "predicted": int(p.argmax()),
            "test_accuracy": facts["test_accuracy"], "init": facts["init"], "labels": facts["labels"]}

"""What a variational autoencoder is for beyond reconstruction: likelihoods, samples, traversals.

- :func:`log_likelihood`: the importance-sampled marginal log-likelihood log p(x) with the posterior
  as proposal, log (1/S) sum_s p(x, z_s) / q(z_s|x), z_s ~ q(z|x) (Rezende et al. 2014; Burda et al.,
  "Importance Weighted Autoencoders", ICLR 2016: it is the IWAE bound L_S, which rises to log p(x) as
  S grows). Nats per sample; the log-mean-exp is in float64 and streamed over batches of data rows and
  of importance samples, so memory stays bounded whatever S.
- :func:`sample`: decoded draws from the prior, optionally at a temperature (each prior component's
  spread scaled), byte-identical for one seed.
- :func:`traverse` and :func:`manifold`: one latent dimension swept at a time; and, for a 2-number
  code, the decoded grid of prior quantiles (Kingma & Welling 2014, figure 4).
- :func:`ppca_fit` and :func:`ppca_log_likelihood`: probabilistic PCA in closed form (Tipping & Bishop,
  "Probabilistic principal component analysis", JRSS B 1999), the exact answer a linear Gaussian VAE
  is checked against.

NumPy in and out; torch inside. Randomness comes from a ``torch.Generator`` seeded by ``seed``, never
from the global generators, so a result does not depend on what ran before it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.cpu_share import shared_threads
from aekit.errors import AekitError
from aekit.models.priors import prior_moments, prior_quantiles, sample_prior
from aekit.models.variational import VariationalAE
from aekit.outputs import check_count

MAX_IMPORTANCE_SAMPLES = 10**6
MAX_GENERATED = 100_000  # samples of one call: 100,000 MNIST digits are 300 MB of float32
MAX_TEMPERATURE = 10.0
MAX_STEPS = 100
MAX_GRID = 100
MAX_SPAN = 10.0  # prior standard deviations either side of the centre in a traversal
DEFAULT_BATCH = 4096  # decoded samples per forward pass
MAX_BATCH = 1 << 16  # 65,536 decoded MNIST digits are 200 MB of float32 per tensor, a few of them at once


def check_variational(model: Any, what: str) -> VariationalAE:
    """The model, if it is a VAE; else one line naming what the run is."""
    if not isinstance(model, VariationalAE):
        family = getattr(model, "family", type(model).__name__)
        raise AekitError(f"{what} needs a variational run (model vae); this run is {family}")
    return model


def check_samples(samples: Any) -> int:
    return check_count("samples", samples, 1, MAX_IMPORTANCE_SAMPLES)


def check_temperature(temperature: Any) -> float:
    ok = isinstance(temperature, numbers.Real) and not isinstance(temperature, bool) and math.isfinite(temperature)
    if not ok or not 0 < temperature <= MAX_TEMPERATURE:
        raise AekitError(f"temperature must be a number above 0 and at most {MAX_TEMPERATURE:g}, "
                         f"got {temperature!r:.40}")
    return float(temperature)


def _check_real(what: str, value: Any, low: float, high: float) -> float:
    """A finite number in (low, high]."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not low < value <= high:
        raise AekitError(f"{what} must be a number above {low:g} and at most {high:g}, got {value!r:.40}")
    return float(value)


def _generator(model: VariationalAE, seed: Any) -> torch.Generator:
    seed = check_count("seed", seed, 0, 2**63 - 1)
    device = next(model.parameters()).device
    return torch.Generator(device).manual_seed(seed)


class _Evaluating:
    """Eval mode and no gradients for the length of a block; the model's mode is restored after."""

    def __init__(self, model: VariationalAE) -> None:
        self.model, self.grad = model, torch.no_grad()

    def __enter__(self) -> VariationalAE:
        self.was_training = self.model.training
        self.model.eval()
        self.grad.__enter__()
        return self.model

    def __exit__(self, *exc: Any) -> None:
        self.grad.__exit__(*exc)
        self.model.train(self.was_training)


# --- likelihoods -------------------------------------------------------------------------------------
def check_batch(batch: Any) -> int:
    return check_count("batch", batch, 1, MAX_BATCH)


def log_likelihood(model: Any, x: np.ndarray, samples: int = 5000, batch: int = DEFAULT_BATCH,
                   labels: Any = None, seed: int = 0, on_rows: Callable[[int], None] | None = None) -> np.ndarray:
    """Importance-sampled log p(x) per sample, in nats, float64 ``(N,)``.

    At most ``batch`` decoded samples per forward pass: ``batch // samples`` data rows at a time
    with all their importance samples, or one row with its samples in pieces of ``batch``; the
    log-mean-exp of each piece is taken in float64 and the pieces are combined the same way.
    ``on_rows(k)`` is called after each ``k`` rows are done (a progress bar).
    """
    model = check_variational(model, "nll")
    samples = check_samples(samples)
    batch = check_batch(batch)
    x = model._as_inputs(x)
    lab = model.check_labels(labels, len(x))
    gen = _generator(model, seed)
    rows, per = max(1, batch // samples), min(samples, batch)
    out = []
    with _Evaluating(model), shared_threads(next(model.parameters()).device) as share:
        comps = model.prior_components()
        for xt, yt in model.batches(x, lab, rows):
            share.tick()  # minutes of forward passes: the threads follow the CPUs left free, as training's do
            y = model.onehot(yt, len(xt))
            post = model.encoder.distribution(xt, y)
            parts = []
            for start in range(0, samples, per):
                log_px, log_ratio, _ = model.sample_terms(post, xt, y, min(per, samples - start), comps, gen)
                parts.append(torch.logsumexp((log_px - log_ratio).double(), 0))
            out.append((torch.logsumexp(torch.stack(parts), 0) - math.log(samples)).cpu().numpy())
            if on_rows is not None:
                on_rows(len(xt))
    return np.concatenate(out) if out else np.zeros(0)


def elbo_terms(model: Any, x: np.ndarray, labels: Any = None, batch: int = DEFAULT_BATCH,
               seed: int = 0) -> dict[str, float]:
    """Means over ``x`` of the one-sample ELBO, its KL and its reconstruction term (expected negative
    log-likelihood), in nats per sample: elbo = -(recon + kl)."""
    model = check_variational(model, "elbo")
    x = model._as_inputs(x)
    lab = model.check_labels(labels, len(x))
    gen = _generator(model, seed)
    rec_sum = kl_sum = 0.0
    with _Evaluating(model):
        comps = model.prior_components()
        for xt, yt in model.batches(x, lab, check_batch(batch)):
            y = model.onehot(yt, len(xt))
            rec, kl, _ = model.elbo_parts(model.encoder.distribution(xt, y), xt, y, comps, gen)
            rec_sum += float(rec.double().sum())
            kl_sum += float(kl.double().sum())
    n = max(len(x), 1)
    return {"elbo": -(rec_sum + kl_sum) / n, "kl": kl_sum / n, "recon": rec_sum / n}


def nll_summary(model: Any, x: np.ndarray, samples: int = 5000, labels: Any = None, seed: int = 0,
                batch: int = DEFAULT_BATCH, on_rows: Callable[[int], None] | None = None) -> dict[str, Any]:
    """The importance-sampled negative log-likelihood beside the ELBO and its terms (nats per sample)."""
    ll = log_likelihood(model, x, samples, batch, labels, seed, on_rows)
    return {"nll": float(-ll.mean()) if len(ll) else math.nan, **elbo_terms(model, x, labels, batch, seed),
            "samples": samples, "n": len(ll)}


# --- generation -------------------------------------------------------------------------------------
def sample(model: Any, n: int, temperature: float = 1.0, label: Any = None, seed: int = 0) -> np.ndarray:
    """``n`` decoded draws from the prior (the likelihood's mean at each z), float32 ``(n, *input_shape)``;
    ``label`` (one, or one per sample) for a conditional model."""
    model = check_variational(model, "sample")
    n = check_count("n", n, 1, MAX_GENERATED)
    temperature = check_temperature(temperature)
    lab = model.check_labels(label, n)
    gen = _generator(model, seed)
    with _Evaluating(model):
        z = sample_prior(model.prior_components(), n, temperature, gen)
    return model.decode_samples(z.float().cpu().numpy(), lab, temperature, gen)


def _check_dims(dims: Any, code: int) -> list[int]:
    if isinstance(dims, numbers.Integral):
        dims = [dims]
    if isinstance(dims, str | bytes) or not isinstance(dims, Sequence) or not 1 <= len(dims) <= code:
        raise AekitError(f"dims must be a list of 1 to {code} latent dimensions, got {dims!r:.40}")
    return [check_count("a latent dimension (dims)", d, 0, code - 1) for d in dims]


def traverse(model: Any, dims: Any, steps: int = 9, span: float = 3.0, x: np.ndarray | None = None,
             label: Any = None) -> np.ndarray:
    """Each latent dimension in ``dims`` swept from -span to +span prior standard deviations about the
    centre, the others held there: the prior's mean, or the posterior mean of the one sample ``x``.
    Returns float32 ``(len(dims), steps, *input_shape)``."""
    model = check_variational(model, "traverse")
    dims = _check_dims(dims, model.code_size)
    steps = check_count("steps", steps, 2, MAX_STEPS)
    span = _check_real("span", span, 0.0, MAX_SPAN)
    with _Evaluating(model):
        mean, std = (t.double().cpu().numpy() for t in prior_moments(model.prior_components()))
    if x is not None:
        one = model._as_inputs(np.asarray(x)[None] if np.ndim(x) == len(model.input_shape) else np.asarray(x))
        if len(one) != 1:
            raise AekitError(f"traverse centres on one sample, got {len(one)}")
        mean = model.encode(one, None if label is None else [label])[0].astype(np.float64)
    codes = np.repeat(mean[None, None], len(dims), 0).repeat(steps, 1)  # (dims, steps, D)
    offsets = np.linspace(-span, span, steps)
    for i, d in enumerate(dims):
        codes[i, :, d] = mean[d] + offsets * std[d]
    flat = codes.reshape(-1, model.code_size).astype(np.float32)
    lab = model.check_labels(label, len(flat))
    return model.decode(flat, lab).reshape(len(dims), steps, *model.input_shape)


def manifold(model: Any, grid: int = 20, span: float = 0.9, label: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """For a 2-number code: the decoded ``grid`` x ``grid`` square of prior quantiles, the central
    ``span`` of each axis's probability (0.9: from the 5th to the 95th percentile), through the
    prior's inverse CDF as in Kingma & Welling's figure. Returns (images ``(grid, grid, *input_shape)``,
    codes ``(grid, grid, 2)``); rows run from high to low z[1] (a plot's y axis), columns low to high z[0]."""
    model = check_variational(model, "manifold")
    if model.code_size != 2:
        raise AekitError(f"the decoded manifold needs a 2-number code; this model's code has {model.code_size}")
    grid = check_count("grid", grid, 2, MAX_GRID)
    span = _check_real("span", span, 0.0, 1.0 - 1e-9)
    p = np.linspace((1 - span) / 2, (1 + span) / 2, grid)
    with _Evaluating(model):
        q = prior_quantiles(model.prior_components(), p)  # (grid, 2)
    codes = np.stack(np.meshgrid(q[:, 0], q[::-1, 1]), -1)  # [i, j] = (q0[j], q1[grid - 1 - i])
    lab = model.check_labels(label, grid * grid)
    images = model.decode(codes.reshape(-1, 2).astype(np.float32), lab)
    return images.reshape(grid, grid, *model.input_shape), codes.astype(np.float32)


# --- what the commands around these functions need ---------------------------------------------------
ARRAY_SUFFIX = ".npy"
GREY_LEVELS = "grey levels (not a likelihood of binary data)"
REAL_VALUES = "real values (a density, in nats on the data's own scale)"


def check_unconditional(model: Any, what: str) -> None:
    """Refuse a conditional VAE where a task has no label to give it (one error line)."""
    if getattr(model, "n_classes", 0):
        raise AekitError(f"{what} does not take a conditional VAE (n_classes {model.n_classes}): its encoder and "
                         "decoder need each sample's label; use an unconditional VAE run")


def data_values(meta: dict[str, Any]) -> tuple[str, Any]:
    """What an NLL is a likelihood of, from a dataset's metadata (config.json's data section): (a line
    for people, the binarisation record or None). Bernoulli likelihoods on binarised pixels are
    probabilities; on grey levels the same number is no likelihood of binary data, and static and
    dynamic binarisations differ by about 2 nats, so the record travels with every figure."""
    from aekit.tasks.anomaly import shown

    record = meta.get("binarisation")  # aekit.data.dataset.binarized's record: {"kind": "dynamic", "seed": S}
    if isinstance(record, dict) and record.get("kind") == "dynamic" and isinstance(record.get("seed"), int):
        return f"binary, dynamically binarised (validation and test drawn once, seed {record['seed']})", record
    if isinstance(record, dict) and record:
        parts = ", ".join(f"{shown(k, 40)} {shown(v, 40)}" for k, v in record.items())
        return f"binarised ({parts})", record
    if isinstance(record, str) and record:
        return f"binarised ({shown(record, 80)})", record
    return (GREY_LEVELS if meta.get("value_range", "unit") == "unit" else REAL_VALUES), None


def check_images_out(out: str | Path | None, count: int) -> Path | None:
    """Before generating ``count`` images: ``out`` is a .npy file or a picture of at most
    MAX_PICTURE_IMAGES images, in a place that takes a new file."""
    from aekit.outputs import MAX_PICTURE_IMAGES, PICTURE_SUFFIXES, check_output_file

    path = check_output_file(out, (*PICTURE_SUFFIXES, ARRAY_SUFFIX))
    if path is not None and path.suffix.lower() != ARRAY_SUFFIX and count > MAX_PICTURE_IMAGES:
        raise AekitError(f"--out {path}: a picture holds at most {MAX_PICTURE_IMAGES:,} images and this asks for "
                         f"{count:,}; ask for fewer, or write them to a .npy file")
    return path


def write_images(images: np.ndarray, out: str | Path, rows: list[np.ndarray], shape: tuple[int, ...],
                 labels: list[str] | None = None, title: str | None = None) -> Path:
    """``images`` as a .npy array (float32, as generated: the same seed gives the same bytes), or
    ``rows`` of them as a picture (:func:`aekit.plots.image_rows`)."""
    import io

    from aekit import plots
    from aekit.io import atomic_write_bytes

    path = Path(out)
    if path.suffix.lower() == ARRAY_SUFFIX:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(images, np.float32))
        atomic_write_bytes(path, buf.getvalue())
        return path
    return plots.image_rows(rows, shape, path, labels=labels, title=title)


def sample_picture(images: np.ndarray, out: str | Path, shape: tuple[int, ...], title: str) -> Path:
    """Samples ``(n, *shape)`` as a near-square grid (ceil(sqrt(n)) per line), or as .npy."""
    cols = max(1, math.ceil(math.sqrt(len(images))))
    return write_images(images, out, [images[i : i + cols] for i in range(0, len(images), cols)], shape,
                        title=title)


def traverse_picture(strips: np.ndarray, dims: Sequence[int], out: str | Path, shape: tuple[int, ...],
                     title: str) -> Path:
    """Traversals ``(len(dims), steps, *shape)``: one line per dimension, labelled z<d>; or as .npy."""
    return write_images(strips, out, list(strips), shape, labels=[f"z{d}" for d in dims], title=title)


def check_traverse(dims: Any, steps: Any, span: Any, code: int | None = None) -> tuple[list[int] | None, int, float]:
    """:func:`traverse`'s checks, for callers that check before the work (``dims`` only with the
    model's ``code`` size: None before the run is opened)."""
    return (None if code is None else _check_dims(dims, code), check_count("steps", steps, 2, MAX_STEPS),
            _check_real("span", span, 0.0, MAX_SPAN))


# --- probabilistic PCA in closed form ------------------------------------------------------------------
def _rows(x: Any) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise AekitError(f"probabilistic PCA takes rows of values (N >= 2, D), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise AekitError("input contains NaN or infinite values")
    return x


def ppca_fit(x: Any, q: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Tipping & Bishop's maximum-likelihood (W ``(D, q)``, mu ``(D,)``, sigma2): mu is the mean,
    sigma2 the mean of the D - q smallest eigenvalues of the sample covariance (1/N), and
    W = U_q (Lambda_q - sigma2 I)^(1/2), the columns orthogonal (the rotation R = I)."""
    x = _rows(x)
    q = check_count("q", q, 1, x.shape[1] - 1)
    mu = x.mean(0)
    xc = x - mu
    evals, evecs = np.linalg.eigh(xc.T @ xc / len(x))
    evals, evecs = evals[::-1], evecs[:, ::-1]
    sigma2 = float(evals[q:].mean())
    w = evecs[:, :q] * np.sqrt(np.maximum(evals[:q] - sigma2, 0.0))
    return w, mu, sigma2


def ppca_log_likelihood(x: Any, w: np.ndarray, mu: np.ndarray, sigma2: float) -> np.ndarray:
    """log N(x; mu, W W^T + sigma2 I) per row, float64 ``(N,)``: the marginal likelihood of PPCA."""
    x = _rows(x)
    w, mu = np.asarray(w, np.float64), np.asarray(mu, np.float64)
    d = x.shape[1]
    if w.ndim != 2 or w.shape[0] != d or mu.shape != (d,) or not sigma2 > 0:
        raise AekitError(f"PPCA parameters do not fit {d}-value rows: W {w.shape}, mu {mu.shape}, sigma2 {sigma2}")
    chol = np.linalg.cholesky(w @ w.T + sigma2 * np.eye(d))
    sol = np.linalg.solve(chol, (x - mu).T)  # L^-1 (x - mu), (D, N)
    logdet = 2 * np.log(np.diag(chol)).sum()
    return -0.5 * (d * math.log(2 * math.pi) + logdet + (sol**2).sum(0))

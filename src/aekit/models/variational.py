"""Variational autoencoders: a Gaussian posterior, a prior and a likelihood, trained on the ELBO.

Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014. The model is composed of small
parts, so that the variants are options of one family rather than copies of it:

- the posterior q(z|x) (:mod:`aekit.models.posterior`): the encoder outputs a mean and a
  log-variance; z is drawn with the reparameterisation trick;
- the prior p(z) (:mod:`aekit.models.priors`): standard normal, or the VampPrior (Tomczak &
  Welling 2018), ``prior="vamp:K"``;
- the likelihood p(x|z) (:mod:`aekit.models.likelihoods`): Bernoulli for [0, 1] data or Gaussian,
  its variance fixed or learned.

Training options: ``beta`` weights the KL term (β-VAE, Higgins et al., ICLR 2017); ``free_bits``
keeps each latent dimension's batch-mean KL from counting below λ nats (Kingma et al., "Improved
variational inference with inverse autoregressive flow", NeurIPS 2016), so that dimensions are not
switched off early; ``kl_warmup`` anneals the KL weight linearly from 0 to 1 over that many epochs
(Bowman et al. 2016; Sønderby et al. 2016) through :meth:`VariationalAE.begin_epoch`;
``iw_samples`` K > 1 trains on the importance-weighted bound (IWAE, Burda et al., ICLR 2016);
``n_classes`` > 0 makes a conditional VAE (Sohn et al., NeurIPS 2015): encoder and decoder see the
one-hot label.

With gradients off (validation, evaluation), the loss is the plain negative ELBO (β = 1, no free
bits, one sample, KL in closed form where the prior allows), in nats per sample, so that runs
with different training options compare alike.

With no hidden layers, linear maps and a Gaussian likelihood with one learned variance, the model
is probabilistic PCA (Tipping & Bishop 1999): its maximum-likelihood decoder and marginal
likelihood are closed forms (:func:`aekit.tasks.generate.ppca_fit`), which the tests compare with.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aekit.data import mapped
from aekit.errors import AekitError
from aekit.models.base import (
    AEOutput,
    Autoencoder,
    _scaled,
    check_parameter_count,
    check_positive,
    check_unit_list,
    check_weight,
)
from aekit.models.base import activation as make_activation
from aekit.models.conv import ConvAE
from aekit.models.likelihoods import LIKELIHOODS, VARIANCES, Bernoulli, Gaussian, check_variance_value, make_likelihood
from aekit.models.mlp import mlp_stack
from aekit.models.posterior import DiagonalGaussian
from aekit.models.priors import VampPrior, make_prior, parse_prior
from aekit.registry import register_model

ARCHS = ("mlp", "conv")
MAX_IW_SAMPLES = 5000  # an IWAE bound of 5,000 samples is already the NLL estimator's own count
MAX_CLASSES = 10_000
MAX_WARMUP = 1_000_000


def check_whole(what: str, value: Any, low: int, high: int) -> int:
    """A whole number in [low, high] (where 0 is allowed, which check_positive refuses)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= int(value) <= high:
        raise AekitError(f"{what} must be a whole number from {low} to {high:,}, got {value!r:.40}")
    return int(value)


def check_choice(what: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise AekitError(f"unknown {what} {value!r:.40}; use {', '.join(choices)}")
    return value


def _check_activation(name: Any) -> str:
    make_activation(name)  # one line naming the known activations when it is not one
    return name


def check_vae_options(o: dict[str, Any]) -> dict[str, Any]:
    """The variational options' ranges and combinations, without building a model (the config
    checker can call it before any data is read); returns them checked and normalised."""
    out = dict(o)
    checks: dict[str, Callable[[Any], Any]] = {
        "arch": lambda v: check_choice("arch", v, ARCHS),
        "likelihood": lambda v: check_choice("likelihood", v, LIKELIHOODS),
        "variance": lambda v: check_choice("variance", v, VARIANCES),
        "variance_value": check_variance_value,
        "beta": lambda v: check_weight("beta", v),
        "free_bits": lambda v: check_weight("free_bits", v),
        "kl_warmup": lambda v: check_whole("kl_warmup", v, 0, MAX_WARMUP),
        "iw_samples": lambda v: check_positive("iw_samples", v, MAX_IW_SAMPLES),
        "n_classes": lambda v: check_whole("n_classes", v, 0, MAX_CLASSES),
        "activation": _check_activation,
    }
    for key, check in checks.items():
        if key in o:
            out[key] = check(o[key])
    vamp = "prior" in o and parse_prior(o["prior"])[0] == "vamp"
    if out.get("free_bits", 0) > 0 and out.get("iw_samples", 1) > 1:
        raise AekitError("free_bits shapes the ELBO's KL term; with iw_samples > 1 (the IWAE bound) use free_bits 0")
    if out.get("free_bits", 0) > 0 and vamp:
        raise AekitError("free_bits needs the KL per latent dimension in closed form, which prior vamp:K has not; "
                         "use free_bits 0 with a VampPrior")
    if vamp and out.get("n_classes", 0) > 0:
        raise AekitError("a conditional VAE (n_classes > 0) takes the standard prior; prior vamp:K is for "
                         "unconditional models")
    return out


class GaussianEncoder(nn.Module):
    """x (and a one-hot label) -> q(z|x) = N(mean, diag(exp(logvar))).

    ``features`` flattens (mlp) or convolves and flattens (conv) ``(B, *shape)`` to ``(B, F)``; the
    label joins there; ``trunk`` is the hidden layers; ``head`` outputs mean and log-variance.
    Called as a module it returns the posterior mean, the code every task uses.
    """

    def __init__(self, features: nn.Module, trunk: nn.Module, width: int, code: int, n_classes: int) -> None:
        super().__init__()
        self.features, self.trunk, self.head = features, trunk, nn.Linear(width, 2 * code)
        self.n_classes = n_classes

    def distribution(self, x: torch.Tensor, y: torch.Tensor | None = None) -> DiagonalGaussian:
        h = self.features(x)
        if self.n_classes:
            h = torch.cat([h, _needs_labels(y).to(h.dtype)], dim=-1)
        mean, logvar = self.head(self.trunk(h)).chunk(2, dim=-1)
        return DiagonalGaussian.from_raw(mean, logvar)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.distribution(x, y).mean


class LabelledDecoder(nn.Module):
    """z ``(B, D)`` (and a one-hot label ``(B, classes)``) -> the likelihood's raw outputs."""

    def __init__(self, net: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.net, self.n_classes = net, n_classes

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_classes:
            z = torch.cat([z, _needs_labels(y).to(z.dtype)], dim=-1)
        return self.net(z)


def _needs_labels(y: torch.Tensor | None) -> torch.Tensor:
    if y is None:
        raise AekitError("this is a conditional VAE (n_classes > 0): it needs the samples' labels")
    return y


def _linear_count(sizes: Sequence[int]) -> int:
    """Weights and biases of linear layers between consecutive ``sizes``."""
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def _bodies(arch: str, shape: tuple[int, ...], code: int, hidden: list[int], chans: list[int], act: str,
            n_classes: int) -> tuple[GaussianEncoder, LabelledDecoder]:
    """Encoder and decoder from the mlp or conv family's own building code."""
    n_in = math.prod(shape)
    features: nn.Module
    trunk: nn.Module
    dec_net: nn.Module
    if arch == "conv":
        # A conv autoencoder whose code is the decoder's input (z and the label): its convolutions
        # are our encoder's features and its decoder is ours (its own last linear layer is dropped).
        conv = ConvAE(shape, code=code + n_classes, channels=chans, activation=act)
        last = conv.encoder[-1]
        assert isinstance(last, nn.Linear)  # the code layer (no code activation was asked for)
        features, trunk = conv.encoder[:-1], nn.Identity()
        width, dec_net = last.in_features + n_classes, conv.decoder
    else:
        sizes = [n_in + n_classes, *hidden]
        dec_sizes = [code + n_classes, *hidden[::-1], n_in]
        check_parameter_count("vae", _linear_count(sizes) + _linear_count([sizes[-1], 2 * code])
                              + _linear_count(dec_sizes))
        features, trunk, width = nn.Flatten(), mlp_stack(sizes, act, act), sizes[-1]
        dec_net = mlp_stack(dec_sizes, act, None)
    return GaussianEncoder(features, trunk, width, code, n_classes), LabelledDecoder(dec_net, n_classes)


@register_model("vae", "variational autoencoder: Gaussian posterior, standard or VampPrior prior, Bernoulli or "
                "Gaussian likelihood; beta, free bits, KL warm-up, IWAE, conditional; mlp or conv")
class VariationalAE(Autoencoder):
    """A VAE; ``encode`` gives the posterior mean and ``decode`` the likelihood's mean.

    ``forward(x, target, labels)`` returns ``AEOutput(recon, code, loss, terms)``: ``recon`` is the
    likelihood's mean at the sampled z, ``code`` the posterior mean, ``loss`` the batch mean of the
    negative (β-)ELBO, or of the negative IWAE bound when ``iw_samples`` > 1, in nats per sample;
    ``terms`` holds ``recon`` (expected negative log-likelihood) and ``kl``.
    """

    encoder: GaussianEncoder
    _kl_weight: torch.Tensor  # a buffer, registered in __init__

    def __init__(
        self,
        input_shape: tuple[int, ...],
        code: int = 16,
        arch: str = "mlp",
        layers: Sequence[int] = (400,),
        channels: Sequence[int] = (32, 64),
        activation: str = "elu",
        likelihood: str = "auto",
        variance: str = "learned",
        variance_value: float = 1.0,
        beta: float = 1.0,
        free_bits: float = 0.0,
        kl_warmup: int = 0,
        iw_samples: int = 1,
        prior: str = "standard",
        n_classes: int = 0,
    ) -> None:
        super().__init__(input_shape, code)
        o = check_vae_options({"arch": arch, "activation": activation, "likelihood": likelihood,
                               "variance": variance, "variance_value": variance_value, "beta": beta,
                               "free_bits": free_bits, "kl_warmup": kl_warmup, "iw_samples": iw_samples,
                               "prior": prior, "n_classes": n_classes})
        hidden = check_unit_list("layer size (--layers)", layers)
        chans = check_unit_list("channel count (--channels)", channels)
        if arch == "conv" and not chans:
            raise AekitError("the conv model needs at least one channel stage")
        self.beta, self.free_bits, self.iw_samples = o["beta"], o["free_bits"], o["iw_samples"]
        self.kl_warmup, self.n_classes = o["kl_warmup"], o["n_classes"]
        if prior != "standard":  # pseudo-inputs: K values per input value
            check_parameter_count("vae", parse_prior(prior)[1] * self.n_inputs)
        self.encoder, self.decoder = _bodies(arch, self.input_shape, self.code_size, hidden, chans, activation,
                                             self.n_classes)
        self.prior = make_prior(prior, self.code_size, self.input_shape)
        # The KL weight of the warm-up, a buffer (not saved: it follows from the epoch) so that a
        # compiled step reads its value instead of recompiling when it changes.
        self.register_buffer("_kl_weight", torch.ones(()), persistent=False)
        self.likelihood: Bernoulli | Gaussian | None = None
        self.options: dict[str, Any] = {
            "code": self.code_size, "arch": arch, "layers": hidden, "channels": chans, "activation": activation,
            "likelihood": likelihood, "variance": variance, "variance_value": o["variance_value"],
            "beta": self.beta, "free_bits": self.free_bits, "kl_warmup": self.kl_warmup,
            "iw_samples": self.iw_samples, "prior": prior, "n_classes": self.n_classes}
        if likelihood != "auto":
            self._set_likelihood(likelihood)

    # --- configuration ---------------------------------------------------------------------------
    def _set_likelihood(self, kind: str) -> None:
        o = self.options
        ref = next(self.parameters())
        self.likelihood = make_likelihood(kind, self.input_shape, o["variance"], o["variance_value"]).to(ref)
        self.options["likelihood"] = kind
        self.output = self.likelihood.output  # what the loop and the tasks read ("sigmoid": [0, 1] data)

    def resolve_output(self, value_range: str) -> None:
        """``likelihood="auto"``: Bernoulli for [0, 1] data, else Gaussian. Called before the
        optimizer is made (a learned variance is a parameter)."""
        kind = self.options["likelihood"]
        if kind == "auto":
            self._set_likelihood("bernoulli" if value_range == "unit" else "gaussian")
        elif kind == "bernoulli" and value_range != "unit":
            raise AekitError("likelihood bernoulli needs data in [0, 1]; use likelihood gaussian for this data")

    def config(self) -> dict[str, Any]:
        return {"name": self.family, "input_shape": list(self.input_shape), **self.options}

    @classmethod
    def check_config(cls, options: dict[str, Any]) -> None:
        """The shared ranges and the variational options, before any data is read."""
        super().check_config(options)
        check_vae_options(options)

    @property
    def takes_labels(self) -> bool:  # type: ignore[override]
        return self.n_classes > 0

    def start_from_data(self, rows: Callable[[int], np.ndarray]) -> None:
        """The training hook: a VampPrior's K pseudo-inputs start at K shuffled training rows."""
        if isinstance(self.prior, VampPrior):
            self.init_pseudo_inputs(rows(self.prior.pseudo.shape[0]))

    @property
    def kl_weight(self) -> float:
        return float(self._kl_weight)

    @kl_weight.setter
    def kl_weight(self, value: float) -> None:
        self._kl_weight.fill_(float(value))

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        """The loop's per-epoch hook (0-based ``epoch``): the KL warm-up's weight, epoch / kl_warmup
        up to 1 (0 in the first epoch); a pure function of the epoch, so a resumed run agrees."""
        self.kl_weight = min(1.0, epoch / self.kl_warmup) if self.kl_warmup else 1.0

    # --- the parts --------------------------------------------------------------------------------
    def onehot(self, labels: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """The one-hot labels ``(n, classes)`` of a conditional model; None for an unconditional one
        (which ignores labels, so that the loop may pass a labelled dataset's labels to any model)."""
        if not self.n_classes:
            return None
        labels = _needs_labels(labels)
        if labels.shape != (n,):
            raise AekitError(f"expected {n} labels, one per sample, got shape {tuple(labels.shape)}")
        return F.one_hot(labels.long(), self.n_classes)

    def posterior(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> DiagonalGaussian:
        """q(z|x) of a batch (``labels`` for a conditional model)."""
        x = self.shaped(x)
        return self.encoder.distribution(x, self.onehot(labels, len(x)))

    def prior_components(self) -> DiagonalGaussian:
        """The prior as a mixture of diagonal Gaussians ``(K, D)`` (K = 1 for the standard normal)."""
        return self.prior.components(self.encoder.distribution, self.encoder.head.weight)  # its dtype and device

    def _likelihood(self) -> Bernoulli | Gaussian:
        if self.likelihood is None:
            raise RuntimeError("likelihood 'auto' is chosen by resolve_output(value_range) before use")
        return self.likelihood

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Raw decoder outputs for codes ``(..., D)`` -> ``(..., *input_shape)``, fp32 under autocast;
        ``y`` is the one-hot label ``(B, classes)`` broadcast over the leading sample dimension."""
        lead = z.shape[:-1]
        if y is not None:
            y = y.expand(*lead, y.shape[-1]).reshape(-1, y.shape[-1])
        out = self.decoder(z.reshape(-1, z.shape[-1]), y).reshape(*lead, *self.input_shape)
        return out.float() if out.dtype in (torch.float16, torch.bfloat16) else out

    def sample_terms(self, post: DiagonalGaussian, target: torch.Tensor, y: torch.Tensor | None, k: int | None,
                     comps: DiagonalGaussian | None = None, generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw z ~ q (``k`` per sample, or one), and return (log p(x|z), log q(z|x) - log p(z), logits),
        the first two ``(k, B)`` or ``(B,)``. ``comps``: the prior's components, if already computed."""
        z = post.rsample(k, generator)
        logits = self.decode_logits(z, y)
        log_px = self._likelihood().log_prob(target, logits)
        comps = self.prior_components() if comps is None else comps
        return log_px, post.log_prob(z) - self.prior.log_prob(z, comps), logits

    def elbo_parts(self, post: DiagonalGaussian, target: torch.Tensor, y: torch.Tensor | None,
                   comps: DiagonalGaussian | None = None, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One-sample ELBO terms (expected negative log-likelihood ``(B,)``, KL ``(B,)``, logits): the KL
        in closed form for the standard prior, else estimated at the sampled z."""
        log_px, log_ratio, logits = self.sample_terms(post, target, y, None, comps, generator)
        kl = post.kl_standard().sum(-1) if self.prior.analytic_kl else log_ratio
        return -log_px, kl, logits

    def log_weights(self, x: torch.Tensor, k: int, labels: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Importance log-weights log p(x, z_k) - log q(z_k|x), ``(k, B)``; the log-mean-exp over k
        is the IWAE bound L_k (``aekit.tasks.generate.log_likelihood`` streams it in float64)."""
        x = self.shaped(x)
        y = self.onehot(labels, len(x))
        log_px, log_ratio, _ = self.sample_terms(self.encoder.distribution(x, y), x, y, k, generator=generator)
        return log_px - log_ratio

    # --- the loss -----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> AEOutput:
        x = self.shaped(x)
        target = x if target is None else self.shaped(target, "a target")
        y = self.onehot(labels, len(x))
        post = self.encoder.distribution(x, y)
        train = torch.is_grad_enabled()
        k = self.iw_samples if train and self.iw_samples > 1 else None
        if k is None:
            rec, kl, logits = self.elbo_parts(post, target, y)
        else:
            log_px, log_ratio, logits = self.sample_terms(post, target, y, k)
            rec, kl = -log_px, log_ratio
        recon = self._likelihood().mean(logits if k is None else logits[0])
        scale = self.beta * self._kl_weight
        if not train:  # the plain ELBO, so that every run is measured alike
            loss = (rec + kl).mean()
        elif k is not None:  # IWAE: log-mean-exp of the (KL-weighted) log-weights over the k samples
            lw = -rec - scale * kl
            loss = -(torch.logsumexp(lw, 0) - math.log(k)).mean()
        elif self.free_bits > 0:  # each dimension's batch-mean KL counts at least free_bits nats
            loss = rec.mean() + scale * post.kl_standard().mean(0).clamp_min(self.free_bits).sum()
        else:
            loss = rec.mean() + scale * kl.mean()
        return AEOutput(recon, post.mean, loss, {"recon": rec.mean(), "kl": kl.mean()})

    # --- NumPy in, NumPy out ----------------------------------------------------------------------------
    def check_labels(self, labels: Any, n: int) -> np.ndarray | None:
        """Labels a user passed for ``n`` samples: required by a conditional model, each in
        [0, n_classes); refused by an unconditional one."""
        if not self.n_classes:
            if labels is not None:
                raise AekitError("this VAE is not conditional (n_classes 0): it takes no labels")
            return None
        if labels is None:
            raise AekitError(f"this is a conditional VAE: give a label from 0 to {self.n_classes - 1}")
        arr = np.asarray(labels)
        if arr.ndim == 0:
            arr = np.full(n, arr)
        if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
            raise AekitError(f"labels must be {n} whole numbers, got {arr.dtype} of shape {arr.shape}")
        if n and not (arr.min() >= 0 and arr.max() < self.n_classes):
            bad = arr[(arr < 0) | (arr >= self.n_classes)][0]
            raise AekitError(f"label {bad} is out of range: this model knows labels 0 to {self.n_classes - 1}")
        return arr.astype(np.int64)

    def batches(self, x: np.ndarray, labels: np.ndarray | None, rows: int
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """(inputs, labels) of a checked NumPy array (:meth:`_as_inputs`, or codes) and its checked
        labels (:meth:`check_labels`), ``rows`` at a time, as tensors on the model's device and dtype
        (uint8 and memory-mapped pieces are scaled and read one piece at a time)."""
        ref = next(self.parameters())
        start = 0
        for piece in mapped.chunks(x, rows):
            lab = None if labels is None else torch.from_numpy(labels[start : start + len(piece)]).to(ref.device)
            yield torch.from_numpy(_scaled(piece)).to(ref), lab
            start += len(piece)

    @torch.no_grad()
    def numpy_map(self, fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor], x: np.ndarray,
                  labels: np.ndarray | None, width: tuple[int, ...], batch: int = 4096) -> np.ndarray:
        """``fn(inputs, labels)`` over ``x`` in batches, in eval mode; float32 NumPy ``(N, *width)``."""
        was_training = self.training
        self.eval()
        outs = [fn(t, lab).float().cpu().numpy() for t, lab in self.batches(x, labels, batch)]
        self.train(was_training)
        return np.concatenate(outs) if outs else np.zeros((0, *width), np.float32)

    @overload
    def encode(self, x: torch.Tensor, labels: Any = None) -> torch.Tensor: ...
    @overload
    def encode(self, x: np.ndarray, labels: Any = None) -> np.ndarray: ...
    def encode(self, x: torch.Tensor | np.ndarray, labels: Any = None) -> torch.Tensor | np.ndarray:
        """Posterior means: a tensor with gradients, or NumPy in, NumPy out (as the base class)."""
        if isinstance(x, np.ndarray):
            x = self._as_inputs(x)
            lab = self.check_labels(labels, len(x))
            return self.numpy_map(lambda t, y: self.posterior(t, y).mean, x, lab, (self.code_size,))
        return self.posterior(x, labels).mean

    @overload
    def decode(self, z: torch.Tensor, labels: Any = None) -> torch.Tensor: ...
    @overload
    def decode(self, z: np.ndarray, labels: Any = None) -> np.ndarray: ...
    def decode(self, z: torch.Tensor | np.ndarray, labels: Any = None) -> torch.Tensor | np.ndarray:
        """The likelihood's mean at codes ``(N, D)`` (labels for a conditional model)."""
        if isinstance(z, np.ndarray):
            z = np.asarray(z, dtype=np.float32)
            if z.ndim != 2 or z.shape[1] != self.code_size:
                raise AekitError(f"decode takes codes of shape (N, {self.code_size}), got {z.shape}")
            lab = self.check_labels(labels, len(z))
            return self.numpy_map(lambda t, y: self.decode(t, y), z, lab, self.input_shape)
        return self._likelihood().mean(self.decode_logits(z, self.onehot(labels, len(z))))

    def decode_samples(self, z: np.ndarray, labels: Any, temperature: float,
                       generator: torch.Generator) -> np.ndarray:
        """What ``sample`` shows for prior draws ``z`` ``(N, D)``: the likelihood's mean at each (a
        hierarchical model also draws the layers below its code, at the temperature)."""
        return self.decode(z, labels)

    def reconstruct(self, x: np.ndarray, labels: Any = None) -> np.ndarray:
        """The likelihood's mean at the posterior mean: deterministic, so that the tasks built on
        reconstruction (anomaly scores, inpainting, denoising) give the same answer twice."""
        x = self._as_inputs(x)
        lab = self.check_labels(labels, len(x))
        return self.numpy_map(lambda t, y: self.decode(self.posterior(t, y).mean, y), x, lab, self.input_shape)

    def init_pseudo_inputs(self, x: np.ndarray) -> None:
        """Start a VampPrior's pseudo-inputs at the first K rows of ``x`` (shuffled training rows)."""
        if not isinstance(self.prior, VampPrior):
            raise AekitError("only a model with prior vamp:K has pseudo-inputs")
        ref = next(self.parameters())
        self.prior.init_from(torch.from_numpy(_scaled(self._as_inputs(x)[: self.prior.pseudo.shape[0]])).to(ref))

"""Priors p(z) of a variational autoencoder: the standard normal, and the VampPrior.

The VampPrior (Tomczak & Welling, "VAE with a VampPrior", AISTATS 2018) is the mixture of the
posteriors of K learned pseudo-inputs, p(z) = (1/K) sum_k q(z | u_k): the prior that maximises
the ELBO is the aggregate posterior, and this is a learnable approximation of it. Its KL term has
no closed form, so a model estimates it from the sampled z (one-sample Monte Carlo).

Both priors present the same face to the model: ``components(encoder)`` gives the mixture
components as a :class:`DiagonalGaussian` of shape ``(K, D)`` (one standard normal component for
the standard prior), from which the log-density, samples, moments and per-axis quantiles follow.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from aekit.errors import AekitError
from aekit.models.base import check_positive
from aekit.models.posterior import LOG_2PI, DiagonalGaussian, mixture_log_prob

MAX_PSEUDO_INPUTS = 5000


def parse_prior(spec: object) -> tuple[str, int]:
    """``"standard"`` -> ("standard", 0); ``"vamp:K"`` -> ("vamp", K) with K in 1..5000."""
    if spec == "standard":
        return "standard", 0
    if isinstance(spec, str) and spec.startswith("vamp:"):
        text = spec[5:]
        k: object = int(text) if text.strip().lstrip("+-").isdigit() else text
        return "vamp", check_positive("prior vamp:K (pseudo-inputs K)", k, MAX_PSEUDO_INPUTS)
    raise AekitError(f"unknown prior {spec!r:.40}; use standard or vamp:K (K learned pseudo-inputs, 1 to "
                     f"{MAX_PSEUDO_INPUTS:,})")


Encoder = Callable[[torch.Tensor], DiagonalGaussian]


class StandardNormal(nn.Module):
    """p(z) = N(0, I). No parameters."""

    analytic_kl = True

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code

    def components(self, encoder: Encoder | None, like: torch.Tensor) -> DiagonalGaussian:
        """The prior as a (one-component) diagonal Gaussian, N(0, I), on ``like``'s device and dtype."""
        zeros = like.new_zeros(1, self.code)
        return DiagonalGaussian(zeros, zeros)

    def log_prob(self, z: torch.Tensor, comps: DiagonalGaussian | None) -> torch.Tensor:
        """log p(z) per sample, summed over the code, ``(...,)`` for ``z`` of shape ``(..., code)``."""
        return -0.5 * (z**2 + LOG_2PI).sum(-1)  # the direct form: exact, where the mixture's expansion is not


class VampPrior(nn.Module):
    """p(z) = (1/K) sum_k q(z | u_k) with K learned pseudo-inputs u_k of the data's shape."""

    analytic_kl = False

    def __init__(self, k: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        # Small random pseudo-inputs, as Tomczak & Welling start them; init_from() starts them at
        # training rows instead, which trains faster.
        self.pseudo = nn.Parameter(0.01 * torch.randn(k, *input_shape))

    @torch.no_grad()
    def init_from(self, x: torch.Tensor) -> None:
        """Start the pseudo-inputs at K rows of ``x`` (``(N >= K, *input_shape)``, float)."""
        k = self.pseudo.shape[0]
        if len(x) < k:
            raise AekitError(f"prior vamp:{k} needs at least {k} training rows to start its pseudo-inputs, "
                             f"got {len(x)}")
        self.pseudo.copy_(x[:k].reshape(self.pseudo.shape).to(self.pseudo))

    def components(self, encoder: Encoder, like: torch.Tensor) -> DiagonalGaussian:
        """The mixture's K components: the posteriors ``encoder`` gives the pseudo-inputs."""
        return encoder(self.pseudo)

    def log_prob(self, z: torch.Tensor, comps: DiagonalGaussian) -> torch.Tensor:
        """log p(z) per sample under the mixture of ``comps`` (equal weights), by a stable log-sum-exp."""
        return mixture_log_prob(z, comps)


def sample_prior(comps: DiagonalGaussian, n: int, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` draws from the mixture of ``comps`` ``(K, D)``, each component's spread scaled by
    ``temperature`` (for the standard normal: z = temperature * eps)."""
    k = comps.mean.shape[0]
    pick = torch.randint(k, (n,), generator=generator, device=comps.mean.device)
    chosen = DiagonalGaussian(comps.mean[pick], comps.logvar[pick])
    return chosen.rsample(generator=generator, temperature=temperature)


def prior_moments(comps: DiagonalGaussian) -> tuple[torch.Tensor, torch.Tensor]:
    """The mixture's mean and standard deviation per dimension, ``(D,)`` each."""
    mean = comps.mean.mean(0)
    second = (torch.exp(comps.logvar) + comps.mean**2).mean(0)
    return mean, torch.sqrt((second - mean**2).clamp_min(0))


def prior_quantiles(comps: DiagonalGaussian, p: np.ndarray) -> np.ndarray:
    """Per-axis inverse CDF of the mixture's marginals at probabilities ``p`` ``(G,)`` -> ``(G, D)``.

    One component: the normal quantile. Several: bisection on the mixture CDF (monotone), 60 halvings
    of a bracket of the components' means +- 10 standard deviations (far below float64's resolution).
    """
    from scipy.special import ndtr, ndtri

    mean = comps.mean.detach().double().cpu().numpy()  # (K, D)
    std = np.exp(0.5 * comps.logvar.detach().double().cpu().numpy())
    p = np.asarray(p, np.float64)
    if len(mean) == 1:
        return mean[0] + std[0] * ndtri(p)[:, None]
    lo = np.broadcast_to((mean - 10 * std).min(0), (len(p), mean.shape[1])).copy()
    hi = np.broadcast_to((mean + 10 * std).max(0), (len(p), mean.shape[1])).copy()
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        cdf = ndtr((mid[:, None, :] - mean) / std).mean(1)  # (G, D)
        below = cdf < p[:, None]
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def make_prior(spec: str, code: int, input_shape: tuple[int, ...]) -> StandardNormal | VampPrior:
    """The prior ``spec`` names: "standard", or "vamp:K" (K pseudo-inputs of ``input_shape``).

    Raises:
        AekitError: ``spec`` is neither.
    """
    kind, k = parse_prior(spec)
    return StandardNormal(code) if kind == "standard" else VampPrior(k, input_shape)


__all__ = ["MAX_PSEUDO_INPUTS", "StandardNormal", "VampPrior", "make_prior", "parse_prior", "prior_moments",
           "prior_quantiles", "sample_prior"]

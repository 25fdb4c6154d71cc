"""The diagonal-Gaussian posterior q(z|x) of a variational autoencoder, and its closed forms.

The encoder outputs a mean and a log-variance per latent dimension; a sample is drawn with the
reparameterisation trick, z = mean + std * eps with eps ~ N(0, I), so that gradients flow through
the mean and the variance (Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014;
Rezende et al., "Stochastic Backpropagation", ICML 2014). The noise comes from torch's default
generator unless a ``generator`` is given: the training loop saves the default generator's state
in its checkpoints, so a resumed run draws the same noise; the generative tasks pass their own
seeded generator so that their numbers do not depend on what ran before.

The mixture log-density is written with matrix products so that N samples against K components
take N x K memory, not N x K x D (a VampPrior with 500 components scored on 4,096 samples would
otherwise hold 100 million floats).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

LOG_2PI = math.log(2 * math.pi)
# Log-variances outside this range overflow exp() in float32 (or underflow to a zero variance);
# clamping only guards against that, a sensible model never gets near either end.
LOGVAR_MIN, LOGVAR_MAX = -30.0, 30.0


@dataclass
class DiagonalGaussian:
    """N(mean, diag(exp(logvar))); ``mean`` and ``logvar`` are ``(..., D)``."""

    mean: torch.Tensor
    logvar: torch.Tensor

    @classmethod
    def from_raw(cls, mean: torch.Tensor, logvar: torch.Tensor) -> DiagonalGaussian:
        """From an encoder's outputs (fp32 even under autocast: the loss is computed in fp32)."""
        if mean.dtype in (torch.float16, torch.bfloat16):
            mean, logvar = mean.float(), logvar.float()
        return cls(mean, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX))

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def rsample(self, k: int | None = None, generator: torch.Generator | None = None,
                temperature: float = 1.0) -> torch.Tensor:
        """A reparameterised sample, ``(..., D)``, or ``k`` of them, ``(k, ..., D)``."""
        shape = self.mean.shape if k is None else (k, *self.mean.shape)
        eps = torch.randn(shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + (temperature * self.std) * eps

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z), summed over the last dimension; ``z`` broadcasts against ``mean``."""
        return -0.5 * (((z - self.mean) ** 2) * torch.exp(-self.logvar) + self.logvar + LOG_2PI).sum(-1)

    def kl_standard(self) -> torch.Tensor:
        """KL(q || N(0, I)) per dimension, ``(..., D)``: 0.5 (mu^2 + var - 1 - log var)."""
        return 0.5 * (self.mean**2 + torch.exp(self.logvar) - 1.0 - self.logvar)


def kl_diagonal(q: DiagonalGaussian, p: DiagonalGaussian) -> torch.Tensor:
    """KL(q || p) of two diagonal Gaussians, per dimension:
    0.5 (log var_p - log var_q + (var_q + (mu_q - mu_p)^2) / var_p - 1)."""
    return 0.5 * (p.logvar - q.logvar + (torch.exp(q.logvar) + (q.mean - p.mean) ** 2) * torch.exp(-p.logvar) - 1.0)


def mixture_log_prob(z: torch.Tensor, comps: DiagonalGaussian) -> torch.Tensor:
    """log (1/K) sum_k N(z; mean_k, var_k) for ``z`` ``(..., D)`` and ``K`` components ``(K, D)``.

    Each component's exponent, -0.5 sum_d (z_d - m_kd)^2 / v_kd, expands to
    -0.5 (z^2 . (1/v_k) - 2 z . (m_k/v_k) + m_k^2 . (1/v_k)): two (N, D) x (D, K) products.
    """
    lead = z.shape[:-1]
    # In fp32 (float64 stays float64) whatever autocast says: the three terms are large and cancel,
    # and a bf16 product would leave nats of error in each component (fp16 could overflow to inf).
    dtype = torch.promote_types(z.dtype, torch.float32)
    with torch.autocast(z.device.type, enabled=False):
        zf = z.reshape(-1, z.shape[-1]).to(dtype)
        mean, logvar = comps.mean.to(dtype), comps.logvar.to(dtype)
        prec = torch.exp(-logvar)  # (K, D)
        const = (mean**2 * prec + logvar + LOG_2PI).sum(-1)  # (K,)
        quad = (zf**2) @ prec.T - 2.0 * zf @ (mean * prec).T  # (N, K)
        log_k = -0.5 * (quad + const)
        out = torch.logsumexp(log_k, dim=-1) - math.log(mean.shape[0])
    return out.reshape(lead)

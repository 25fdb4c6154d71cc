"""Likelihoods p(x|z) of a variational autoencoder, from the decoder's raw outputs.

- Bernoulli: the decoder's outputs are logits; log p(x|z) = -BCE(logits, x) summed over values. It
  is a probability for binary data (dynamically or statically binarised MNIST); on grey levels in
  [0, 1] it is the usual training criterion but not a normalised density, so a likelihood in nats
  is only meaningful on binary data.
- Gaussian: the decoder's outputs are the means; the variance is fixed, or learned as one shared
  log-variance (isotropic: with a linear decoder this is probabilistic PCA) or one per value.

Every log-likelihood is in nats per sample: summed over all the values of a sample.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from aekit.errors import AekitError
from aekit.models.posterior import LOG_2PI

LIKELIHOODS = ("auto", "bernoulli", "gaussian")
VARIANCES = ("learned", "per-value", "fixed")
# A learned variance that reaches zero makes the likelihood infinite (a value that never varies in
# the training data, such as MNIST's border pixels, would drive its own variance there): it is
# floored here, and a fixed one must lie in the same range.
VARIANCE_MIN, VARIANCE_MAX = 1e-6, 1e6


def check_variance_value(value: Any) -> float:
    """``value`` if it is a finite variance within aekit's range, for the Gaussian likelihood.

    Raises:
        AekitError: It is not a number in that range.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not VARIANCE_MIN <= value <= VARIANCE_MAX:
        raise AekitError(f"variance_value must be a number from {VARIANCE_MIN:g} to {VARIANCE_MAX:g}, "
                         f"got {value!r:.40}")
    return float(value)


def _sum_values(ll: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-value log-likelihoods ``(..., B, *shape)`` summed over each sample's values -> ``(..., B)``."""
    return ll.flatten(-(target.ndim - 1)).sum(-1)


class Bernoulli(nn.Module):
    """p(x | z) a Bernoulli per value, for data in [0, 1] (binary or grey levels); the decoder gives logits."""

    output = "sigmoid"  # what the base class's decode applies to the logits

    def log_prob(self, target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """log p(target | logits) summed over the sample's values; ``target`` ``(B, *shape)``
        broadcasts against ``logits`` ``(..., B, *shape)``."""
        logits, full = torch.broadcast_tensors(logits, target)
        ll = -F.binary_cross_entropy_with_logits(logits, full, reduction="none")
        return _sum_values(ll, target)

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        """The mean of p(x | z): the sigmoid of the logits."""
        return torch.sigmoid(logits)


class Gaussian(nn.Module):
    """p(x | z) a Gaussian per value around the decoder's output, for real-valued data.

    Args:
        input_shape: The shape of one sample (for a variance per value).
        variance: "fixed" (``value``), "learned" (one for all values) or "per-value" (one per value).
        value: The fixed variance, or the learned one's start.
    """

    output = "identity"
    logvar: torch.Tensor  # a buffer (fixed) or a parameter (learned), registered in __init__

    def __init__(self, input_shape: tuple[int, ...], variance: str, value: float) -> None:
        super().__init__()
        log_value = torch.full((), math.log(value))
        self.variance = variance
        if variance == "fixed":
            self.register_buffer("logvar", log_value, persistent=False)  # rebuilt from the config
        else:
            shape = input_shape if variance == "per-value" else ()
            self.logvar = nn.Parameter(log_value.expand(shape).clone())

    def log_variance(self) -> torch.Tensor:
        """The log-variance, held within aekit's variance range."""
        return self.logvar.clamp(math.log(VARIANCE_MIN), math.log(VARIANCE_MAX))

    def log_prob(self, target: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """log N(target; mean, var) summed over the sample's values; ``target`` ``(B, *shape)``
        broadcasts against ``mean`` ``(..., B, *shape)``."""
        lv = self.log_variance()
        ll = -0.5 * ((target - mean) ** 2 * torch.exp(-lv) + lv + LOG_2PI)
        return _sum_values(ll, target)

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        """The mean of p(x | z): the decoder's output itself."""
        return logits


def make_likelihood(kind: str, input_shape: tuple[int, ...], variance: str, value: float) -> Bernoulli | Gaussian:
    """The likelihood ``kind`` names ("bernoulli" or "gaussian", with ``variance`` and ``value``).

    Raises:
        AekitError: ``kind`` is neither.
    """
    if kind == "bernoulli":
        return Bernoulli()
    if kind == "gaussian":
        return Gaussian(input_shape, variance, value)
    raise AekitError(f"unknown likelihood {kind!r:.40}; use {', '.join(LIKELIHOODS)}")

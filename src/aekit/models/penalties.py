"""Regularisers that stop an overcomplete autoencoder from learning to copy its input.

- L1 sparsity on the code, ``l1:λ``: λ · mean over the batch of Σ_j |h_j|.
- KL sparsity, ``kl:ρ,β`` (Ng, "Sparse autoencoder", CS294A notes 2011): β · Σ_j KL(ρ ‖ ρ̂_j)
  with ρ̂_j the mean activation of code unit j over the batch; needs codes in (0, 1).
- Contractive, ``λ`` (Rifai et al., "Contractive auto-encoders", ICML 2011): λ · mean over the
  batch of ‖∂h/∂x‖²_F, the squared Frobenius norm of the encoder's Jacobian. For a one-layer
  encoder h = s(Wx + b) it is computed exactly in closed form, Σ_j s'(a_j)² ‖W_j‖²; for deeper
  encoders exactly with ``torch.func.jacrev`` (slower: one backward pass per code unit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from aekit.errors import AekitError

EPS = 1e-6
MAX_SPARSE_WEIGHT = 1e6  # λ or β


@dataclass(frozen=True)
class Sparsity:
    """A sparsity penalty on the code: ``weight`` × the mean absolute code ("l1"), or ``weight`` × the KL
    divergence from a Bernoulli of mean ``target`` to each code unit's mean activation ("kl")."""

    kind: str  # "l1" or "kl"
    weight: float  # λ for l1, β for kl
    target: float = 0.0  # ρ for kl

    def __call__(self, code: torch.Tensor) -> torch.Tensor:
        if self.kind == "l1":
            return self.weight * code.abs().sum(1).mean()
        rho_hat = code.mean(0).clamp(EPS, 1 - EPS)
        rho = self.target
        kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
        return self.weight * kl.sum()


def parse_sparse(spec: str | None) -> Sparsity | None:
    """``l1:λ`` or ``kl:ρ,β`` (β defaults to 1)."""
    if not spec:
        return None
    if not isinstance(spec, str):
        raise AekitError(f"sparse {spec!r:.40}: use a string such as l1:0.001 or kl:0.05,1")
    kind, sep, rest = spec.partition(":")
    try:
        nums = [float(v) for v in rest.split(",")] if sep else []
    except ValueError:
        raise AekitError(f"sparse {spec!r}: expected numbers, as in l1:0.001 or kl:0.05,1") from None
    if not all(math.isfinite(v) for v in nums):  # float() reads "nan" and "inf" without complaint
        raise AekitError(f"sparse {spec!r}: the numbers must be finite, as in l1:0.001 or kl:0.05,1")
    if any(v > MAX_SPARSE_WEIGHT for v in nums):
        raise AekitError(f"sparse {spec!r}: a weight over {MAX_SPARSE_WEIGHT:g} swamps the reconstruction; "
                         "use a smaller one")
    if kind == "l1" and len(nums) == 1:
        if nums[0] < 0:
            raise AekitError(f"sparse {spec!r}: λ must be non-negative")
        return Sparsity("l1", nums[0])
    if kind == "kl" and len(nums) in (1, 2):
        rho, beta = nums[0], nums[1] if len(nums) == 2 else 1.0
        if not 0 < rho < 1:
            raise AekitError(f"sparse {spec!r}: the target activation ρ must lie strictly between 0 and 1")
        if beta < 0:
            raise AekitError(f"sparse {spec!r}: β must be non-negative")
        return Sparsity("kl", beta, rho)
    raise AekitError(f"unknown sparsity {spec!r}; use l1:λ or kl:ρ,β")


def contractive_one_layer(linear: nn.Linear, act: nn.Module, x_flat: torch.Tensor) -> torch.Tensor:
    """Exact mean ‖∂h/∂x‖²_F for h = act(linear(x)) with an elementwise ``act``: Σ_j act'(a_j)² ‖W_j‖²."""
    a = linear(x_flat)
    if not a.requires_grad:
        a.requires_grad_(True)
    # The elementwise derivative act'(a), for any elementwise activation, by one autograd call.
    (d,) = torch.autograd.grad(act(a).sum(), a, create_graph=True)
    return (d.square() * linear.weight.square().sum(1)).sum(1).mean()


def contractive_general(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Exact mean ‖∂h/∂x‖²_F for any encoder, via a per-sample Jacobian (B x code x inputs)."""
    from torch.func import jacrev, vmap

    jac = vmap(jacrev(lambda s: encoder(s.unsqueeze(0)).squeeze(0)))(x)
    return jac.square().flatten(1).sum(1).mean()

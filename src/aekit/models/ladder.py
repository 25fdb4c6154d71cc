"""A hierarchical VAE: two or more stochastic layers with top-down inference (the Ladder VAE).

Sønderby, Raiko, Maaløe, Sønderby & Winther, "Ladder Variational Autoencoders", NeurIPS 2016. The
generative model is a chain z_L -> z_{L-1} -> ... -> z_1 -> x, with p(z_L) = N(0, I) and each
p(z_i | z_{i+1}) a diagonal Gaussian computed by a small network. Inference shares that chain: a
bottom-up pass (the deterministic blocks d_1 ... d_L) gives each layer a Gaussian "likelihood
message" (mean_i, var_i); going top-down, q(z_L | x) is the top message and every lower q(z_i | .)
is the precision-weighted product of its message with the generative p(z_i | z_{i+1}):

    1/var_q = 1/var_hat + 1/var_p,   mean_q = (mean_hat/var_hat + mean_p/var_p) * var_q.

So the posterior of a lower layer knows what the layers above it already explain, which is what lets
the upper layers carry information (a bottom-up-only hierarchy tends to switch them off).

It is the ``vae`` family with another posterior and prior: the loop, the losses (ELBO, β, KL
warm-up, the IWAE bound), the NLL estimator and the tasks are the ones of
:class:`aekit.models.variational.VariationalAE`, which this class extends. The ELBO's KL is the sum
of the layers' KLs, each in closed form given the sampled layer above (the top one against N(0, I));
the IWAE bound and the NLL use the full log-weights log p(x, z_1..L) - log q(z_1..L | x).

The code (``code``, what ``encode`` gives, the exported encoder, latent maps, traversals and the
decoded manifold) is the top layer z_L: its posterior mean, and its prior the standard normal.
``decode(z_L)`` follows the means of the lower layers down to x; ``sample`` draws every layer, each
with its spread scaled by the temperature; ``reconstruct`` follows the posterior means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from aekit.errors import AekitError
from aekit.models.base import Autoencoder, check_parameter_count, check_unit_list
from aekit.models.mlp import mlp_stack
from aekit.models.posterior import DiagonalGaussian, kl_diagonal
from aekit.models.priors import StandardNormal
from aekit.models.variational import VariationalAE, _linear_count, check_vae_options
from aekit.registry import register_model

MAX_LAYERS = 16  # stochastic layers; Ladder VAEs on MNIST use up to 5, NVAE-style models a few dozen


@dataclass
class LadderPosterior:
    """The bottom-up messages of every stochastic layer, bottom first (each ``(B, D_i)``). Its
    ``mean`` and ``logvar`` are the top layer's, which is q(z_L | x) itself."""

    messages: list[DiagonalGaussian]

    @property
    def mean(self) -> torch.Tensor:
        return self.messages[-1].mean

    @property
    def logvar(self) -> torch.Tensor:
        return self.messages[-1].logvar


def combine(message: DiagonalGaussian, prior: DiagonalGaussian) -> DiagonalGaussian:
    """The precision-weighted product of two diagonal Gaussians (normalised): the Ladder posterior."""
    # log var_q = -log(exp(-a) + exp(-b)), written with max and exp rather than logaddexp, which
    # ONNX's opsets lack (an exported encoder or full model of a ladder runs this)
    a, b = -message.logvar, -prior.logvar
    top = torch.maximum(a, b)
    logvar = -(top + torch.log(torch.exp(a - top) + torch.exp(b - top)))
    mean = (message.mean * torch.exp(logvar - message.logvar) + prior.mean * torch.exp(logvar - prior.logvar))
    return DiagonalGaussian(mean, logvar)


class LadderEncoder(nn.Module):
    """The bottom-up pass: x -> d_1 -> ... -> d_L, each block two layers of its width, each with a
    head giving its layer's message (mean, log-variance). As a module it returns the code: the top
    layer's posterior mean."""

    def __init__(self, n_in: int, widths: Sequence[int], sizes: Sequence[int], act: str) -> None:
        super().__init__()
        ins = [n_in, *widths[:-1]]
        self.flatten = nn.Flatten()
        self.blocks = nn.ModuleList(mlp_stack([a, w, w], act, act) for a, w in zip(ins, widths, strict=True))
        self.heads = nn.ModuleList(nn.Linear(w, 2 * s) for w, s in zip(widths, sizes, strict=True))

    def distribution(self, x: torch.Tensor, y: torch.Tensor | None = None) -> LadderPosterior:
        h, messages = self.flatten(x), []
        for block, head in zip(self.blocks, self.heads, strict=True):
            h = block(h)
            messages.append(DiagonalGaussian.from_raw(*head(h).chunk(2, dim=-1)))
        return LadderPosterior(messages)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.distribution(x).mean


def parameter_count(n_in: int, widths: Sequence[int], sizes: Sequence[int]) -> int:
    """Weights and biases of the encoder, the top-down networks and the decoder, before allocation."""
    ins = [n_in, *widths[:-1]]
    up = sum(_linear_count([a, w, w]) + _linear_count([w, 2 * s]) for a, w, s in zip(ins, widths, sizes, strict=True))
    down = sum(_linear_count([sizes[i + 1], widths[i], widths[i], 2 * sizes[i]]) for i in range(len(sizes) - 1))
    return up + down + _linear_count([sizes[0], widths[0], widths[0], n_in])


def check_ladder(layers: Any, latents: Any, code: int) -> tuple[list[int], list[int]]:
    """(widths, stochastic sizes bottom first with the code on top), or one line on what is wrong."""
    widths = check_unit_list("layer size (--layers)", layers)
    lower = check_unit_list("latent size (--latents)", latents)
    if not lower:
        raise AekitError("a ladder VAE needs at least one stochastic layer below the code: give --latents, "
                         "e.g. 64 (or use --model vae for one stochastic layer)")
    if len(lower) + 1 > MAX_LAYERS:
        raise AekitError(f"a ladder VAE takes at most {MAX_LAYERS} stochastic layers, got {len(lower) + 1}")
    if len(widths) != len(lower) + 1:
        raise AekitError(f"--layers gives one width per stochastic layer ({len(lower) + 1}: the --latents "
                         f"{','.join(map(str, lower))} and the code), got {len(widths)}")
    return widths, [*lower, code]


@register_model("ladder", "hierarchical VAE: two or more stochastic layers (--latents below the code), "
                "top-down inference (Ladder VAE); the vae family's likelihoods, beta, KL warm-up and IWAE")
class LadderVAE(VariationalAE):
    """A Ladder VAE on flat inputs; ``layers`` are the deterministic widths (one per stochastic
    layer, bottom first), ``latents`` the stochastic layers below the code (bottom first)."""

    # Parts unlike VariationalAE's: the encoder gives every layer's message, not one Gaussian (so it
    # is no GaussianEncoder, and the methods of VariationalAE that read its parts are overridden here),
    # the decoder takes no labels, and the prior is the standard normal.
    encoder: LadderEncoder  # type: ignore[assignment]  # the subclass's own part, as said above
    decoder: nn.Sequential
    prior: StandardNormal

    def __init__(
        self,
        input_shape: tuple[int, ...],
        code: int = 32,
        latents: Sequence[int] = (64,),
        layers: Sequence[int] = (512, 256),
        activation: str = "elu",
        likelihood: str = "auto",
        variance: str = "learned",
        variance_value: float = 1.0,
        beta: float = 1.0,
        kl_warmup: int = 0,
        iw_samples: int = 1,
    ) -> None:
        Autoencoder.__init__(self, input_shape, code)  # the parts differ from VariationalAE's: built here
        o = check_vae_options({"activation": activation, "likelihood": likelihood, "variance": variance,
                               "variance_value": variance_value, "beta": beta, "kl_warmup": kl_warmup,
                               "iw_samples": iw_samples})
        widths, sizes = check_ladder(layers, latents, self.code_size)
        check_parameter_count("ladder", parameter_count(self.n_inputs, widths, sizes))
        self.beta, self.free_bits, self.iw_samples = o["beta"], 0.0, o["iw_samples"]
        self.kl_warmup, self.n_classes, self.sizes = o["kl_warmup"], 0, sizes
        self.encoder = LadderEncoder(self.n_inputs, widths, sizes, activation)
        # top_down[i] gives p(z_i | z_{i+1}) for the layers below the top (i = 0 is the bottom one)
        self.top_down = nn.ModuleList(mlp_stack([sizes[i + 1], widths[i], widths[i], 2 * sizes[i]], activation, None)
                                      for i in range(len(sizes) - 1))
        self.decoder = mlp_stack([sizes[0], widths[0], widths[0], self.n_inputs], activation, None)
        self.prior = StandardNormal(self.code_size)
        self.register_buffer("_kl_weight", torch.ones(()), persistent=False)
        self.likelihood = None
        self.options = {"code": self.code_size, "latents": sizes[:-1], "layers": widths, "activation": activation,
                        "likelihood": likelihood, "variance": variance, "variance_value": o["variance_value"],
                        "beta": self.beta, "kl_warmup": self.kl_warmup, "iw_samples": self.iw_samples}
        if likelihood != "auto":
            self._set_likelihood(likelihood)

    @classmethod
    def check_config(cls, options: dict[str, Any]) -> None:
        super().check_config(options)
        code = options.get("code", 32)
        if "layers" in options or "latents" in options or "code" in options:
            check_ladder(options.get("layers", (512, 256)), options.get("latents", (64,)),
                         code if isinstance(code, int) else 32)

    # --- the chain ---------------------------------------------------------------------------------
    def conditional_prior(self, i: int, upper: torch.Tensor) -> DiagonalGaussian:
        """p(z_i | z_{i+1}) for ``upper`` = z_{i+1} ``(..., D_{i+1})``."""
        out = self.top_down[i](upper)
        if out.dtype in (torch.float16, torch.bfloat16):
            out = out.float()
        return DiagonalGaussian.from_raw(*out.chunk(2, dim=-1))

    def prior_components(self) -> DiagonalGaussian:
        """The top layer's prior, N(0, I), as one component (what traversals and the manifold read)."""
        return self.prior.components(None, next(self.parameters()))  # no encoder; the model's dtype and device

    def infer(self, post: LadderPosterior, k: int | None, generator: torch.Generator | None = None,
              sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Down the chain through q: (z_1, log q(z|x) - log p(z), the layers' summed KL). z_1 and the
        log-ratio are ``(k, B, ...)`` for ``k`` samples per row, else ``(B, ...)``; each lower layer's
        KL is in closed form given the sampled layer above (the top one against N(0, I)).
        ``sample=False`` follows the posterior means (the log-ratio and KL are then of those)."""
        top = post.messages[-1]
        z = top.rsample(k, generator) if sample else top.mean
        log_ratio = top.log_prob(z) - self.prior.log_prob(z, None)
        kl = top.kl_standard().sum(-1)
        for i in range(len(self.sizes) - 2, -1, -1):
            p = self.conditional_prior(i, z)
            q = combine(post.messages[i], p)
            z = q.rsample(None, generator) if sample else q.mean
            log_ratio = log_ratio + q.log_prob(z) - p.log_prob(z)
            kl = kl + kl_diagonal(q, p).sum(-1)
        return z, log_ratio, kl

    def bottom_logits(self, z1: torch.Tensor) -> torch.Tensor:
        """The decoder on the bottom layer ``(..., D_1)`` -> ``(..., *input_shape)``, fp32 under autocast."""
        lead = z1.shape[:-1]
        out = self.decoder(z1.reshape(-1, z1.shape[-1])).reshape(*lead, *self.input_shape)
        return out.float() if out.dtype in (torch.float16, torch.bfloat16) else out

    def down_from(self, z: torch.Tensor, temperature: float | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """From the top layer to z_1 through the generative chain: its means, or with ``temperature``
        a draw from each layer with its spread scaled by it."""
        for i in range(len(self.sizes) - 2, -1, -1):
            p = self.conditional_prior(i, z)
            z = p.mean if temperature is None else p.rsample(None, generator, temperature)
        return z

    # --- what VariationalAE's losses and tasks call ------------------------------------------------------
    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (top layer) ``(..., D_L)`` -> raw outputs, following the lower layers' prior means."""
        return self.bottom_logits(self.down_from(z))

    def sample_terms(self, post: Any, target: torch.Tensor, y: torch.Tensor | None, k: int | None,
                     comps: DiagonalGaussian | None = None, generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z1, log_ratio, _ = self.infer(post, k, generator)
        logits = self.bottom_logits(z1)
        return self._likelihood().log_prob(target, logits), log_ratio, logits

    def elbo_parts(self, post: Any, target: torch.Tensor, y: torch.Tensor | None,
                   comps: DiagonalGaussian | None = None, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z1, _, kl = self.infer(post, None, generator)
        logits = self.bottom_logits(z1)
        return -self._likelihood().log_prob(target, logits), kl, logits

    def decode_samples(self, z: np.ndarray, labels: Any, temperature: float,
                       generator: torch.Generator) -> np.ndarray:
        """Samples from top-layer draws ``z``: every layer below is drawn too, at the temperature."""
        self.check_labels(labels, len(z))

        def draw(t: torch.Tensor, _: torch.Tensor | None) -> torch.Tensor:
            return self._likelihood().mean(self.bottom_logits(self.down_from(t, temperature, generator)))

        return self.numpy_map(draw, np.asarray(z, np.float32), None, self.input_shape)

    def recon_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """The likelihood's mean along the posterior means: every layer's bottom-up message is used."""
        z1, _, _ = self.infer(self.encoder.distribution(self.shaped(x)), None, sample=False)
        return self._likelihood().mean(self.bottom_logits(z1))

    def reconstruct(self, x: np.ndarray, labels: Any = None) -> np.ndarray:
        self.check_labels(labels, len(x))
        return self.numpy_map(lambda t, _: self.recon_tensor(t), self._as_inputs(x), None, self.input_shape)


__all__ = ["LadderEncoder", "LadderPosterior", "LadderVAE", "combine", "parameter_count"]

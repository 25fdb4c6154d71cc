"""The autoencoder base class: an encoder, a decoder, and a loss the model owns.

``forward(x, target)`` returns :class:`AEOutput` with the reconstruction, the code, the scalar
loss to minimise and a dict of its terms, so the training loop only ever calls
``out.loss.backward()``, whatever the family. Decoders return pre-activation outputs
("logits"); the sigmoid for [0, 1] data is applied here, which lets the BCE loss use the
numerically stable ``binary_cross_entropy_with_logits``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aekit.data import mapped
from aekit.errors import AekitError
from aekit.models.penalties import contractive_general, parse_sparse

ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "linear": nn.Identity,
}
OUTPUTS = ("auto", "sigmoid", "identity")
LOSSES = ("mse", "bce")


def activation(name: str) -> nn.Module:
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise AekitError(f"unknown activation {name!r}; use one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


# Caps that catch a typo (an extra zero, a missing comma) before PyTorch tries to allocate it:
# no layer of a real autoencoder has a million units, and 2^31 float32 parameters are 8 GiB of
# weights before the optimizer doubles or triples them.
MAX_UNITS = 1_000_000
MAX_LAYERS = 100
MAX_PARAMETERS = 2**31
MAX_WEIGHT = 1e6  # a regulariser's weight (contractive λ); far beyond any useful strength


def check_positive(what: str, value: Any, cap: int = MAX_UNITS) -> int:
    """A whole number in [1, cap] (NumPy integers too), as a Python int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= int(value) <= cap:
        raise AekitError(f"{what} must be a whole number from 1 to {cap:,}, got {value!r:.40}")
    return int(value)


def check_unit_list(what: str, values: Any) -> list[int]:
    """A list of layer widths (or channel counts), each in [1, MAX_UNITS], at most MAX_LAYERS long."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise AekitError(f"{what} must be a list of whole numbers such as [1000, 500], got {values!r:.40}")
    if len(values) > MAX_LAYERS:
        raise AekitError(f"{what}: {len(values)} layers is more than the {MAX_LAYERS} aekit builds")
    return [check_positive(what, v) for v in values]


def check_weight(what: str, value: Any) -> float:
    """A regulariser's weight: a finite number in [0, MAX_WEIGHT]."""
    # A flag, not an isinstance narrowing: typeshed's numbers.Real has no __ge__, so `0 <= value`
    # would not type-check for a Real (float() instead would overflow on a huge int, not refuse it)
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not real or not 0 <= value <= MAX_WEIGHT:
        raise AekitError(f"{what} must be a non-negative number, at most {MAX_WEIGHT:g}, got {value!r:.40}")
    return float(value)


def check_parameter_count(family: str, count: int) -> None:
    """Refuse a model too large to build, from its parameter count computed before allocating.
    The advice names no flag: the CLI, a TOML file and the scikit-learn estimator all reach it."""
    if count > MAX_PARAMETERS:
        raise AekitError(f"this {family} model would have {count:,} parameters, more than the "
                         f"{MAX_PARAMETERS:,} aekit builds; use a smaller code size or fewer, "
                         "narrower layers or channels")


def check_option_ranges(options: dict[str, Any]) -> None:
    """The ranges of the options every family shares, checked without building a model (see
    :func:`aekit.registry.check_model_config`); the constructors check the same again."""
    if "code" in options:
        check_positive("code size (--code)", options["code"])
    if "layers" in options:
        check_unit_list("layer size (--layers)", options["layers"])
    if "channels" in options:
        check_unit_list("channel count (--channels)", options["channels"])
    if "contractive" in options:
        check_weight("contractive weight (--contractive)", options["contractive"])
    if options.get("sparse") is not None:
        parse_sparse(options["sparse"])
    for key in ("activation", "code_activation"):
        if options.get(key) is not None:
            activation(options[key])
    if options.get("loss", "mse") not in LOSSES:
        raise AekitError(f"unknown loss {options['loss']!r}; use mse or bce")
    if options.get("output", "auto") not in OUTPUTS:
        raise AekitError(f"unknown output {options['output']!r}; use auto, sigmoid or identity")


def with_labels(model: Any, labels: Any) -> dict[str, Any]:
    """``{"labels": labels}`` for a model that takes labels (:attr:`Autoencoder.takes_labels`), else
    nothing: the keyword arguments of a call that serves conditional and plain models alike."""
    return {"labels": labels} if getattr(model, "takes_labels", False) else {}


def _scaled(piece: np.ndarray) -> np.ndarray:
    """A contiguous float32 copy of a piece (uint8 pieces come from memory maps and are scaled here)."""
    if piece.dtype == np.uint8:
        return piece.astype(np.float32) / 255.0
    return np.array(piece) if mapped.is_mapped(piece) else np.ascontiguousarray(piece)  # maps are read-only


@dataclass
class AEOutput:
    """What every autoencoder returns: reconstruction, code, the loss to minimise and its terms."""

    recon: torch.Tensor
    code: torch.Tensor
    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


class Autoencoder(nn.Module):
    """Base class. Subclasses build ``self.encoder`` / ``self.decoder`` and register themselves.

    ``encoder`` maps ``(B, *input_shape)`` to ``(B, code)``; ``decoder`` maps ``(B, code)`` back to
    ``(B, *input_shape)`` pre-activation values. ``options`` records the constructor arguments so
    that the model can be rebuilt from its config alone.
    """

    family = "base"
    # The parts every family builds in __init__ (declared for the type checker: nn.Module's
    # __getattr__ would type them as Tensor | Module)
    encoder: nn.Module
    decoder: nn.Module
    # Whether forward and the NumPy maps take each sample's class label (``labels=``): a model
    # conditioned on labels says so, and the training loop then passes the batch's labels.
    takes_labels = False
    # Whether decode(code) makes a picture: False for a family whose decoder needs more than a code
    # (the mae family predicts patches from the patches it sees); a latent map then draws no manifold.
    decodes_codes = True

    @classmethod
    def check_config(cls, options: dict[str, Any]) -> None:
        """The ranges of a family's options, checked without building a model (see
        :func:`aekit.registry.check_model_config`): a family with options of its own extends this."""
        check_option_ranges(options)

    def __init__(self, input_shape: tuple[int, ...], code: int, loss: str = "mse", output: str = "auto",
                 sparse: str | None = None, contractive: float = 0.0) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        if not self.input_shape or any(s < 1 for s in self.input_shape):
            raise AekitError(f"input shape must be positive, got {self.input_shape}")
        self.code_size = check_positive("code size (--code)", code)
        if loss not in LOSSES:
            raise AekitError(f"unknown loss {loss!r}; use mse or bce")
        if output not in OUTPUTS:
            raise AekitError(f"unknown output {output!r}; use auto, sigmoid or identity")
        self.loss_name = loss
        self.output = output
        self.sparsity = parse_sparse(sparse)
        self.contractive = check_weight("contractive weight (--contractive)", contractive)
        self.options: dict[str, Any] = {"code": self.code_size, "loss": loss, "output": output, "sparse": sparse,
                                        "contractive": self.contractive}

    def check_code_activation(self, code_activation: str) -> None:
        """KL sparsity compares mean activations with a target rate, so codes must lie in (0, 1)."""
        if self.sparsity is not None and self.sparsity.kind == "kl" and code_activation != "sigmoid":
            raise AekitError("--sparse kl needs codes in (0, 1): use code_activation sigmoid (or --sparse l1:λ)")

    @property
    def n_inputs(self) -> int:
        return math.prod(self.input_shape)

    def resolve_output(self, value_range: str) -> None:
        """Pick the output non-linearity for the data: sigmoid for [0, 1] data, else identity."""
        if self.output == "auto":
            self.output = "sigmoid" if value_range == "unit" else "identity"
        if self.loss_name == "bce" and self.output != "sigmoid":
            raise AekitError("loss bce needs outputs in [0, 1]: use output sigmoid with data scaled to [0, 1]")

    # -- hooks of the training loop (a family with no use for them keeps these) --------------
    def begin_epoch(self, epoch: int, epochs: int) -> None:
        """Called at the start of every epoch (0-based ``epoch`` of ``epochs``), a resumed one too;
        a schedule inside the loss (a VAE's KL warm-up) follows from it."""

    def start_from_data(self, rows: Callable[[int], np.ndarray]) -> None:
        """Called once before a new run's first step, for parameters best started at data (a
        VampPrior's pseudo-inputs); ``rows(k)`` reads ``k`` shuffled training rows (only if called)."""

    # -- the three public maps -------------------------------------------------------------
    @overload
    def encode(self, x: torch.Tensor) -> torch.Tensor: ...
    @overload
    def encode(self, x: np.ndarray) -> np.ndarray: ...
    def encode(self, x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Codes of a batch. A tensor goes through with gradients; a NumPy array (uint8 images or
        floats, any batch size, samples as ``input_shape`` or flattened) gives a NumPy array."""
        if isinstance(x, np.ndarray):
            return self._numpy_batches(self._as_inputs(x), self.encoder, self.code_size)
        return self.encoder(self.shaped(x))

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's output before the output non-linearity, ``(B, *input_shape)``, for a code batch ``z``."""
        return self.decoder(z).reshape(z.shape[0], *self.input_shape)

    @overload
    def decode(self, z: torch.Tensor) -> torch.Tensor: ...
    @overload
    def decode(self, z: np.ndarray) -> np.ndarray: ...
    def decode(self, z: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Outputs for a batch of codes; NumPy in, NumPy out (samples shaped as ``input_shape``)."""
        if isinstance(z, np.ndarray):
            z = np.asarray(z, dtype=np.float32)
            if z.ndim != 2 or z.shape[1] != self.code_size:
                raise AekitError(f"decode takes codes of shape (N, {self.code_size}), got {z.shape}")
            return self._numpy_batches(z, self.decode, None)
        logits = self.decode_logits(z)
        return torch.sigmoid(logits) if self.output == "sigmoid" else logits

    def classifier_body(self) -> tuple[nn.Module, int]:
        """What ``aekit finetune`` puts a softmax layer on, and its output width: the encoder and the
        code here; a family whose features are not its code (the mae family's pooled tokens) says so."""
        return self.encoder, self.code_size

    def recon_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic reconstruction of a batch ``(B, *input_shape)``, with gradients: the
        decoded code (what an exported ``full`` or ``score`` part computes). A family whose
        reconstruction is more than decode(encode(x)) (a hierarchical VAE) says so here."""
        return self.decode(self.encoder(x))

    def shaped(self, x: torch.Tensor, what: str = "an input") -> torch.Tensor:
        """A batch as ``(B, *input_shape)``: flat ``(B, 784)`` or channel-less ``(B, 28, 28)`` batches
        of an image model are reshaped, as the NumPy maps do; anything else is one clear error
        (a conv layer's shape error, or MSE silently broadcasting (B, 28, 28) against (B, 1, 28, 28),
        would say nothing useful)."""
        if tuple(x.shape[1:]) == self.input_shape:
            return x
        if x.ndim >= 2 and math.prod(x.shape[1:]) == self.n_inputs:
            return x.reshape(x.shape[0], *self.input_shape)
        hint = "; wrap a single sample as x[None]" if math.prod(x.shape) == self.n_inputs else ""
        raise AekitError(f"the model takes a batch of samples of shape {self.input_shape} (or {self.n_inputs} "
                         f"values each), got {what} of shape {tuple(x.shape)}{hint}")

    def _as_inputs(self, x: np.ndarray) -> np.ndarray:
        """Check and scale a NumPy batch: uint8 -> [0, 1]; flat rows reshaped to ``input_shape``."""
        if x.ndim < 2:
            raise AekitError(f"expected a batch of samples (N, ...), got an array of shape {x.shape}; "
                             "wrap a single sample as x[None]")
        if x.shape[1:] != self.input_shape:
            if math.prod(x.shape[1:]) != self.n_inputs:
                raise AekitError(f"the model takes samples of shape {self.input_shape}, got {x.shape[1:]}")
            x = x.reshape(len(x), *self.input_shape)
        if mapped.is_mapped(x) and x.dtype in (np.uint8, np.float32):
            return x  # read, scaled and checked piece by piece (the loader checked the values)
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else np.asarray(x, dtype=np.float32)
        if not np.isfinite(x).all():
            raise AekitError("input contains NaN or infinite values")
        return x

    @torch.no_grad()
    def _numpy_batches(self, x: np.ndarray, fn: Any, width: int | None, batch: int = 4096) -> np.ndarray:
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()  # NumPy in, NumPy out is inference
        outs = [fn(torch.from_numpy(_scaled(piece)).to(device)).float().cpu().numpy()
                for piece in mapped.chunks(x, batch)]  # a memory-mapped x is read piece by piece
        self.train(was_training)
        if outs:
            return np.concatenate(outs)
        return np.zeros((0, width) if width else (0, *self.input_shape), np.float32)

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """Reconstructions of a NumPy batch, as float32 NumPy."""
        return self._numpy_batches(self._as_inputs(x), lambda t: self(t).recon, None)

    def reconstruction_loss(self, logits: torch.Tensor, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean loss per value: BCE from the logits (stable), MSE from the reconstruction."""
        if self.loss_name == "bce":
            return F.binary_cross_entropy_with_logits(logits, target)
        return F.mse_loss(recon, target)

    def jacobian_penalty(self, x: torch.Tensor) -> torch.Tensor:
        """Mean squared Frobenius norm of the encoder's Jacobian at ``x`` (exact; see penalties.py)."""
        return contractive_general(self.encoder, x)

    def penalties(self, x: torch.Tensor, code: torch.Tensor) -> dict[str, torch.Tensor]:
        """Regularisation terms added to the loss in training (sparsity, contraction)."""
        terms = {}
        if self.sparsity is not None:
            terms["sparse"] = self.sparsity(code)
        if self.contractive > 0:
            terms["contractive"] = self.contractive * self.jacobian_penalty(x)
        return terms

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None) -> AEOutput:
        """Encode ``x``, decode, and score the result against ``target`` (``x`` unless denoising)."""
        x = self.shaped(x)
        target = x if target is None else self.shaped(target, "a target")
        code = self.encoder(x)
        logits = self.decode_logits(code)
        if logits.dtype in (torch.float16, torch.bfloat16):
            # Under autocast the layers may run in bf16/fp16; the loss and everything reported is
            # fp32. (A float64 copy of the model, as the scikit-learn adapters use, stays float64.)
            logits = logits.float()
        recon = torch.sigmoid(logits) if self.output == "sigmoid" else logits
        rec = self.reconstruction_loss(logits, recon, target)
        terms = {"recon": rec}
        # Regularisers shape training only: with gradients off (validation, evaluation) the loss
        # is the reconstruction alone, so models with and without them are compared alike.
        if torch.is_grad_enabled():
            terms.update(self.penalties(x, code))
        loss = sum((t for name, t in terms.items() if name != "recon"), rec)  # rec alone if no penalty
        return AEOutput(recon, code, loss, terms)

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this model with :func:`aekit.registry.create_model`."""
        return {"name": self.family, "input_shape": list(self.input_shape), **self.options, "output": self.output}

    def n_parameters(self) -> int:
        """The number of trainable and frozen parameters (every tensor of ``parameters()``)."""
        return sum(p.numel() for p in self.parameters())

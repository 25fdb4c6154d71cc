"""Fully connected autoencoders, from the lecture's simplest one to Hinton & Salakhutdinov's.

``layers=()`` with ``code=32`` is the simplest autoencoder (784 -> 32 -> 784, one fully connected
layer each way). ``layers=(1000, 500, 250), code=30`` is the deep autoencoder of Hinton &
Salakhutdinov, "Reducing the dimensionality of data with neural networks", Science 2006. The
decoder mirrors the encoder's hidden sizes.

The code units are linear by default, as in Hinton & Salakhutdinov's network: a squashing or
rectifying code wastes capacity (dead or saturated units), and on mnist-mini the linear code of
the simplest autoencoder reconstructs with half the error of a ReLU code (8.2 vs 16.3
sse_per_image after 60 epochs). ``code_activation`` picks another.

Hidden units are ELUs by default: on full MNIST the deep autoencoder reached 10.5 validation
sse_per_image after 3 epochs with ELU against 13.0 with GELU and 27.6 with tanh, and ReLU units
can all die at a learning rate of 3e-3 (the loss then stays at its starting value).

``norm="batch"`` puts a BatchNorm layer before each hidden activation (never on the code or the
output). It is the largest single gain for the deep autoencoder trained from a random start: after
10 epochs on full MNIST, 3.90 test sse_per_image with BatchNorm and ReLU against 5.87 with plain ELUs
(benchmarks/family.py --sections deep30 has the whole ablation).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from aekit.errors import AekitError
from aekit.models.base import Autoencoder, check_parameter_count, check_unit_list
from aekit.models.base import activation as make_activation
from aekit.models.penalties import contractive_one_layer
from aekit.registry import register_model

NORMS = ("none", "batch", "layer")


def check_norm(norm: object, contractive: object = 0.0, hidden: bool = True) -> str:
    """The hidden layers' normalisation: one of :data:`NORMS`. BatchNorm is refused beside the
    contractive penalty where the encoder has hidden layers to normalise: the penalty is a mean of
    per-sample Jacobians, and a sample's code under BatchNorm depends on the whole batch (the
    Jacobians' transform also refuses its running statistics' update)."""
    if norm not in NORMS:
        raise AekitError(f"unknown norm {norm!r:.40} (--norm); use one of {', '.join(NORMS)}")
    if norm == "batch" and contractive and hidden:
        raise AekitError("--contractive needs each sample's code to depend on that sample alone, which "
                         "--norm batch breaks; use --norm layer or none")
    return str(norm)


def norm_layer(norm: str, width: int, maps: bool = False) -> list[nn.Module]:
    """The normalisation before a hidden activation of ``width`` units, or of ``width``-channel maps
    (``maps``, the conv family: BatchNorm2d, and GroupNorm with one group for a LayerNorm over each
    map's channels and pixels); none: no layer."""
    if norm == "batch":
        return [nn.BatchNorm2d(width) if maps else nn.BatchNorm1d(width)]
    if norm == "layer":
        return [nn.GroupNorm(1, width) if maps else nn.LayerNorm(width)]
    return []


def mlp_stack(sizes: Sequence[int], act: str, last_act: str | None, norm: str = "none") -> nn.Sequential:
    """Linear layers between consecutive ``sizes``, ``norm`` and ``act`` between them, ``last_act`` at the end."""
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        mods.append(nn.Linear(a, b))
        last = i == len(sizes) - 2
        if not last:
            mods += norm_layer(norm, b)
            mods.append(make_activation(act))
        elif last_act is not None and last_act != "linear":
            mods.append(make_activation(last_act))
    return nn.Sequential(*mods)


def mlp_parameters(sizes: Sequence[int]) -> int:
    """Weights and biases of an encoder through ``sizes`` and its mirrored decoder, counted
    before anything is allocated: each pair (a, b) gives a*b + b one way and b*a + a back."""
    return sum(2 * a * b + a + b for a, b in itertools.pairwise(sizes))


@register_model("mlp", "fully connected encoder/decoder; --layers for depth (default: the simplest 784-32-784)")
class MLPAE(Autoencoder):
    """A fully connected autoencoder: the encoder's hidden layers, the code, and the mirror image.

    With ``layers=()`` it is the lecture's simplest autoencoder, 784-32-784 for MNIST.

    Args:
        input_shape: The shape of one sample, e.g. ``(1, 28, 28)``; it is flattened.
        code: The code's width.
        layers: The encoder's hidden widths, e.g. ``(1000, 500, 250)``; the decoder mirrors them.
        activation: Hidden activation: relu, sigmoid, tanh, gelu, elu or leaky_relu.
        code_activation: The code units' activation (None: linear).
        loss: Reconstruction loss: "mse" or "bce".
        output: The output non-linearity: "auto" (sigmoid for data in [0, 1], identity otherwise),
            "sigmoid" or "identity".
        sparse: Sparsity on the code: "l1:LAMBDA" or "kl:RHO,BETA" (needs a sigmoid code), or None.
        contractive: Weight of the contractive penalty (the encoder Jacobian's squared Frobenius norm).
        norm: Normalisation before each hidden activation: "none", "batch" (BatchNorm) or "layer"
            (LayerNorm). The code and the output are never normalised.
    """

    encoder: nn.Sequential
    decoder: nn.Sequential

    def __init__(
        self,
        input_shape: tuple[int, ...],
        code: int = 32,
        layers: Sequence[int] = (),
        activation: str = "elu",
        code_activation: str | None = None,
        loss: str = "mse",
        output: str = "auto",
        sparse: str | None = None,
        contractive: float = 0.0,
        norm: str = "none",
    ) -> None:
        super().__init__(input_shape, code, loss, output, sparse, contractive)
        hidden = check_unit_list("layer size (--layers)", layers)
        code_act = code_activation or "linear"
        for name in (activation, code_act):  # validate even when no layer uses it (layers=())
            make_activation(name)
        self.check_code_activation(code_act)
        norm = check_norm(norm, contractive, bool(hidden))
        enc = [self.n_inputs, *hidden, self.code_size]
        check_parameter_count("mlp", mlp_parameters(enc))
        self.encoder = nn.Sequential(nn.Flatten(), *mlp_stack(enc, activation, code_act, norm))
        # The decoder's last layer is linear: the output non-linearity is applied by the base class.
        self.decoder = mlp_stack(enc[::-1], activation, None, norm)
        self.options.update(layers=hidden, activation=activation, code_activation=code_act, norm=norm)

    @classmethod
    def check_config(cls, options: dict[str, Any]) -> None:
        """The shared ranges and the normalisation, before any data is read."""
        super().check_config(options)
        if "norm" in options:
            check_norm(options["norm"], options.get("contractive", 0.0), bool(options.get("layers")))

    def jacobian_penalty(self, x: torch.Tensor) -> torch.Tensor:
        """Mean squared Frobenius norm of the encoder's Jacobian at ``x`` (exact, in closed form for one layer)."""
        if self.options["layers"]:
            return super().jacobian_penalty(x)
        # One layer (Flatten, Linear[, activation]): the closed form of Rifai et al. 2011.
        act = self.encoder[2] if len(self.encoder) > 2 else nn.Identity()
        linear = self.encoder[1]
        assert isinstance(linear, nn.Linear)  # as __init__ builds it
        return contractive_one_layer(linear, act, x.flatten(1))

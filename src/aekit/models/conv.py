"""Convolutional autoencoder for images of any size and channel count.

Encoder: 3x3 convolutions with stride 2 (each halves height and width, rounding up), then a
linear map to a flat code. Decoder: a linear map back to the smallest feature map, then for each
stage nearest-neighbour upsampling *to the exact size the encoder saw* followed by a 3x3
convolution. Upsample + conv (Odena et al., "Deconvolution and checkerboard artifacts", 2016)
avoids the checkerboard pattern of transposed convolutions and reproduces odd sizes such as
28 -> 14 -> 7 -> 14 -> 28 or 100 -> 50 -> 25 -> 13 exactly.

ELU is the default activation: with ReLU and a sigmoid output under MSE, the network collapses
within the first epoch to an all-black output (sigmoid saturated, gradients gone); ELU trains
(mnist-mini, 3 epochs: 12.2 sse_per_image with ELU, stuck at 86.7 with ReLU).

``norm`` puts a normalisation before each hidden activation, as for the mlp family: "batch"
(BatchNorm) or "layer" (GroupNorm with one group, a LayerNorm over each map's channels and pixels);
never on the code or the output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from aekit.errors import AekitError
from aekit.models.base import Autoencoder, check_parameter_count, check_unit_list
from aekit.models.base import activation as make_activation
from aekit.models.mlp import check_norm, norm_layer
from aekit.registry import register_model


def norm_layer_2d(norm: str, channels: int) -> list[nn.Module]:
    """The normalisation of a ``channels``-map before a hidden activation (none: no layer)."""
    if norm == "batch":
        return [nn.BatchNorm2d(channels)]
    if norm == "layer":
        return [nn.GroupNorm(1, channels)]
    return []


class _Decoder(nn.Module):
    def __init__(self, code: int, channels: list[int], sizes: list[tuple[int, int]], out_ch: int, act: str,
                 norm: str = "none"):
        super().__init__()
        self.sizes = sizes  # sizes[0] = input size ... sizes[-1] = smallest map
        self.start = (channels[-1], *sizes[-1])
        flat = channels[-1] * sizes[-1][0] * sizes[-1][1]
        self.fc = nn.Linear(code, flat)
        self.fc_norm = nn.Sequential(*norm_layer(norm, flat))  # empty (the identity) without a norm
        self.act = make_activation(act)
        outs = [*channels[::-1][1:], out_ch]  # channel count after each upsampling stage
        ins = channels[::-1]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, padding=1) for i, o in zip(ins, outs, strict=True))
        # one per hidden stage (the last convolution makes the output, never normalised)
        self.norms = nn.ModuleList(nn.Sequential(*norm_layer_2d(norm, o)) for o in outs[:-1])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc_norm(self.fc(z))).reshape(z.shape[0], *self.start)
        targets = self.sizes[:-1][::-1]
        for i, (conv, size) in enumerate(zip(self.convs, targets, strict=True)):
            h = conv(upsample_nearest(h, size))
            if i < len(self.convs) - 1:
                h = self.act(self.norms[i](h))
        return h


class _Doubling(torch.autograd.Function):
    """Nearest-neighbour upsampling by 2 of an NCHW map, with its gradient as a sum over each 2x2
    block (see :func:`upsample_nearest`)."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor) -> torch.Tensor:
        return F.interpolate(h, scale_factor=2.0, mode="nearest")

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = grad.shape
        return grad.reshape(b, c, hh // 2, 2, ww // 2, 2).sum((3, 5))


def upsample_nearest(h: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(h, size, mode="nearest")``, the same values.

    Under ``torch.compile``, where a stage doubles both sides of an NCHW-contiguous map (every stage
    of a 28x28 model), the gradient is written as the sum over each 2x2 block that it is: inductor
    makes that a plain reduction on the CPU, where ``F.interpolate``'s own backward became a scatter
    (``index_put`` with accumulation), the costliest kernel of the conv recipe's compiled step
    (``python benchmarks/compile.py --models conv --profile`` shows the step's kernels). Eagerly,
    aten's own backward is the faster (a strided sum is slow there), so eager
    steps keep ``F.interpolate`` whole; so do channels-last maps (convolutions on a GPU), whose
    layout it keeps.
    """
    hh, ww = h.shape[-2:]
    if torch.compiler.is_compiling() and tuple(size) == (2 * hh, 2 * ww) and h.is_contiguous():
        return _Doubling.apply(h)
    return F.interpolate(h, size=size, mode="nearest")


def conv_parameters(input_shape: tuple[int, ...], chans: list[int], code: int) -> int:
    """Weights and biases of the encoder and decoder built below, counted before allocating."""
    c_in, h, w = input_shape
    count, prev = 0, c_in
    for c in chans:  # encoder: 3x3 stride-2 convolutions
        count += 9 * prev * c + c
        prev, h, w = c, (h + 1) // 2, (w + 1) // 2
    flat = prev * h * w
    count += 2 * flat * code + code + flat  # linear to the code and back
    outs = [*chans[::-1][1:], c_in]
    count += sum(9 * i * o + o for i, o in zip(chans[::-1], outs, strict=True))  # decoder convolutions
    return count


@register_model("conv", "strided-conv encoder, upsample+conv decoder, flat code; any image size, gray or RGB")
class ConvAE(Autoencoder):
    """A convolutional autoencoder: stride-2 convolutions down, a flat code, upsampling and convolutions up.

    Args:
        input_shape: The shape of one image, ``(C, H, W)``, gray or RGB, of any size.
        code: The code's width.
        channels: The channels of each stride-2 stage, e.g. ``(32, 64)``.
        activation: Hidden activation: relu, sigmoid, tanh, gelu, elu or leaky_relu.
        code_activation: The code units' activation (None: linear).
        loss: Reconstruction loss: "mse" or "bce".
        output: The output non-linearity: "auto" (sigmoid for data in [0, 1], identity otherwise),
            "sigmoid" or "identity".
        sparse: Sparsity on the code: "l1:LAMBDA" or "kl:RHO,BETA" (needs a sigmoid code), or None.
        contractive: Weight of the contractive penalty (the encoder Jacobian's squared Frobenius norm).
        norm: Normalisation before each hidden activation: "none", "batch" (BatchNorm) or "layer"
            (GroupNorm with one group). The code and the output are never normalised.
    """

    encoder: nn.Sequential
    decoder: _Decoder

    def __init__(
        self,
        input_shape: tuple[int, ...],
        code: int = 32,
        channels: Sequence[int] = (32, 64),
        activation: str = "elu",
        code_activation: str | None = None,
        loss: str = "mse",
        output: str = "auto",
        sparse: str | None = None,
        contractive: float = 0.0,
        norm: str = "none",
    ) -> None:
        super().__init__(input_shape, code, loss, output, sparse, contractive)
        if len(self.input_shape) != 3:
            raise AekitError(
                f"the conv model needs images (C, H, W); this data has samples of shape {self.input_shape}"
            )
        norm = check_norm(norm)
        chans = check_unit_list("channel count (--channels)", channels)
        if not chans:
            raise AekitError("the conv model needs at least one channel stage")
        c_in, h, w = self.input_shape
        check_parameter_count("conv", conv_parameters(self.input_shape, chans, self.code_size))
        sizes = [(h, w)]
        layers: list[nn.Module] = []
        prev = c_in
        for c in chans:
            layers += [nn.Conv2d(prev, c, 3, stride=2, padding=1), *norm_layer_2d(norm, c), make_activation(activation)]
            prev = c
            h, w = (h + 1) // 2, (w + 1) // 2
            sizes.append((h, w))
        code_act = code_activation or "linear"
        self.check_code_activation(code_act)
        layers += [nn.Flatten(), nn.Linear(prev * h * w, self.code_size)]
        if code_act != "linear":
            layers.append(make_activation(code_act))
        self.encoder = nn.Sequential(*layers)
        self.decoder = _Decoder(self.code_size, chans, sizes, c_in, activation, norm)
        self.options.update(channels=chans, activation=activation, code_activation=code_act, norm=norm)

    @classmethod
    def check_config(cls, options: dict[str, Any]) -> None:
        """The shared ranges and the normalisation, before any data is read."""
        super().check_config(options)
        if "norm" in options:
            check_norm(options["norm"])

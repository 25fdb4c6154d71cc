"""Convolutional autoencoder for images of any size and channel count.

Encoder: 3x3 convolutions with stride 2 (each halves height and width, rounding up), then a
linear map to a flat code. Decoder: a linear map back to the smallest feature map, then for each
stage nearest-neighbour upsampling *to the exact size the encoder saw* followed by a 3x3
convolution. Upsample + conv (Odena et al., "Deconvolution and checkerboard artifacts", 2016)
avoids the checkerboard pattern of transposed convolutions and reproduces odd sizes such as
28 -> 14 -> 7 -> 14 -> 28 or 100 -> 50 -> 25 -> 13 exactly. Where a stage doubles the size, the
upsampling and its convolution are computed together as one stride-2 transposed convolution with
the kernel they amount to (:func:`conv_after_doubling`): the same network and weights, less work.

ELU is the default activation: with ReLU and a sigmoid output under MSE, the network collapses
within the first epoch to an all-black output (sigmoid saturated, gradients gone); ELU trains
(mnist-mini, 3 epochs: 12.2 sse_per_image with ELU, stuck at 86.7 with ReLU).

``norm`` puts a normalisation before each hidden activation, as for the mlp family: "batch"
(BatchNorm) or "layer" (GroupNorm with one group, a LayerNorm over each map's channels and pixels);
never on the code or the output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from aekit.errors import AekitError
from aekit.models.base import Autoencoder, check_parameter_count, check_unit_list
from aekit.models.base import activation as make_activation
from aekit.models.mlp import check_norm, norm_layer
from aekit.registry import register_model


class _Decoder(nn.Module):
    def __init__(self, code: int, channels: list[int], sizes: list[tuple[int, int]], out_ch: int, act: str,
                 norm: str = "none"):
        super().__init__()
        self.sizes = sizes  # sizes[0] = input size ... sizes[-1] = smallest map
        self.start = (channels[-1], *sizes[-1])
        self.fc = nn.Linear(code, channels[-1] * sizes[-1][0] * sizes[-1][1])
        # the smallest map's norm, as the encoder's maps have theirs (empty, the identity, without one)
        self.fc_norm = nn.Sequential(*norm_layer(norm, channels[-1], maps=True))
        self.act = make_activation(act)
        outs = [*channels[::-1][1:], out_ch]  # channel count after each upsampling stage
        ins = channels[::-1]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, padding=1) for i, o in zip(ins, outs, strict=True))
        # one per hidden stage (the last convolution makes the output, never normalised)
        self.norms = nn.ModuleList(nn.Sequential(*norm_layer(norm, o, maps=True)) for o in outs[:-1])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc_norm(self.fc(z).reshape(z.shape[0], *self.start)))
        targets = self.sizes[:-1][::-1]
        for i, (conv, size) in enumerate(zip(self.convs, targets, strict=True)):
            h = upsample_conv(h, cast(nn.Conv2d, conv), size)  # as __init__ builds them
            if i < len(self.convs) - 1:
                h = self.act(self.norms[i](h))
        return h


def _fold_taps(w: torch.Tensor, dim: int) -> torch.Tensor:
    """The 3 taps of a 3x3 convolution (padding 1) on a nearest-neighbour doubled map along ``dim``, as
    the 4 taps of a stride-2 transposed convolution (padding 1) on the map before doubling: output row
    2i sees input rows i-1 (tap a) and i (taps b and c), output row 2i+1 rows i (a and b) and i+1 (c).
    Slices and sums of the weight, so no constant goes to the device and no step waits for it."""
    a, b, c = w.unbind(dim)
    return torch.stack((c, b + c, a + b, a), dim)


def conv_after_doubling(h: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(F.interpolate(h, scale_factor=2, mode="nearest"))`` for a 3x3, padding-1 ``conv``: the same
    values (to rounding), as one stride-2 transposed convolution whose 4x4 kernel sums the 3x3 one's
    weights that meet the same input pixel.

    Each output pixel still takes its 9 weights (so the result is free of a transposed convolution's
    checkerboard, as upsampling then convolving is), but the doubled map is never made and each input
    pixel is multiplied by 16 weights instead of 36: on one CPU thread a stage's step (forward and
    backward) takes from half to a sixth of the time, and under ``torch.compile`` there is no nearest
    neighbour gather or scatter left for inductor to write. The weights stay the 3x3 convolution's, so
    a saved run loads unchanged."""
    kernel = _fold_taps(_fold_taps(conv.weight, 2), 3).transpose(0, 1)  # (in, out, 4, 4)
    return F.conv_transpose2d(h, kernel, conv.bias, stride=2, padding=1)


def upsample_conv(h: torch.Tensor, conv: nn.Conv2d, size: tuple[int, int]) -> torch.Tensor:
    """``conv`` of ``h`` upsampled (nearest neighbour) to ``size``: by :func:`conv_after_doubling` where
    the size doubles (every stage of a 28x28 model), else upsampled first (an odd size, such as 4 -> 7,
    whose last row and column see the zero padding instead of a copy)."""
    hh, ww = h.shape[-2:]
    if tuple(size) == (2 * hh, 2 * ww):
        return conv_after_doubling(h, conv)
    return conv(F.interpolate(h, size=size, mode="nearest"))


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
        norm = check_norm(norm, contractive)
        chans = check_unit_list("channel count (--channels)", channels)
        if not chans:
            raise AekitError("the conv model needs at least one channel stage")
        c_in, h, w = self.input_shape
        check_parameter_count("conv", conv_parameters(self.input_shape, chans, self.code_size))
        sizes = [(h, w)]
        layers: list[nn.Module] = []
        prev = c_in
        for c in chans:
            layers += [nn.Conv2d(prev, c, 3, stride=2, padding=1), *norm_layer(norm, c, maps=True),
                       make_activation(activation)]
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
            check_norm(options["norm"], options.get("contractive", 0.0))

"""A classifier made of an autoencoder's encoder and a softmax layer (the lecture's pre-training use).

Dropout (Srivastava et al. 2014) may follow every hidden layer of the encoder; it holds no
parameters, but it shifts the module numbering, so a saved classifier is rebuilt the same way (from
the ``dropout`` in its config) before its weights are loaded.
"""

from __future__ import annotations

import torch
from torch import nn

from aekit.errors import AekitError

_NORM_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)


def _starts_layer(m: nn.Module | None) -> bool:
    """Whether ``m`` begins a new layer (or the encoder ends before it): a weighted map such as a
    linear or convolutional one, or the flattening before one. A normalisation belongs to the layer
    it follows, as does an activation."""
    if m is None or isinstance(m, nn.Flatten):
        return True
    return any(True for _ in m.parameters()) and not isinstance(m, _NORM_MODULES)


def with_dropout(encoder: nn.Sequential, p: float) -> nn.Sequential:
    """The encoder's modules with ``Dropout(p)`` on every layer's output (after its normalisation and
    activation, once per layer).

    Dropout holds no parameters, but it shifts the module numbering: a saved classifier is rebuilt
    the same way (from the ``dropout`` in its config) before its weights are loaded.
    """
    if not p:
        return encoder
    mods: list[nn.Module] = []
    for i, m in enumerate(encoder):
        mods.append(m)
        if not isinstance(m, nn.Flatten) and _starts_layer(encoder[i + 1] if i + 1 < len(encoder) else None):
            mods.append(nn.Dropout(p))
    return nn.Sequential(*mods)


class Classifier(nn.Module):
    """An encoder (``nn.Sequential`` from an autoencoder) with a linear softmax layer on top."""

    def __init__(self, encoder: nn.Module, code_size: int, n_classes: int, dropout: float = 0.0,
                 input_shape: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        if not 0 <= dropout < 1:
            raise AekitError(f"--dropout must lie in [0, 1), got {dropout}")
        self.encoder: nn.Module
        self.code_dropout: nn.Module = nn.Identity()
        if isinstance(encoder, nn.Sequential):
            self.encoder = with_dropout(encoder, dropout)
        else:  # one module (a VAE's posterior mean): the dropout acts on its code, before the softmax layer;
            # it holds no parameters, so the saved weights are the same either way
            self.encoder = encoder
            if dropout:
                self.code_dropout = nn.Dropout(dropout)
        self.head = nn.Linear(code_size, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, n_classes)`` of a batch of inputs."""
        return self.head(self.code_dropout(self.encoder(x)))


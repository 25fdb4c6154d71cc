"""A classifier made of an autoencoder's encoder and a softmax layer (the lecture's pre-training use).

Dropout (Srivastava et al. 2014) may follow every hidden layer of the encoder; it holds no
parameters, but it shifts the module numbering, so a saved classifier is rebuilt the same way (from
the ``dropout`` in its config) before its weights are loaded.
"""

from __future__ import annotations

import torch
from torch import nn

from aekit.errors import AekitError


def with_dropout(encoder: nn.Sequential, p: float) -> nn.Sequential:
    """The encoder's modules with ``Dropout(p)`` on every layer's output (after its activation).

    Dropout holds no parameters, but it shifts the module numbering: a saved classifier is rebuilt
    the same way (from the ``dropout`` in its config) before its weights are loaded.
    """
    if not p:
        return encoder
    mods: list[nn.Module] = []
    for i, m in enumerate(encoder):
        mods.append(m)
        nxt = encoder[i + 1] if i + 1 < len(encoder) else None
        has_weights = any(True for _ in m.parameters())
        activation_follows = nxt is not None and not any(True for _ in nxt.parameters()) \
            and not isinstance(nxt, nn.Flatten)
        if isinstance(m, nn.Flatten) or (has_weights and activation_follows):
            continue
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


"""The linear autoencoder: one linear (affine) encoder layer and one linear decoder layer.

Trained with squared error, its decoder spans the same subspace as the top-k principal
components of the data (Baldi & Hornik 1989; Bourlard & Kamp 1988), so it is PCA learnt by
gradient descent. It has no non-linearity at all, the output included.
"""

from __future__ import annotations

import torch
from torch import nn

from aekit.errors import AekitError
from aekit.models.base import Autoencoder, check_parameter_count
from aekit.models.penalties import contractive_one_layer
from aekit.registry import register_model


@register_model("linear", "one linear encoder layer and one linear decoder layer (spans PCA's subspace)")
class LinearAE(Autoencoder):
    """A linear autoencoder: one linear layer each way, which learns the subspace of PCA (Baldi & Hornik 1989).

    Args:
        input_shape: The shape of one sample; it is flattened.
        code: The code's width (PCA's number of components).
        loss: Reconstruction loss: "mse" or "bce".
        output: Must be "identity": the model is linear throughout.
        sparse: Sparsity on the code: "l1:LAMBDA", or None.
        contractive: Weight of the contractive penalty.
    """

    encoder: nn.Sequential
    decoder: nn.Linear

    def __init__(self, input_shape: tuple[int, ...], code: int = 30, loss: str = "mse", output: str = "identity",
                 sparse: str | None = None, contractive: float = 0.0):
        if output != "identity":
            raise AekitError("the linear model has no output non-linearity: output must be identity")
        super().__init__(input_shape, code, loss, output, sparse, contractive)
        self.check_code_activation("linear")
        check_parameter_count("linear", 2 * self.n_inputs * self.code_size + self.n_inputs + self.code_size)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(self.n_inputs, self.code_size))
        self.decoder = nn.Linear(self.code_size, self.n_inputs)

    def jacobian_penalty(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder Jacobian's squared Frobenius norm: its weight's, the same for every ``x``."""
        linear = self.encoder[1]
        assert isinstance(linear, nn.Linear)  # as __init__ builds it
        return contractive_one_layer(linear, nn.Identity(), x.flatten(1))

    def resolve_output(self, value_range: str) -> None:
        if self.loss_name == "bce":
            raise AekitError("the linear model's outputs are unbounded: use loss mse")

"""Autoencoder families. Importing this package registers each one with :mod:`aekit.registry`."""

from aekit.models import conv, linear, mlp, variational  # noqa: F401
from aekit.models.base import AEOutput, Autoencoder

__all__ = ["AEOutput", "Autoencoder"]

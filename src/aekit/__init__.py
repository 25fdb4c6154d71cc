"""aekit: autoencoders on PyTorch.

The public API is imported lazily (PEP 562), so ``import aekit`` and ``aekit --help`` stay fast
and do not import torch until a function that needs it is called.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.2.0"  # the one place: pyproject.toml reads it (dynamic version), CHANGELOG.md follows

_EXPORTS = {
    "train": "aekit.api",
    "load": "aekit.api",
    "evaluate": "aekit.api",
    "reconstruct": "aekit.api",
    "baseline_pca": "aekit.api",
    "encode": "aekit.api",
    "probe": "aekit.api",
    "latent_map": "aekit.api",
    "interpolate": "aekit.api",
    "inpaint": "aekit.api",
    "anomaly": "aekit.api",
    "export": "aekit.api",
    "denoise": "aekit.api",
    "pretrain": "aekit.api",
    "finetune": "aekit.api",
    "classify": "aekit.api",
    "nll": "aekit.api",
    "sample": "aekit.api",
    "traverse": "aekit.api",
    "Run": "aekit.run",
    "fit": "aekit.training.loop",
    "RunConfig": "aekit.config",
    "DataConfig": "aekit.config",
    "TrainConfig": "aekit.config",
    "load_config": "aekit.config",
    "load_dataset": "aekit.data.sources",
    "list_datasets": "aekit.data.sources",
    "Dataset": "aekit.data.dataset",
    "read_idx": "aekit.data.idx",
    "create_model": "aekit.registry",
    "list_models": "aekit.registry",
    "register_model": "aekit.registry",
    "Autoencoder": "aekit.models.base",
    "AEOutput": "aekit.models.base",
    "PCA": "aekit.baselines",
    "AekitError": "aekit.errors",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'aekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


class _Package(types.ModuleType):
    """``aekit.export`` is the function :func:`aekit.api.export`, and ``aekit/export.py`` a module of
    the same name: importing that module would set the package attribute to the module (the import
    system does so for every submodule) and ``aekit.export(...)`` would stop working. The module
    stays importable (``from aekit.export import ...`` reads ``sys.modules``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "export" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

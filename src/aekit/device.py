"""Choosing where tensors live: ``auto`` picks CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import torch

from aekit.errors import AekitError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise AekitError("--device cuda: no CUDA GPU is available here; use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise AekitError("--device mps: Apple's MPS backend is not available here; use --device cpu or auto")
    if name not in ("cpu", "cuda", "mps"):
        raise AekitError(f"unknown device {name!r}; use auto, cpu, cuda or mps")
    return torch.device(name)

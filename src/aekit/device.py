"""Choosing where tensors live: ``auto`` picks ``$AEKIT_DEVICE`` where it is set, else CUDA, then
Apple's MPS, then the CPU (so ``AEKIT_DEVICE=cpu`` keeps a whole session, or a test suite, off the GPU)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from aekit.errors import AekitError


def cpu_has_fast_bf16() -> bool:
    """True where the CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def precision_name(dtype: torch.dtype | None) -> str:
    """The ``--precision`` word for an autocast dtype (None: plain fp32)."""
    names: dict[torch.dtype | None, str] = {torch.bfloat16: "bf16", torch.float16: "fp16"}
    return names.get(dtype, "fp32")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype to autocast the forward pass to, or None for plain fp32."""
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
        return torch.bfloat16 if device.type == "cpu" and cpu_has_fast_bf16() else None
    if precision == "fp16" and device.type == "cpu":
        raise AekitError("--precision fp16 needs a GPU; on the CPU use bf16 (or auto)")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def fixed_threads() -> int | None:
    """The thread count the user fixed: ``AEKIT_THREADS=N``, else torch's own count where
    ``OMP_NUM_THREADS`` is set; None for the automatic choice."""
    raw = os.environ.get("AEKIT_THREADS", "").strip()
    if raw not in ("", "auto"):
        if not raw.isdigit() or not 1 <= int(raw) <= 4096:
            raise AekitError(f"AEKIT_THREADS={raw[:20]!r} is no thread count; use auto or a whole number from 1")
        return int(raw)
    return torch.get_num_threads() if os.environ.get("OMP_NUM_THREADS", "").strip() else None


def resolve_device(name: str = "auto") -> torch.device:
    """The device a name picks. The environment's settings of the compute (``AEKIT_DEVICE``,
    ``AEKIT_THREADS``) are checked here, before a command writes anything."""
    fixed_threads()
    chosen = os.environ.get("AEKIT_DEVICE", "").strip()
    if name == "auto" and chosen not in ("", "auto"):  # unset or empty: choose as below
        if chosen not in ("cpu", "cuda", "mps"):
            raise AekitError(f"AEKIT_DEVICE={chosen!r:.40} is no device; use auto, cpu, cuda or mps")
        try:
            return resolve_device(chosen)
        except AekitError as exc:  # say where the device came from: no --device was given
            raise AekitError(f"AEKIT_DEVICE={chosen}: {str(exc).split(': ', 1)[-1]}") from None
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

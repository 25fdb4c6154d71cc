"""``--deterministic``: PyTorch's deterministic algorithms, for runs that must repeat bit for bit.

On the CPU aekit's runs repeat exactly for one seed and one thread count (one thread order per
kernel and every random draw from seeded generators; ``tests/test_reproducible.py``). The automatic
thread count (aekit/cpu_share.py) follows the machine's load, and a sum split over other threads
can round differently; this keeps the count fixed, so a CPU run repeats bit for bit on a busy machine too.
On CUDA some kernels (atomic adds in backward passes, cuDNN's autotuned convolutions, cuBLAS's
split reductions) give results that vary from run to run; this switches them to their deterministic
versions, slower, and makes PyTorch raise where an operation has none.
"""

from __future__ import annotations

import os

import torch


def make_deterministic() -> None:
    """Set the process-wide flags (see the PyTorch "Reproducibility" notes)."""
    # cuBLAS needs a fixed workspace to reduce in a fixed order; read when the first handle is made.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False  # autotuning picks kernels by timing, which varies

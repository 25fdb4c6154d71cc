"""Data-parallel training on PyTorch's own engine: torchrun + DistributedDataParallel.

``torchrun --nproc-per-node N -m aekit train ...`` (or ``aekit train --nproc N``) starts N
processes; each one runs the same :func:`aekit.training.loop.fit`. Every process draws the same
permutation of the training set each epoch (same seed), gathers the same global batch and keeps
its own slice of it (rank r takes rows r, r + N, ...), so N processes with a global batch B take
the same steps as one process with batch B: DistributedDataParallel averages the gradients.
Only rank 0 writes the run directory, logs and pictures; every rank reads a checkpoint to resume.

The backend is gloo on CPU and nccl on CUDA. Multi-node runs use torchrun's rendezvous flags
(``--nnodes``, ``--node-rank``, ``--rdzv-endpoint``); see docs/guides/multiprocess.md.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from aekit.errors import AekitError


def env_world_size() -> int:
    """The number of processes torchrun started (1 outside torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def env_rank() -> int:
    """This process's rank as torchrun set it (0 outside torchrun), known before the group is joined."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def run_dir(out: Any) -> Path | None:
    """The run folder of a training process; every process of a distributed run must be told it."""
    if out is None and env_world_size() > 1:
        raise AekitError("distributed training needs --out DIR (every process must name the same run directory)")
    return Path(out) if out is not None else None


def setup_and_agree(device: torch.device, resuming: bool) -> bool:
    """Join the group, then take rank 0's decision to resume (only rank 0 inspects the run folder)."""
    setup(device)
    return bool(broadcast_float(float(resuming), device))


def setup(device: torch.device) -> tuple[int, int]:
    """Join the process group torchrun prepared, once; returns (rank, world size)."""
    import torch.distributed as dist

    if env_world_size() <= 1:
        return 0, 1
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def rank_and_size() -> tuple[int, int]:
    """(rank, world size) in the joined process group; outside one, (the rank torchrun gave this
    process, 1). A process that has left its group (:func:`finish`) is still not rank 0, so it
    neither writes the run nor prints the summary, and has no one left to exchange with."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return (env_rank() if env_world_size() > 1 else 0), 1


def is_main() -> bool:
    """Whether this process is rank 0 (the one that writes the run folder); True without torchrun."""
    return rank_and_size()[0] == 0


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over the processes (itself when there is one process)."""
    import torch.distributed as dist

    if rank_and_size()[1] > 1:
        dist.all_reduce(t)
    return t


def broadcast_float(value: float, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank (``value`` itself with one process)."""
    import torch.distributed as dist

    if rank_and_size()[1] == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def finish() -> None:
    """Leave the process group (after the last collective of a run)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        # The run's DistributedDataParallel wrapper still holds the group (and its gloo threads) if
        # a reference cycle keeps the trainer alive; freed in the interpreter's teardown instead, a
        # process that exits right after this (rank 1, which prints and writes nothing) dies of
        # SIGABRT now and then ("terminate called without an active exception"). Free it now.
        gc.collect()


def launch(nproc: int, argv: list[str]) -> int:
    """``aekit train --nproc N ...``: run ``torchrun --standalone --nproc-per-node N -m aekit train ...``."""
    if nproc < 1:
        raise AekitError(f"--nproc must be at least 1, got {nproc}")
    if env_world_size() > 1:
        raise AekitError("--nproc inside a torchrun process: start either torchrun or --nproc, not both")
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:  # share the cores instead of every process taking all of them
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "aekit", *argv]
    return subprocess.call(cmd, env=env)

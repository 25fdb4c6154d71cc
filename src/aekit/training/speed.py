"""How the training step runs fast: ``--compile``, ``--precision auto``, and no host syncs.

``--compile on`` puts the step's forward and backward through ``torch.compile``. On the CPU,
inductor fuses the elementwise work around the matrix products into generated C++; on CUDA,
``mode="reduce-overhead"`` also records the step's kernels as a CUDA graph and replays it with one
launch, which is where small models lose their time (about 60 launches a step for the deep
autoencoder). Shapes are static (``dynamic=False``): the last, shorter batch of an epoch gets a
graph of its own instead of making every graph shape-generic. The optimizer step stays outside the
graph: the fused Adam kernel already updates every parameter in one pass.

On the CPU, training keeps freed memory for reuse (:func:`keep_freed_memory`): glibc otherwise
returns every large tensor's pages to the kernel when it is freed and page-faults them back on the
next step: the conv recipe's network trained 1.9 to 2.4 times slower for it.

Where the compiler is missing (no C++ compiler for inductor on the CPU, a Python that dynamo does
not support) or fails on this model, the step runs eagerly and one line says so; the run goes on.

``--precision auto`` picks bf16 only where it is faster: on a CUDA card with bf16 (or a CPU with
native bf16 matrix units) it times a few forward-backward passes of a copy of the model in each
precision on a real batch, and keeps the faster; elsewhere it is fp32 without measuring.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import functools
import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any, cast

import torch

from aekit.device import cpu_has_fast_bf16
from aekit.progress import say

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# Blocks up to this size come from the heap and are kept for reuse. Some glibc versions refuse
# more than 32 MB, others take more: the larger is tried first, as a conv step's activation maps
# pass 32 MB above a batch of about 330 (32 channels of 28x28 floats each).
MMAP_THRESHOLDS = (128 << 20, 32 << 20)
TRIM_THRESHOLD = 256 << 20


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks of up to 128 MB (32 MB on an older glibc) for reuse,
    and give heap memory back to the kernel only once 256 MB lie free at its top. Returns whether
    it did.

    By default glibc gives memory back eagerly: blocks above its (adaptive) mmap threshold are
    unmapped when freed, and the heap's top is trimmed as soon as a little lies free there. A
    training step frees and reallocates the same activations and gradients every step, so a step
    could page-fault (and the kernel zero) them afresh each time. For the conv recipe's network
    (25 MB activation maps at batch 256) aekit's loop ran at 1,813 to 2,198 samples/s with glibc's
    defaults and 4,239 to 4,379 with these settings (1.9 to 2.4 times as fast) on a 2-core EPYC
    (``GLIBC_TUNABLES= python benchmarks/throughput.py --models conv --precisions fp32``, against the
    same without the variable); the deep mlp's step did not change measurably. The cost is that
    the process's RSS stays near its peak. Process-wide and done once; nothing is changed where the
    user has set glibc's own malloc variables (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``
    or ``GLIBC_TUNABLES``, even empty) or ``AEKIT_KEEP_FREED_MEMORY=0``, or off Linux with glibc.
    """
    glibc_vars = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
    if (not sys.platform.startswith("linux") or any(v in os.environ for v in glibc_vars)
            or os.environ.get("AEKIT_KEEP_FREED_MEMORY", "").strip() == "0"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (musl's mallopt does nothing)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # The trim threshold only once the mmap one is set: alone, it would switch glibc's adaptive
    # thresholds off and leave freed blocks to be unmapped at the default 128 KB.
    if not any(mallopt(M_MMAP_THRESHOLD, value) for value in MMAP_THRESHOLDS):
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def compiler_missing(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot work here, or None where it should."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    try:
        import torch._dynamo as dynamo

        if not dynamo.is_dynamo_supported():
            return "torch.compile does not support this Python version"
    except Exception as exc:  # a broken or partial install
        return f"torch.compile cannot load ({type(exc).__name__})"
    if device.type == "cpu":
        cxx = os.environ.get("CXX") or "g++"
        if shutil.which(cxx) is None:
            return f"inductor needs a C++ compiler on the CPU and there is no {cxx!r} (set CXX to one)"
    return None


def compile_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` through ``torch.compile``: CUDA graphs on CUDA, inductor's default elsewhere."""
    mode = "reduce-overhead" if device.type == "cuda" else None
    # cast: torch.compile of a module returns an OptimizedModule (an nn.Module), which its annotation,
    # a bare callable, does not say
    return cast(torch.nn.Module, torch.compile(model, mode=mode, dynamic=False))


class StepRunner:
    """Runs the forward-backward of a step on the compiled model, falling back to the eager one.

    Compilation happens on the first call with each batch shape, so that is where a missing op
    or a compiler failure shows: only there is an error taken for the compiler's. The step is then
    redone eagerly (no optimizer step has been taken, and the gradients are cleared); if that
    works, one line says so and every later step is eager, and if it fails too, its own error is
    the run's. Dynamo's recompile limit (8 graphs for one function in a process: a sweep of
    models reaches it) is made an error, so that it falls back here instead of silently.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, enabled: bool, progress: bool) -> None:
        self.eager = self.model = model
        self.device, self.progress = device, progress
        self.compiled = False
        self.shapes: set[tuple[int, ...]] = set()  # batch shapes whose compiled step has run
        if enabled:
            reason = compiler_missing(device) or double_backward(model)
            if reason is not None:
                say(f"--compile: {reason}; training eagerly", True)
            else:
                say("--compile: compiling the training step (the first steps of each batch size take longer)",
                    progress)
                self.model, self.compiled = compile_model(model, device), True

    def run(self, fn: Callable[[torch.nn.Module], torch.Tensor], zero_grad: Callable[[], None],
            shape: tuple[int, ...]) -> torch.Tensor:
        """``fn(model)`` does forward and backward of a batch of ``shape`` and returns the loss."""
        if not self.compiled:
            return fn(self.model)
        if self.device.type == "cuda":  # a new step: the graphs' outputs of the last one may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        if shape in self.shapes:
            return fn(self.model)
        try:
            with strict_recompiles():
                loss = fn(self.model)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as exc:  # the first call with this shape: compiling it failed, or the step is wrong
            zero_grad()
            loss = fn(self.eager)  # a real error in the step raises here, eagerly, as itself
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            say(f"--compile: torch.compile failed on this model ({type(exc).__name__}: {first}); "
                "training eagerly", True)
            self.model, self.compiled = self.eager, False
            return loss
        self.shapes.add(shape)
        return loss


def strict_recompiles() -> Any:
    """While a new batch shape compiles: hitting dynamo's recompile limit is an error (caught by
    :meth:`StepRunner.run`), not a silent switch to eager code. Scoped, so that the setting of the
    process (other code may compile too) is left as it was."""
    import torch._dynamo.config as dynamo_config

    if hasattr(dynamo_config, "fail_on_recompile_limit_hit"):
        return dynamo_config.patch(fail_on_recompile_limit_hit=True)
    return contextlib.nullcontext()


def double_backward(model: torch.nn.Module) -> str | None:
    """Why the step of ``model`` cannot be compiled: the contractive penalty differentiates the
    encoder inside the loss (a double backward, which compiled graphs do not support)."""
    if getattr(model, "contractive", 0) or getattr(getattr(model, "module", None), "contractive", 0):
        return "the contractive penalty differentiates twice, which compiled steps cannot"
    return None


class LossReadout:
    """The running training loss for the progress bar without stopping the device.

    On CUDA the sum is copied to pinned host memory asynchronously and shown once the copy has
    landed (an event says when), so the bar lags a few steps and the step queue never drains;
    until the epoch's first copy lands there is no figure (None). On the CPU reading a tensor
    costs no synchronisation and the value is read directly.
    """

    def __init__(self, device: torch.device) -> None:
        self.async_copy = device.type == "cuda"
        self.value: float | None = None
        if self.async_copy:
            self.host = torch.zeros((), dtype=torch.float32).pin_memory()
            self.event: Any = None

    def read(self, loss_sum: torch.Tensor, done: int) -> float | None:
        if not self.async_copy:
            return float(loss_sum) / max(done, 1)
        if self.event is not None and self.event.query():
            self.value, self.event = float(self.host), None  # a host tensor: no device sync
        if self.event is None:
            self.host.copy_(loss_sum.detach() / max(done, 1), non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record(torch.cuda.current_stream(loss_sum.device))
        return self.value

    def new_epoch(self) -> None:
        """Forget the last epoch's figure (a copy still under way is let land and ignored)."""
        if self.async_copy and self.event is not None:
            self.event.synchronize()  # at an epoch's end the device is synchronised anyway
        self.value, self.event = None, None


def choose_amp(candidate: torch.dtype | None, model: torch.nn.Module, batch: Callable[[], tuple[Any, ...]],
               loss: Callable[..., torch.Tensor], device: torch.device, progress: bool) -> torch.dtype | None:
    """``--precision auto``: ``candidate`` (bf16, from :func:`aekit.device.autocast_dtype`) where
    timing finds it faster than fp32, else None (see the module docstring). ``batch()`` gives the
    arguments of ``loss(model, *arguments)`` (input, target and labels)."""
    if candidate is None or (device.type == "cpu" and not cpu_has_fast_bf16()):
        return None
    times = {dt: time_passes(model, batch, loss, device, dt) for dt in (None, candidate)}
    pick = candidate if times[candidate] < times[None] else None
    say(f"--precision auto: fp32 {1e3 * times[None]:.2f} ms, bf16 {1e3 * times[candidate]:.2f} ms a "
        f"forward-backward; training in {'bf16' if pick else 'fp32'}", progress)
    return pick


def time_passes(model: torch.nn.Module, batch: Callable[[], tuple[Any, ...]], loss: Callable[..., torch.Tensor],
                device: torch.device, dtype: torch.dtype | None, repeat: int = 10) -> float:
    """Median seconds of one forward-backward of a copy of ``model`` (the run's own RNG untouched)."""
    probe = copy.deepcopy(model)
    args = batch()
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    seconds = []
    for i in range(3 + repeat):
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = loss(probe, *args)
        out.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 3:
            seconds.append(time.perf_counter() - t)
    torch.set_rng_state(cpu_rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state(cuda_rng, device)
    return sorted(seconds)[len(seconds) // 2]

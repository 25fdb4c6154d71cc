"""How the training step runs fast: ``--compile``, ``--precision auto``, and no host syncs.

``--compile on`` puts the step's forward and backward through ``torch.compile``. On the CPU,
inductor fuses the elementwise work around the matrix products into generated C++; on CUDA,
``mode="reduce-overhead"`` also records the step's kernels as a CUDA graph and replays it with one
launch, which is where small models lose their time (about 60 launches a step for the deep
autoencoder). Shapes are static (``dynamic=False``): the last, shorter batch of an epoch gets a
graph of its own instead of making every graph shape-generic. The optimizer step stays outside the
graph: the fused Adam kernel already updates every parameter in one pass.

Where the compiler is missing (no C++ compiler for inductor on the CPU, a Python that dynamo does
not support) or fails on this model, the step runs eagerly and one line says so; the run goes on.

``--precision auto`` picks bf16 only where it is faster: on a CUDA card with bf16 (or a CPU with
native bf16 matrix units) it times a few forward-backward passes of a copy of the model in each
precision on a real batch, and keeps the faster; elsewhere it is fp32 without measuring.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import torch

from aekit.device import cpu_has_fast_bf16
from aekit.progress import say


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
    return torch.compile(model, mode=mode, dynamic=False)


class StepRunner:
    """Runs the forward-backward of a step on the compiled model, falling back to the eager one.

    Compilation happens on the first call with each batch shape, so that is where a missing op
    or a compiler failure shows; the step is then redone eagerly (no optimizer step has been
    taken, and the gradients are cleared) and every later step is eager.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, enabled: bool, progress: bool) -> None:
        self.eager = self.model = model
        self.device, self.progress = device, progress
        self.compiled = False
        if enabled:
            reason = compiler_missing(device)
            if reason is not None:
                say(f"--compile: {reason}; training eagerly", True)
            else:
                say("--compile: compiling the training step (the first steps of each batch size take longer)",
                    progress)
                self.model, self.compiled = compile_model(model, device), True

    def run(self, fn: Callable[[torch.nn.Module], torch.Tensor], zero_grad: Callable[[], None]) -> torch.Tensor:
        """``fn(model)`` does forward and backward and returns the loss."""
        if not self.compiled:
            return fn(self.model)
        if self.device.type == "cuda":  # a new step: the graphs' outputs of the last one may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        try:
            return fn(self.model)
        except Exception as exc:  # any compiler failure; a real error happens again eagerly
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            say(f"--compile: torch.compile failed on this model ({type(exc).__name__}: {first}); "
                "training eagerly", True)
            self.model, self.compiled = self.eager, False
            zero_grad()
            return fn(self.model)


class LossReadout:
    """The running training loss for the progress bar without stopping the device.

    On CUDA the sum is copied to pinned host memory asynchronously and shown once the copy has
    landed (an event says when), so the bar lags a few steps and the step queue never drains. On
    the CPU reading a tensor costs no synchronisation and the value is read directly.
    """

    def __init__(self, device: torch.device) -> None:
        self.async_copy = device.type == "cuda"
        self.value = float("nan")
        if self.async_copy:
            self.host = torch.zeros((), dtype=torch.float32).pin_memory()
            self.event: Any = None

    def read(self, loss_sum: torch.Tensor, done: int) -> float:
        if not self.async_copy:
            return float(loss_sum) / max(done, 1)
        if self.event is not None and self.event.query():
            self.value, self.event = float(self.host), None  # a host tensor: no device sync
        if self.event is None:
            self.host.copy_(loss_sum.detach() / max(done, 1), non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
        return self.value


def choose_amp(precision_dtype: torch.dtype | None, precision: str, model: torch.nn.Module,
               batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
               loss: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
               device: torch.device, progress: bool) -> torch.dtype | None:
    """The autocast dtype to train in: ``precision_dtype`` as asked, except that ``auto`` with bf16
    available is decided by timing (see the module docstring)."""
    if precision != "auto" or precision_dtype is None:
        return precision_dtype
    if device.type == "cpu" and not cpu_has_fast_bf16():
        return None
    times = {dt: time_passes(model, batch, loss, device, dt) for dt in (None, precision_dtype)}
    pick = precision_dtype if times[precision_dtype] < times[None] else None
    say(f"--precision auto: fp32 {1e3 * times[None]:.2f} ms, bf16 {1e3 * times[precision_dtype]:.2f} ms a "
        f"forward-backward; training in {'bf16' if pick else 'fp32'}", progress)
    return pick


def time_passes(model: torch.nn.Module, batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                loss: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
                device: torch.device, dtype: torch.dtype | None, repeat: int = 10) -> float:
    """Median seconds of one forward-backward of a copy of ``model`` (the run's own RNG untouched)."""
    probe = copy.deepcopy(model)
    inp, target = batch()
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    seconds = []
    for i in range(3 + repeat):
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = loss(probe, inp, target)
        out.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 3:
            seconds.append(time.perf_counter() - t)
    torch.set_rng_state(cpu_rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state(cuda_rng, device)
    return sorted(seconds)[len(seconds) // 2]

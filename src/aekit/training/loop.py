"""The one training loop, for autoencoders and for classifiers built from them.

Per step, in the order a reader expects: batch -> corrupt (an :class:`Objective`'s ``inputs``) ->
forward -> backward -> clip -> step -> log. Validation after every epoch; the best checkpoint
(lowest validation loss) and the last one (weights, optimizer, RNG and loop state, for
``--resume``) are kept; with ``[train] ema`` the weights validated and kept are a moving average of
the weights (``training/averaging.py``). What is trained for -- reconstruction, or labels -- is the objective's
business; the loop never branches on a model's kind. Models join in through hooks every
autoencoder has: ``begin_epoch(epoch, epochs)`` at the start of every epoch (a VAE's KL warm-up),
and ``takes_labels``, with which a model conditioned on labels gets each batch's labels, in
training and in validation alike. A NaN or infinite loss stops the run in one line naming the epoch
and the step, before any checkpoint is written from the spoiled weights.

Batches are index slices of one tensor holding the whole split (uint8 images are converted to
float per batch), not a per-sample DataLoader. The loss is summed on the device and read back
only every ``log_every`` steps, so small models are not slowed by a host sync per step.

Preemption: the last checkpoint is also written every ``checkpoint_every`` steps and every
``checkpoint_minutes``, and on SIGTERM or the first SIGINT (then the process exits 143 / 130). A
checkpoint taken in the middle of an epoch records the permutation generator's state at the
epoch's start and the step reached, so ``--resume`` replays the same batches and random draws: the
final weights equal an uninterrupted run's.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, cast

import numpy as np
import torch

from aekit.config import TrainConfig
from aekit.cpu_share import CpuShare
from aekit.data import mapped
from aekit.data.dataset import Split
from aekit.device import autocast_dtype, precision_name
from aekit.errors import AekitError, TrainingStopped
from aekit.io import atomic_write_text
from aekit.metrics import ReconMeter
from aekit.models.base import Autoencoder
from aekit.progress import Progress, say
from aekit.training import checkpoint as ckpt
from aekit.training import distributed
from aekit.training.averaging import WeightAverage
from aekit.training.batches import as_batch, mean_image, pieces_of, random_shift, take_rows, to_tensor  # noqa: F401
from aekit.training.infill import Corruption, corruption_for
from aekit.training.reproducible import make_deterministic
from aekit.training.speed import LossReadout, StepRunner, choose_amp, keep_freed_memory
from aekit.training.tensorboard import epoch_callbacks

HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "val_mse", "val_sse_per_image", "val_accuracy", "lr",
                  "seconds", "samples_per_s")


@dataclass
class FitResult:
    """What :func:`fit` returns: the per-epoch history and the best epoch.

    Attributes:
        history: One dict per epoch, the rows of ``metrics.csv`` (``HISTORY_FIELDS``).
        best_val_loss: The lowest validation loss (inf without a validation split).
        best_epoch: The epoch it was reached at, counted from 1.
        steps: Optimizer steps taken.
        seconds: Time spent training.
        stopped_early: Whether ``patience`` ended the run.
        precision: What the forward pass ran in.
        compiled: Whether the step ran through ``torch.compile`` to the end.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_loss: float = math.inf
    best_epoch: int = 0
    steps: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    precision: str = "fp32"  # what the forward pass ran in (``--precision auto`` decides at the start)
    compiled: bool = False  # whether the step ran through torch.compile to the end


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD with momentum, using the fused kernels where torch has them.

    The fused step updates each parameter in one pass over memory instead of one pass per
    elementwise op: on the CPU it cuts Adam's step for the 2.8M-parameter deep autoencoder from
    about 10 ms to 1.6 ms, a fifth of the whole training step.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for p in params)
    kw: dict[str, Any]
    if cfg.optimizer == "sgd":
        kw = {"lr": cfg.lr, "momentum": cfg.momentum, "weight_decay": cfg.weight_decay}
        cls: type[torch.optim.SGD | torch.optim.Adam] = torch.optim.SGD
    else:
        kw = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
        cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    if fused:
        try:
            return cls(params, fused=True, **kw)
        except (RuntimeError, TypeError):  # an older torch or a device without fused kernels
            pass
    return cls(params, **kw)


def lr_at(cfg: TrainConfig, epoch: int, start: int = 0, length: int | None = None) -> float:
    """Learning rate for a 0-based epoch of a schedule that began at epoch ``start`` and spans
    ``length`` epochs (default: the whole run, ``cfg.epochs``); a pure function of these.

    Past its last epoch the schedule's last rate holds: a cosine continued beyond its horizon
    would rise again, so a resumed run given more epochs than its schedule spans never sees its
    learning rate go back up.
    """
    n = cfg.epochs if length is None else length
    k = min(max(epoch - start, 0), n - 1)
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * k / n))
    if cfg.schedule == "step":
        return cfg.lr * (0.1 ** ((k >= n // 2) + (k >= (3 * n) // 4)))
    return cfg.lr


@torch.no_grad()
def evaluate_tensor(model: torch.nn.Module, x: torch.Tensor | np.ndarray, batch_size: int,
                    unit_range: bool, labels: np.ndarray | None = None) -> dict[str, Any]:
    """Mean model loss and reconstruction metrics of ``model`` on a whole split (a tensor or a memory
    map); ``labels``, one per row, go to a model conditioned on them."""
    was_training = model.training
    model.eval()
    meter, loss_sum, start = ReconMeter(unit_range), 0.0, 0
    device = next(model.parameters()).device
    for xb in pieces_of(x, batch_size, device):
        if labels is None:
            out = model(xb)
        else:
            out = model(xb, labels=torch.from_numpy(labels[start : start + len(xb)]).to(device))
        start += len(xb)
        loss_sum += float(out.loss) * len(xb)
        meter.update(xb.cpu().numpy(), out.recon.float().cpu().numpy())
    model.train(was_training)
    return {"loss": loss_sum / max(len(x), 1), **meter.result()}


class Objective:
    """What the loop trains for. This one: reconstruct the clean batch from its corrupted copy (given
    the batch's labels, for a model conditioned on them). With ``[train] shift = S`` each training
    image first moves by up to S pixels (input and target alike), afresh for every batch."""

    min_steps_per_epoch = 1  # small labelled sets are cycled to make epochs of at least this many steps
    uses_labels = False  # whether the objective itself needs the batches' labels (``yb`` in :meth:`inputs`)

    def __init__(self, corruption: Corruption | None = None) -> None:
        self.corruption = corruption
        self.shift = 0

    def wants_labels(self, model: torch.nn.Module) -> bool:
        """Whether batches carry their labels: for the objective, or for a model that takes them."""
        return self.uses_labels or bool(getattr(model, "takes_labels", False))

    def begin_epoch(self, model: torch.nn.Module, epoch: int, epochs: int) -> None:
        """The model's per-epoch hook (:meth:`aekit.models.base.Autoencoder.begin_epoch`)."""
        _hooked(model).begin_epoch(epoch, epochs)

    def prepare(self, model: torch.nn.Module, cfg: TrainConfig, x_train: Any, device: torch.device) -> None:
        if self.corruption is None:
            self.corruption = corruption_for(cfg.noise, clip=model.output == "sigmoid")
        self.corruption.prepare(x_train, device)
        self.shift = cfg.shift
        check_shift(self.shift, x_train)

    def inputs(self, model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor | None, step: int,
               gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(model input, target) of one batch; ``yb`` (None unless :meth:`wants_labels`) are its labels."""
        if self.corruption is None:
            raise RuntimeError("prepare() chooses the corruption before the first batch")
        if self.shift:
            xb = random_shift(xb, self.shift, gen)
        return self.corruption.pair(_hooked(model), xb, step, gen, yb)

    def loss(self, model: torch.nn.Module, inp: torch.Tensor, target: torch.Tensor,
             labels: torch.Tensor | None = None) -> torch.Tensor:
        """The batch's loss; ``labels`` (None unless :meth:`wants_labels`) go to the model."""
        if labels is None:
            return model(inp, target=target).loss
        return model(inp, target=target, labels=labels).loss

    def validate(self, model: torch.nn.Module, x: Any, y: Any, cfg: TrainConfig) -> dict[str, Any]:
        """Figures for the history row; ``val_loss`` decides the best epoch and early stopping."""
        m = evaluate_tensor(model, x, cfg.eval_batch_size, model.output == "sigmoid",
                            y if self.wants_labels(model) else None)
        return {"val_loss": m["loss"], "val_mse": m["mse"], "val_sse_per_image": m["sse_per_image"]}


def check_shift(shift: int, x_train: Any) -> None:
    """Shifts move images: refuse them on rows, for training and fine-tuning alike."""
    if shift and x_train.ndim != 4:
        raise AekitError("--shift needs image data (N, C, H, W); this training data is rows")


def _hooked(model: torch.nn.Module) -> Autoencoder:
    """The model as what it is to the default objective: an autoencoder, or any module with its
    hooks (duck-typed, so no isinstance check), which nn.Module's attribute typing cannot express."""
    return cast(Autoencoder, model)


class _Stop:
    """SIGTERM and the first SIGINT ask for a checkpoint and a clean stop; a second SIGINT stops at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


class Trainer:
    """One call of :func:`fit`: the model, its optimizer, the data as tensors and the loop state."""

    def __init__(self, model: torch.nn.Module, train: Split, val: Split | None, cfg: TrainConfig,
                 out: Path | None, device: torch.device, objective: Objective, progress: bool | None) -> None:
        self.model, self.cfg, self.out, self.device, self.obj = model, cfg, out, device, objective
        self.rank, self.world = distributed.rank_and_size()
        if cfg.deterministic:
            make_deterministic()
        self.writes = out is not None and self.rank == 0  # only rank 0 writes; every rank reads to resume
        self.progress = progress is not False and self.rank == 0
        model.to(device).train()
        if device.type == "cpu":
            keep_freed_memory()  # a step frees and reallocates the same tensors; see training/speed.py
        # A memory-mapped split stays on disk: batches are read from the file (aekit.data.mapped.RowReader).
        self.x = mapped.RowReader(train.x) if mapped.is_mapped(train.x) else to_tensor(train.x, device)
        self.n_rows = len(train.x)
        # The schedule of every epoch: batches of `batch` rows, `per_pass` of them in one pass over
        # the data, `epoch_steps` in an epoch (several passes where the objective wants more steps).
        self.batch = min(cfg.batch_size, self.n_rows)
        self.per_pass = math.ceil(self.n_rows / self.batch)
        if self.n_rows > 1 and self.n_rows % self.batch == 1:
            # A last batch of one row would break BatchNorm (no spread to normalise by) and gives
            # a one-sample step in any case: that epoch's last row sits this pass out instead.
            self.per_pass -= 1
        self.epoch_steps = max(self.per_pass, objective.min_steps_per_epoch)
        if objective.wants_labels(model) and train.y is None:
            raise AekitError("this model is conditioned on labels (a conditional VAE), and the training data has none")
        # (`train.y is not None` for the type checker: a split without labels was refused above)
        wants = objective.wants_labels(model)
        self.y = to_tensor(train.y.astype(np.int64), device) if wants and train.y is not None else None
        self.x_val = self.y_val = None
        if val is not None and len(val):
            self.x_val = val.x if mapped.is_mapped(val.x) else to_tensor(val.x, device)
            self.y_val = val.y
        objective.prepare(model, cfg, train.x if mapped.is_mapped(train.x) else self.x, device)
        # Convolutions on a GPU run fastest on NHWC tensors (tensor cores): weights and batches go channels-last.
        self.channels_last = device.type == "cuda" and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
        if self.channels_last:
            # nn.Module.to takes memory_format (as its docstring says); torch's overloads of it leave it out
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.opt = make_optimizer(model, cfg)
        # With [train] ema, the averaged weights are the ones validated and kept (training/averaging.py).
        self.ema = WeightAverage(model, cfg.ema) if cfg.ema else None
        self.gens = {"perm": torch.Generator().manual_seed(cfg.seed),
                     "noise": torch.Generator(device).manual_seed(cfg.seed + 1)}
        self.step_model: torch.nn.Module = model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.step_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                      else None)
        # With --precision auto this is the candidate (bf16, or None where there is none), decided in
        # run(): by timing, or by what a resumed run decided when it started.
        self.amp = autocast_dtype(cfg.precision, device)
        self.amp_decided = cfg.precision != "auto"
        # fp16 needs loss scaling to keep small gradients from flushing to zero; bf16 has fp32's range.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp == torch.float16)
        self.res = FitResult()
        self.runner = StepRunner(self.step_model, device, cfg.compile == "on", self.progress)
        self.readout = LossReadout(device)
        self.epoch = self.step_in_epoch = self.bad_epochs = 0
        # The learning-rate schedule: its first epoch and its length. A resumed run keeps the one
        # it saved (its horizon), unless cfg.schedule_restart starts a new one (see reschedule).
        self.schedule = {"start": 0, "epochs": cfg.epochs}
        self.loss_sum, self.done = torch.zeros((), device=device), 0
        # Steps of this epoch after which the running loss was still finite, counted on the device
        # (no host sync per step): when the loss turns NaN or infinite, the step it did so is this + 1.
        self.finite_steps = torch.zeros((), dtype=torch.int64, device=device)
        self.perm_state = self.gens["perm"].get_state()  # the perm generator at the current epoch's start
        self.best_state: dict[str, torch.Tensor] | None = None  # kept in memory when no files are written
        self.last_save = time.perf_counter()
        self.callbacks = epoch_callbacks(cfg, out, self.rank == 0)  # e.g. TensorBoard; see training/tensorboard.py
        self.stop = _Stop()

    # --- the schedule of one epoch -------------------------------------------------------------
    def epoch_order(self) -> torch.Tensor:
        """Enough permutations of the rows for one epoch's steps (one, unless the data is small)."""
        self.perm_state = self.gens["perm"].get_state()
        perm = torch.cat([torch.randperm(self.n_rows, generator=self.gens["perm"])
                          for _ in range(math.ceil(self.epoch_steps / self.per_pass))])
        # Rows of a memory-mapped split are read on the host: its indices stay there (no read-back).
        return perm.to(self.device) if isinstance(self.x, torch.Tensor) else perm

    def batch_rows(self, perm: torch.Tensor, i: int) -> torch.Tensor:
        """The row indices of the epoch's batch ``i`` in the permutation ``perm``."""
        n, bs = self.n_rows, self.batch
        rep, j = divmod(i, self.per_pass)  # batch j of permutation number rep
        return perm[rep * n + j * bs : rep * n + min((j + 1) * bs, n)]

    def probe_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """A batch's (input, target, labels), for timing the precisions: the first rows, through the
        objective with a generator of its own (the run's generators are not drawn from)."""
        idx = torch.arange(self.batch, device=self.device)
        xb = as_batch(take_rows(self.x, idx, self.device))
        yb = self.y.index_select(0, idx) if self.y is not None else None
        inp, target = self.obj.inputs(self.model, xb, yb, 0, torch.Generator(self.device).manual_seed(0))
        if self.channels_last:
            inp = inp.contiguous(memory_format=torch.channels_last)
        return inp, target, yb

    # --- one step and one epoch ----------------------------------------------------------------
    def step(self, idx: torch.Tensor, i: int) -> None:
        """One optimizer step on the rows ``idx`` (batch ``i`` of the epoch): corrupt, forward, backward, step."""
        xb = as_batch(take_rows(self.x, idx, self.device))
        yb = self.y.index_select(0, idx.to(self.y.device)) if self.y is not None else None
        inp, target = self.obj.inputs(self.model, xb, yb, i, self.gens["noise"])
        if self.channels_last:
            inp = inp.contiguous(memory_format=torch.channels_last)
        scale = 1.0
        if self.world > 1:  # this rank's slice of the global batch (corrupted whole: the same draw as one process)
            n_global = len(inp)
            inp, target = inp[self.rank :: self.world], target[self.rank :: self.world]
            yb = yb[self.rank :: self.world] if yb is not None else None
            # DDP averages the ranks' gradients; weighting each rank's mean by its share of the
            # global batch makes that average the global batch's mean, even for uneven slices.
            scale = len(inp) * self.world / n_global

        def forward_backward(model: torch.nn.Module) -> torch.Tensor:
            with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
                loss = self.obj.loss(model, inp, target, yb)
            self.scaler.scale(loss * scale if scale != 1.0 else loss).backward()
            return loss

        self.opt.zero_grad(set_to_none=True)
        loss = self.runner.run(forward_backward, lambda: self.opt.zero_grad(set_to_none=True), tuple(inp.shape))
        if self.cfg.clip_grad:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad)
        self.scaler.step(self.opt)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update()
        self.loss_sum += loss.detach() * len(inp)
        self.finite_steps += torch.isfinite(self.loss_sum)
        self.done += len(inp)
        self.res.steps += 1
        ckpt.kill_point("step")

    def train_epoch(self) -> float:
        """The steps of epoch ``self.epoch`` from ``self.step_in_epoch`` on; returns its seconds."""
        cfg, t0 = self.cfg, time.perf_counter()
        for group in self.opt.param_groups:
            group["lr"] = self.lr(self.epoch)
        self.obj.begin_epoch(self.model, self.epoch, cfg.epochs)
        if self.step_in_epoch:  # resumed mid-epoch: the same permutation as the interrupted run
            self.gens["perm"].set_state(self.perm_state)
        perm = self.epoch_order()
        steps = self.epoch_steps
        bar = Progress(steps, f"epoch {self.epoch + 1}/{cfg.epochs}", self.progress)
        bar.update(self.step_in_epoch)
        while self.step_in_epoch < steps:
            idx = self.batch_rows(perm, self.step_in_epoch)
            self.step_in_epoch += 1
            if self.world > 1 and len(idx) < self.world:  # too small to give every rank a row: skipped by all
                continue
            self.step(idx, self.step_in_epoch - 1)
            self.cpu.tick()
            if self.progress and self.step_in_epoch % cfg.log_every == 0:
                shown = self.readout.read(self.loss_sum, self.done)
                # With several processes every rank stops together at the epoch's end (end_epoch).
                if shown is not None and not math.isfinite(shown) and self.world == 1:
                    bar.close()
                    self.diverged()
                bar.update(cfg.log_every, **({"loss": f"{shown:.4g}"} if shown is not None else {}))
            self.maybe_checkpoint()
            if cfg.max_steps is not None and self.res.steps >= cfg.max_steps:
                break
        bar.close()
        return time.perf_counter() - t0

    def end_epoch(self, seconds: float) -> None:
        """Validate, keep the best weights, log, checkpoint; decide on early stopping."""
        loss_sum, done = self.loss_sum, self.done
        if self.world > 1:  # one exchange per epoch: the mean training loss over all ranks
            totals = distributed.all_reduce_sum(torch.stack([loss_sum.double(), torch.tensor(
                float(done), dtype=torch.float64, device=self.device)]))
            loss_sum, done = totals[0], int(totals[1])
        train_loss = float(loss_sum) / max(done, 1)
        if not math.isfinite(train_loss):
            self.diverged()
        row: dict[str, Any] = {"epoch": self.epoch + 1, "train_loss": train_loss, "lr": self.lr(self.epoch),
                               "seconds": round(seconds, 3), "samples_per_s": round(done / max(seconds, 1e-9), 1)}
        # The weights judged and kept: the average of the weights with [train] ema, else the weights.
        with self.ema.swapped_in() if self.ema is not None else contextlib.nullcontext():
            if self.x_val is not None:
                row.update(self.obj.validate(self.model, self.x_val, self.y_val, self.cfg))
                # Every rank takes rank 0's figure, so that all make the same early-stopping decision.
                row["val_loss"] = distributed.broadcast_float(row["val_loss"], self.device)
            score = row.get("val_loss", train_loss)
            if score < self.res.best_val_loss:
                self.res.best_val_loss, self.res.best_epoch, self.bad_epochs = score, self.epoch + 1, 0
                self.keep_best()
            else:
                self.bad_epochs += 1
        self.res.history.append(row)
        for cb in self.callbacks:
            cb.on_epoch(self, row)
        val_txt = f" val {row['val_loss']:.4g}" if "val_loss" in row else ""
        say(f"epoch {self.epoch + 1}/{self.cfg.epochs}: train {train_loss:.4g}{val_txt} ({seconds:.1f}s)",
            self.progress)
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.loss_sum, self.done = torch.zeros((), device=self.device), 0
        self.finite_steps.zero_()
        self.readout.new_epoch()
        self.res.stopped_early = self.cfg.patience is not None and self.bad_epochs >= self.cfg.patience
        self.perm_state = self.gens["perm"].get_state()
        if self.writes:
            self.write_history()
            self.save_last()

    def diverged(self) -> NoReturn:
        """Stop on a NaN or infinite loss, in one line naming the epoch and the step where it became
        so. No checkpoint is written from here on: ``model.safetensors`` keeps the best epoch's
        weights and ``last/`` the last finite state; the model in memory goes back to the best."""
        step = min(int(self.finite_steps) + 1, self.epoch_steps)
        value = float(self.loss_sum)
        self.load_best()
        if self.res.best_epoch and self.out is not None:
            kept = f"the best checkpoint (epoch {self.res.best_epoch}) is kept in {self.out / 'model.safetensors'}"
        elif self.res.best_epoch:
            kept = f"the model holds the best epoch's weights (epoch {self.res.best_epoch})"
        else:
            kept = "no epoch had finished, so there is no checkpoint"
        raise AekitError(f"the training loss became {value} at epoch {self.epoch + 1}, step {step} of "
                         f"{self.epoch_steps}; training stopped and {kept}; lower the learning rate (--lr) "
                         "or clip the gradients (clip_grad)")

    def lr(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (counted from 0) under the run's schedule."""
        return lr_at(self.cfg, epoch, self.schedule["start"], self.schedule["epochs"])

    def reschedule(self) -> None:
        """On resume, when --epochs no longer ends where the saved schedule does: keep the
        schedule's horizon (past it, its last rate holds) or, with ``schedule_restart``, start a new
        schedule at the resumed epoch that spans the epochs left. Either way the run says so.

        A restart is saved with the next checkpoint, so the same command repeated after a kill
        (a requeued job) continues that schedule instead of restarting it again.
        """
        cfg, start, n = self.cfg, self.schedule["start"], self.schedule["epochs"]
        end = start + n
        if cfg.schedule == "none" or end == cfg.epochs or self.epoch >= cfg.epochs or self.res.stopped_early:
            return
        if cfg.schedule_restart:
            self.schedule = {"start": self.epoch, "epochs": cfg.epochs - self.epoch}
            say(f"aekit: --schedule-restart: a new {cfg.schedule} learning-rate schedule over epochs "
                f"{self.epoch + 1}-{cfg.epochs}, starting again from {cfg.lr:g}", self.progress)
            return
        after = (f"epochs {end + 1}-{cfg.epochs} keep its last learning rate, {self.lr(end - 1):.3g}"
                 if cfg.epochs > end else f"training stops at epoch {cfg.epochs}, before it ends")
        say(f"aekit: --resume: the {cfg.schedule} learning-rate schedule keeps its horizon (epochs "
            f"{start + 1}-{end}); {after}; pass --schedule-restart to start a new schedule instead", self.progress)

    @property
    def run_dir(self) -> Path:
        """The run folder, for what writes or resumes a run (only called where one was given)."""
        if self.out is None:
            raise RuntimeError("this run has no folder to write to or resume from")
        return self.out

    def keep_best(self) -> None:
        """Keep the current weights as the best: ``model.safetensors`` in the run folder, else in memory."""
        if self.writes:
            ckpt.save_tensors(self.run_dir / "model.safetensors", self.model.state_dict())
        else:
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    # --- checkpoints ---------------------------------------------------------------------------
    def maybe_checkpoint(self) -> None:
        """Write ``last/`` if a stop was asked for (then stop) or a checkpoint interval has passed."""
        cfg = self.cfg
        if self.stop.signum is not None:
            if self.writes:
                self.save_last()
            raise TrainingStopped(self.stop.signum, self.epoch + 1, self.step_in_epoch)
        if not self.writes:
            return
        by_steps = cfg.checkpoint_every is not None and self.res.steps % cfg.checkpoint_every == 0
        by_time = time.perf_counter() - self.last_save >= 60 * cfg.checkpoint_minutes
        if by_steps or by_time:
            self.save_last()

    def check_finite(self) -> bool:
        """Before a checkpoint: a loss that is no longer finite stops the run (:meth:`diverged`)
        instead of saving weights it has spoiled. With several processes only rank 0 writes, so it
        skips the checkpoint instead (False): every rank stops together at the epoch's end, where the
        all-reduced loss is checked, rather than rank 0 alone before the next collective."""
        if math.isfinite(float(self.loss_sum)):
            return True
        if self.world > 1:
            return False
        self.diverged()
        return False

    def save_last(self) -> None:
        """Write the checkpoint ``last/`` (weights, optimizer, random states, loop state), whole or not at all."""
        if not self.check_finite():
            return
        tensors, meta = ckpt.optimizer_state(self.opt)
        # Torch's default generators too: a model that samples in its forward pass (a VAE's
        # reparameterisation noise) draws from them, on the CPU and on the GPU.
        rng = {"rng.perm": self.perm_state, "rng.noise": self.gens["noise"].get_state(),
               "rng.torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        r = self.res
        state = {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "epoch_loss_sum": float(self.loss_sum),
                 "epoch_done": self.done, "bad_epochs": self.bad_epochs, "history": r.history,
                 "best_val_loss": r.best_val_loss, "best_epoch": r.best_epoch, "steps": r.steps,
                 "stopped_early": r.stopped_early, "optimizer": meta, "precision": precision_name(self.amp),
                 "schedule": self.schedule}
        if self.ema is not None:
            state["ema_updates"] = self.ema.updates
            tensors = {**tensors, **self.ema.tensors()}
        ckpt.write_last(self.run_dir, {"model.safetensors": ckpt.tensors_bytes(self.model.state_dict()),
                                   "optimizer.safetensors": ckpt.tensors_bytes({**tensors, **rng}),
                                   "state.json": state})
        self.last_save = time.perf_counter()

    def write_history(self) -> None:
        """Write ``metrics.csv`` from the history so far (atomically)."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(self.res.history)
        atomic_write_text(self.run_dir / "metrics.csv", buf.getvalue())

    def restore(self) -> None:
        """Continue from ``out/last``: weights, optimizer, RNG and the loop's place."""
        from aekit.io import read_json_object

        last = self.run_dir / ckpt.LAST
        state = read_json_object(last / "state.json")
        ckpt.check_state(state, last / "state.json")
        saved = ckpt.load_tensors(last / "optimizer.safetensors")
        ckpt.load_weights(self.model, last / "model.safetensors")  # torch's many-line mismatch, as one line
        try:
            ckpt.restore_optimizer(self.opt, {k: v for k, v in saved.items() if not k.startswith(("rng.", "ema."))},
                                   state["optimizer"])
            if self.ema is not None:
                self.ema.resume(saved, state.get("ema_updates", 0))
            for k, g in self.gens.items():
                g.set_state(saved[f"rng.{k}"])
            torch.set_rng_state(saved["rng.torch"])
            if self.device.type == "cuda" and "rng.cuda" in saved:  # absent: saved on another device
                torch.cuda.set_rng_state(saved["rng.cuda"], self.device)
            self.perm_state = saved["rng.perm"]
        except KeyError as exc:
            raise AekitError(f"{last}: checkpoint does not fit this run (no {exc} in it); "
                             "start a new run in another --out") from None
        except (TypeError, ValueError, RuntimeError) as exc:
            raise AekitError(f"{last}: checkpoint does not fit this run ({str(exc).splitlines()[0]}); "
                             "start a new run in another --out") from None
        self.epoch, self.bad_epochs, self.res.steps = state["epoch"], state["bad_epochs"], state["steps"]
        # JSON has no infinity or NaN: a run with no best epoch yet saved its best loss as null, and
        # a diverging epoch its loss so far.
        best, loss_sum = state["best_val_loss"], state.get("epoch_loss_sum", 0.0)
        self.res.history, self.res.best_val_loss = state["history"], math.inf if best is None else float(best)
        self.res.best_epoch = state["best_epoch"]
        self.step_in_epoch = state.get("step_in_epoch", 0)
        self.loss_sum = torch.tensor(math.nan if loss_sum is None else float(loss_sum), device=self.device)
        self.finite_steps.fill_(self.step_in_epoch if loss_sum is not None else 0)
        self.done, self.res.stopped_early = state.get("epoch_done", 0), state.get("stopped_early", False)
        # A checkpoint from before the schedule was kept: its run's schedule spanned --epochs.
        self.schedule = dict(state.get("schedule", self.schedule))
        self.reschedule()
        if not self.amp_decided and state.get("precision") in ("fp32", "bf16"):
            # --precision auto decided when the run started; a resumed run keeps that decision.
            self.amp, self.amp_decided = autocast_dtype(state["precision"], self.device), True
        if self.channels_last:  # restored moments are NCHW; fused steps need the parameters' own layout
            for p_, st in self.opt.state.items():
                for k, v in st.items():
                    if isinstance(v, torch.Tensor) and v.shape == p_.shape:
                        st[k] = torch.empty_like(p_).copy_(v)

    # --- the whole run -------------------------------------------------------------------------
    def run(self, resume: bool) -> FitResult:
        """Train to the end (or to early stopping, or to a stop signal), from ``last/`` if ``resume``."""
        t_start = time.perf_counter()
        # Threads sized to the CPUs other processes leave free; made here, inside the try that gives the
        # caller's count back, so that a failing resume or precision probe does not leave it changed.
        self.cpu = CpuShare(self.device, self.cfg.deterministic)
        try:
            if resume:
                self.restore()
            if not self.amp_decided:  # --precision auto, decided once, by rank 0's timing
                self.amp = choose_amp(self.amp, self.model, self.probe_batch, self.obj.loss, self.device,
                                      self.progress)
                if self.world > 1:
                    self.amp = torch.bfloat16 if distributed.broadcast_float(float(self.amp is not None),
                                                                             self.device) else None
                self.amp_decided = True
            # Where no checkpoint can be written (no run folder, another rank), signals keep their default.
            with self.stop if self.writes and self.world == 1 else contextlib.nullcontext():
                while self.epoch < self.cfg.epochs and not self.res.stopped_early:
                    seconds = self.train_epoch()
                    self.end_epoch(seconds)
                    if self.cfg.max_steps is not None and self.res.steps >= self.cfg.max_steps:
                        break
        finally:
            self.cpu.restore()
        for cb in self.callbacks:
            cb.close()
        self.res.seconds = time.perf_counter() - t_start
        self.res.compiled = self.runner.compiled
        self.res.precision = precision_name(self.amp)
        self.load_best()
        return self.res

    def load_best(self) -> None:
        """Load the best epoch's weights back into the model."""
        if self.best_state is not None:  # no run directory, or a rank other than 0
            self.model.load_state_dict(self.best_state)
        elif self.out is not None and (self.out / "model.safetensors").is_file():
            self.model.load_state_dict(ckpt.load_tensors(self.out / "model.safetensors"))


def fit(
    model: torch.nn.Module,
    train: Split,
    val: Split | None,
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    *,
    device: torch.device | None = None,
    corrupt: Any = None,
    objective: Objective | None = None,
    resume: bool = False,
    progress: bool | None = None,
) -> FitResult:
    """Train ``model`` on ``train``; validate on ``val`` each epoch; checkpoint into ``out_dir``.

    ``corrupt(x, generator)`` makes the input of a denoising autoencoder from the clean batch,
    drawn afresh for every batch; the target stays the clean batch (default: ``cfg.noise``).
    ``objective`` replaces reconstruction (see :class:`aekit.training.classify.Classification`).
    With ``resume``, training continues from ``out_dir/last`` up to ``cfg.epochs``.
    ``progress``: False prints nothing; otherwise a bar on a terminal, lines on stderr elsewhere.
    """
    device = device or next(model.parameters()).device
    out = Path(out_dir) if out_dir is not None else None
    if objective is None:
        objective = Objective(corruption_for(corrupt) if corrupt is not None else None)
    if resume and (out is None or not (out / ckpt.LAST / "state.json").is_file()):
        raise AekitError(f"--resume: no checkpoint to resume in {out}/{ckpt.LAST}")
    return Trainer(model, train, val, cfg, out, device, objective, progress).run(resume)

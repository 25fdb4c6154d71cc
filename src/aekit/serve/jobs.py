"""Training jobs of ``aekit serve``: one at a time, the others wait in a visible queue.

A job is a regular ``aekit train`` process (the one loop, a run folder that ``--resume`` continues),
started with a preset's flags on a named dataset, never a path from the request. Its progress is
read from the run folder's ``metrics.csv``, which the loop appends to after every epoch. Cancelling
a running job sends SIGTERM, which makes the loop write a checkpoint and stop (resumable).

A fine-tuning job is an ``aekit finetune`` process of the run another job of the same queue made
before it (its parent, never a folder a request names); a set (``classifier``, and the demo set that
``aekit serve`` trains when it starts with no run) queues several jobs at once, one after another.

A job's folder is made when the job is submitted (``mkdir`` fails where the name is taken), so two
servers sharing one ``--runs`` folder never give two jobs the same one. Its error line names no
server path (:func:`aekit.serve.runs.redact`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aekit.errors import AekitError
from aekit.serve.runs import redact

PRESETS: dict[str, list[str]] = {
    "simplest": ["--code", "32", "--layers", ""],
    "deep": ["--layers", "1000,500,250", "--code", "30"],
    "conv": ["--model", "conv", "--code", "32"],
    # 784-512-64: on mnist-mini's test split 19.4 dB at gaussian:0.3, against 17.8 dB for the best classical
    # baseline (PCA projection; 784-256-32: 18.3 dB); it is also the encoder the classifier pair fine-tunes
    "denoising": ["--layers", "512", "--code", "64", "--noise", "gaussian:0.3"],
    # block:12, the square the Infill panel hides by default (center:12)
    "infilling": ["--layers", "256", "--code", "32", "--noise", "block:12"],
    # a 2-number code: the Sample panel shows its decoded manifold, the latent map the code itself
    "vae": ["--model", "vae", "--layers", "256", "--code", "2"],
}
# Presets that fine-tune (``aekit finetune``) the encoder of a run the queue trains first, its parent:
# preset -> (the parent's preset, finetune's flags). The pair is the lecture's pre-training experiment
# at 1,000 labels: the parent's weights fine-tuned, and the same network from a random start.
FINETUNES: dict[str, tuple[str, list[str]]] = {
    "finetune-pretrained": ("denoising", ["--labels", "1000", "--init", "pretrained"]),
    "finetune-random": ("denoising", ["--labels", "1000", "--init", "random"]),
}
# Presets that queue several jobs, one after another; a fine-tuning job's parent is the job of its
# parent's preset queued just before it in the same set (never a run folder a request names).
SETS: dict[str, list[str]] = {
    "classifier": ["denoising", "finetune-pretrained", "finetune-random"],
}
# What ``aekit serve`` trains, in the background, when it starts with no run to show: a run for each panel.
DEMO_SET = ["simplest", "denoising", "infilling", "vae", "finetune-pretrained", "finetune-random"]
# Epochs (per stage for a fine-tuning) when a request names none: each preset finishes in well under two
# minutes on two CPU cores on mnist-mini (measured with AEKIT_THREADS=1 on an idle machine: 5 s to 20 s).
EPOCHS: dict[str, int] = {"simplest": 30, "deep": 10, "conv": 5, "denoising": 30, "infilling": 30, "vae": 60,
                          "finetune-pretrained": 30, "finetune-random": 30}
DEFAULT_EPOCHS = 5  # a recipe's, when the request names none
# The panels' tasks a preset's run is trained for (aekit.serve.runs.tasks_of reads them from config.json).
PRESET_TASKS: dict[str, list[str]] = {
    "denoising": ["reconstruct", "denoise"], "infilling": ["reconstruct", "infill"], "vae": ["reconstruct", "sample"],
    "finetune-pretrained": ["classify"], "finetune-random": ["classify"], "classifier": ["classify"]}


def preset_info() -> dict[str, dict[str, Any]]:
    """For the page: each preset's and set's jobs (presets, in order), epochs when none are asked for, and
    the tasks its runs are trained for."""
    return {name: {"jobs": SETS.get(name, [name]), "epochs": [EPOCHS[p] for p in SETS.get(name, [name])],
                   "tasks": PRESET_TASKS.get(name, ["reconstruct"])} for name in [*PRESETS, *SETS]}


RECIPE = "recipe:"  # a preset "recipe:NAME.toml" is a recipe of the server's configs folder
DATASETS = ("mnist-mini",)  # shipped with aekit: a job never reads a path a request names
MAX_QUEUE = 8
N_PREVIEW = 6


def preview(out: Path, n: int = N_PREVIEW) -> dict[str, Any] | None:
    """The first test images and their reconstructions by the best weights so far (None before any)."""
    import numpy as np

    from aekit.metrics import as_float
    from aekit.run import open_run

    try:
        o = open_run(out, ("autoencoder",))  # the weights file is replaced atomically: never half-read
        x = as_float(np.asarray(o.split("test").x[:n]))
    except (AekitError, OSError):
        return None
    return {"originals": x, "recons": o.model.reconstruct(x)}


def loss_unit(out: Path) -> str | None:
    """What a run's training loss measures, from its config.json (None before it is written): a VAE's
    is the negative ELBO in nats per image; another autoencoder's the mean per value of its loss (MSE,
    or BCE in nats), plus any penalty it trains with."""
    from aekit.run import read_config
    from aekit.serve.runs import variational_family

    try:
        info = read_config(out)
        m = info["model"]
    except (AekitError, OSError):
        return None
    if info.get("kind") == "classifier":  # aekit finetune's stages: the loop's validation loss is the error rate
        return "cross-entropy in nats (validation: error rate)"
    if variational_family(m.get("name")):
        return "nats per image (negative ELBO)"
    return "BCE, nats per value" if m.get("loss") == "bce" else "MSE per value"


def _metrics_rows(text: str) -> list[dict[str, Any]]:
    rows = []
    for r in csv.DictReader(io.StringIO(text)):
        try:
            rows.append({"epoch": int(r["epoch"]), "train_loss": float(r["train_loss"]),
                         "val_loss": float(r["val_loss"]) if r.get("val_loss") else None})
        except (KeyError, TypeError, ValueError):  # a row being written
            break
    return rows


@dataclass
class Job:
    id: int
    preset: str
    data: str
    epochs: int
    out: Path
    status: str = "queued"  # queued, running, done, failed, cancelled
    proc: subprocess.Popen | None = field(default=None, repr=False)
    error: str = ""
    run_id: str | None = None
    parent: Job | None = field(default=None, repr=False)  # a fine-tuning's: the job that trains its encoder
    # (size and time of each metrics file, their rows): every open event stream asks several times a second
    _read: tuple[tuple[Any, ...], list[dict[str, Any]]] | None = field(default=None, repr=False)
    _unit: str | None = field(default=None, repr=False)

    @property
    def finetunes(self) -> bool:
        return self.preset in FINETUNES

    def loss_unit(self) -> str | None:
        """What the losses measure (the Train panel's y axis), from the run's config.json once written."""
        if self._unit is None:
            self._unit = loss_unit(self.out)
        return self._unit

    def metrics(self) -> list[dict[str, Any]]:
        """The epochs finished so far (train and validation loss), from the run folder; read again only
        when a file has changed. A fine-tuning's two stages (``stage-top``, then ``stage-all``) are one
        series, its epochs counted on from the first stage's."""
        files = [self.out / "stage-top" / "metrics.csv", self.out / "stage-all" / "metrics.csv"] \
            if self.finetunes else [self.out / "metrics.csv"]
        stamps: list[tuple[int, int] | None] = []
        for f in files:
            try:
                st = os.stat(f)
                stamps.append((st.st_size, st.st_mtime_ns))
            except OSError:
                stamps.append(None)
        if self._read is not None and self._read[0] == tuple(stamps):
            return self._read[1]
        rows: list[dict[str, Any]] = []
        for f, stamp in zip(files, stamps, strict=True):
            try:
                text = f.read_text() if stamp is not None else ""
            except OSError:
                text = ""
            rows += [{**r, "epoch": len(rows) + i + 1} for i, r in enumerate(_metrics_rows(text))]
        self._read = (tuple(stamps), rows)
        return rows

    def public(self) -> dict[str, Any]:
        # a fine-tuning trains up to ``epochs`` per stage, two stages: the chart's axis takes both
        return {"id": self.id, "preset": self.preset, "data": self.data,
                "epochs": self.epochs * (2 if self.finetunes else 1), "status": self.status, "error": self.error,
                "run_id": self.run_id, "loss_unit": self.loss_unit(), "tasks": PRESET_TASKS.get(
                    self.preset, ["reconstruct"] if self.preset in PRESETS else []),
                "parent": self.parent.id if self.parent is not None else None}


class JobNotFound(KeyError):
    """A job id this server has not given (answered with 404)."""


class JobQueue:
    """The queue and its one worker thread; ``on_done(path)`` registers a finished run with the server."""

    def __init__(self, root: Path | None, on_done: Any, configs: Path | None = None) -> None:
        self.root, self.on_done = root, on_done
        # Recipes are listed once, at start: a request picks one by name, never by path.
        self.recipes = {f"{RECIPE}{p.name}": p.resolve() for p in sorted(configs.glob("*.toml"))} \
            if configs is not None and configs.is_dir() else {}
        self.jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None

    def names(self) -> list[str]:
        """What a request may queue: the presets, the sets and the recipes (a fine-tuning preset only
        within a set, after its parent)."""
        return [*PRESETS, *SETS, *self.recipes]

    def submit(self, preset: str, data: str, epochs: int | None = None) -> Job:
        """Queue ``preset`` (a set: each of its presets, in order); returns the last job queued."""
        return self.submit_set(SETS.get(preset, [preset]), data, epochs)[-1]

    def submit_set(self, presets: list[str], data: str, epochs: int | None = None) -> list[Job]:
        """Queue one job per preset, in order, all or none; ``epochs`` None: each preset's own
        (:data:`EPOCHS`). A fine-tuning job's parent is the job of its parent's preset queued before it
        here."""
        if self.root is None:
            raise AekitError("this server has no runs folder to train into; start it with --runs DIR")
        for i, preset in enumerate(presets):
            if preset in FINETUNES:
                if FINETUNES[preset][0] not in presets[:i]:
                    raise AekitError(f"preset: {preset} fine-tunes a run the queue trains first; queue it with "
                                     f"{', '.join(k for k, v in SETS.items() if preset in v)}")
            elif preset not in PRESETS and preset not in self.recipes:
                raise AekitError(f"preset: unknown {preset[:40]!r}; use {', '.join(self.names())}")
        if data not in DATASETS:
            raise AekitError(f"data: unknown {data[:40]!r}; use {', '.join(DATASETS)}")
        with self._lock:
            if sum(j.status in ("queued", "running") for j in self.jobs.values()) + len(presets) > MAX_QUEUE:
                raise AekitError(f"the queue is full ({MAX_QUEUE} jobs); wait or cancel one")
            stamp = time.strftime("%Y%m%d-%H%M%S")
            outs: list[Path] = []
            try:  # every folder first: where one cannot be made, none of the set is queued
                for preset in presets:
                    outs.append(self._folder(f"serve-{preset.removeprefix(RECIPE).removesuffix('.toml')}-{stamp}"))
            except AekitError:
                for out in outs:
                    with contextlib.suppress(OSError):
                        out.rmdir()
                raise
            queued: list[Job] = []
            for preset, out in zip(presets, outs, strict=True):
                parent = next(j for j in reversed(queued) if j.preset == FINETUNES[preset][0]) \
                    if preset in FINETUNES else None
                jid = next(self._ids)
                job = self.jobs[jid] = Job(jid, preset, data, epochs or EPOCHS.get(preset, DEFAULT_EPOCHS), out,
                                           parent=parent)
                queued.append(job)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, daemon=True, name="aekit-serve-jobs")
                self._worker.start()
        self._wake.set()
        return queued

    def _folder(self, stem: str) -> Path:
        """A new empty folder ``stem-XXXXXX`` under the runs folder, made here: another server on the same
        runs folder, submitting in the same second, gets another (its mkdir fails on a taken name)."""
        assert self.root is not None
        for _ in range(100):
            out = self.root / f"{stem}-{secrets.token_hex(3)}"
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                out.mkdir()
            except FileExistsError:
                if self.root.is_dir():
                    continue  # the name is taken
                raise AekitError("the runs folder is not a folder") from None
            except OSError as exc:
                raise AekitError(f"the runs folder is not writable ({exc.strerror or type(exc).__name__})") from None
            return out
        raise AekitError("no free job folder name in the runs folder")

    def get(self, jid: int) -> Job:
        if jid not in self.jobs:
            raise JobNotFound(jid)
        return self.jobs[jid]

    def cancel(self, jid: int) -> Job:
        job = self.get(jid)
        with self._lock:
            # a queued fine-tuning of its run would have no run to fine-tune; a finished job's run stays, and
            # so do the fine-tunings queued on it
            stopping = job.status in ("queued", "running")
            for j in [job, *(c for c in self.jobs.values() if stopping and c.parent is job and c.status == "queued")]:
                if j.status == "queued":
                    j.status = "cancelled"
                    with contextlib.suppress(OSError):  # the folder made for it, still empty
                        j.out.rmdir()
                elif j.status == "running" and j.proc is not None:
                    j.status = "cancelled"
                    j.proc.send_signal(signal.SIGTERM)  # the loop checkpoints and exits: resumable
        return job

    def _command(self, job: Job) -> list[str]:
        """The job's process: ``aekit train`` with its preset's flags or recipe, or ``aekit finetune`` of
        its parent's run folder (made by this queue)."""
        if job.finetunes:
            assert job.parent is not None
            return [sys.executable, "-m", "aekit", "finetune", str(job.parent.out.resolve()),
                    *FINETUNES[job.preset][1], "--data", job.data, "--epochs", str(job.epochs),
                    "--out", str(job.out), "--quiet"]
        flags = ["--config", str(self.recipes[job.preset])] if job.preset in self.recipes else PRESETS[job.preset]
        return [sys.executable, "-m", "aekit", "train", *flags, "--data", job.data,
                "--epochs", str(job.epochs), "--out", str(job.out), "--quiet"]

    def _next(self) -> Job | None:
        with self._lock:
            for job in self.jobs.values():
                if job.status != "queued":
                    continue
                if job.parent is not None and job.parent.status != "done":  # failed or cancelled before it
                    job.status = "failed"
                    job.error = f"job #{job.parent.id} ({job.parent.preset}), whose run it fine-tunes, " \
                                f"{job.parent.status}"
                    with contextlib.suppress(OSError):  # the folder made for it at submission, never used
                        job.out.rmdir()
                    continue
                job.status = "running"
                job.proc = subprocess.Popen(self._command(job), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                            text=True)
                return job
            return None

    def _work(self) -> None:
        while True:
            self._wake.clear()
            job = self._next()
            if job is None:
                if self._wake.wait(30):
                    continue
                with self._lock:  # idle: end, unless a job came in meanwhile (submit checks under this lock)
                    if not any(j.status == "queued" for j in self.jobs.values()):
                        self._worker = None
                        return
                continue
            assert job.proc is not None  # _next() started it
            _, err = job.proc.communicate()
            if job.status == "cancelled":
                continue
            if job.proc.returncode == 0:
                job.run_id = self.on_done(job.out)
                job.status = "done"
            else:
                job.status = "failed"
                line = (err.strip().splitlines() or [f"exit code {job.proc.returncode}"])[-1]
                job.error = redact(line, {job.out: job.out.name})[:300]

    def shutdown(self) -> None:
        """Stop a running job (checkpointed, resumable) when the server stops."""
        for job in self.jobs.values():
            if job.status == "running" and job.proc is not None and job.proc.poll() is None:
                job.proc.send_signal(signal.SIGTERM)
                job.proc.wait(30)

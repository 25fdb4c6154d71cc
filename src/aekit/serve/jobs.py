"""Training jobs of ``aekit serve``: one at a time, the others wait in a visible queue.

A job is a regular ``aekit train`` process (the one loop, a run folder that ``--resume`` continues),
started with a preset's flags on a named dataset, never a path from the request. Its progress is
read from the run folder's ``metrics.csv``, which the loop appends to after every epoch. Cancelling
a running job sends SIGTERM, which makes the loop write a checkpoint and stop (resumable).

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
    "denoising": ["--layers", "256", "--code", "32", "--noise", "gaussian:0.3"],
}
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
        m = read_config(out)["model"]
    except (AekitError, OSError):
        return None
    if variational_family(m.get("name")):
        return "nats per image (negative ELBO)"
    return "BCE, nats per value" if m.get("loss") == "bce" else "MSE per value"


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
    # (size and time of metrics.csv, its rows): every open event stream asks several times a second
    _read: tuple[tuple[int, int], list[dict[str, Any]]] | None = field(default=None, repr=False)
    _unit: str | None = field(default=None, repr=False)

    def loss_unit(self) -> str | None:
        """What the losses measure (the Train panel's y axis), from the run's config.json once written."""
        if self._unit is None:
            self._unit = loss_unit(self.out)
        return self._unit

    def metrics(self) -> list[dict[str, Any]]:
        """The epochs finished so far (train and validation loss), from the run folder; read again only
        when the file has changed."""
        try:
            st = os.stat(self.out / "metrics.csv")
            if self._read is not None and self._read[0] == (st.st_size, st.st_mtime_ns):
                return self._read[1]
            text = (self.out / "metrics.csv").read_text()
        except OSError:
            return []
        rows = []
        for r in csv.DictReader(io.StringIO(text)):
            try:
                rows.append({"epoch": int(r["epoch"]), "train_loss": float(r["train_loss"]),
                             "val_loss": float(r["val_loss"]) if r.get("val_loss") else None})
            except (KeyError, TypeError, ValueError):  # a row being written
                break
        self._read = ((st.st_size, st.st_mtime_ns), rows)
        return rows

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "preset": self.preset, "data": self.data, "epochs": self.epochs,
                "status": self.status, "error": self.error, "run_id": self.run_id, "loss_unit": self.loss_unit()}


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

    def submit(self, preset: str, data: str, epochs: int) -> Job:
        if self.root is None:
            raise AekitError("this server has no runs folder to train into; start it with --runs DIR")
        if preset not in PRESETS and preset not in self.recipes:
            raise AekitError(f"preset: unknown {preset[:40]!r}; use {', '.join([*PRESETS, *self.recipes])}")
        if data not in DATASETS:
            raise AekitError(f"data: unknown {data[:40]!r}; use {', '.join(DATASETS)}")
        with self._lock:
            if sum(j.status in ("queued", "running") for j in self.jobs.values()) >= MAX_QUEUE:
                raise AekitError(f"the queue is full ({MAX_QUEUE} jobs); wait or cancel one")
            jid = next(self._ids)
            name = preset.removeprefix(RECIPE).removesuffix(".toml")
            out = self._folder(f"serve-{name}-{time.strftime('%Y%m%d-%H%M%S')}")
            job = self.jobs[jid] = Job(jid, preset, data, epochs, out)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, daemon=True, name="aekit-serve-jobs")
                self._worker.start()
        self._wake.set()
        return job

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
            if job.status == "queued":
                job.status = "cancelled"
                with contextlib.suppress(OSError):  # the folder made for it, still empty
                    job.out.rmdir()
            elif job.status == "running" and job.proc is not None:
                job.status = "cancelled"
                job.proc.send_signal(signal.SIGTERM)  # the loop checkpoints and exits: resumable
        return job

    def _next(self) -> Job | None:
        with self._lock:
            job = next((j for j in self.jobs.values() if j.status == "queued"), None)
            if job is not None:
                job.status = "running"
                flags = ["--config", str(self.recipes[job.preset])] if job.preset in self.recipes \
                    else PRESETS[job.preset]
                cmd = [sys.executable, "-m", "aekit", "train", *flags, "--data", job.data,
                       "--epochs", str(job.epochs), "--out", str(job.out), "--quiet"]
                job.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            return job

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

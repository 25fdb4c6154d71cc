"""The run directory, owned in one place: its ``config.json`` schema, opening, locking and guarding.

A run folder holds one trained model (docs/guides/run-folder.md lists every file). Its ``config.json``::

    {"format": 1, "kind": "autoencoder" | "pretrain" | "classifier", "aekit_version": "...",
     "model": {"name": ..., "input_shape": [...], ...options},   # rebuilds the network
     "run": {"data": {...}, "model": {...}, "train": {...}},       # the RunConfig it was trained with
     "data": {...},                                                # the dataset's description
     ...kind-specific tables ("pretrain", "finetune", "n_classes"), "metrics" once finished}

Folders written before ``format`` existed still open: their kind is read from their tables.

Writers (``train``, ``pretrain``, ``finetune``) go through :class:`RunWriter`, which keeps a run
from being lost: it refuses a non-empty folder that is not the command's own resumable run, holds
an exclusive lock while writing (a second writer is refused with the holder's PID; a dead holder's
lock is taken over, since the kernel drops it with the process), and on ``--resume`` refuses a
changed model or dataset before it writes anything.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import math
import os
import shutil
import stat
import sys
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aekit.config import RunConfig
from aekit.errors import AekitError
from aekit.io import check_name, hold_folder, read_json_object, release_folder, write_json

FORMAT = 1
KINDS = ("autoencoder", "pretrain", "classifier")
LOCK = ".lock"
# Settings that may change on --resume: how long to train and how to watch it, not what is trained.
RESUME_SAFE = {"epochs", "patience", "max_steps", "device", "precision", "compile", "eval_batch_size", "log_every",
               "checkpoint_every", "checkpoint_minutes", "data_dir", "tensorboard", "schedule_restart"}
MAX_SHAPE_VALUES = 1 << 28  # a sample of more values than this is no run aekit wrote


@dataclass
class Run:
    """A finished training run: its folder, the trained model and the summary figures."""

    dir: Path
    model: Any
    summary: dict[str, Any]
    config: RunConfig


def default_run_dir(model_name: str) -> Path:
    """``runs/<time>-<name>`` (``$AEKIT_RUNS`` instead of ``runs``), with a suffix if that one exists."""
    base = Path(os.environ.get("AEKIT_RUNS") or "runs") / f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{model_name}"
    out, k = base, 1
    while out.exists():  # two runs started in the same second
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def version() -> str:
    from aekit import __version__

    return __version__


def make_config(kind: str, model: dict[str, Any], run: dict[str, Any], data: dict[str, Any],
                **extra: Any) -> dict[str, Any]:
    """The ``config.json`` of a run of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}")
    return {"format": FORMAT, "kind": kind, "aekit_version": version(), "model": model, "run": run, "data": data,
            **extra}


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def write_config(run_dir: str | Path, info: dict[str, Any]) -> None:
    write_json(Path(run_dir) / "config.json", info)


def _kind_of(info: dict[str, Any]) -> str:
    """Folders from before ``format``: a classifier said so; a pre-training run has its table."""
    if info.get("kind") == "classifier":
        return "classifier"
    return "pretrain" if "pretrain" in info else "autoencoder"


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """``config.json`` of a run folder, upgraded to the current format and checked."""
    d = Path(run_dir)
    if not d.is_dir():
        raise AekitError(f"{d}: no such run directory")
    where = d / "config.json"
    info = read_json_object(where)
    fmt = info.get("format", 0)
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 0:
        raise AekitError(f"{where}: format must be a whole number, got {fmt!r}")
    if fmt > FORMAT:
        raise AekitError(f"{where}: written by a newer aekit (format {fmt}); upgrade aekit to open it")
    if fmt == 0:
        info = {**info, "format": FORMAT, "kind": _kind_of(info)}
    if info.get("kind") not in KINDS:
        raise AekitError(f"{where}: kind must be one of {', '.join(KINDS)}, got {info.get('kind')!r}")
    _check_model_table(info.get("model"), where)
    for key in ("run", "data"):
        if not isinstance(info.get(key, {}), dict):
            raise AekitError(f"{where}: {key!r} must be a JSON object")
    if info["kind"] == "classifier":
        n = info.get("n_classes")
        if not isinstance(n, int) or isinstance(n, bool) or not 2 <= n <= 1_000_000:
            raise AekitError(f"{where}: n_classes must be a whole number from 2 to 1000000, got {n!r}")
        if not isinstance(info.get("finetune", {}), dict):
            raise AekitError(f"{where}: 'finetune' must be a JSON object")
    return info


def _check_model_table(mc: Any, where: Path) -> None:
    if not isinstance(mc, dict):
        raise AekitError(f"{where}: no 'model' table; is this an aekit run directory?")
    if not isinstance(mc.get("name"), str):
        raise AekitError(f"{where}: model.name must be a model family name, got {mc.get('name')!r}")
    shape: Any = mc.get("input_shape")  # any JSON value, checked here
    ok = isinstance(shape, list) and 1 <= len(shape) <= 4 and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)
    if not ok or math.prod(shape) > MAX_SHAPE_VALUES:
        raise AekitError(f"{where}: model.input_shape must be 1 to 4 positive whole numbers, got {shape!r}")


def model_from_config(mc: dict[str, Any]) -> Any:
    """An untrained model of the family and options in a ``model`` table (no weights loaded)."""
    from aekit.registry import create_model

    opts = dict(mc)
    name, shape = opts.pop("name"), tuple(opts.pop("input_shape"))
    try:
        return create_model(name, shape, **opts)
    except AekitError:  # a ValueError too: the model's own line is already the right one
        raise
    except (TypeError, ValueError) as exc:
        raise AekitError(f"model table {mc.get('name')!r}: {str(exc).splitlines()[0]}") from None


def classifier_from_config(info: dict[str, Any], encoder_model: Any | None = None) -> Any:
    """The classifier of a ``classifier`` run: its encoder rebuilt from ``model``, a softmax head."""
    from aekit.models.classifier import Classifier

    ae = encoder_model if encoder_model is not None else model_from_config(info["model"])
    dropout = info.get("finetune", {}).get("dropout", 0.0)
    if not isinstance(dropout, int | float) or isinstance(dropout, bool) or not 0 <= dropout < 1:
        raise AekitError(f"finetune.dropout must lie in [0, 1), got {dropout!r}")
    body, width = ae.classifier_body()
    return Classifier(body, width, info["n_classes"], dropout, tuple(ae.input_shape))


_RUNS: weakref.WeakKeyDictionary[Any, OpenRun] = weakref.WeakKeyDictionary()


@dataclass
class OpenRun:
    """A run folder opened for use: its config, its model (weights loaded, eval mode), its data."""

    dir: Path | None
    info: dict[str, Any]
    model: Any
    _datasets: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> str:
        return self.info["kind"]

    def config(self) -> RunConfig:
        return RunConfig.from_dict(self.info.get("run", {}), where=f"{self.dir}/config.json [run]")

    def dataset(self, data: str | None = None, data_dir: str | None = None) -> tuple[Any, RunConfig]:
        """The dataset a command works on: the one given, else the run's own; loaded once per run."""
        key = (data, data_dir)
        if key not in self._datasets:
            if self.dir is None and data is None:
                raise AekitError("this model was not loaded from a run directory, so it has no dataset of its "
                                 "own; name one (data=...)")
            cfg = self.config()
            if data is not None:
                cfg.data.name, cfg.data.data_dir = data, None
            if data_dir is not None:
                cfg.data.data_dir = data_dir
            ds = dataset_for(cfg)
            shape = tuple(self.model.input_shape)
            if shape != ds.sample_shape:
                raise AekitError(f"the model takes samples of shape {shape} but {ds.name} has {ds.sample_shape}")
            self._datasets[key] = (ds, cfg)
        return self._datasets[key]

    def split(self, name: str, data: str | None = None, data_dir: str | None = None) -> Any:
        ds, cfg = self.dataset(data, data_dir)
        return ds.split(name, cfg.data.val_fraction, cfg.data.split_seed)


def dataset_for(cfg: RunConfig, progress: bool = True) -> Any:
    """The dataset a RunConfig names."""
    from aekit.data.sources import load_dataset

    d = cfg.data
    return load_dataset(d.name, d.data_dir, image_size=d.image_size, color=d.color, progress=progress)


def attach(model: Any, opened: OpenRun) -> Any:
    """Remember which run a model in memory came from (so ``evaluate(model)`` uses its dataset)."""
    _RUNS[model] = opened
    return model


def _model_of(info: dict[str, Any], weights: Path, tensors: dict[str, Any]) -> Any:
    """The model of a checked config with its weights loaded, allocated only once they fit it.

    A config.json edited to a large model (``code`` 10^6 is 6 GB of float32) would be allocated
    before its weights fail to load. Built first on the meta device (shapes, no memory), the
    model is checked against the file's names and shapes for free.
    """
    import warnings

    import torch

    from aekit.training.checkpoint import load_weights

    def build() -> Any:
        return classifier_from_config(info) if info["kind"] == "classifier" else model_from_config(info["model"])

    with torch.device("meta"):
        shell = build()
    with warnings.catch_warnings():  # torch warns that copying into a meta tensor does nothing: the point
        warnings.simplefilter("ignore", UserWarning)
        load_weights(shell, weights, tensors)
    model = build()
    load_weights(model, weights, tensors)
    return model


def open_run(run_dir: str | os.PathLike[str], kinds: tuple[str, ...] = KINDS) -> OpenRun:
    """Open a run folder: config checked, model rebuilt and its weights loaded."""
    from aekit.training.checkpoint import load_tensors

    d = Path(run_dir)
    info = read_config(d)
    if info["kind"] not in kinds:
        want = " or ".join(kinds)
        hint = " (make one with `aekit finetune`)" if kinds == ("classifier",) else ""
        raise AekitError(f"{d}: {_a(info['kind'])} run, not {_a(want)} run{hint}")
    weights = d / "model.safetensors"
    tensors = load_tensors(weights)  # first: a damaged file is reported as such
    model = _model_of(info, weights, tensors)
    model.eval()
    opened = OpenRun(d, info, model)
    attach(model, opened)
    return opened


def opened(model_or_dir: Any, kinds: tuple[str, ...] = KINDS) -> OpenRun:
    """A run folder's path, or a model from :func:`open_run` or ``aekit.train``, as an OpenRun."""
    if isinstance(model_or_dir, str | os.PathLike):
        return open_run(model_or_dir, kinds)
    if isinstance(model_or_dir, OpenRun):
        return model_or_dir
    known = _RUNS.get(model_or_dir)
    if known is not None:
        return known
    # A model built in memory: no run behind it, so commands must be told which data to use.
    return OpenRun(None, {"format": FORMAT, "kind": "autoencoder", "model": {}, "run": {}}, model_or_dir)


# --- writing a run folder -----------------------------------------------------------------------


def _differences(saved: Any, new: Any, prefix: str) -> list[str]:
    if isinstance(saved, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(saved) | set(new)):
            if k in RESUME_SAFE:
                continue
            if k not in saved and new.get(k) in (None, False):  # a setting added since, left at its default
                continue
            out += _differences(saved.get(k), new.get(k), f"{prefix}{k}.")
        return out
    if isinstance(saved, list | tuple) and isinstance(new, list | tuple):
        saved, new = list(saved), list(new)
    return [] if saved == new else [f"{prefix[:-1]} differs from the run in {{out}} (the run has {saved!r}, "
                                    f"this command asks for {new!r})"]


def _open_lock(folder: Path) -> int:
    """Open (or create) ``folder``'s .lock for writing, refusing anything but a plain file.

    The lock is the one file of a run folder written in place rather than replaced by a rename, so
    a symbolic link there would have the PID written into its target (any file the user can
    write, or /dev/full): O_NOFOLLOW refuses a link, and fstat anything but a regular file (a
    pipe, a device). O_NONBLOCK: opening a pipe must not wait for a reader.
    """
    lock = folder / LOCK
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(lock, flags, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AekitError(f"{lock}: a symbolic link; aekit does not follow links where it writes a run "
                             "folder's lock (remove the link)") from None
        if exc.errno == errno.EISDIR:
            raise AekitError(f"{lock}: is a folder, not a lock file (remove it)") from None
        raise AekitError(f"{folder}: cannot write in it ({exc.strerror or exc})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise AekitError(f"{lock}: not a regular file (a pipe, socket or device); remove it") from None
    return fd


def _hold(fd: int, folder: Path, advice: str) -> int:
    """Take the exclusive lock on ``folder``'s open .lock file ``fd`` and write this process's PID
    in it; a holder alive already is named in one error line (and ``fd`` closed)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise AekitError(f"{folder} is being written by process {holder}; {advice}") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:  # a full disk or quota
        os.close(fd)
        raise AekitError(f"{folder / LOCK}: cannot write it ({exc.strerror or exc})") from None
    hold_folder(folder, folder / LOCK, fd)
    return fd


def _release(folder: Path, fd: int) -> None:
    release_folder(folder, fd)
    os.close(fd)  # closing drops the lock; the file stays (removing it would race a new writer)


@contextlib.contextmanager
def writing_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold a finished run folder's writer lock while a file is added to it (``aekit anomaly
    --save-threshold``): refused while a training command writes the folder, and a training command
    started meanwhile is refused in turn."""
    d = Path(run_dir)
    fd = _hold(_open_lock(d), d, "wait for it to finish")
    try:
        yield
    finally:
        _release(d, fd)


class RunWriter:
    """Exclusive, guarded writing of one run folder of one kind (a context manager).

    After ``__enter__``, ``resuming`` says whether training continues a saved checkpoint; call
    :meth:`begin` with the new config before anything else is written.
    """

    def __init__(self, out: str | Path, kind: str, resume: bool = False, *, writes: bool = True,
                 quiet: bool = False) -> None:
        self.out, self.kind, self.resume, self.writes, self.quiet = Path(out), kind, resume, writes, quiet
        self.resuming = False
        self.saved: dict[str, Any] | None = None
        self._fd: int | None = None

    def __enter__(self) -> RunWriter:
        check_name(self.out, "--out")
        if self.out.exists() and not self.out.is_dir():
            raise AekitError(f"--out {self.out}: a file stands there; name a folder")
        if not self.writes:  # the other processes of a distributed run follow rank 0 (setup_and_agree)
            return self
        existed, had_lock = self.out.is_dir(), (self.out / LOCK).exists()
        self._lock()
        try:
            self._inspect()
        except BaseException:
            # Refused: leave the folder as it was found (no .lock in someone else's folder).
            if not had_lock:
                (self.out / LOCK).unlink(missing_ok=True)
            self.__exit__()
            if not existed:
                shutil.rmtree(self.out, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            _release(self.out, self._fd)
            self._fd = None

    def _lock(self) -> None:
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise AekitError(f"--out {self.out}: a file stands in the way; name a folder") from None
        except PermissionError:
            raise AekitError(f"--out {self.out}: not writable (permission denied)") from None
        self._fd = _hold(_open_lock(self.out), self.out, "wait for it to finish or choose another --out")

    def _inspect(self) -> None:
        from aekit.training.checkpoint import recover_last

        out = self.out
        entries = [p for p in out.iterdir() if p.name != LOCK and not p.name.startswith(".last.")] \
            if out.is_dir() else []
        if (out / "config.json").is_file():
            self.saved = read_config(out)
            if self.saved["kind"] != self.kind:
                raise AekitError(f"{out} holds {_a(self.saved['kind'])} run, not {_a(self.kind)} run; "
                                 "choose another --out")
        if not self.resume:
            if self.saved is not None:
                raise AekitError(f"{out} already holds a run ({self.kind}); pass --resume to continue it "
                                 "or choose another --out")
            if entries:
                raise AekitError(f"{out} is not empty and holds no aekit run; choose another --out")
            return
        recover_last(out)
        for sub in out.glob("*/"):
            recover_last(sub)
        has_checkpoint = (out / "last" / "state.json").is_file() or any(out.glob("*/last/state.json"))
        if self.saved is not None and has_checkpoint:
            self.resuming = True
        elif self.saved is None and entries:
            raise AekitError(f"{out} is not empty and holds no aekit run; choose another --out")
        elif not self.quiet:
            what = "no checkpoint in it yet" if self.saved is not None else "no run there yet"
            print(f"aekit: --resume: {out}: {what}; starting the run", file=sys.stderr)

    def begin(self, info: dict[str, Any]) -> None:
        """Check a resumed run against ``info`` (before any write), else write ``info`` as config.json."""
        if not self.writes:
            return
        if self.resuming:
            assert self.saved is not None
            diffs = _differences({k: v for k, v in self.saved.items() if k not in ("aekit_version", "metrics")},
                                 {k: v for k, v in info.items() if k != "aekit_version"}, "")
            if diffs:
                raise AekitError(f"--resume: {diffs[0].replace('{out}', str(self.out))}; "
                                 "keep its settings or train a new run with another --out")
            return
        write_config(self.out, info)

    def check_epochs(self, epochs: int) -> None:
        """On resume: refuse fewer epochs than already run; say so when there is nothing left to train."""
        if not (self.resuming and self.writes):
            return
        from aekit.io import read_json_object
        from aekit.training.checkpoint import check_state

        where = self.out / "last" / "state.json"
        state = read_json_object(where)
        check_state(state, where)  # here, before anything is written, not when training restores it
        done = state["epoch"]
        if epochs < done:
            raise AekitError(f"--epochs {epochs}: {self.out} has already run {done} epochs; "
                             f"pass more than {done} to train further")
        if not self.quiet and (done >= epochs or state.get("stopped_early")):
            why = "stopped early (patience)" if state.get("stopped_early") else f"has run all {done} epochs"
            print(f"aekit: {self.out} {why}; nothing left to train (raise --epochs to continue)", file=sys.stderr)

    def finish(self, info: dict[str, Any]) -> None:
        if self.writes:
            write_config(self.out, info)

"""The runs a server may open: named by id (the folder's name), never by a path from a request.

Ids are fixed when the server starts, from the folders given on the command line and the run
folders directly under ``--runs``; a request's id is looked up in that table, so ``..``, ``/`` or
an unknown name can never reach the file system. A run is opened once, on first use, with what
the page needs computed beside it (test images, the anomaly threshold, the mean image).

An error about a run names it by id too: the server's folders are replaced in its message
(:func:`redact`), so a damaged file is reported as ``tiny/threshold.json: ...``.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aekit.errors import AekitError

ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
N_TEST = 500  # test images kept per run for picking, the latent map and denoising
N_REF = 1000  # validation images kept for the page (denoise baselines)


class RunNotFound(Exception):
    """An id that names no run of this server (answered with 404)."""


# An absolute path (POSIX, or a Windows drive's) not inside a word, a URL or a relative path; group 1
# is its last part, all that is kept of it. ``npy:/data/x.npy`` is a path after its source's name.
_ABS_PATH = re.compile(r"(?<![\w./\\~-])(?:/|[A-Za-z]:\\)(?=[^\s/\\:'\"])(?:[^\s/\\:'\"]+[/\\])*([^\s/\\:'\"]*)")


def redact(text: str, names: Mapping[Path, str] | None = None) -> str:
    """``text`` without server paths: each folder of ``names`` (folder -> id) replaced by its id, and
    any other absolute path by its last part (a file name says what is wrong, a folder where it lies)."""
    for d, name in sorted((names or {}).items(), key=lambda kv: -len(str(kv[0]))):
        text = text.replace(str(d), name)
    return _ABS_PATH.sub(r"\1", text)


@dataclass
class Served:
    """One opened run and what the page needs of it."""

    id: str
    opened: Any
    test_x: np.ndarray
    test_y: np.ndarray | None
    train_x: np.ndarray
    val_x: np.ndarray
    threshold: float
    error_scale: np.ndarray | None = None  # the score's per-value scale (threshold.json), None for [0, 1] data
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The run's model is used by one request at a time: a request takes ``gate`` (waiting for it holds
    # no thread), then ``lock`` where the work runs (the event loop or one worker thread).
    gate: asyncio.Lock = field(default_factory=asyncio.Lock)
    choosing: asyncio.Lock = field(default_factory=asyncio.Lock)  # one denoising baseline chosen at a time
    cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def model(self) -> Any:
        return self.opened.model

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.model.input_shape)

    @property
    def mean_image(self) -> np.ndarray:
        if "mean" not in self.cache:
            self.cache["mean"] = self.train_x.mean(0)
        return self.cache["mean"]


def _is_run(d: Path) -> bool:
    return d.is_dir() and (d / "config.json").is_file() and (d / "model.safetensors").is_file()


def find_runs(run_dirs: list[str | Path], runs_root: str | Path | None) -> dict[str, Path]:
    """{id: folder} for the folders given and the run folders directly under ``runs_root``."""
    found: dict[str, Path] = {}

    def add(d: Path) -> None:
        base = re.sub(r"[^A-Za-z0-9._-]", "_", d.name).lstrip(".-") or "run"
        rid, n = base, 2
        while rid in found:  # two folders of the same name in different places
            rid, n = f"{base}-{n}", n + 1
        found[rid] = d.resolve()

    for d in map(Path, run_dirs):
        if not _is_run(d):
            raise AekitError(f"{d}: not a run folder (no config.json and model.safetensors)")
        add(d)
    root = Path(runs_root) if runs_root is not None else None
    if root is not None and root.is_dir():
        for d in sorted(root.iterdir()):
            if _is_run(d) and d.resolve() not in found.values():
                add(d)
    return found


def _variational(family: Any) -> bool:
    """Whether a family is a VAE, which :mod:`aekit.tasks.generate` samples from (the page's Sample
    panel): by its registered class, so a family built on the VAE counts too; an unknown name does not."""
    from aekit.models.variational import VariationalAE
    from aekit.registry import model_class

    try:
        return issubclass(model_class(family), VariationalAE)
    except AekitError:
        return False


def describe(rid: str, d: Path) -> dict[str, Any]:
    """What the model picker shows, from config.json alone (no weights loaded)."""
    from aekit.run import read_config

    try:
        info = read_config(d)
    except AekitError as exc:
        return {"id": rid, "error": redact(str(exc), {d: rid})}
    m, data = info.get("model", {}), info.get("data", {})
    test = (info.get("metrics") or {}).get("test") or {}
    n_classes = m.get("n_classes")
    n_classes = n_classes if isinstance(n_classes, int) and not isinstance(n_classes, bool) and n_classes > 0 else 0
    return {"id": rid, "kind": info.get("kind"), "family": m.get("name"), "layers": m.get("layers"),
            "code": m.get("code"), "input_shape": m.get("input_shape"), "dataset": data.get("name"),
            "sse_per_image": test.get("sse_per_image"), "variational": _variational(m.get("name")),
            "conditional": n_classes > 0, "n_classes": n_classes}


class RunStore:
    """The id table and the cache of opened runs (one lock: two requests never open a run twice)."""

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs
        self._served: dict[str, Served] = {}
        self._lock = threading.Lock()
        self.opening = asyncio.Lock()  # requests for a run being opened wait here, not in worker threads

    def add(self, d: Path) -> str:
        """Register a run folder made while serving (a finished training job); returns its id."""
        with self._lock:
            for rid, known in self.dirs.items():
                if known == d.resolve():
                    return rid
            rid = next(iter(find_runs([d], None)))
            base, n = rid, 2
            while rid in self.dirs:
                rid, n = f"{base}-{n}", n + 1
            self.dirs[rid] = d.resolve()
            return rid

    def listing(self) -> list[dict[str, Any]]:
        return [describe(rid, d) for rid, d in list(self.dirs.items())]  # a job may add one meanwhile

    def opened(self, rid: str) -> Served | None:
        """The run if it is open already, None if it is not yet (opening it takes seconds)."""
        if not ID_RE.fullmatch(rid) or rid not in self.dirs:
            raise RunNotFound(rid)
        return self._served.get(rid)

    def get(self, rid: str) -> Served:
        self.opened(rid)
        with self._lock:
            if rid not in self._served:
                try:
                    self._served[rid] = self._open(rid)
                except AekitError as exc:  # a damaged file of the run: named by the run's id
                    raise AekitError(redact(str(exc), {self.dirs[rid]: rid})) from None
                except OSError as exc:  # unreadable (permissions, a folder where a file should be)
                    raise AekitError(f"{rid}: the run cannot be read ({exc.strerror or type(exc).__name__})") \
                        from None
            return self._served[rid]

    def _open(self, rid: str) -> Served:
        from aekit.metrics import as_float
        from aekit.run import open_run
        from aekit.tasks.anomaly import DEFAULT_RULE, record_scale, run_threshold, stored_threshold

        o = open_run(self.dirs[rid], ("autoencoder", "pretrain"))
        ds, cfg = o.dataset()
        val = ds.split("val", cfg.data.val_fraction, cfg.data.split_seed)
        if len(val.x) == 0:
            val = ds.split("train", cfg.data.val_fraction, cfg.data.split_seed)
        train = ds.split("train", cfg.data.val_fraction, cfg.data.split_seed)
        val_x = as_float(np.asarray(val.x[:N_REF]))
        # The run's own threshold (threshold.json, as `aekit anomaly` and export use), else the
        # default rule on the whole validation split: the same number the command would give.
        # A conditional VAE reconstructs nothing without each image's label, so it has no threshold (its
        # reconstructing calls are refused by the model; sampling, traversals and the manifold take a label).
        if getattr(o.model, "takes_labels", False):
            thr, scale = math.nan, None
        else:
            rec = stored_threshold(o.dir) or run_threshold(o, DEFAULT_RULE)
            thr, scale = float(rec["threshold"]), record_scale(rec, o.model)
        test_y = None if ds.test.y is None else np.asarray(ds.test.y[:N_TEST])
        return Served(rid, o, as_float(np.asarray(ds.test.x[:N_TEST])), test_y,
                      as_float(np.asarray(train.x[:2000])), val_x, thr, scale)

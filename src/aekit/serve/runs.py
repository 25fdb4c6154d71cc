"""The runs a server may open: named by id (the folder's name), never by a path from a request.

Ids come from the folders given on the command line and the run folders directly under ``--runs``;
a request's id is looked up in that table, so ``..``, ``/`` or an unknown name can never reach the
file system. The runs folder is looked at again on each ``GET /api/runs`` (:meth:`RunStore.rescan`: a
folder listing and a few stats, config.json read only where it changed), so a run trained with the
CLI beside the server joins the table and a removed one leaves it; an id, once given, keeps naming
the same folder. A run is opened once, on first use, with what the page needs computed beside it
(test images, the anomaly threshold, the mean image), and opened again when its weights change.

The panels that use an autoencoder take autoencoder and pre-training runs only: a classifier run is
listed, marked as such (``usable`` false and a ``note``), so that a picker can say why it is not
offered there; the Classify panel's calls take classifier runs only (:meth:`RunStore.get`'s ``kinds``).
Each run is listed with the ``tasks`` it was trained for (:func:`tasks_of`), so that each panel can
pick a run trained for its own.

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
from aekit.io import read_json

ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
N_MAP = 1000  # test images on the latent map, kept as floats (mnist-mini's whole test split)
MAX_TEST = 10_000  # test images a run offers to pick (MNIST's whole test split), kept as the dataset stores them
SERVED_KINDS = ("autoencoder", "pretrain")  # the runs whose model the panels use (a classifier: Classify's only)
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
    test_x: np.ndarray  # the first N_MAP test images as floats: the latent map's
    tests: np.ndarray  # the test images offered to pick (up to MAX_TEST), as the dataset stores them (uint8)
    test_y: np.ndarray | None  # the labels of ``tests``
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
    def noise(self) -> str | None:
        """The corruption the run was trained on (``[train] noise``): it sets the default infilling passes."""
        return self.opened.config().train.noise

    def test_images(self, start: int, stop: int) -> np.ndarray:
        """Test images ``start:stop`` as floats (converted per request: a whole test split as float32
        would be four times the bytes, for images that are picked one at a time)."""
        from aekit.metrics import as_float

        return as_float(np.asarray(self.tests[start:stop]))

    @property
    def mean_image(self) -> np.ndarray:
        if "mean" not in self.cache:
            self.cache["mean"] = self.train_x.mean(0)
        return self.cache["mean"]

    @property
    def light_background(self) -> bool:
        """Whether the training images are dark on light (their mean image's edge): an uploaded picture
        of the other polarity is inverted to match."""
        if "light" not in self.cache:
            from aekit.serve.inputs import light_background

            self.cache["light"] = len(self.shape) == 3 and light_background(self.mean_image)
        return self.cache["light"]


def _is_run(d: Path) -> bool:
    try:
        return d.is_dir() and (d / "config.json").is_file() and (d / "model.safetensors").is_file()
    except OSError:  # e.g. EACCES on lost+found or another user's folder: not a run of ours, the rest still are
        return False


def _new_id(d: Path, taken: Mapping[str, Path]) -> str:
    """An id for folder ``d``: its name, made safe, with a suffix where another folder has it."""
    # at most 120 characters, so that a suffix still fits the 128 the routes take (ID_RE)
    base = re.sub(r"[^A-Za-z0-9._-]", "_", d.name).lstrip(".-")[:120] or "run"
    rid, n = base, 2
    while rid in taken:  # two folders of the same name in different places
        rid, n = f"{base}-{n}", n + 1
    return rid


def _runs_under(root: Path | None) -> list[Path]:
    """The run folders directly under ``root`` (none where it is not a folder), in name order."""
    try:
        return [d for d in sorted(root.iterdir()) if _is_run(d)] if root is not None and root.is_dir() else []
    except OSError:  # removed or made unreadable while being listed
        return []


def find_runs(run_dirs: list[str | Path], runs_root: str | Path | None) -> dict[str, Path]:
    """{id: folder} for the folders given and the run folders directly under ``runs_root``."""
    found: dict[str, Path] = {}
    for d in map(Path, run_dirs):
        if not _is_run(d):
            raise AekitError(f"{d}: not a run folder (no config.json and model.safetensors)")
        found[_new_id(d, found)] = d.resolve()
    for d in _runs_under(Path(runs_root) if runs_root is not None else None):
        if d.resolve() not in found.values():
            found[_new_id(d, found)] = d.resolve()
    return found


def _resolved(path: str) -> Path | None:
    """A folder named in a run's config.json, resolved (None where it cannot be)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def _stamp(f: Path) -> tuple[int, int, int] | None:
    """What changes when a file is replaced (an atomic write is a new inode), None where it is absent."""
    try:
        st = f.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def variational_family(family: Any) -> bool:
    """Whether a family is a VAE, which :mod:`aekit.tasks.generate` samples from (the page's Sample
    panel): by its registered class, so a family built on the VAE counts too; an unknown name does not."""
    from aekit.models.variational import VariationalAE
    from aekit.registry import model_class

    try:
        return issubclass(model_class(family), VariationalAE)
    except AekitError:
        return False


def _sizes(value: Any) -> list[int] | None:
    """A list of positive whole numbers (layer widths, a shape), else None."""
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        return value
    return None


def architecture(m: dict[str, Any], encoder_only: bool = False) -> str:
    """A model table's network as people write it: ``784-64-2-64-784`` for fully connected layers
    (the encoder's widths, the code, the decoder mirroring them; ``784-64-2`` with ``encoder_only``),
    the channels of a convolutional one, the stochastic layers of a ladder; the code where the table
    says no more."""
    shape, code, layers = _sizes(m.get("input_shape")), m.get("code"), _sizes(m.get("layers"))
    if shape is None or not isinstance(code, int) or isinstance(code, bool):
        return f"code {code}"
    n_in, grid = math.prod(shape), "x".join(map(str, shape))
    # a VAE's table lists its conv channels even where its encoder is fully connected (arch "mlp")
    channels = _sizes(m.get("channels")) if m.get("arch") != "mlp" else None
    latents = _sizes(m.get("latents"))
    if channels is not None:
        return f"{grid} conv {'-'.join(map(str, channels))} code {code}"
    if latents is not None and layers is not None:  # deterministic widths, each under a stochastic layer
        return f"{n_in}-{'-'.join(map(str, layers))}, stochastic {'-'.join(map(str, [*latents, code]))}"
    if layers is None and "layers" in m:
        return f"code {code}"
    encoder = [n_in, *(layers or []), code]
    return "-".join(map(str, encoder if encoder_only else [*encoder, *encoder[-2::-1]]))


def tasks_of(info: dict[str, Any]) -> list[str]:
    """The page's tasks a run was trained for, from its config.json: ``reconstruct`` for an autoencoder
    (not a conditional VAE, which needs each image's label), ``denoise`` where it trained on corrupted
    inputs (``train.noise`` gaussian, masking or salt-pepper), ``infill`` on ``block:`` or ``center:``
    squares, ``sample`` for the variational family and ``classify`` for a fine-tuned classifier
    (``aekit finetune``)."""
    if info.get("kind") == "classifier":
        return ["classify"]
    if info.get("kind") not in SERVED_KINDS:
        return []
    m = info["model"] if isinstance(info.get("model"), dict) else {}
    run = info["run"] if isinstance(info.get("run"), dict) else {}
    noise = run["train"].get("noise") if isinstance(run.get("train"), dict) else None
    n_classes = m.get("n_classes")
    conditional = isinstance(n_classes, int) and not isinstance(n_classes, bool) and n_classes > 0
    tasks = [] if conditional else ["reconstruct"]
    if isinstance(noise, str) and noise.partition(":")[0] in ("gaussian", "masking", "salt-pepper"):
        tasks.append("denoise")
    elif isinstance(noise, str) and noise.startswith(("block:", "center:")):
        tasks.append("infill")
    if variational_family(m.get("name")):
        tasks.append("sample")
    return tasks


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
        else None


def classifier_facts(info: dict[str, Any], d: Path) -> dict[str, Any]:
    """What the Classify panel shows of a classifier run: how it was initialised, on how many labels,
    its test accuracy (summary.json, as ``aekit finetune`` wrote it) and the folder it was fine-tuned
    from (kept here, never answered: the listing names it by id)."""
    ft = info["finetune"] if isinstance(info.get("finetune"), dict) else {}
    labels = ft.get("labels")
    out: dict[str, Any] = {"init": ft.get("init") if ft.get("init") in ("pretrained", "random") else None,
                           "labels": labels if isinstance(labels, int | str) and not isinstance(labels, bool) else None,
                           "test_accuracy": None}
    try:  # read_json: a plain file only (a pipe would hang the listing, /dev/zero never end), size-capped
        summary = read_json(d / "summary.json")
        out["test_accuracy"] = _number(summary.get("test_accuracy")) if isinstance(summary, dict) else None
    except (AekitError, OSError, ValueError):
        pass
    parent = ft.get("pretrained")
    out["_parent"] = parent if isinstance(parent, str) and len(parent) < 4096 else None
    return out


def describe(rid: str, d: Path) -> dict[str, Any]:
    """What the model picker shows, from config.json alone (no weights loaded). ``usable`` says whether
    the page's panels can use the run; where not, ``note`` says why (a classifier run)."""
    from aekit.run import read_config
    from aekit.tasks.inpaint import default_passes

    try:
        info = read_config(d)
    except AekitError as exc:
        return {"id": rid, "usable": False, "error": redact(str(exc), {d: rid})}
    m, data = info.get("model", {}), info.get("data", {})
    metrics = info.get("metrics")
    test = metrics.get("test") if isinstance(metrics, dict) else None
    test = test if isinstance(test, dict) else {}  # a doctored config.json lists as a run without figures
    n_classes = m.get("n_classes")
    n_classes = n_classes if isinstance(n_classes, int) and not isinstance(n_classes, bool) and n_classes > 0 else 0
    kind = info.get("kind")
    train = info["run"].get("train") if isinstance(info.get("run"), dict) else None
    noise = train.get("noise") if isinstance(train, dict) else None
    noise = noise if isinstance(noise, str) else None
    out = {"id": rid, "kind": kind, "usable": kind in SERVED_KINDS, "family": m.get("name"), "layers": m.get("layers"),
           "code": m.get("code"), "architecture": architecture(m, kind == "classifier"),
           "input_shape": m.get("input_shape"),
           "dataset": data.get("name"), "sse_per_image": test.get("sse_per_image"),
           "variational": variational_family(m.get("name")), "conditional": n_classes > 0, "n_classes": n_classes,
           "tasks": tasks_of(info), "noise": noise, "infill_passes": default_passes(noise)}
    try:  # when it was trained (config.json is written last): the panels take the newest run for their task
        out["trained_at"] = round((d / "config.json").stat().st_mtime, 3)
    except OSError:
        out["trained_at"] = None
    if kind == "classifier":
        out["architecture"] += f" -> {info.get('n_classes')} classes"
        out["note"] = "a classifier run (aekit finetune): the Classify panel uses it, the others need an autoencoder"
        out.update(classifier_facts(info, d))
    return out


def of_kind(s: Served, kinds: tuple[str, ...] = SERVED_KINDS) -> Served:
    """``s`` if its run is of one of ``kinds``, else one line naming the run by id and what it is."""
    if s.opened.kind in kinds:
        return s
    raise kind_error(s.id, s.opened.kind)


def kind_error(rid: str, kind: str) -> AekitError:
    """The one line for a run of the wrong kind for a call (named by its id)."""
    if kind == "classifier":
        return AekitError(f"{rid}: a classifier run (aekit finetune); this call needs an autoencoder run")
    return AekitError(f"{rid}: an autoencoder run; this call needs a classifier run (make one with aekit finetune, "
                      "or the Classify panel's button)")


class RunStore:
    """The id table and the cache of opened runs (one lock: two requests never open a run twice).

    ``root`` is the runs folder that :meth:`rescan` looks at again; the runs found there come and go
    with their folders, while those named on the command line stay listed (as unreadable, if removed).
    """

    def __init__(self, dirs: dict[str, Path], root: str | Path | None = None) -> None:
        self.dirs = dirs
        self.root = Path(root) if root is not None else None
        scanned = {d.resolve() for d in _runs_under(self.root)}
        self._under_root = {rid for rid, d in dirs.items() if d in scanned}  # the ids rescan may take back
        self._served: dict[str, Served] = {}
        self._weights: dict[str, tuple[int, int, int] | None] = {}  # each opened run's weights file, as opened
        self._described: dict[str, tuple[Any, dict[str, Any]]] = {}  # id -> (config.json's stamp, describe())
        self._lock = threading.Lock()  # held while a run opens (seconds)
        self._table = threading.Lock()  # held while the id table changes (never for long)
        self.opening = asyncio.Lock()  # requests for a run being opened wait here, not in worker threads

    def add(self, d: Path) -> str:
        """Register a run folder made while serving (a finished training job); returns its id."""
        with self._table:
            for rid, known in self.dirs.items():
                if known == d.resolve():
                    return rid
            rid = _new_id(d, self.dirs)
            self.dirs[rid] = d.resolve()
            if self.root is not None and d.resolve().parent == self.root.resolve():  # a job's: rescan may take it back
                self._under_root.add(rid)
            return rid

    def rescan(self) -> None:
        """The runs folder looked at again: a run folder that appeared (``aekit train`` beside the
        server) gets an id, one that went (or stopped being a run) loses its; an opened run whose weights
        file was replaced is opened afresh on next use. A listing and a few stats per run, no weights read."""
        found = {d.resolve(): d for d in _runs_under(self.root)}
        with self._table:
            for rid in [r for r in self._under_root if self.dirs[r] not in found]:
                del self.dirs[rid]
                self._under_root.discard(rid)
                self._served.pop(rid, None)
                self._weights.pop(rid, None)
            known = set(self.dirs.values())
            for resolved, d in found.items():
                if resolved not in known:
                    rid = _new_id(d, self.dirs)
                    self.dirs[rid] = resolved
                    self._under_root.add(rid)
            for rid in list(self._served):
                held = self.dirs.get(rid)
                if held is None or _stamp(held / "model.safetensors") != self._weights.get(rid):
                    self._served.pop(rid, None)

    def listing(self) -> list[dict[str, Any]]:
        """Each run's :func:`describe`, its config.json read again only where the file changed."""
        self.rescan()
        out = []
        ids = {d: rid for rid, d in list(self.dirs.items())}
        for rid, d in list(self.dirs.items()):  # a job may add one meanwhile
            stamp = _stamp(d / "config.json")
            seen = self._described.get(rid)
            if seen is None or seen[0] != (d, stamp) or stamp is None:
                seen = self._described[rid] = ((d, stamp), describe(rid, d))
            r = seen[1]
            if "_parent" in r:  # the folder a classifier was fine-tuned from: named by its id, or not at all
                parent = _resolved(r["_parent"]) if r["_parent"] else None
                r = {k: v for k, v in r.items() if k != "_parent"}
                r["parent"] = ids.get(parent) if parent is not None else None
            out.append(r)
        for rid in set(self._described) - set(self.dirs):
            self._described.pop(rid, None)
        return out

    def opened(self, rid: str) -> Served | None:
        """The run if it is open already, None if it is not yet (opening it takes seconds)."""
        if not ID_RE.fullmatch(rid) or rid not in self.dirs:
            raise RunNotFound(rid)
        return self._served.get(rid)

    def get(self, rid: str, kinds: tuple[str, ...] = SERVED_KINDS) -> Served:
        """Run ``rid`` opened (once), if it is of one of ``kinds`` (:func:`of_kind`). A run not yet opened is
        refused from its config.json first: opening loads its weights and images only to refuse it."""
        d = self.dirs.get(rid)
        if self.opened(rid) is None and d is not None:
            from aekit.run import read_config

            try:
                kind = read_config(d).get("kind")
            except AekitError:
                kind = None  # opening says what is wrong with it
            if isinstance(kind, str) and kind not in kinds:
                raise kind_error(rid, kind)
        return of_kind(self._get(rid), kinds)

    def _get(self, rid: str) -> Served:
        self.opened(rid)
        with self._lock:
            s, d = self._served.get(rid), self.dirs.get(rid)
            if d is None:  # its folder went meanwhile (rescan)
                raise RunNotFound(rid)
            if s is None:
                try:
                    weights = _stamp(d / "model.safetensors")  # taken first: weights written meanwhile reopen it
                    s = self._served[rid] = self._open(rid, d)
                    self._weights[rid] = weights
                except AekitError as exc:  # a damaged file of the run: named by the run's id
                    raise AekitError(redact(str(exc), {d: rid})) from None
                except OSError as exc:  # unreadable (permissions, a folder where a file should be)
                    raise AekitError(f"{rid}: the run cannot be read ({exc.strerror or type(exc).__name__})") \
                        from None
            return s

    def _open(self, rid: str, d: Path) -> Served:
        from aekit.metrics import as_float
        from aekit.run import open_run
        from aekit.tasks.anomaly import DEFAULT_RULE, record_scale, run_threshold, stored_threshold

        o = open_run(d, (*SERVED_KINDS, "classifier"))  # which kinds a call takes, get() checks
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
        if getattr(o.model, "takes_labels", False) or o.kind == "classifier":  # nor does a classifier
            thr, scale = math.nan, None
        else:
            rec = stored_threshold(o.dir) or run_threshold(o, DEFAULT_RULE)
            thr, scale = float(rec["threshold"]), record_scale(rec, o.model)
        # A slice is a view that would keep a larger test split alive: copied where it is cut short.
        tests = ds.test.x if len(ds.test.x) <= MAX_TEST else np.array(ds.test.x[:MAX_TEST])
        test_y = None if ds.test.y is None else np.asarray(ds.test.y[:MAX_TEST])
        return Served(rid, o, as_float(np.asarray(tests[:N_MAP])), tests, test_y,
                      as_float(np.asarray(train.x[:2000])), val_x, thr, scale)

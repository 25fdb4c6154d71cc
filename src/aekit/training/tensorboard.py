"""TensorBoard logging of a training run (``--tensorboard DIR``, extra ``aekit[tensorboard]``).

The loop knows nothing of TensorBoard: :class:`~aekit.training.loop.Trainer` hands each finished
epoch's row to its epoch callbacks (:func:`epoch_callbacks`), and this is one of them. Each call of
``fit`` logs into its own sub-folder of DIR named after its run folder (one layer of greedy
pre-training, one stage of fine-tuning), which TensorBoard shows as separate runs.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from aekit.errors import AekitError

GRID_EVERY = 5  # epochs between reconstruction grids (and the first and last epoch)
GRID_SAMPLES = 8


class EpochCallback(Protocol):
    def on_epoch(self, trainer: Any, row: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def summary_writer() -> Any:
    """torch's SummaryWriter class, or one error line naming the extra that provides it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise AekitError("--tensorboard needs the tensorboard extra: pip install 'aekit[tensorboard]'") from None
    return SummaryWriter


def check_logdir(text: str | os.PathLike[str]) -> Path:
    """``--tensorboard DIR`` as a folder logs can be written to, or one error line.

    Checked when the settings are (RunConfig.validate), before the run folder, its lock and its
    config.json exist, so the corrected command is not refused as "already holds a run": the
    extra is installed, the name is not empty (it would log into the working folder) nor too long,
    no file, pipe or device stands at DIR, no link there is broken or loops, and the folder (or the
    nearest one above it that exists: the writer creates the rest) takes a new file, tried by
    creating and removing an empty one, which also answers for read-only file systems and ACLs.
    """
    from aekit.io import check_name, open_new, temp_path

    summary_writer()
    if str(text) == "":
        raise AekitError("--tensorboard: empty folder name; name the folder for the logs")
    p = Path(text)
    check_name(p, "--tensorboard")
    folder = p
    while not folder.exists():  # the writer creates missing folders: check the first one that exists
        if folder.is_symlink():  # exists() is False for a dangling link and for a loop of links
            raise AekitError(f"--tensorboard {p}: {folder} is a broken link or a loop of links")
        folder = folder.parent
    if not folder.is_dir():
        what = "" if folder == p else f"{folder} "
        raise AekitError(f"--tensorboard {p}: {what}is not a folder (a file, pipe or device stands there)")
    probe = temp_path(folder / "events", ".probe")
    try:
        os.close(open_new(probe))
    except OSError as exc:
        reason = "read-only file system" if exc.errno == errno.EROFS else (exc.strerror or str(exc)).lower()
        raise AekitError(f"--tensorboard {p}: cannot write in {folder} ({reason})") from None
    probe.unlink(missing_ok=True)
    return p


class TensorBoard:
    """Per epoch: every number of the row (losses, lr, validation metrics, speed) as a scalar, and
    every few epochs a grid of validation images above their reconstructions."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        try:
            self.writer = summary_writer()(log_dir=str(logdir))
        except OSError as exc:  # what only shows now: the folder was changed since it was checked
            raise self._failed(exc) from None

    def _failed(self, exc: OSError) -> AekitError:
        return AekitError(f"--tensorboard: cannot write {self.logdir} ({exc.strerror or exc})")

    def on_epoch(self, trainer: Any, row: dict[str, Any]) -> None:
        try:
            self._log(trainer, row)
        except OSError as exc:  # a full disk, a folder removed: one line, not a traceback mid-training
            raise self._failed(exc) from None

    def _log(self, trainer: Any, row: dict[str, Any]) -> None:
        epoch = int(row["epoch"])
        for key, value in row.items():
            if key != "epoch" and isinstance(value, int | float) and not isinstance(value, bool):
                group = "val" if key.startswith("val_") else "train" if key.startswith("train_") else "run"
                self.writer.add_scalar(f"{group}/{key}", value, epoch)
        if epoch == 1 or epoch % GRID_EVERY == 0 or epoch == trainer.cfg.epochs:
            grid = reconstruction_grid(trainer)
            if grid is not None:
                self.writer.add_image("reconstructions", grid, epoch, dataformats="CHW")
        self.writer.flush()  # a killed run keeps the epochs it logged

    def close(self) -> None:
        try:
            self.writer.close()
        except OSError as exc:
            raise self._failed(exc) from None


def reconstruction_grid(trainer: Any) -> np.ndarray | None:
    """(C, 2H, N*W) in [0, 1]: validation images on top, reconstructions below; None for models
    that do not reconstruct (classifiers) or data that is not images."""
    from aekit.metrics import as_float

    model, x = trainer.model, trainer.x_val
    shape = tuple(getattr(model, "input_shape", ()))
    if x is None or not hasattr(model, "reconstruct") or len(shape) != 3 or shape[0] not in (1, 3):
        return None
    x = x[:GRID_SAMPLES]
    x = x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)
    top = as_float(x).reshape(len(x), *shape)
    bottom = np.clip(model.reconstruct(x).reshape(len(x), *shape), 0, 1)  # no random draws: resumes stay exact
    rows = [np.concatenate(list(part), axis=2) for part in (top, bottom)]  # each (C, H, N*W)
    return np.concatenate(rows, axis=1)


def epoch_callbacks(cfg: Any, out: Path | None, writes: bool) -> list[EpochCallback]:
    """The callbacks a training setting asks for (only the process that writes logs)."""
    if cfg.tensorboard is None or not writes:
        return []
    return [TensorBoard(Path(cfg.tensorboard) / (out.name if out is not None else "fit"))]

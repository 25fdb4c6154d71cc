"""Checkpoints as folders: ``model.safetensors`` (weights) + JSON (config, metadata, metrics).

Nothing is pickled. Every file is written atomically -- to a temp file in the same folder,
fsync'd, then renamed over the target -- so a run killed at any moment leaves either the old
checkpoint or the new one, never half of one. Optimizer state is split into its tensors
(safetensors) and its plain values (JSON) so that ``--resume`` needs no pickle either.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from aekit.errors import AekitError
from aekit.io import (
    atomic_write_bytes,
    check_owned,
    dumps,
    fsync_dir,
    make_parents,
    read_plain_bytes,
    write_json,  # noqa: F401  (importable from here, as before aekit.io existed)
)


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write ``tensors`` to ``path`` as safetensors, atomically."""
    atomic_write_bytes(path, tensors_bytes(tensors))


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file.

    Raises:
        AekitError: The file is missing, unreadable or corrupt.
    """
    p = Path(path)
    data = read_plain_bytes(p, "weights file", missing="not found; is this an aekit run directory?")
    try:
        return st_load(data)
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise AekitError(f"{p}: corrupt weights file ({str(exc).splitlines()[0] if str(exc) else exc!r})") from None


def optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state_dict into tensors and JSON-able values."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Load the state :func:`optimizer_state` split; ValueError if it does not fit ``opt``'s parameters."""
    state: dict[int, dict[str, Any]] = {}
    for key, v in [*tensors.items(), *meta["scalars"].items()]:
        pid, _, name = key.partition(".")
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    check_optimizer_state(opt)


def check_optimizer_state(opt: torch.optim.Optimizer) -> None:
    """Raise ValueError unless each parameter's state has the entries and shapes a step gives it.

    ``load_state_dict`` checks neither, and a fused step given moments of another shape reads
    and writes out of bounds (a segmentation fault), so a damaged checkpoint is refused here.
    What a step keeps comes from one step of a twin optimizer on a 2x3 parameter: its state
    tensors are either that shape (moments, one per weight) or scalars (the step count).
    """
    twin_p = torch.zeros(2, 3, requires_grad=True)
    twin_p.grad = torch.zeros(2, 3)
    # Only the settings its constructor takes: AdamW's defaults also hold decoupled_weight_decay, which
    # it sets itself and refuses as an argument (so every AdamW run failed to resume)
    import inspect

    takes = inspect.signature(type(opt).__init__).parameters
    twin = type(opt)([twin_p], **{k: v for k, v in opt.defaults.items() if k in takes})
    twin.step()
    want = twin.state[twin_p]
    for group in opt.param_groups:
        for i, p in enumerate(group["params"]):
            have = opt.state.get(p)
            if not have:  # no state yet (saved before its first step): the optimizer starts it
                continue
            if set(have) != set(want):
                raise ValueError(f"optimizer state of parameter {i} holds {sorted(have)}, not {sorted(want)}")
            for k, v in have.items():
                if torch.is_tensor(want[k]):
                    shape = p.shape if want[k].shape == twin_p.shape else want[k].shape
                    if not torch.is_tensor(v) or v.shape != shape:
                        got = tuple(v.shape) if torch.is_tensor(v) else type(v).__name__
                        raise ValueError(f"optimizer state {k} of parameter {i} is {got}, not {tuple(shape)}")


# What last/state.json holds (Trainer.save_last); the optional keys came after the first release.
STATE_COUNTS = ("epoch", "bad_epochs", "steps", "best_epoch")
STATE_OPTIONAL_COUNTS = ("step_in_epoch", "epoch_done")


def check_state(state: dict[str, Any], where: Path) -> None:
    """Refuse a damaged ``last/state.json`` in one line, before anything is restored from it."""
    def damaged(what: str) -> AekitError:
        return AekitError(f"{where}: {what}; the checkpoint is damaged, start a new run in another --out")

    for key in (*STATE_COUNTS, "history", "best_val_loss", "optimizer"):
        if key not in state:
            raise damaged(f"no {key!r} in it")
    for key in (*STATE_COUNTS, *STATE_OPTIONAL_COUNTS):
        v = state.get(key, 0)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise damaged(f"{key} must be a whole number >= 0, got {v!r:.40}")
    for key in ("best_val_loss", "epoch_loss_sum"):  # null: NaN or infinity (JSON has no spelling for them)
        v = state.get(key)
        if v is not None and (not isinstance(v, int | float) or isinstance(v, bool)):
            raise damaged(f"{key} must be a number, got {v!r:.40}")
    if not isinstance(state["history"], list) or not all(isinstance(r, dict) for r in state["history"]):
        raise damaged("history must be a list of per-epoch records")
    if not isinstance(state.get("stopped_early", False), bool):
        raise damaged(f"stopped_early must be true or false, got {state['stopped_early']!r:.40}")
    meta = state["optimizer"]
    if not (isinstance(meta, dict) and isinstance(meta.get("param_groups"), list)
            and isinstance(meta.get("scalars"), dict)):
        raise damaged("optimizer must be a table of param_groups and scalars")
    sched = state.get("schedule", {"start": 0, "epochs": 1})  # absent before the horizon was kept
    if not (isinstance(sched, dict) and set(sched) == {"start", "epochs"}
            and all(isinstance(v, int) and not isinstance(v, bool) for v in sched.values())
            and 0 <= sched["start"] <= 1_000_000 and 1 <= sched["epochs"] <= 1_000_000):
        raise damaged(f"schedule must be a table of a start epoch and a number of epochs, got {sched!r:.60}")


# --- the last/ checkpoint: a folder that is whole or absent ---------------------------------------
#
# Its files are written into a fresh hidden folder beside it (state.json last), which is then
# renamed into place: `last` -> `.last.old-*`, `.last.new-*` -> `last`, then the old one removed.
# A kill between the two renames leaves no `last` but a complete `.last.new-*`, which
# `recover_last` puts in place; a kill anywhere else leaves the previous `last` untouched.

LAST = "last"


def kill_point(name: str) -> None:
    """Test hook: ``AEKIT_TEST_KILL_AT=NAME:K`` SIGKILLs this process the K-th time it passes NAME.

    The kill test (tests/test_kill.py) uses it to stop a run in the middle of an epoch, between
    the files of one checkpoint and between its renames, places a random timer would rarely hit.
    Points: ``step`` (after an optimizer step), ``checkpoint-file``, ``checkpoint-rename``.
    """
    if _KILL_AT is None or _KILL_AT[0] != name:
        return
    _KILL_COUNTS[name] = _KILL_COUNTS.get(name, 0) + 1
    if _KILL_COUNTS[name] == _KILL_AT[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def _kill_at() -> tuple[str, int] | None:
    point, _, count = os.environ.get("AEKIT_TEST_KILL_AT", "").partition(":")
    return (point, int(count or 1)) if point else None


_KILL_AT = _kill_at()
_KILL_COUNTS: dict[str, int] = {}


def write_last(out: Path, files: dict[str, bytes | dict[str, Any]]) -> None:
    """Write the ``last/`` checkpoint of run folder ``out`` whole: bytes as they are, dicts as JSON.

    ``files`` is written in its order; put ``state.json`` last.
    """
    new = out / f".{LAST}.new-{secrets.token_hex(4)}"
    # Never into, nor recreating, a run folder this process no longer holds: checked first, and
    # folders are made only where missing, so one deleted after the check fails below instead.
    check_owned(out)
    try:
        if not out.is_dir():  # a sub-run's folder (layer-1/) before its first file; never the held run folder
            make_parents(out)
        new.mkdir()
        for name, content in files.items():
            data = content if isinstance(content, bytes) else dumps(content).encode()
            atomic_write_bytes(new / name, data)
            kill_point("checkpoint-file")
        fsync_dir(new)
        last, old = out / LAST, out / f".{LAST}.old-{secrets.token_hex(4)}"
        if last.exists():
            os.replace(last, old)
        kill_point("checkpoint-rename")
        os.replace(new, last)
        fsync_dir(out)
    except BaseException as exc:
        shutil.rmtree(new, ignore_errors=True)
        if isinstance(exc, OSError):
            check_owned(out)  # the run folder deleted meanwhile: say so, in one line
        raise
    shutil.rmtree(old, ignore_errors=True)


def recover_last(out: Path) -> None:
    """Put a whole checkpoint back at ``last/`` after a kill between renames; drop leftovers."""
    last = out / LAST
    spares = sorted(out.glob(f".{LAST}.new-*")) + sorted(out.glob(f".{LAST}.old-*"))
    if not last.exists():
        for cand in spares:  # a complete new one first (it is newer), else the old one
            if (cand / "state.json").is_file():
                os.replace(cand, last)
                break
    for cand in spares:
        shutil.rmtree(cand, ignore_errors=True)


def tensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    """``tensors`` as the bytes of a safetensors file (copied to the CPU)."""
    return st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def load_weights(model: Any, path: Path, tensors: dict[str, Any] | None = None) -> None:
    """Load the weights file ``path`` (or its ``tensors``, read already) into ``model``, strictly."""
    try:
        model.load_state_dict(load_tensors(path) if tensors is None else tensors)
    except RuntimeError as exc:
        # torch lists every mismatching tensor on its own line; the first says enough.
        detail = " ".join(str(exc).split("\n\t")[:2]).splitlines()[0]
        raise AekitError(f"{path}: weights do not fit the model in config.json ({detail})") from None

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
from aekit.io import atomic_write_bytes, dumps, fsync_dir, read_json, write_json  # noqa: F401 (re-exported)


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    atomic_write_bytes(path, tensors_bytes(tensors))


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    p = Path(path)
    try:
        return st_load(p.read_bytes())
    except FileNotFoundError:
        raise AekitError(f"{p}: not found; is this an aekit run directory?") from None
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise AekitError(f"{p}: corrupt weights file ({exc})") from None


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
    state: dict[int, dict[str, Any]] = {}
    for key, v in [*tensors.items(), *meta["scalars"].items()]:
        pid, _, name = key.partition(".")
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


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
    new.mkdir(parents=True)
    try:
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
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
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
    return st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})

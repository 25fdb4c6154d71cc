"""Checkpoints as folders: ``model.safetensors`` (weights) + JSON (config, metadata, metrics).

Nothing is pickled. Every file is written atomically -- to a temp file in the same folder,
fsync'd, then renamed over the target -- so a run killed at any moment leaves either the old
checkpoint or the new one, never half of one. Optimizer state is split into its tensors
(safetensors) and its plain values (JSON) so that ``--resume`` needs no pickle either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from aekit.errors import AekitError
from aekit.io import atomic_write_bytes, atomic_write_text, read_json, write_json  # noqa: F401 (re-exported)


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    atomic_write_bytes(path, st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))


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

"""Fine-tuning a pre-trained encoder into a classifier, in the lecture's two steps.

Step 1 (``stage="top"``): a new softmax layer on top of the frozen encoder, trained on labels.
Step 2 (``stage="all"``): backpropagation through the whole network. ``stage="both"`` runs step 1
then step 2. ``init="random"`` builds the same network from a fresh random start and trains it
with the same budget -- the baseline that shows whether pre-training helped.

Labelled subsets are stratified (equal share per class, as far as the data allows) and seeded;
early stopping watches the accuracy on a labelled validation subset drawn the same way.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aekit.errors import AekitError
from aekit.training.loop import as_batch, make_optimizer, to_tensor

STAGES = ("top", "all", "both")
INITS = ("pretrained", "random")


class Classifier(nn.Module):
    """An encoder (``nn.Sequential`` from an autoencoder) with a linear softmax layer on top."""

    def __init__(self, encoder: nn.Module, code_size: int, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(code_size, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def stratified_subset(y: np.ndarray, n: int | str, seed: int) -> np.ndarray:
    """Indices of ``n`` labelled samples, spread evenly over the classes (``"all"``: every one)."""
    if isinstance(n, str):
        if n != "all":
            raise AekitError(f"--labels takes a number or 'all', got {n!r}")
        return np.arange(len(y))
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise AekitError(f"--labels must be a positive number or 'all', got {n!r}")
    if n > len(y):
        raise AekitError(f"--labels {n}: only {len(y)} labelled training samples exist")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    if n < len(classes):
        raise AekitError(f"--labels {n}: fewer labels than the {len(classes)} classes")
    # Equal shares, the remainder to random classes; a class that runs out gives its rest to others.
    take = np.minimum(counts, n // len(classes))
    while take.sum() < n:
        room = np.flatnonzero(take < counts)
        extra = rng.choice(room, size=min(n - take.sum(), len(room)), replace=False)
        take[extra] += 1
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), k, replace=False) for c, k in zip(classes, take,
                                                                                               strict=True)])
    return np.sort(idx)


@dataclass
class StageResult:
    stage: str
    epochs: int
    best_val_accuracy: float
    seconds: float


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 4096) -> float:
    device = next(model.parameters()).device
    model.eval()
    xt = to_tensor(x, device)
    correct = 0
    for i in range(0, len(xt), batch):
        pred = model(as_batch(xt[i : i + batch])).argmax(1).cpu().numpy()
        correct += int((pred == y[i : i + batch]).sum())
    return correct / max(len(y), 1)


def train_stage(model: Classifier, stage: str, x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray,
                epochs: int, batch_size: int, lr: float, patience: int | None, seed: int,
                weight_decay: float = 0.0) -> StageResult:
    """One fine-tuning step; ``stage="top"`` trains only the head, the encoder frozen."""
    from aekit.config import TrainConfig

    for p in model.encoder.parameters():
        p.requires_grad_(stage != "top")
    device = next(model.parameters()).device
    opt = make_optimizer(model, TrainConfig(lr=lr, weight_decay=weight_decay))
    g = torch.Generator().manual_seed(seed)
    xt, yt = to_tensor(x, device), torch.from_numpy(y.astype(np.int64)).to(device)
    bs = min(batch_size, len(xt))
    best, best_state, bad, t0, done = -1.0, None, 0, time.perf_counter(), 0
    for _epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=g).to(device)
        for i in range(math.ceil(len(xt) / bs)):
            idx = perm[i * bs : (i + 1) * bs]
            loss = F.cross_entropy(model(as_batch(xt.index_select(0, idx))), yt.index_select(0, idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        done += 1
        acc = accuracy(model, xv, yv)
        if acc > best:
            best, bad = acc, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if patience is not None and bad >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    for p in model.parameters():
        p.requires_grad_(True)
    return StageResult(stage, done, best, round(time.perf_counter() - t0, 2))


def save_classifier(out: str | Path, model: Classifier, info: dict[str, Any], summary: dict[str, Any]) -> None:
    from aekit.training import checkpoint as ckpt

    out = Path(out)
    ckpt.save_tensors(out / "model.safetensors", model.state_dict())
    ckpt.write_json(out / "config.json", info)
    ckpt.write_json(out / "summary.json", summary)


def load_classifier(run_dir: str | Path) -> tuple[Classifier, dict[str, Any]]:
    from aekit.registry import create_model
    from aekit.training import checkpoint as ckpt

    d = Path(run_dir)
    if not d.is_dir():
        raise AekitError(f"{d}: no such run directory")
    info = ckpt.read_json(d / "config.json")
    if info.get("kind") != "classifier":
        raise AekitError(f"{d}: not a classifier run (make one with `aekit finetune`)")
    mc = dict(info["model"])
    name, shape = mc.pop("name"), tuple(mc.pop("input_shape"))
    ae = create_model(name, shape, **mc)
    model = Classifier(ae.encoder, ae.code_size, info["n_classes"])
    model.load_state_dict(ckpt.load_tensors(d / "model.safetensors"))
    model.input_shape = shape
    return model.eval(), info

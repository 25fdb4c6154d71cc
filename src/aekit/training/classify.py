"""Fine-tuning a pre-trained encoder into a classifier, in the lecture's two steps.

Step 1 (``stage="top"``): a new softmax layer on top of the frozen encoder, trained on labels.
Step 2 (``stage="all"``): backpropagation through the whole network. ``stage="both"`` runs step 1
then step 2. ``init="random"`` builds the same network from a fresh random start and trains it
with the same budget -- the baseline that shows whether pre-training helped.

Labelled subsets are stratified (equal share per class, as far as the data allows) and seeded;
early stopping watches the accuracy on a labelled validation subset drawn the same way.

The budget is counted in epochs of at least ``MIN_STEPS_PER_EPOCH`` optimizer steps: with 100
labels and batches of 128 a plain epoch is a single step, and patience counted in such epochs
would stop training long before the network has learnt anything. Small sets are cycled instead.

Two regularisers for long fine-tuning on many labels: ``dropout`` (after every hidden layer of
the encoder, Srivastava et al. 2014) and ``shift`` (each training image moved by up to that many
pixels in each direction, zero-padded, drawn afresh for every batch).
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
MIN_STEPS_PER_EPOCH = 50
INITS = ("pretrained", "random")


def with_dropout(encoder: nn.Sequential, p: float) -> nn.Sequential:
    """The encoder's modules with ``Dropout(p)`` on every layer's output (after its activation).

    Dropout holds no parameters, but it shifts the module numbering: a saved classifier is rebuilt
    the same way (from the ``dropout`` in its config) before its weights are loaded.
    """
    if not p:
        return encoder
    mods: list[nn.Module] = []
    for i, m in enumerate(encoder):
        mods.append(m)
        nxt = encoder[i + 1] if i + 1 < len(encoder) else None
        has_weights = any(True for _ in m.parameters())
        activation_follows = nxt is not None and not any(True for _ in nxt.parameters()) \
            and not isinstance(nxt, nn.Flatten)
        if isinstance(m, nn.Flatten) or (has_weights and activation_follows):
            continue
        mods.append(nn.Dropout(p))
    return nn.Sequential(*mods)


class Classifier(nn.Module):
    """An encoder (``nn.Sequential`` from an autoencoder) with a linear softmax layer on top."""

    def __init__(self, encoder: nn.Module, code_size: int, n_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        if not 0 <= dropout < 1:
            raise AekitError(f"--dropout must lie in [0, 1), got {dropout}")
        self.encoder = with_dropout(encoder, dropout) if isinstance(encoder, nn.Sequential) else encoder
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


def random_shift(x: torch.Tensor, s: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of (B, C, H, W) moved by its own integer offset in [-s, s] both ways, zero-filled."""
    b, _, h, w = x.shape
    xp = F.pad(x, (s, s, s, s))
    oy = torch.randint(0, 2 * s + 1, (b, 1), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * s + 1, (b, 1), generator=generator).to(x.device)
    rows = oy + torch.arange(h, device=x.device)  # (B, H)
    cols = ox + torch.arange(w, device=x.device)  # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None]
    return xp[bi, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


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
                weight_decay: float = 0.0, shift: int = 0, schedule: str = "none") -> StageResult:
    """One fine-tuning step; ``stage="top"`` trains only the head, the encoder frozen."""
    from aekit.config import TrainConfig

    if shift and x.ndim != 4:
        raise AekitError("--shift needs image data (N, C, H, W)")
    for p in model.encoder.parameters():
        p.requires_grad_(stage != "top")
    device = next(model.parameters()).device
    opt = make_optimizer(model, TrainConfig(lr=lr, weight_decay=weight_decay))
    g = torch.Generator().manual_seed(seed)
    xt, yt = to_tensor(x, device), torch.from_numpy(y.astype(np.int64)).to(device)
    bs = min(batch_size, len(xt))
    per_pass = math.ceil(len(xt) / bs)
    steps = max(per_pass, MIN_STEPS_PER_EPOCH)
    best, best_state, bad, t0, done = -1.0, None, 0, time.perf_counter(), 0
    for epoch in range(epochs):
        if schedule == "cosine":
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        model.train()
        # Enough permutations of the subset for `steps` batches (one, unless the subset is small).
        perm = torch.cat([torch.randperm(len(xt), generator=g) for _ in range(math.ceil(steps / per_pass))])
        perm = perm.to(device)
        for i in range(steps):
            rep, j = divmod(i, per_pass)  # batch j of permutation number rep
            idx = perm[rep * len(xt) + j * bs : rep * len(xt) + min((j + 1) * bs, len(xt))]
            xb = as_batch(xt.index_select(0, idx))
            if shift:
                xb = random_shift(xb, shift, g)
            loss = F.cross_entropy(model(xb), yt.index_select(0, idx))
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
    model = Classifier(ae.encoder, ae.code_size, info["n_classes"], info.get("finetune", {}).get("dropout", 0.0))
    model.load_state_dict(ckpt.load_tensors(d / "model.safetensors"))
    model.input_shape = shape
    return model.eval(), info

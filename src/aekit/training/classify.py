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

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import FINETUNE_INITS, FINETUNE_STAGES, TrainConfig
from aekit.data.dataset import Split
from aekit.errors import AekitError
from aekit.models.classifier import Classifier
from aekit.training.batches import random_shift
from aekit.training.loop import Objective, as_batch, check_shift, fit, to_tensor

__all__ = ["INITS", "MIN_STEPS_PER_EPOCH", "STAGES", "Classification", "Classifier", "StageResult", "accuracy",
           "finetune_stages", "random_shift", "stratified_subset", "train_stage"]

STAGES = FINETUNE_STAGES
MIN_STEPS_PER_EPOCH = 50
INITS = FINETUNE_INITS


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
    """One fine-tuning stage's outcome: its name, epochs, best validation accuracy and time."""

    stage: str
    epochs: int
    best_val_accuracy: float
    seconds: float


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray | torch.Tensor, y: np.ndarray, batch: int = 4096) -> float:
    """The share of ``x``'s samples a classifier labels as ``y`` says, in batches of ``batch``."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    xt = x if isinstance(x, torch.Tensor) else to_tensor(x, device)
    correct = 0
    for i in range(0, len(xt), batch):
        pred = model(as_batch(xt[i : i + batch])).argmax(1).cpu().numpy()
        correct += int((pred == y[i : i + batch]).sum())
    model.train(was_training)
    return correct / max(len(y), 1)


class Classification(Objective):
    """The loop's objective for fine-tuning: cross-entropy on labels; early stopping on the error rate.

    Epochs are at least ``MIN_STEPS_PER_EPOCH`` steps (small labelled sets are cycled), and with
    ``shift`` each training image moves by up to that many pixels, afresh for every batch.
    """

    uses_labels = True
    min_steps_per_epoch = MIN_STEPS_PER_EPOCH

    def __init__(self, shift: int = 0) -> None:
        super().__init__()
        self.shift = shift

    def prepare(self, model: nn.Module, cfg: TrainConfig, x_train: Any, device: torch.device) -> None:
        check_shift(self.shift, x_train)

    def inputs(self, model: nn.Module, xb: torch.Tensor, yb: torch.Tensor | None, step: int,
               gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if yb is None:  # uses_labels: the loop gives every batch its labels
            raise RuntimeError("a classification batch needs its labels")
        return (random_shift(xb, self.shift, gen) if self.shift else xb), yb

    def begin_epoch(self, model: nn.Module, epoch: int, epochs: int) -> None:
        """A classifier has no per-epoch schedule (its encoder's model is not trained here)."""

    def loss(self, model: nn.Module, inp: torch.Tensor, target: torch.Tensor,
             labels: torch.Tensor | None = None) -> torch.Tensor:
        return F.cross_entropy(model(inp), target)  # the labels are the target

    def validate(self, model: nn.Module, x: Any, y: Any, cfg: TrainConfig) -> dict[str, Any]:
        acc = accuracy(model, x, y)
        return {"val_loss": 1.0 - acc, "val_accuracy": acc}


def finetune_stages(model: Classifier, stages: list[str], train: Split, val: Split, cfg: TrainConfig,
                    out: Path | None = None, *, shift: int = 0, resume: bool = False,
                    progress: bool | None = None) -> list[StageResult]:
    """Step 1 (``top``: the head on the frozen encoder) and/or step 2 (``all``), each a :func:`fit`.

    Stage ``k`` trains with seed ``cfg.seed + k`` in ``out/stage-NAME`` (its own checkpoints), so a
    resumed fine-tuning replays finished stages from their best weights and continues the open one.
    """
    results = []
    for k, stage in enumerate(stages):
        for p in model.encoder.parameters():
            p.requires_grad_(stage != "top")
        sub = out / f"stage-{stage}" if out is not None else None
        again = resume and sub is not None and (sub / "last" / "state.json").is_file()
        stage_cfg = dataclasses.replace(cfg, seed=cfg.seed + k)
        res = fit(model, train, val, stage_cfg, sub, objective=Classification(shift), resume=again,
                  progress=progress)
        for p in model.parameters():
            p.requires_grad_(True)
        results.append(StageResult(stage, len(res.history), round(1.0 - res.best_val_loss, 6),
                                   round(sum(h["seconds"] for h in res.history), 2)))
    return results


def train_stage(model: Classifier, stage: str, x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray,
                epochs: int, batch_size: int, lr: float, patience: int | None, seed: int,
                weight_decay: float = 0.0, shift: int = 0, schedule: str = "none") -> StageResult:
    """One fine-tuning step on arrays, in memory; ``stage="top"`` trains only the head, the encoder frozen."""
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed,
                      weight_decay=weight_decay, schedule=schedule)
    return finetune_stages(model, [stage], Split(x, y), Split(xv, yv), cfg, shift=shift, progress=False)[0]


def labelled_splits(train: Split, val: Split, test: Split, labels: int | str, seed: int,
                    name: str = "the dataset") -> tuple[Split, Split, int]:
    """The labelled training subset, a labelled validation subset in proportion to it (at least 10
    per class, for early stopping) and the number of classes."""
    if train.y is None or test.y is None:
        raise AekitError(f"{name} has no labels to fine-tune on")
    if not np.issubdtype(train.y.dtype, np.integer):
        raise AekitError(f"{name}: fine-tuning needs class labels (whole numbers), got {train.y.dtype}")
    if train.y.min() < 0 or test.y.min() < 0:
        raise AekitError(f"{name}: class labels must be 0 or more")
    n_classes = int(max(train.y.max(), test.y.max())) + 1
    if n_classes < 2:
        raise AekitError(f"{name}: fine-tuning needs at least 2 classes, found {n_classes}")
    idx = stratified_subset(train.y, labels, seed)
    n_val = len(val) if labels == "all" else min(len(val), max(10 * n_classes, len(idx) // 5))
    if len(val):
        if val.y is None:
            raise AekitError(f"{name} has no labels to fine-tune on")
        vidx = stratified_subset(val.y, n_val, seed + 1)
        return Split(train.x[idx], train.y[idx]), Split(val.x[vidx], val.y[vidx]), n_classes
    return Split(train.x[idx], train.y[idx]), Split(train.x[idx], train.y[idx]), n_classes

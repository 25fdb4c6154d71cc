"""Training one autoencoder run end to end: device, model, the one loop, final figures and pictures.

:func:`aekit.api.train` opens and guards the run folder (:mod:`aekit.run`) and calls
:func:`train_autoencoder`, which does the rest: it builds the model, runs :func:`fit`, scores the
best weights on every split and writes ``summary.json``, ``threshold.json`` (the anomaly threshold,
:mod:`aekit.tasks.anomaly`), ``loss.png`` and ``reconstructions.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.config import RunConfig
from aekit.data.dataset import Dataset
from aekit.errors import AekitError
from aekit.io import write_json
from aekit.metrics import evaluate_model
from aekit.training import distributed
from aekit.training.infill import training_view
from aekit.training.loop import FitResult, fit

RECON_GRID = 16
MIN_TRAIN_ROWS = 2  # one to train on and one to validate on, at the least


def min_train_rows(val_fraction: float) -> int:
    """The fewest training rows whose split (``round(n * val_fraction)`` held out) leaves at least
    one row to train on and, when ``val_fraction`` > 0, one to validate on."""
    def enough(n: int) -> bool:
        n_val = round(n * val_fraction)
        return n - n_val >= 1 and (val_fraction == 0 or n_val >= 1)

    # Below these counts rounding empties a part; both parts only grow with n, so the answer lies a
    # step or two above (a fraction so small that the count passes 10^15 is reported as that).
    start = max(MIN_TRAIN_ROWS, int(min(0.5 / val_fraction, 1e15)) if val_fraction else 0,
                int(min(0.5 / (1 - val_fraction), 1e15)))
    return next((n for n in range(start, start + 4) if enough(n)), start)


def check_trainable(ds: Dataset, cfg: RunConfig) -> None:
    """Refuse data too small to train and score on, before anything is written."""
    d = cfg.data
    n_train = len(ds.split("train", d.val_fraction, d.split_seed))
    n_val = len(ds.split("val", d.val_fraction, d.split_seed)) if d.val_fraction > 0 else 0
    need = min_train_rows(d.val_fraction)
    if len(ds.train) < need:
        raise AekitError(f"{ds.name}: {len(ds.train)} training rows leave {n_train} to train on and {n_val} to "
                         f"validate on; give at least {need} training rows for --val-fraction {d.val_fraction:g}, "
                         "or lower --val-fraction")


def build_model(cfg: RunConfig, ds: Dataset) -> Any:
    """The run's model for ``ds``: its options from ``[model]``, ``conditional = true`` resolved to the
    dataset's class count, its output (or likelihood) chosen for the data's value range."""
    from aekit.registry import constructor_options, create_model

    opts = constructor_options(cfg.model, lambda: ds.class_count("--conditional (conditional = true)"))
    model = create_model(cfg.model.get("name", "mlp"), ds.sample_shape, **opts)
    model.resolve_output(ds.value_range)
    return model


def shuffled_rows(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``k`` rows of ``x`` in a random order drawn from ``seed`` (cycled where ``x`` has fewer)."""
    order = np.random.default_rng(seed).permutation(len(x))
    return x[order[np.arange(k) % len(x)]]


def train_autoencoder(model: Any, ds: Dataset, cfg: RunConfig, out: Path, *, device: torch.device,
                      resume: bool, progress: bool | None) -> tuple[dict[str, Any], FitResult]:
    """Fit ``model`` on ``ds`` into run folder ``out``; returns (summary, fit result).

    In a distributed run only rank 0 scores and writes; the others return an empty summary.
    """
    d = cfg.data
    train_split = ds.split("train", d.val_fraction, d.split_seed)
    val_split = ds.split("val", d.val_fraction, d.split_seed) if d.val_fraction > 0 else None
    # What the loop trains on: the split, or for dynamically binarised data its grey levels with
    # fresh binary draws every batch (training/infill.py); scoring below reads the fixed binary rows.
    fit_split, corruption = training_view(train_split, cfg.train.noise, clip=model.output == "sigmoid")
    if not resume:  # (a resumed run's weights come from its checkpoint)
        model.start_from_data(lambda k: shuffled_rows(fit_split.x, k, cfg.train.seed))
    res = fit(model, fit_split, val_split, cfg.train, out, device=device, corrupt=corruption, resume=resume,
              progress=progress)
    distributed.finish()
    if distributed.rank_and_size()[0] != 0:
        model.cpu().eval()
        return {}, res
    splits = {"train": train_split, "val": val_split, "test": ds.test}
    metrics = {name: evaluate_model(model, s.x, cfg.train.eval_batch_size, s.y)
               for name, s in splits.items() if s is not None and len(s)}
    summary = {
        "metrics": metrics,
        "best_epoch": res.best_epoch,
        "epochs_run": len(res.history),
        "steps": res.steps,
        "train_seconds": round(sum(h["seconds"] for h in res.history), 2),
        "stopped_early": res.stopped_early,
        "precision": res.precision,  # what --precision auto picked
        "compiled": res.compiled,  # False where --compile fell back to eager
        "n_parameters": model.n_parameters(),
    }
    write_json(out / "summary.json", summary)
    if not getattr(model, "takes_labels", False):
        # An anomaly score has no label to give a model conditioned on labels: no threshold for it.
        keep_threshold(model, out, train_split, val_split, ds.name, ds.value_range == "unit")
    from aekit import plots

    plots.loss_curve(res.history, out / "loss.png", title=f"{model.family} on {ds.name}")
    show = ds.test if len(ds.test) else train_split
    reconstruct_grid(model, show.x[:RECON_GRID], out / "reconstructions.png",
                     None if show.y is None else show.y[:RECON_GRID])
    model.cpu().eval()
    return summary, res


def keep_threshold(model: Any, out: Path, train: Any, val: Any, data: str, unit_range: bool) -> None:
    """threshold.json for the weights just trained: the rule stored before (a resumed run), else
    contamination:0.01, chosen on the validation split (the training split without one), with the
    error scale measured on the training split where the data is not in [0, 1]."""
    from aekit.tasks.anomaly import (
        DEFAULT_RULE,
        SET_BY_TRAINING,
        save_threshold,
        stored_threshold,
        threshold_on_splits,
    )

    try:
        before = stored_threshold(out, check_weights=False)  # its weights are the ones replaced
    except AekitError:
        before = None
    rule = before["rule"] if before else DEFAULT_RULE
    normal = before.get("normal_classes") if before else None
    try:
        rec = threshold_on_splits(model, train, val, rule, normal, unit_range=unit_range)
    except AekitError:  # a stored fpr: rule whose normal classes this split lacks
        rec = threshold_on_splits(model, train, val, DEFAULT_RULE, normal, unit_range=unit_range)
    save_threshold(out, {**rec, "data": data}, SET_BY_TRAINING)


def reconstruct_grid(model: Any, x: Any, path: str | Path, labels: Any = None) -> Path:
    """Originals above their reconstructions (``labels`` for a model conditioned on them)."""
    from aekit import plots
    from aekit.metrics import as_float
    from aekit.models.base import with_labels

    return plots.image_rows([as_float(x), model.reconstruct(x, **with_labels(model, labels))],
                            tuple(model.input_shape), path,
                            labels=["input", "output"], title="originals (top) and reconstructions (bottom)")


MAX_GRID = 1024  # samples in one reconstruction picture: wider is no picture a person can read


def check_grid_size(n: int) -> None:
    """Refuse a picture of other than 1 to ``MAX_GRID`` images (``--n``).

    Raises:
        AekitError: ``n`` is not a whole number in that range.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_GRID:
        raise AekitError(f"--n must be a whole number from 1 to {MAX_GRID}, got {n!r}")


def seeded_model(cfg: RunConfig, ds: Dataset) -> Any:
    """The run's model, initialised from its seed (the same weights on every process of a run)."""
    torch.manual_seed(cfg.train.seed)
    return build_model(cfg, ds)

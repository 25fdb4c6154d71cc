"""One fine-tuning job: a pre-trained autoencoder's encoder becomes a classifier (``aekit finetune``).

:class:`FinetuneJob` holds the options and checks them before any data is read; :meth:`plan` picks
the labelled subsets and builds the network and the run's config; :meth:`run` trains the stages
with the one loop (:func:`aekit.training.classify.finetune_stages`) and scores the result. The
run folder itself is opened, guarded and locked by :func:`aekit.api.finetune`.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from aekit.config import RunConfig, TrainConfig
from aekit.data.dataset import Split
from aekit.errors import AekitError
from aekit.io import write_json
from aekit.models.classifier import Classifier
from aekit.training import checkpoint as ckpt
from aekit.training.classify import INITS, STAGES, accuracy, finetune_stages, labelled_splits


@dataclass
class Plan:
    """What a fine-tuning run trains: the classifier, its data, and the tables of its config.json
    (``model``, ``run``, ``data``, ``n_classes``, ``finetune``; :func:`aekit.run.make_config` adds the rest)."""

    tables: dict[str, Any]
    model: Classifier
    train: Split
    val: Split
    test: Split


@dataclass
class FinetuneJob:
    """The settings of ``aekit finetune`` (:func:`aekit.api.finetune` documents each one)."""

    labels: int | str = "all"
    stage: str = "both"
    init: str = "pretrained"
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    patience: int | None = 5
    seed: int = 0
    dropout: float = 0.0
    shift: int = 0
    schedule: str = "none"
    weight_decay: float = 0.0
    device: str = "auto"
    deterministic: bool = False
    tensorboard: str | None = None
    precision: str = "fp32"
    compile: str = "off"

    def train_config(self) -> TrainConfig:
        """The ``TrainConfig`` each fine-tuning stage trains with."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, patience=self.patience,
                           seed=self.seed, weight_decay=self.weight_decay, schedule=self.schedule, device=self.device,
                           deterministic=self.deterministic, tensorboard=self.tensorboard,
                           precision=self.precision, compile=self.compile)

    def checked(self) -> FinetuneJob:
        """``self``, once every setting is checked.

        Raises:
            AekitError: A setting is unknown or out of range.
        """
        if self.stage not in STAGES:
            raise AekitError(f"unknown stage {self.stage!r}; use top, all or both")
        if self.init not in INITS:
            raise AekitError(f"unknown init {self.init!r}; use pretrained or random")
        if self.schedule not in ("none", "cosine"):
            raise AekitError(f"unknown fine-tuning schedule {self.schedule!r}; use none or cosine")
        if isinstance(self.shift, bool) or not isinstance(self.shift, int) or not 0 <= self.shift <= 64:
            raise AekitError(f"--shift must be 0 or more pixels (at most 64), got {self.shift}")
        if not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise AekitError(f"--dropout must lie in [0, 1), got {self.dropout}")
        RunConfig(train=self.train_config()).validate()  # the ranges every training setting has
        return self

    def plan(self, pretrained: Any, ds: Any) -> Plan:
        """``pretrained``: an :class:`aekit.run.OpenRun` of an autoencoder or pre-training run."""
        from aekit.device import resolve_device
        from aekit.registry import create_model

        device = resolve_device(self.device)
        cfg = pretrained.config()
        if tuple(pretrained.model.input_shape) != ds.sample_shape:
            raise AekitError(f"the model takes samples of shape {tuple(pretrained.model.input_shape)} but {ds.name} "
                             f"has {ds.sample_shape}")
        d = cfg.data
        tr, va, n_classes = labelled_splits(ds.split("train", d.val_fraction, d.split_seed),
                                            ds.split("val", d.val_fraction, d.split_seed), ds.test, self.labels,
                                            self.seed, ds.name)
        torch.manual_seed(self.seed)
        ae = copy.deepcopy(pretrained.model)  # the caller's model stays as it was
        if self.init == "random":
            mc = ae.config()
            ae = create_model(mc.pop("name"), tuple(mc.pop("input_shape")), **mc)
        # The family's features (the encoder and its code; an mae's pooled tokens), not an `if` on its kind
        body, width = ae.classifier_body()
        model = Classifier(body, width, n_classes, self.dropout, tuple(ae.input_shape)).to(device)
        tables = {"model": ae.config(), "run": pretrained.info.get("run", {}), "data": ds.describe(),
                  "n_classes": n_classes, "finetune": {**asdict(self), "pretrained": str(pretrained.dir)}}
        return Plan(tables, model, tr, va, ds.test)

    def run(self, plan: Plan, out: Path | None, *, resume: bool, progress: bool | None) -> dict[str, Any]:
        """Run the stages of ``plan`` and return the summary (test error in %), writing ``out`` if given."""
        stages = ["top", "all"] if self.stage == "both" else [self.stage]
        results = finetune_stages(plan.model, stages, plan.train, plan.val, self.train_config(), out,
                                  shift=self.shift, resume=resume, progress=progress)
        assert plan.test.y is not None  # labelled_splits refused a test split without labels
        test_acc = accuracy(plan.model, plan.test.x, plan.test.y)
        summary = {"labels": len(plan.train), "n_val": len(plan.val), "stage": self.stage, "init": self.init,
                   "n_classes": plan.tables["n_classes"], "stages": [asdict(r) for r in results],
                   "test_accuracy": test_acc, "test_error_percent": 100 * (1 - test_acc),
                   "seconds": round(sum(r.seconds for r in results), 2)}
        if out is not None:
            ckpt.save_tensors(out / "model.safetensors", plan.model.state_dict())
            write_json(out / "summary.json", summary)
            summary["run_dir"] = str(out)
        plan.model.cpu().eval()
        return summary

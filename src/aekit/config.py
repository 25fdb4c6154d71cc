"""Run configuration: dataclasses that round-trip through TOML (input) and JSON (run directory).

A config has three tables, ``[data]``, ``[model]`` and ``[train]``. ``[model]`` holds ``name`` plus
that family's options, checked by the registry; the other two are checked here. Unknown keys and
values of the wrong type are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aekit.errors import AekitError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")


@dataclass
class DataConfig:
    name: str = "mnist-mini"
    data_dir: str | None = None
    val_fraction: float = 0.1
    split_seed: int = 0
    image_size: int | None = None
    color: str | None = None


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "none"  # none | cosine (to 0 over the run) | step (x0.1 at 1/2 and 3/4 of the epochs)
    patience: int | None = None  # early stopping: epochs without a better validation loss
    clip_grad: float | None = None
    precision: str = "fp32"  # fp32 | bf16 | fp16 | auto: autocast for the forward pass, fp32 master weights
    noise: str | None = None  # denoising: gaussian:σ | masking:ν | salt-pepper:ν, fresh for every batch
    seed: int = 0
    device: str = "auto"
    max_steps: int | None = None  # stop after this many optimizer steps (benchmarks, smoke tests)
    eval_batch_size: int = 2048
    log_every: int = 20  # steps between progress-bar updates (each one reads the loss back from the device)


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=lambda: {"name": "mlp"})
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"data": dataclasses.asdict(self.data), "model": dict(self.model),
                "train": dataclasses.asdict(self.train)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> RunConfig:
        unknown = sorted(set(d) - {"data", "model", "train"})
        if unknown:
            raise AekitError(f"{where}: unknown section(s) {', '.join(unknown)}; use [data], [model], [train]")
        model = dict(d.get("model", {}))
        model.setdefault("name", "mlp")
        model.pop("input_shape", None)
        return cls(
            data=_build(DataConfig, d.get("data", {}), f"{where} [data]"),
            model=model,
            train=_build(TrainConfig, d.get("train", {}), f"{where} [train]"),
        )

    def validate(self) -> RunConfig:
        t = self.train
        for key in ("epochs", "batch_size", "eval_batch_size", "log_every"):
            if getattr(t, key) < 1:
                raise AekitError(f"train.{key} must be at least 1, got {getattr(t, key)}")
        if t.lr <= 0:
            raise AekitError(f"learning rate must be positive, got {t.lr}")
        for key, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("device", DEVICES),
                             ("precision", PRECISIONS)):
            if getattr(t, key) not in allowed:
                raise AekitError(f"unknown {key} {getattr(t, key)!r}; use one of {', '.join(allowed)}")
        if t.patience is not None and t.patience < 1:
            raise AekitError(f"patience must be at least 1, got {t.patience}")
        if t.max_steps is not None and t.max_steps < 1:
            raise AekitError(f"max_steps must be at least 1, got {t.max_steps}")
        if t.noise is not None:
            from aekit.data.noise import parse_noise

            parse_noise(t.noise)
        if not 0 <= self.data.val_fraction < 1:
            raise AekitError(f"val_fraction must be in [0, 1), got {self.data.val_fraction}")
        return self


def _type_ok(value: Any, annotation: str) -> bool:
    if value is None:
        return "None" in annotation
    if isinstance(value, bool):
        return annotation.startswith("bool")
    if annotation.startswith("int"):
        return isinstance(value, int)
    if annotation.startswith("float"):
        return isinstance(value, int | float)
    if annotation.startswith("str"):
        return isinstance(value, str)
    return True


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise AekitError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    for k, v in values.items():
        if not _type_ok(v, str(fields[k].type)):
            raise AekitError(f"{where}: {k} = {v!r} has the wrong type (expected {fields[k].type})")
    out = cls(**{k: float(v) if str(fields[k].type).startswith("float") and v is not None else v
                 for k, v in values.items()})
    return out


def load_config(path: str | Path | None) -> RunConfig:
    """Read a TOML (or a run directory's JSON) config; None gives the defaults."""
    if path is None:
        return RunConfig()
    p = Path(path)
    if not p.is_file():
        raise AekitError(f"{p}: config file not found")
    try:
        raw = json.loads(p.read_text()) if p.suffix == ".json" else tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise AekitError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'TOML'} ({exc})") from None
    return RunConfig.from_dict(raw, where=str(p))


def apply_overrides(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Apply ``{"train.lr": 0.01, "model.code": 30, ...}``; None values mean "not given"."""
    d = cfg.to_dict()
    for key, value in overrides.items():
        if value is None:
            continue
        section, _, name = key.partition(".")
        d[section][name] = value
    return RunConfig.from_dict(d, where="overrides")

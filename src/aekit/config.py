"""Run configuration: dataclasses that round-trip through TOML (input) and JSON (run directory).

A config has three tables, ``[data]``, ``[model]`` and ``[train]``. ``[model]`` holds ``name`` plus
that family's options, checked by the registry; the other two are checked here. Unknown keys and
values of the wrong type are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aekit.errors import AekitError, key_text

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
COMPILE_MODES = ("off", "on")  # --compile: torch.compile of the training step (training/speed.py)
LOSSES = ("mse", "bce")
SPLITS = ("train", "val", "test")  # what a command that reads a run may read (--split)
PRETRAIN_MODES = ("greedy", "end-to-end")
FINETUNE_STAGES = ("top", "all", "both")
FINETUNE_INITS = ("pretrained", "random")
FINETUNE_SCHEDULES = ("none", "cosine")
LATENT_METHODS = ("pca", "tsne")
INPAINT_STARTS = ("mean", "zeros")
THRESHOLD_KINDS = ("contamination", "percentile", "fpr")  # --threshold KIND:VALUE (tasks/anomaly.py)
EXPORT_FORMATS = ("onnx", "torchscript")
EXPORT_PARTS = ("full", "encoder", "decoder", "score")


@dataclass
class DataConfig:
    """The ``[data]`` table: which dataset, and how it is split.

    Attributes:
        name: A dataset name (``aekit datasets``) or a source, ``npy:PATH``, ``npz:PATH``, ``csv:PATH``,
            ``images:DIR``.
        data_dir: The folder holding a named dataset's files (else ``$AEKIT_DATA_DIR``, the cache, a download).
        val_fraction: The share of the training part held out for validation.
        split_seed: Seed of the validation split (and of a test split for sources without one).
        image_size: ``images:DIR`` pictures are resized to this size.
        color: ``images:DIR`` pictures as "gray" or "rgb" (None: as the first picture is).
    """

    name: str = "mnist-mini"
    data_dir: str | None = None
    val_fraction: float = 0.1
    split_seed: int = 0
    image_size: int | None = None
    color: str | None = None


@dataclass
class TrainConfig:
    """The ``[train]`` table: how a model is trained, as ``aekit train``'s flags set it.

    Attributes:
        epochs: Passes over the training split.
        batch_size: Samples per optimizer step.
        lr: Learning rate.
        optimizer: "adam", "adamw" or "sgd".
        momentum: SGD's momentum.
        weight_decay: L2 penalty (decoupled with adamw).
        schedule: Learning-rate schedule: "none", "cosine" or "step".
        schedule_restart: On resume with other epochs, a new schedule over the epochs left.
        patience: Early stopping after this many epochs without a better validation loss (None: never).
        clip_grad: Gradient-norm clipping (None: none).
        precision: Autocast precision of the forward pass: "fp32", "bf16", "fp16" or "auto".
        compile: "on" puts the step through ``torch.compile``.
        noise: Denoising corruption, ``KIND:LEVEL`` (gaussian, masking, salt-pepper, block), or None.
        seed: Random seed of the weights, the batch order and the corruption.
        device: "auto", "cpu", "cuda" or "mps".
        max_steps: Stop after this many optimizer steps (None: no limit).
        eval_batch_size: Samples per forward pass when evaluating.
        log_every: Steps between progress updates.
        checkpoint_every: Also write ``last/`` every this many steps (None: at epoch ends only).
        checkpoint_minutes: And at least this often, in minutes of training.
        deterministic: PyTorch's deterministic algorithms and a fixed CPU thread count.
        tensorboard: A folder for TensorBoard event files, or None.
        ema: Decay of an exponential moving average of the weights, whose average is validated and
            kept (e.g. 0.999), or None for none.
        shift: Random translations of each training image by up to this many pixels, input and
            target alike (0: none).
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "none"  # none | cosine (to 0 over the run) | step (x0.1 at 1/2 and 3/4 of the epochs)
    # On --resume with other --epochs: a new schedule from the resumed epoch (else the run's horizon holds)
    schedule_restart: bool = False
    patience: int | None = None  # early stopping: epochs without a better validation loss
    clip_grad: float | None = None
    precision: str = "fp32"  # fp32 | bf16 | fp16 | auto: autocast for the forward pass, fp32 master weights
    compile: str = "off"  # off | on: torch.compile of the step (inductor; CUDA graphs on CUDA)
    noise: str | None = None  # denoising: gaussian:σ | masking:ν | salt-pepper:ν, fresh for every batch
    seed: int = 0
    device: str = "auto"
    max_steps: int | None = None  # stop after this many optimizer steps (benchmarks, smoke tests)
    eval_batch_size: int = 2048
    log_every: int = 20  # steps between progress-bar updates (each one reads the loss back from the device)
    checkpoint_every: int | None = None  # also write last/ every this many optimizer steps (preemption)
    checkpoint_minutes: float = 10.0  # ... and at least this often, in minutes of training
    deterministic: bool = False  # PyTorch's deterministic algorithms (CUDA); kept in config.json
    tensorboard: str | None = None  # a folder for TensorBoard event files (extra aekit[tensorboard])
    ema: float | None = None  # weight averaging: the decay of the moving average (training/averaging.py)
    shift: int = 0  # augmentation: random translations by up to this many pixels (images only)


@dataclass
class RunConfig:
    """A whole recipe: the ``[data]``, ``[model]`` and ``[train]`` tables.

    ``aekit.load_config`` reads one from TOML; a run folder keeps the one it was trained with.

    Attributes:
        data: The dataset and its split.
        model: ``name`` (a registered family) and that family's options, checked by the registry.
        train: The training settings.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=lambda: {"name": "mlp"})
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-able dicts, one per table (what ``config.json`` keeps under ``run``)."""
        return {"data": dataclasses.asdict(self.data), "model": dict(self.model),
                "train": dataclasses.asdict(self.train)}

    @classmethod
    def from_dict(cls, d: Any, where: str = "config") -> RunConfig:
        """Build a config from its tables, refusing unknown tables and keys.

        Args:
            d: A dict with up to three tables, ``data``, ``model`` and ``train``.
            where: What to call the source in error messages (a file name).

        Returns:
            The config; call ``validate()`` to check every value's range.

        Raises:
            AekitError: ``d`` is not a dict of tables, or a table has an unknown key or a value of the wrong type.
        """
        if not isinstance(d, dict):
            raise AekitError(f"{where}: expected a table of [data], [model] and [train] settings, "
                             f"found a {_kind(d)}")
        unknown = sorted(set(d) - {"data", "model", "train"})
        if unknown:
            raise AekitError(f"{where}: unknown section(s) {', '.join(map(key_text, unknown))}; "
                             "use [data], [model], [train]")
        for section in ("data", "model", "train"):
            # `model = "mlp"` at the top of a TOML file is a value, not the [model] table.
            if not isinstance(d.get(section, {}), dict):
                raise AekitError(f"{where}: {section} must be a table ([{section}] with its keys below it), "
                                 f"found a {_kind(d[section])} ({d[section]!r:.40})")
        model = dict(d.get("model", {}))
        model.setdefault("name", "mlp")
        model.pop("input_shape", None)
        if not isinstance(model["name"], str):
            raise AekitError(f"{where} [model]: name = {model['name']!r:.40} must be a string such as \"mlp\"")
        return cls(
            data=_build(DataConfig, d.get("data", {}), f"{where} [data]"),
            model=model,
            train=_build(TrainConfig, d.get("train", {}), f"{where} [train]"),
        )

    def validate(self) -> RunConfig:
        """Check every setting against its type and range (before any data is read or memory allocated)."""
        for section, obj in (("train", self.train), ("data", self.data)):
            for f in dataclasses.fields(obj):
                check_setting(f"{section}.{f.name}", getattr(obj, f.name))
        t = self.train
        for key, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("device", DEVICES),
                             ("precision", PRECISIONS), ("compile", COMPILE_MODES)):
            if getattr(t, key) not in allowed:
                raise AekitError(f"unknown {key} {getattr(t, key)!r}; use one of {', '.join(allowed)}")
        if t.noise is not None:
            from aekit.data.noise import parse_noise

            parse_noise(t.noise)
        if t.tensorboard is not None:  # before the run folder is made (one line, not a refused rerun)
            from aekit.training.tensorboard import check_logdir

            check_logdir(t.tensorboard)
        if self.data.color not in (None, "gray", "rgb"):
            raise AekitError(f"data.color must be gray or rgb, got {self.data.color!r}")
        if not self.data.name:
            raise AekitError("data.name is empty; name a dataset (see `aekit datasets`)")
        from aekit.registry import check_model_config

        # The model's own options (names, types, unit counts) are checked here too, so that a bad
        # `--code` fails before a large dataset is read; its parameter count needs the data's
        # shape and is checked when the model is built, before anything is allocated.
        check_model_config(self.model)
        return self


# Ranges of the numeric settings: (low, high, brackets), "[]" closed, "(]" or "[)" open at one
# end. Wide enough for any real run, narrow enough that a typo (a minus sign, an extra zero, a
# NaN) is refused before it is used: a negative clip_grad flips the gradients, a NaN learning
# rate trains nothing, a seed outside [0, 2^32) makes NumPy raise deep inside a split.
_SEED_MAX = 2**32 - 1
_RANGES: dict[str, tuple[float, float, str]] = {
    "train.epochs": (1, 1_000_000, "[]"),
    "train.batch_size": (1, 10_000_000, "[]"),
    "train.eval_batch_size": (1, 10_000_000, "[]"),
    "train.log_every": (1, 1_000_000_000, "[]"),
    "train.lr": (0.0, 10.0, "(]"),
    "train.momentum": (0.0, 1.0, "[)"),  # SGD with momentum 1 or more never forgets a step: it diverges
    "train.weight_decay": (0.0, 10.0, "[]"),
    "train.patience": (1, 1_000_000, "[]"),
    "train.clip_grad": (0.0, 1e9, "(]"),  # leave it unset for no clipping
    "train.seed": (0, _SEED_MAX, "[]"),
    "train.max_steps": (1, 10**12, "[]"),
    "train.checkpoint_every": (1, 10**12, "[]"),
    "train.checkpoint_minutes": (0.0, 1e6, "(]"),
    "train.ema": (0.0, 1.0, "()"),  # 0 would keep only the last step, 1 never moves from the start
    "train.shift": (0, 64, "[]"),
    "data.val_fraction": (0.0, 1.0, "[)"),
    "data.split_seed": (0, _SEED_MAX, "[]"),
    # An image side: 4096 px is 50 MB per RGB image already; 100000 would be 30 GB each.
    "data.image_size": (1, 4096, "[]"),
}


def _check_range(name: str, value: Any, bounds: tuple[float, float, str] | None) -> None:
    """One numeric setting: finite, and inside its range when it has one (None means "not set")."""
    import math

    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return
    if not isinstance(value, int) and not math.isfinite(value):  # an int is finite (and may not fit a float)
        raise AekitError(f"{name} must be a finite number, got {value}")
    if bounds is None:
        return
    lo, hi, brackets = bounds
    if value < lo or value > hi or (brackets[0] == "(" and value == lo) or (brackets[1] == ")" and value == hi):
        raise AekitError(f"{name} must lie in {brackets[0]}{_num(lo)}, {_num(hi)}{brackets[1]}, got {_num(value)}")


def _num(v: float) -> str:
    """A number for an error line: a typo's 400 digits (str() refuses more than 4300) as their count."""
    import math

    if isinstance(v, int) and abs(v) > 10**15:
        return f"a whole number of about {int(math.log10(abs(v))) + 1} digits"
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _kind(value: Any) -> str:
    """How a value read from TOML/JSON reads to a user: "list", "string", "number"..."""
    return {list: "list", str: "string", int: "number", float: "number", bool: "true/false value",
            dict: "table"}.get(type(value), type(value).__name__)


def _type_ok(value: Any, annotation: str) -> bool:
    if value is None:
        return "None" in annotation
    if isinstance(value, bool) or annotation.startswith("bool"):  # 1 or "yes" is no true/false value
        return isinstance(value, bool) and annotation.startswith("bool")
    if annotation.startswith("int"):  # NumPy's numbers too (a grid search's np.arange)
        return isinstance(value, numbers.Integral)
    if annotation.startswith("float"):
        return isinstance(value, numbers.Real)
    if annotation.startswith("str"):
        return isinstance(value, str)
    return True


_WANTS = {"int": "a whole number", "float": "a number", "str": "a string", "bool": "True or False"}


def check_setting(key: str, value: Any, name: str | None = None) -> Any:
    """One setting (``"train.lr"``) checked against its field's type and its range, as a plain Python
    value (a NumPy number becomes an int or a float). Errors call it ``name``: a front end's own name
    for it (the scikit-learn estimator's parameter ``lr``), else the key, as a TOML file spells it."""
    section, _, attr = key.partition(".")
    section_cls = {"train": TrainConfig, "data": DataConfig}[section]
    annotation = str(next(f for f in dataclasses.fields(section_cls) if f.name == attr).type)
    name = name or key
    if value is None and "None" in annotation:
        return None
    if not _type_ok(value, annotation):
        kind = annotation.split("|")[0].strip()
        want = _WANTS.get(kind, kind) + (" or None" if "None" in annotation else "")
        raise AekitError(f"{name} must be {want}, got {value!r:.40}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    # A Python int (exact, however large) or float, so that the range check sees NumPy numbers too.
    value = int(value) if isinstance(value, numbers.Integral) else float(value)
    _check_range(name, value, _RANGES.get(key))
    if annotation.startswith("float") and isinstance(value, int):
        if abs(value) > 1e300:  # float() of an integer past 1e308 overflows
            raise AekitError(f"{name} is far too large, got {_num(value)}")
        return float(value)
    return value


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise AekitError(f"{where}: unknown key(s) {', '.join(map(key_text, unknown))}; known: {', '.join(fields)}")
    for k, v in values.items():
        if not _type_ok(v, str(fields[k].type)):
            raise AekitError(f"{where}: {k} = {v!r:.60} has the wrong type (expected {fields[k].type})")
        if isinstance(v, int) and not isinstance(v, bool) and str(fields[k].type).startswith("float") \
                and abs(v) > 1e300:  # TOML integers have no size limit; float() of one past 1e308 overflows
            raise AekitError(f"{where}: {k} is far too large (an integer of {len(str(abs(v)))} digits)")
    out = cls(**{k: float(v) if str(fields[k].type).startswith("float") and v is not None else v
                 for k, v in values.items()})
    return out


def recipes_dir() -> Path:
    """The recipes shipped inside the package, ``aekit/recipes/NAME.toml`` (in a checkout, ``configs/``
    is a link to this folder, so ``--config configs/NAME.toml`` works there as well)."""
    return Path(__file__).parent / "recipes"


def describe_recipe(path: Path) -> str:
    """A recipe's leading comment up to its first colon (each recipe opens with "what it is: details",
    often over several lines), else the comment's first line."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    head, colon, _ = " ".join(lines).partition(": ")
    return head if colon else (lines[0] if lines else "")


def list_recipes() -> dict[str, str]:
    """The packaged recipes by short name (``--config NAME``), each with its description."""
    return {p.stem: describe_recipe(p) for p in sorted(recipes_dir().glob("*.toml"), key=lambda p: p.stem)}


def recipe_path(config: str | Path) -> Path:
    """The file a ``--config`` argument names: a file as given when it exists; else a bare name (no
    suffix, no folder) is the packaged recipe of that name, and an unknown one is an error that lists
    them. A missing ``.../NAME.toml`` whose NAME is packaged says so (README commands name
    ``configs/NAME.toml``, which exists only in a checkout)."""
    p, text = Path(config), str(config)
    bare = "/" not in text and len(p.parts) == 1 and not p.suffix
    known = sorted(q.stem for q in recipes_dir().glob("*.toml"))  # names only: no recipe is read here
    try:
        # a bare name takes a regular file only: `--out simplest` leaves a folder that must not hide the recipe
        if p.is_file() if bare and text in known else p.exists():
            return p
    except OSError:  # a name too long for the file system: read_text says so in one line
        return p
    if bare:
        if text in known:
            return recipes_dir() / f"{text}.toml"
        raise AekitError(f"no config file or packaged recipe named {text!r:.80}; recipes: {', '.join(known)} "
                         "(see `aekit recipes`), or give the path of a .toml file")
    if p.suffix.lower() == ".toml" and p.stem in known:
        raise AekitError(f"{p}: not found; aekit ships a recipe of that name: --config {p.stem}")
    return p


def load_config(path: str | Path | None) -> RunConfig:
    """Read a TOML (or a run directory's JSON) config, or a packaged recipe by its short name
    (:func:`recipe_path`); None gives the defaults."""
    from aekit.io import read_text

    if path is None:
        return RunConfig()
    p = recipe_path(path)
    is_json = p.suffix.lower() == ".json"
    text = read_text(p, "config file", limit=1 << 20)  # a recipe is a few hundred bytes
    try:
        raw = json.loads(text) if is_json else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise AekitError(f"{p}: not valid {'JSON' if is_json else 'TOML'} ({exc})") from None
    except RecursionError:
        raise AekitError(f"{p}: not valid {'JSON' if is_json else 'TOML'} (nested too deeply)") from None
    if is_json and isinstance(raw, dict) and isinstance(raw.get("run"), dict) and "aekit_version" in raw:
        raw = raw["run"]  # a run directory's config.json: its recipe is under "run"
    return RunConfig.from_dict(raw, where=str(p))


def apply_overrides(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Apply ``{"train.lr": 0.01, "model.code": 30, ...}``; None values mean "not given".

    A key without a section is looked up in the sections in the order train, data, model.
    """
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    data_keys = {f.name for f in dataclasses.fields(DataConfig)}
    d = cfg.to_dict()
    for key, value in overrides.items():
        if value is None:
            continue
        if "." not in key:
            key = f"train.{key}" if key in train_keys else f"data.{key}" if key in data_keys else f"model.{key}"
        section, _, name = key.partition(".")
        if section not in d:
            raise AekitError(f"override {key!r}: unknown section {section!r}; use train., data. or model.")
        d[section][name] = value
    return RunConfig.from_dict(d, where="overrides")

"""Datasets: compact arrays with shape and label metadata, and deterministic splits.

Images are stored as uint8 ``(N, C, H, W)`` and stay uint8 until a batch is formed (a quarter of
the memory of float32); tabular data is float32 ``(N, D)``. The validation split is carved out of
the training data with its own fixed seed, so it does not move when the training seed changes.
Memory-mapped arrays (large ``.npy`` files, see :mod:`aekit.data.mapped`) are split into
contiguous blocks instead, so that no part of them is copied into memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aekit.data.mapped import is_mapped, min_max
from aekit.errors import AekitError

SPLITS = ("train", "val", "test")


def unit_range(x: np.ndarray) -> bool:
    """Whether every value of ``x`` lies in [0, 1] (uint8 pixels, which aekit scales by 1/255, do).
    Tabular data min-max scaled to [0, 1] counts as pixels."""
    if x.dtype == np.uint8:
        return True
    lo, hi = min_max(x)
    return lo >= 0.0 and hi <= 1.0


@dataclass
class Split:
    """One split: inputs ``x`` (uint8 images or float32 rows) and optional labels ``y``.

    ``levels``: the grey levels a dynamically binarised split's ``x`` was drawn from (see
    :func:`binarized`). Everything that reads the split reads ``x``, one fixed binary draw; training
    draws afresh from ``levels`` for every batch (:func:`aekit.training.infill.training_view`).
    """

    x: np.ndarray
    y: np.ndarray | None = None
    levels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    def rows(self, index: Any) -> Split:
        """The split's rows ``index`` (a slice or an index array), labels and levels alike."""
        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        return Split(self.x[index], take(self.y), take(self.levels))


@dataclass
class Dataset:
    """A named dataset with a training and a test part, as loaded from a source."""

    name: str
    train: Split
    test: Split
    kind: str  # "image" or "tabular"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for part in (self.train, self.test):
            if part.levels is not None and part.levels.shape != part.x.shape:
                raise AekitError(f"dataset {self.name!r}: {part.x.shape} values but {part.levels.shape} grey levels")
            if is_mapped(part.x):  # checked piece by piece by its loader; converting would read it all
                continue
            if part.x.dtype != np.uint8:
                part.x = np.asarray(part.x, dtype=np.float32)
                if not np.isfinite(part.x).all():
                    raise AekitError(f"dataset {self.name!r} contains NaN or infinite values")
            if part.y is not None and len(part.y) != len(part.x):
                raise AekitError(
                    f"dataset {self.name!r}: {len(part.x)} samples but {len(part.y)} labels"
                )
        if len(self.train) == 0:
            raise AekitError(f"dataset {self.name!r} has no training samples")
        if self.train.x.shape[1:] != self.test.x.shape[1:]:
            raise AekitError(
                f"dataset {self.name!r}: train samples are {self.train.x.shape[1:]} but test samples are "
                f"{self.test.x.shape[1:]}"
            )

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.train.x.shape[1:])

    @property
    def value_range(self) -> str:
        """``"unit"`` when every value lies in [0, 1] (images, scaled data), else ``"real"``."""
        if "value_range" in self.meta:
            return self.meta["value_range"]
        if self.train.x.dtype == np.uint8:
            return "unit"
        unit = unit_range(self.train.x) and (len(self.test) == 0 or unit_range(self.test.x))
        self.meta["value_range"] = "unit" if unit else "real"
        return self.meta["value_range"]

    def split(self, name: str, val_fraction: float = 0.1, seed: int = 0) -> Split:
        """``train`` / ``val`` / ``test``; ``all-train`` is the whole training part (train + val)."""
        if name == "test":
            return self.test
        if name == "all-train":
            return self.train
        if name not in SPLITS:
            raise AekitError(f"unknown split {name!r}: use train, val or test")
        if not 0.0 <= val_fraction < 1.0:
            raise AekitError(f"val_fraction must be in [0, 1), got {val_fraction}")
        n = len(self.train)
        n_val = round(n * val_fraction)
        if is_mapped(self.train.x):  # contiguous: the last rows validate, and no part is copied into memory
            return self.train.rows(slice(n - n_val, n) if name == "val" else slice(0, n - n_val))
        order = np.random.default_rng(seed).permutation(n)
        return self.train.rows(np.sort(order[:n_val] if name == "val" else order[n_val:]))

    def describe(self) -> dict[str, Any]:
        """Metadata stored with a run so a model can be rebuilt and its outputs rescaled."""
        return {
            "name": self.name,
            "kind": self.kind,
            "sample_shape": list(self.sample_shape),
            "dtype": str(self.train.x.dtype),
            "value_range": self.value_range,
            "n_train": len(self.train),
            "n_test": len(self.test),
            "has_labels": self.train.y is not None,
            # How binary values were drawn from grey levels (binarized()): with it, a likelihood
            # says which binarisation it was measured on.
            **({BINARISATION: self.meta[BINARISATION]} if BINARISATION in self.meta else {}),
        }

    def class_count(self, why: str) -> int:
        """The number of classes of a dataset with class labels (whole numbers from 0); one error
        line starting with ``why`` (what needs them) otherwise."""
        parts = [p.y for p in (self.train, self.test) if p.y is not None and len(p.y)]
        if self.train.y is None:
            raise AekitError(f"{why} needs class labels, and {self.name} has none")
        if self.meta.get("label_kind") == "continuous" or not all(np.issubdtype(y.dtype, np.integer) for y in parts):
            raise AekitError(f"{why} needs class labels (whole numbers), and {self.name}'s labels are continuous "
                             "values")
        if any(y.min() < 0 for y in parts):
            raise AekitError(f"{why} needs class labels from 0 up, and {self.name} has negative labels")
        return int(max(y.max() for y in parts)) + 1 if parts else 0


BINARISATION = "binarisation"  # the key of a binarised dataset's record, in its meta and its description


def binarize_once(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One binary draw from uint8 grey levels: 255 with probability level / 255, else 0 (uint8).

    An integer k uniform on 0..254 is below a level v with probability exactly v / 255, so no float
    copy of the data is made."""
    return np.where(rng.integers(0, 255, size=x.shape, dtype=np.uint8) < x, np.uint8(255), np.uint8(0))


def binarized(ds: Dataset, seed: int) -> Dataset:
    """``ds`` dynamically binarised: its test part, and the training part that the validation split
    comes from, binarised once with ``seed`` (so every likelihood is measured on the same binary
    values), the training part's grey levels kept for training to draw from afresh every batch.
    The record ``{"kind": "dynamic", "seed": seed}`` is part of the dataset's description (a run's
    config.json). Only for uint8 images (grey levels in [0, 1])."""
    if ds.train.x.dtype != np.uint8 or is_mapped(ds.train.x):
        raise AekitError(f"{ds.name}: binarisation draws from uint8 grey levels held in memory")
    rng = np.random.default_rng(seed)
    test = Split(binarize_once(ds.test.x, rng), ds.test.y)  # first: the test draw depends on the seed alone
    train = Split(binarize_once(ds.train.x, rng), ds.train.y, levels=ds.train.x)
    meta = {**ds.meta, BINARISATION: {"kind": "dynamic", "seed": seed}}
    return Dataset(f"{ds.name}-binary", train, test, kind=ds.kind, meta=meta)


def holdout(x: np.ndarray, y: np.ndarray | None, test_fraction: float = 0.2,
            seed: int = 0) -> tuple[Split, Split]:
    """Split one array into (train, test) deterministically, for sources that ship no test part."""
    n = len(x)
    order = np.random.default_rng(seed).permutation(n)
    n_test = round(n * test_fraction) if n > 1 else 0
    te, tr = np.sort(order[:n_test]), np.sort(order[n_test:])
    return Split(x[tr], None if y is None else y[tr]), Split(x[te], None if y is None else y[te])

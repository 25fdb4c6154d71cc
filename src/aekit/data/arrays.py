"""Array sources: ``npy:PATH``, ``npz:PATH``, ``csv:PATH`` and ``images:DIR``.

Sources that carry no test part are split 80/20 with a fixed seed (:func:`holdout`); a large
``.npy`` file is memory-mapped instead and its last 20% is the test part (:mod:`aekit.data.mapped`).
2-D float arrays are tabular rows; 3-D arrays are single-channel images ``(N, H, W)`` and 4-D
arrays are ``(N, C, H, W)``. uint8 arrays are taken as images scaled by 255.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from aekit.data import mapped
from aekit.data.dataset import Dataset, Split, holdout
from aekit.errors import AekitError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}


def _as_samples(x: np.ndarray, name: str) -> tuple[np.ndarray, str]:
    """Give an array its sample layout and kind; reject what no model can take."""
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise AekitError(f"{name}: array of dtype {x.dtype} is not numeric")
    if x.ndim == 2:
        kind = "tabular"
    elif x.ndim == 3:
        x, kind = x[:, None], "image"
    elif x.ndim == 4:
        kind = "image"
    else:
        raise AekitError(f"{name}: expected a 2-D (rows), 3-D (N,H,W) or 4-D (N,C,H,W) array, got shape {x.shape}")
    if mapped.is_mapped(x) and x.dtype in (np.uint8, np.float32):
        finite = mapped.all_finite(x)  # a memory map stays one: read piece by piece, never converted whole
    elif x.dtype != np.uint8:
        x = x.astype(np.float32)
        finite = bool(np.isfinite(x).all())
    else:
        finite = True
    if not finite:
        raise AekitError(f"{name}: contains NaN or infinite values; clean or impute them first")
    return x, kind


def _labels(y: np.ndarray | None, name: str) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim != 1:
        raise AekitError(f"{name}: labels must be 1-D, got shape {y.shape}")
    return y


def load_npy(path: str) -> Dataset:
    """A ``.npy`` array; from :data:`~aekit.data.mapped.MMAP_MIN_BYTES` on (uint8 or float32), memory-mapped."""
    p = Path(path)
    if not p.is_file():
        raise AekitError(f"{p}: file not found")
    try:
        x = np.load(p, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise AekitError(f"{p}: not a readable .npy array ({exc})") from None
    if mapped.is_mapped(x) and x.nbytes >= mapped.MMAP_MIN_BYTES and x.dtype in (np.uint8, np.float32):
        return _mapped_dataset(x, str(p), f"npy:{path}")
    x, kind = _as_samples(np.asarray(x), str(p))
    train, test = holdout(x, None)
    return Dataset(f"npy:{path}", train, test, kind=kind)


def _mapped_dataset(x: np.ndarray, where: str, name: str) -> Dataset:
    """A dataset over a read-only map: views only, checked piece by piece, split into contiguous blocks."""
    x, kind = _as_samples(x, where)
    n_test = round(len(x) * 0.2) if len(x) > 1 else 0
    return Dataset(name, Split(x[: len(x) - n_test]), Split(x[len(x) - n_test :]), kind=kind,
                   meta={"memory_mapped": True})


def load_npz(path: str) -> Dataset:
    p = Path(path)
    if not p.is_file():
        raise AekitError(f"{p}: file not found")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise AekitError(f"{p}: not a readable .npz archive ({exc})") from None
    if "x_train" in arrays:
        xtr, kind = _as_samples(arrays["x_train"], f"{p}[x_train]")
        xte = _as_samples(arrays["x_test"], f"{p}[x_test]")[0] if "x_test" in arrays else xtr[:0]
        train = Split(xtr, _labels(arrays.get("y_train"), f"{p}[y_train]"))
        test = Split(xte, _labels(arrays.get("y_test"), f"{p}[y_test]"))
    else:
        key = "x" if "x" in arrays else (next(iter(arrays)) if len(arrays) == 1 else None)
        if key is None:
            raise AekitError(f"{p}: expected arrays x (and y) or x_train/y_train/x_test/y_test, found {sorted(arrays)}")
        x, kind = _as_samples(arrays[key], f"{p}[{key}]")
        train, test = holdout(x, _labels(arrays.get("y"), f"{p}[y]"))
    return Dataset(f"npz:{path}", train, test, kind=kind)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def load_csv(path: str) -> Dataset:
    """Numeric rows; an optional header row whose column named ``label`` (or ``y``) holds labels."""
    p = Path(path)
    if not p.is_file():
        raise AekitError(f"{p}: file not found")
    with p.open(newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if not rows:
        raise AekitError(f"{p}: empty CSV file")
    header = None
    if not all(_is_number(c) for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise AekitError(f"{p}: CSV file has a header but no rows")
    width = len(header) if header else len(rows[0])
    values = np.empty((len(rows), width), dtype=np.float64)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise AekitError(f"{p}: line {i + 1 + (header is not None)} has {len(row)} cells, expected {width}")
        for j, cell in enumerate(row):
            try:
                values[i, j] = float(cell)
            except ValueError:
                raise AekitError(
                    f"{p}: line {i + 1 + (header is not None)}, column {j + 1}: {cell!r} is not a number"
                ) from None
    if not np.isfinite(values).all():
        i, j = np.argwhere(~np.isfinite(values))[0]
        raise AekitError(f"{p}: line {i + 1 + (header is not None)}, column {j + 1} is NaN or infinite")
    y = None
    label_col = None
    if header:
        names = [h.lower() for h in header]
        label_col = next((names.index(n) for n in ("label", "y", "target", "class") if n in names), None)
    if label_col is not None:
        y = values[:, label_col]
        y = y.astype(np.int64) if np.all(y == np.round(y)) else y.astype(np.float32)
        values = np.delete(values, label_col, axis=1)
    if values.shape[1] == 0:
        raise AekitError(f"{p}: no feature columns besides the label")
    train, test = holdout(values.astype(np.float32), y)
    return Dataset(f"csv:{path}", train, test, kind="tabular")


def load_images(path: str, size: int | tuple[int, int] | None = None, color: str | None = None) -> Dataset:
    """A folder of PNG/JPEG files, resized to one size. Sub-folders, if any, are the class labels."""
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise AekitError(f"{root}: not a directory of images")
    files = sorted(f for f in root.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    if not files:
        raise AekitError(f"{root}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    images = []
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                images.append(im.copy())
        except (UnidentifiedImageError, OSError) as exc:
            raise AekitError(f"{f}: not a readable image ({exc})") from None
    if color is None:
        color = "gray" if all(im.mode in ("L", "1", "LA", "I", "I;16") for im in images) else "rgb"
    if color not in ("gray", "rgb"):
        raise AekitError(f"color must be gray or rgb, got {color!r}")
    if size is None:
        w, h = images[0].size
    elif isinstance(size, int):
        w = h = size
    else:
        h, w = size
    if w < 1 or h < 1:
        raise AekitError(f"image size must be positive, got {size}")
    mode = "L" if color == "gray" else "RGB"
    arr = np.stack([np.asarray(im.convert(mode).resize((w, h), Image.BILINEAR)) for im in images])
    arr = arr[:, None] if mode == "L" else arr.transpose(0, 3, 1, 2)
    classes = sorted({f.parent.relative_to(root).as_posix() for f in files})
    y = None
    if len(classes) > 1 or classes[0] != ".":
        lookup = {c: i for i, c in enumerate(classes)}
        y = np.array([lookup[f.parent.relative_to(root).as_posix()] for f in files], dtype=np.int64)
    train, test = holdout(np.ascontiguousarray(arr, dtype=np.uint8), y)
    return Dataset(f"images:{path}", train, test, kind="image", meta={"classes": classes if y is not None else None})

"""Pictures people look at instead of tables: reconstruction grids, latent maps, loss curves.

matplotlib is imported lazily with the Agg backend, so nothing here needs a display, and each
figure is rendered to memory and written atomically, in the format its suffix names (PNG, PDF,
SVG or JPEG; see :mod:`aekit.outputs`). A grid of images is one mosaic array drawn once, not
one matplotlib axes per image: 1,000 axes took 97 s and made a 70,000-pixel-wide PNG.
"""

from __future__ import annotations

import io
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from aekit.errors import AekitError
from aekit.io import atomic_write_bytes
from aekit.outputs import MAX_PICTURE_IMAGES, check_picture_file

GRID_COLUMNS = 32  # images per line of a grid; longer rows wrap into further blocks
_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg", ".jpg": "jpg", ".jpeg": "jpg"}


def _plt() -> ModuleType:
    """matplotlib.pyplot, on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# PDF and SVG files carry their creation date by default, and SVG random element ids: without the date
# and with ids from a fixed salt, the same figure is the same bytes in every format
_NO_DATE = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}


def _save(fig: Any, path: str | Path) -> Path:
    fmt = _FORMATS[Path(path).suffix.lower()]  # the callers checked the suffix before drawing
    buf = io.BytesIO()
    try:
        with _plt().rc_context({"svg.hashsalt": "aekit"}):
            fig.savefig(buf, format=fmt, dpi=100, bbox_inches="tight", metadata=_NO_DATE.get(fmt))
    finally:
        _plt().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def to_images(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(N, ...) values in [0, 1] -> (N, H, W) or (N, H, W, 3) for imshow; flat samples of D values
    become near-square blocks (ceil(D / w) x w with w = ceil(sqrt(D)), padded with zeros)."""
    x = np.clip(np.asarray(x, dtype=np.float32).reshape(len(x), *shape), 0, 1)
    if len(shape) == 3:
        return x[:, 0] if shape[0] == 1 else x.transpose(0, 2, 3, 1)[..., :3]
    flat = x.reshape(len(x), -1)
    d = flat.shape[1]
    w = max(1, int(np.ceil(np.sqrt(d))))
    h = -(-d // w)
    out = np.zeros((len(x), h * w), np.float32)
    out[:, :d] = flat
    return out.reshape(len(x), h, w)


def mosaic(rows: list[np.ndarray], shape: tuple[int, ...], columns: int = GRID_COLUMNS,
           gap: int = 1) -> tuple[np.ndarray, list[float]]:
    """One RGB array holding every image of ``rows`` (each an (N, ...) batch), ``columns`` per
    line: block b shows images b*columns... of every row, one under the other. Returns the array
    and the vertical centre of each line (for its label)."""
    imgs = [to_images(r, shape) for r in rows]
    imgs = [np.repeat(i[..., None], 3, -1) if i.ndim == 3 else i for i in imgs]  # gray -> RGB
    n, (h, w) = len(imgs[0]), imgs[0].shape[1:3]
    cols = max(1, min(n, columns))
    blocks = -(-n // cols)
    line_h, block_gap = h + gap, 3 * gap  # blocks sit a little further apart than their lines
    height = blocks * len(rows) * line_h + (blocks - 1) * block_gap + gap
    canvas = np.full((height, cols * (w + gap) + gap, 3), 0.82, np.float32)  # light grey between tiles
    centres = []
    for b in range(blocks):
        top0 = gap + b * (len(rows) * line_h + block_gap)
        for r, batch in enumerate(imgs):
            top = top0 + r * line_h
            centres.append(top + h / 2)
            for c, img in enumerate(batch[b * cols : (b + 1) * cols]):
                left = gap + c * (w + gap)
                canvas[top : top + h, left : left + w] = img
    return canvas, centres


def image_rows(rows: list[np.ndarray], shape: tuple[int, ...], path: str | Path, labels: list[str] | None = None,
               title: str | None = None) -> Path:
    """A grid: one row per array in ``rows`` (all of the same length), optional row labels; rows
    longer than :data:`GRID_COLUMNS` wrap into blocks underneath."""
    check_picture_file(path)
    n = len(rows[0])
    if n > MAX_PICTURE_IMAGES:
        raise AekitError(f"a picture of {n:,} images per row is more than the {MAX_PICTURE_IMAGES:,} aekit draws; "
                         "ask for fewer (--n, --steps)")
    if n == 0:
        raise AekitError("nothing to draw: the split has no samples (choose another --split or --data)")
    canvas, centres = mosaic(rows, shape)
    plt = _plt()
    h, w = canvas.shape[:2]
    tile = max(to_images(rows[0][:1], shape).shape[1:3])
    inch = 0.9 / (tile + 1)  # each image about 0.9 in wide, as the old one-axes-per-image grids
    fig, ax = plt.subplots(figsize=(w * inch + 0.8, h * inch + 0.3 + (0.3 if title else 0)))
    ax.imshow(canvas, interpolation="nearest", aspect="equal")
    ax.set_xticks([])
    if labels:
        ax.set_yticks(centres, [labels[i % len(labels)] for i in range(len(centres))], fontsize=9)
        ax.tick_params(axis="y", length=0)
    else:
        ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def loss_curve(history: list[dict[str, Any]], path: str | Path, title: str = "loss") -> Path:
    check_picture_file(path)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ep = [h["epoch"] for h in history]
    ax.plot(ep, [h["train_loss"] for h in history], marker=".", label="train")
    if history and history[0].get("val_loss") not in (None, ""):
        ax.plot(ep, [h["val_loss"] for h in history], marker=".", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def scatter_2d(points: np.ndarray, colour: np.ndarray, path: str | Path, title: str = "",
               categorical: bool = True, ax_labels: tuple[str, str] = ("code 1", "code 2")) -> Path:
    """A 2-D map of codes, coloured by label (digits) or by a continuous coordinate."""
    check_picture_file(path)
    fig, ax = _plt().subplots(figsize=(5.2, 4.6))
    _scatter(fig, ax, points, colour, title, categorical, ax_labels)
    return _save(fig, path)


def scatter_and_manifold(points: np.ndarray, colour: np.ndarray, images: np.ndarray, codes: np.ndarray,
                         shape: tuple[int, ...], path: str | Path, title: str = "", categorical: bool = True,
                         grid_title: str = "") -> Path:
    """The 2-D codes (left, with the box the grid covers dashed) beside the decoded grid (right):
    ``images`` ``(g, g, *shape)`` decoded at ``codes`` ``(g, g, 2)``, rows from high to low code 2."""
    check_picture_file(path)
    g = images.shape[0]
    canvas, _ = mosaic(list(images), shape, columns=g)  # one line of the picture per row of the grid
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.2), gridspec_kw={"width_ratios": [1.15, 1], "wspace": 0.4})
    _scatter(fig, left, points, colour, title, categorical, ("code 1", "code 2"))
    lo, hi = codes.reshape(-1, 2).min(0), codes.reshape(-1, 2).max(0)
    left.add_patch(plt.Rectangle((lo[0], lo[1]), hi[0] - lo[0], hi[1] - lo[1], fill=False, linestyle="--",
                                 linewidth=0.8, edgecolor="0.3"))
    right.imshow(canvas, interpolation="nearest", aspect="equal")
    step = canvas.shape[1] / g  # tiles are square: the same step down the rows
    ticks = sorted({0, g // 2, g - 1})
    right.set_xticks([(j + 0.5) * step for j in ticks], [f"{codes[0, j, 0]:.2g}" for j in ticks], fontsize=8)
    right.set_yticks([(i + 0.5) * step for i in ticks], [f"{codes[i, 0, 1]:.2g}" for i in ticks], fontsize=8)
    right.set_xlabel("code 1")
    right.set_ylabel("code 2")
    right.set_title(grid_title, fontsize=10)
    for side in right.spines.values():
        side.set_visible(False)
    return _save(fig, path)


def _scatter(fig: Any, ax: Any, points: np.ndarray, colour: np.ndarray, title: str, categorical: bool,
             ax_labels: tuple[str, str]) -> None:
    cmap = "tab10" if categorical else "viridis"
    sc = ax.scatter(points[:, 0], points[:, 1], c=colour, cmap=cmap, s=3, alpha=0.7, linewidths=0)
    if categorical:
        handles, _ = sc.legend_elements()
        ax.legend(handles, [str(int(v)) for v in np.unique(colour)], fontsize=7, markerscale=0.8,
                  loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
    else:
        fig.colorbar(sc, ax=ax, shrink=0.8)
    ax.set_xlabel(ax_labels[0])
    ax.set_ylabel(ax_labels[1])
    ax.set_title(title, fontsize=10)

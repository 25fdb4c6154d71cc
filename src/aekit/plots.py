"""Pictures people look at instead of tables: reconstruction grids and loss curves (PNG).

matplotlib is imported lazily with the Agg backend, so nothing here needs a display, and each
figure is rendered to memory and written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from aekit.io import atomic_write_bytes


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _plt().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def to_images(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(N, ...) values in [0, 1] -> (N, H, W) or (N, H, W, 3) for imshow; rows become square-ish strips."""
    x = np.clip(np.asarray(x, dtype=np.float32).reshape(len(x), *shape), 0, 1)
    if len(shape) == 3:
        return x[:, 0] if shape[0] == 1 else x.transpose(0, 2, 3, 1)[..., :3]
    return x.reshape(len(x), 1, -1)


def image_rows(rows: list[np.ndarray], shape: tuple[int, ...], path: str | Path, labels: list[str] | None = None,
               title: str | None = None) -> Path:
    """A grid: one row per array in ``rows`` (all of the same length), optional row labels."""
    plt = _plt()
    n = len(rows[0])
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.9 + 0.8, len(rows) * 0.95 + 0.3), squeeze=False)
    for r, arr in enumerate(rows):
        imgs = to_images(arr, shape)
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(imgs[c], cmap="gray", vmin=0, vmax=1, interpolation="nearest", aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
        if labels:
            axes[r][0].set_ylabel(labels[r], rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def loss_curve(history: list[dict[str, Any]], path: str | Path, title: str = "loss") -> Path:
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
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
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
    return _save(fig, path)

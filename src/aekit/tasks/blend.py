"""Blending one input into another through the code (the lecture's "blend inputs").

Decoding the straight line between two codes gives in-between samples that stay on the data's
manifold; the pixel-space cross-fade of the same two inputs is shown underneath for comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aekit.errors import AekitError


def check_steps(steps: Any) -> int:
    """``--steps``: the two ends and at least nothing between, at most one picture's worth."""
    from aekit.outputs import MAX_PICTURE_IMAGES, check_count

    return check_count("--steps", steps, 2, MAX_PICTURE_IMAGES)


def interpolate(model: Any, a: np.ndarray, b: np.ndarray, steps: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(decoded code line, pixel cross-fade), each ``(steps, *input_shape)`` from a to b inclusive."""
    from aekit.metrics import as_float

    check_steps(steps)
    pair = model._as_inputs(np.stack([as_float(np.asarray(a)), as_float(np.asarray(b))]))
    za, zb = model.encode(pair)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    line = model.decode((1 - t) * za + t * zb)
    w = t.reshape(-1, *([1] * (pair.ndim - 1)))
    fade = (1 - w) * pair[0] + w * pair[1]
    return line, fade.astype(np.float32)


def load_image_file(path: str | Path, shape: tuple[int, ...]) -> np.ndarray:
    """An image file as one sample of ``shape`` (C, H, W), values in [0, 1].

    The header's size is checked before any pixel is decoded (a small PNG can declare 30000 x 30000
    pixels), and a JPEG is decoded at a reduced scale when that is enough: see
    :func:`aekit.data.arrays.read_image`.
    """
    from aekit.data.arrays import read_image

    p = Path(path)
    if len(shape) != 3:
        raise AekitError(f"{p}: this model takes samples of shape {shape}, not images")
    arr = read_image(p, "L" if shape[0] == 1 else "RGB", (shape[2], shape[1])).astype(np.float32) / 255.0
    return arr[None] if shape[0] == 1 else arr.transpose(2, 0, 1)


def strip(model: Any, a: np.ndarray, b: np.ndarray, steps: int, out: str | Path) -> Path:
    from aekit import plots
    from aekit.outputs import check_picture_file

    check_steps(steps)
    check_picture_file(out)

    line, fade = interpolate(model, a, b, steps)
    return plots.image_rows([line, fade], tuple(model.input_shape), out, labels=["code", "pixels"],
                            title="decoding the line between two codes (top) vs cross-fading pixels (bottom)")


def pick(spec: str | int, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A sample by its index in ``x``, or an image file resized to ``shape``."""
    from aekit.metrics import as_float

    text = str(spec)
    if text.lstrip("-").isdigit():
        i = int(text)
        if not 0 <= i < len(x):
            raise AekitError(f"sample index {i} is out of range: the split has {len(x)} samples (0 to {len(x) - 1})")
        return as_float(x[i])
    return load_image_file(text, shape)

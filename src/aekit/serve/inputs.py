"""Request images as the model's samples: PNG in base64, or numbers in [0, 1] of the sample shape.

Every check runs before anything large is allocated: the request body is capped at 2 MB by the app,
and a PNG's width and height come from its header before a pixel is decoded. Every refusal is an
:class:`AekitError` naming the field, which the app answers with 422.

A 130 kB PNG can claim 4096x4096 16-bit pixels and decode to 80 MB, so besides a cap on each image
(:data:`MAX_SIDE`, :data:`MAX_PIXELS`) the bytes being decoded by all requests together are bounded
(:data:`DECODING`): past the budget a request is refused with :class:`Busy` (429) at once, rather
than queued in a worker thread another client's requests could then not use.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import math
import struct
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from aekit.errors import AekitError

MAX_SIDE = 4096
# The model's input is small (28x28 for MNIST) and every image is resized to it: 4.2 Mpx is a 2048x2048
# drawing or screenshot; a JPEG photo is decoded at a reduced scale first (draft), so it counts smaller.
MAX_PIXELS = 2048 * 2048
DECODE_BUDGET = 128 * 2**20  # bytes of decoded images in flight, all requests together (4 of the largest)


class Busy(AekitError):
    """The server is at one of its limits for now (answered 429, to be retried shortly)."""


class Budget:
    """A count of bytes in use that refuses, without waiting, to go past its size."""

    def __init__(self, size: int) -> None:
        self.size, self.used = size, 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, n: int, field: str) -> Iterator[None]:
        with self._lock:
            if self.used + n > self.size:
                raise Busy(f"{field}: the server is decoding other large images; send it again in a moment, "
                           "or send a smaller image")
            self.used += n
        try:
            yield
        finally:
            with self._lock:
                self.used -= n


DECODING = Budget(DECODE_BUDGET)


def _decoded_bytes(mode: str, w: int, h: int, bands_out: int) -> int:
    """What Pillow holds while decoding and converting: the image as stored (1 byte a pixel for L, P
    and 1, 2 for 16-bit grey, else 4: RGB is stored as 4 bytes) and the converted copy."""
    stored = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    return w * h * (stored + (1 if bands_out == 1 else 4))


# Pillow raises these (and more OSError subclasses) on truncated or garbled files.
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, ZeroDivisionError,
               KeyError, AttributeError, struct.error)


def _png_bytes(text: str, field: str) -> bytes:
    if text.startswith("data:"):  # a data: URL, as a browser's canvas.toDataURL gives it
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise AekitError(f"{field}: not valid base64") from None


def decode_png(text: str, shape: tuple[int, ...], field: str = "image") -> np.ndarray:
    """A base64 PNG (or JPEG) as one float32 sample of ``shape`` (C, H, W), resized to fit."""
    from PIL import Image

    if len(shape) != 3 or shape[0] not in (1, 3):
        raise AekitError(f"{field}: this model takes arrays of shape {list(shape)}, not pictures")
    data = _png_bytes(text, field)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=("PNG", "JPEG"))
            mode = "L" if shape[0] == 1 else "RGB"
            if im.format == "JPEG":  # decoded at the smallest of 1/1..1/8 scale still at least the model's size
                im.draft(mode, (shape[2], shape[1]))
            w, h = im.size  # from the header: nothing decoded yet
            if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
                raise AekitError(f"{field}: the image is {w}x{h}; at most {MAX_SIDE}x{MAX_SIDE} is read")
            if w * h > MAX_PIXELS:
                raise AekitError(f"{field}: the image is {w}x{h}, over the {MAX_PIXELS:,} pixels read; "
                                 "shrink it first (the model takes "
                                 f"{shape[2]}x{shape[1]})")
            with DECODING.hold(_decoded_bytes(im.mode, w, h, shape[0]), field):
                im = im.convert(mode).resize((shape[2], shape[1]), Image.Resampling.BILINEAR)
            a = np.asarray(im, dtype=np.float32) / 255.0
    except AekitError:
        raise
    except Image.DecompressionBombError:
        raise AekitError(f"{field}: the image is larger than is read") from None
    except _PIL_ERRORS as exc:
        raise AekitError(f"{field}: not a readable PNG or JPEG image ({type(exc).__name__})") from None
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1).copy()


def as_array(value: Any, shape: tuple[int, ...], field: str) -> np.ndarray:
    """Numbers (nested lists of the sample shape, or flat) as one float32 sample of ``shape`` in [0, 1]."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise AekitError(f"{field}: expected numbers in a regular array") from None
    if a.size != math.prod(shape):
        raise AekitError(f"{field}: expected {math.prod(shape)} numbers of shape {list(shape)}, got shape "
                         f"{list(a.shape)}")
    if not np.isfinite(a).all():
        raise AekitError(f"{field}: contains NaN or infinite values")
    if a.min() < 0 or a.max() > 1:
        raise AekitError(f"{field}: values must lie in [0, 1]")
    return a.reshape(shape).astype(np.float32)


def sample(value: Any, shape: tuple[int, ...], field: str) -> np.ndarray:
    """An image field: a base64 PNG string or an array of numbers."""
    if isinstance(value, str):
        return decode_png(value, shape, field)
    return as_array(value, shape, field)


def mask_array(value: Any, hw: tuple[int, int], field: str = "mask") -> np.ndarray:
    """A painted mask: numbers of shape (H, W), nonzero where pixels are missing."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise AekitError(f"{field}: expected numbers in a regular array") from None
    if a.size != hw[0] * hw[1] or not np.isfinite(a).all():
        raise AekitError(f"{field}: expected {hw[0] * hw[1]} finite numbers of shape {list(hw)}")
    m = a.reshape(hw) > 0
    if not m.any():
        raise AekitError(f"{field}: marks no pixel as missing")
    return m


def png_base64(x: np.ndarray) -> str:
    """One sample (C, H, W) in [0, 1] as a base64 PNG."""
    from PIL import Image

    a = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
    im = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")

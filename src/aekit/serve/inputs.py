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


def _has_alpha(im: Any) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info


def _fit(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """``a`` (h', w', bands) with h' <= h and w' <= w, centred on an (h, w, bands) canvas of its border's
    colour (the median of its edge pixels): a picture keeps its aspect ratio instead of being stretched."""
    edge = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])  # (pixels, bands)
    out = np.empty((h, w, a.shape[2]), np.float32)
    out[:] = np.median(edge, axis=0)
    top, left = (h - a.shape[0]) // 2, (w - a.shape[1]) // 2
    out[top:top + a.shape[0], left:left + a.shape[1]] = a
    return out


def decode_picture(text: str, shape: tuple[int, ...], field: str) -> tuple[np.ndarray, list[str]]:
    """A base64 PNG (or JPEG) as one float32 sample of ``shape`` (C, H, W), and what was done to it in
    words: colour made grey for a one-channel model, transparent pixels put on white (as a browser shows
    them), the picture scaled to fit keeping its aspect ratio and padded with its border's colour."""
    from PIL import Image

    if len(shape) != 3 or shape[0] not in (1, 3):
        raise AekitError(f"{field}: this model takes arrays of shape {list(shape)}, not pictures")
    data = _png_bytes(text, field)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im: Image.Image = Image.open(io.BytesIO(data), formats=("PNG", "JPEG"))  # converted below
            mode, given = "L" if shape[0] == 1 else "RGB", im.size
            if not (0 < given[0] <= MAX_SIDE and 0 < given[1] <= MAX_SIDE):  # before draft(): a progressive
                # JPEG's decoder holds coefficients for every original pixel, whatever scale it is read at
                raise AekitError(f"{field}: the image is {given[0]}x{given[1]}; at most {MAX_SIDE}x{MAX_SIDE} is read")
            if im.format == "JPEG":  # decoded at the smallest of 1/1..1/8 scale still at least the model's size
                im.draft(mode, (shape[2], shape[1]))
            w, h = im.size  # from the header: nothing decoded yet
            if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
                raise AekitError(f"{field}: the image is {w}x{h}; at most {MAX_SIDE}x{MAX_SIDE} is read")
            if w * h > MAX_PIXELS:
                raise AekitError(f"{field}: the image is {w}x{h}, over the {MAX_PIXELS:,} pixels read; "
                                 "shrink it first (the model takes "
                                 f"{shape[2]}x{shape[1]})")
            notes = []
            alpha = _has_alpha(im)
            if mode == "L" and im.mode not in ("1", "L", "LA", "La", "I", "F") and not im.mode.startswith("I;16"):
                notes.append("colour made grey")
            scale = min(shape[2] / w, shape[1] / h)  # the whole picture fits, its aspect ratio kept
            size = (max(1, min(shape[2], round(w * scale))), max(1, min(shape[1], round(h * scale))))
            extra = 3 * 4 * w * h if alpha else 0  # the RGBA copy, the white under it and the composite
            extra += 5 * w * h if im.mode.startswith("I") else 0  # 16- or 32-bit grey: its float32 and uint8 copies
            with DECODING.hold(_decoded_bytes(im.mode, w, h, shape[0]) + extra, field):
                if alpha:
                    im = im.convert("RGBA")
                    im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im)
                    notes.append("transparent pixels put on white")
                if im.mode.startswith("I;16") or im.mode == "I":  # convert("L") would clip at 255
                    top = 65535.0 if im.mode.startswith("I;16") else float(max(1, np.asarray(im).max()))
                    im = Image.fromarray(np.clip(np.asarray(im, np.float32) / top * 255.0, 0, 255).astype(np.uint8))
                im = im.convert(mode).resize(size, Image.Resampling.BILINEAR)
            a = np.asarray(im, dtype=np.float32).reshape(size[1], size[0], -1) / 255.0
    except AekitError:
        raise
    except Image.DecompressionBombError:
        raise AekitError(f"{field}: the image is larger than is read") from None
    except _PIL_ERRORS as exc:
        raise AekitError(f"{field}: not a readable PNG or JPEG image ({type(exc).__name__})") from None
    if size != (shape[2], shape[1]):
        notes.append(f"{given[0]}x{given[1]} scaled to {size[0]}x{size[1]} and padded to {shape[2]}x{shape[1]} with "
                     "its border's colour (aspect ratio kept)")
    elif given != size:
        notes.append(f"{given[0]}x{given[1]} scaled to {size[0]}x{size[1]}")
    return _fit(a, shape[1], shape[2]).transpose(2, 0, 1).copy(), notes


def light_background(x: np.ndarray) -> bool:
    """Whether a sample (C, H, W) in [0, 1] is dark on light: the mean of its edge pixels above the middle."""
    edge = np.concatenate([x[:, 0].ravel(), x[:, -1].ravel(), x[:, :, 0].ravel(), x[:, :, -1].ravel()])
    return float(edge.mean()) > 0.5


def picture(text: str, shape: tuple[int, ...], light_data: bool, field: str = "image") -> tuple[np.ndarray, list[str]]:
    """An uploaded picture as the model's input, and what was done to it in words (:func:`decode_picture`): also
    inverted where its background is light and the training images' is dark (``light_data`` false: a
    black digit on white paper for MNIST's white digits on black), or the other way round. Unchanged,
    a dark-on-light "1" is nothing like a digit the model has seen and reconstructs as noise."""
    x, notes = decode_picture(text, shape, field)
    # One channel only: for colour data the training images' edge says little (natural pictures sit
    # near the middle), and a photo with a bright sky would come out as a negative.
    if shape[0] == 1 and light_background(x) != light_data:
        x = 1.0 - x
        notes.append("inverted: " + ("light on dark, where the training images are dark on light" if light_data
                                     else "dark on light, where the training images are light on dark"))
    return x, notes


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

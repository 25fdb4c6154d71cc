"""The API's JSON in and out, without a walk of the framework's over every number.

In: a body is parsed once with :func:`json.loads` and its fields checked here (:func:`fields`), with
the strictness of a pydantic model in strict mode (no ``1.0`` or ``true`` for an integer, no ``"1"``
for a number, no unknown field), each refusal an :class:`AekitError` naming the field (422).
Validating a 784-number list through a model took longer than the model's forward pass.

Out: :func:`dumps` writes an answer (images as ``{"shape", "data"}`` rounded to 4 digits, or base64
PNG) as the same bytes ``json.dumps`` would, but each number in [-1, 1] is a row of a table of the
20,001 four-digit texts (160 kB of bytes, no Python objects to chase, so it stays in cache beside
the model's weights) instead of being formatted: 13 µs instead of 300 µs for 784 numbers here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from aekit.errors import AekitError
from aekit.serve import inputs

_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_STEPS = 10**4  # 4 decimal digits
_WIDTH = 8  # "-0.1234," is the longest row


def _rows() -> np.ndarray:
    """Row k + 10**4: repr(k / 10**4) and a comma, padded with zero bytes, as one 8-byte word. That is
    the text json.dumps gives np.round(v, 4) for v in [-1, 1]: np.round computes
    rint(v * 10**4) / 10**4, and k / 10**4 is the same correctly rounded quotient."""
    rows = np.zeros((2 * _STEPS + 1, _WIDTH), np.uint8)
    for i, k in enumerate(range(-_STEPS, _STEPS + 1)):
        text = (repr(k / _STEPS) + ",").encode()
        rows[i, :len(text)] = np.frombuffer(text, np.uint8)
    return rows.view(np.uint64).ravel()


_ROWS = _rows()


def numbers(v: np.ndarray) -> bytes:
    """``json.dumps(np.round(v.astype(np.float64), 4).ravel().tolist())``, compact, as bytes."""
    k = np.rint(v.astype(np.float64).ravel() * _STEPS)
    if k.size == 0:
        return b"[]"
    if np.abs(k).max() <= _STEPS and not np.signbit(k[k == 0]).any():  # in [-1, 1] (so not NaN), no -0.0
        return b"[" + _ROWS[k.astype(np.intp) + _STEPS].tobytes().translate(None, b"\0")[:-1] + b"]"
    if not np.isfinite(k).all():
        raise ValueError("Out of range float values are not JSON compliant")  # as json.dumps(allow_nan=False)
    return ("[" + ",".join(map(repr, (k / _STEPS).tolist())) + "]").encode()  # as json.dumps formats them


def _png(v: np.ndarray) -> str:
    return inputs.png_base64(v if v.ndim == 3 else v[None])


def pngs(v: np.ndarray, lead: int) -> list[Any]:
    """Images ``(*lead axes, *sample shape)`` as lists ``lead`` deep of base64 PNG (a batch of generated
    images with ``png``; :func:`dumps` alone cannot tell a batch's axis from an image's channels)."""
    return [_png(x) if lead == 1 else pngs(x, lead - 1) for x in v]


def answer(result: dict[str, Any], png: bool) -> dict[str, Any]:
    """An answer as a dict for the framework to serialise (what :func:`dumps` writes directly)."""
    out: dict[str, Any] = {}
    for k, v in result.items():
        if isinstance(v, np.ndarray) and v.ndim >= 2 and png:
            out[k] = _png(v)
        elif isinstance(v, np.ndarray):
            out[k] = {"shape": list(v.shape), "data": np.round(v.astype(np.float64), 4).ravel().tolist()}
        else:
            out[k] = v.item() if isinstance(v, np.generic) else v
    return out


def _scalar(v: Any) -> bytes:
    return _ENCODE(v.item() if isinstance(v, np.generic) else v).encode()


def dumps(result: dict[str, Any], png: bool = False) -> bytes:
    """An answer as compact JSON: arrays as flat lists rounded to 4 digits with their shape (or, with
    ``png``, images as base64 PNG), NumPy scalars as numbers, everything else as :func:`json.dumps`."""
    parts = []
    for k, v in result.items():
        if isinstance(v, np.ndarray) and v.ndim >= 2 and png:
            text = _scalar(_png(v))
        elif isinstance(v, np.ndarray):
            text = b'{"shape":' + _scalar(list(v.shape)) + b',"data":' + numbers(v) + b"}"
        else:
            text = _scalar(v)
        parts.append(_scalar(k) + b":" + text)
    return b"{" + b",".join(parts) + b"}"


# -- request bodies ---------------------------------------------------------------------------------
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")


def shown(name: object) -> str:
    """A field name from a request as an error message may show it: as it is when it is short and plain,
    else escaped and cut (a 2 MB key, a lone surrogate or a terminal escape is never echoed)."""
    text = str(name)
    return text if _PLAIN_NAME.fullmatch(text) else ascii(text[:40]) + ("..." if len(text) > 40 else "")


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type is JSON's: application/json or application/*+json, any parameters. A
    request without one is not JSON: a form of another site can post text/plain or no type at all
    without the browser asking this server first, never application/json."""
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _image(v: Any) -> bool:
    return v is None or isinstance(v, str | list)


def _index(v: Any) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool))


def _flag(v: Any) -> bool:
    return isinstance(v, bool)


def _numbers(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(z, int | float) and not isinstance(z, bool) for z in v)


# field -> (check, default, what the field takes); a default of ... marks a required field
Spec = dict[str, tuple[Callable[[Any], bool], Any, str]]
IMAGE: Spec = {"image": (_image, None, "a base64 PNG, an array of numbers or null"),
               "index": (_index, None, "an integer or null"),
               "png": (_flag, False, "true or false")}
CODE: Spec = {"code": (_numbers, ..., "a list of numbers"), "png": (_flag, False, "true or false")}


def fields(body: bytes, content_type: str | None, spec: Spec) -> dict[str, Any]:
    """The request's fields, checked against ``spec``, with the defaults filled in."""
    if not is_json(content_type):
        raise AekitError("body: expected JSON (Content-Type: application/json)")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise AekitError("body: not valid JSON") from None
    if not isinstance(data, dict):
        raise AekitError("body: expected a JSON object")
    for name in data:
        if name not in spec:
            raise AekitError(f"{shown(name)}: unknown field; the fields are {', '.join(spec)}")
    out = {}
    for name, (ok, default, what) in spec.items():
        if name not in data and default is ...:
            raise AekitError(f"{name}: required")
        out[name] = data.get(name, default)
        if not ok(out[name]):
            raise AekitError(f"{name}: expected {what}")
    return out

"""Atomic file writes and JSON: everything in aekit that writes a file goes through here.

A write goes to a temp file in the target's folder, is fsync'd, then renamed over the target, so
a process killed at any moment leaves either the old file or the new one, never half of one.
Temp files are created with mode 0666 and the kernel applies the process umask, so the result has
the mode a plain ``open()`` would give; the process umask is never touched (changing it is not
thread-safe).

Readers here turn every failure a user can cause (missing, a folder, unreadable, not UTF-8, not
JSON, too large) into one :class:`AekitError` line.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import stat
from pathlib import Path
from typing import Any, BinaryIO

from aekit.errors import AekitError

MAX_JSON_BYTES = 64 << 20  # no aekit JSON file comes near this; a larger one is refused unread


def temp_path(path: Path, suffix: str = ".tmp") -> Path:
    """A fresh hidden name beside ``path`` (same folder, so the final rename is atomic)."""
    return path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix}"


def open_new(path: Path) -> int:
    """Create ``path`` exclusively for writing, mode 0666 less the umask; returns the fd."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse a directory fsync)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise AekitError(f"{path.parent}: not a folder (a file stands in the way)") from None
    except PermissionError:
        raise AekitError(f"{path.parent}: cannot create the folder (permission denied)") from None
    if path.is_dir():
        raise AekitError(f"{path}: is a folder; name a file to write")
    tmp = temp_path(path)
    try:
        fd = open_new(tmp)
    except PermissionError:
        raise AekitError(f"{path.parent}: not writable (permission denied)") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (28, 122):  # ENOSPC, EDQUOT: the old file (if any) is still intact
            raise AekitError(f"{path}: no space left on the device; nothing was overwritten") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, tuple | set):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def _finite(o: Any) -> Any:
    """NaN and infinities as null: JSON has no spelling for them (Python's ``NaN`` is not JSON)."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    return o


def dumps(obj: Any) -> str:
    return json.dumps(_finite(obj), indent=2, default=_json_default, allow_nan=False) + "\n"


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, dumps(json.loads(json.dumps(obj, default=_json_default))))


def open_plain(path: str | Path, what: str = "file") -> BinaryIO:
    """Open a file in a run folder for reading, refusing anything but a plain file.

    A FIFO with no writer would block the open for ever, and a device such as /dev/zero never
    ends; opening with O_NONBLOCK returns at once, so fstat can say what stands there first.
    OSErrors (missing, permission) propagate for the caller to word.
    """
    p = Path(path)
    fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise AekitError(f"{p}: is a folder, not a {what}")
        if not stat.S_ISREG(mode):
            raise AekitError(f"{p}: not a regular file (a pipe, socket or device); put the {what} there")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_capped(fh: BinaryIO, cap: int) -> bytes:
    """At most ``cap`` bytes, read in chunks: ``read(n)`` allocates n bytes up front however short
    the file, so one read of the cap would cost 64 MiB for every small JSON file."""
    parts, n = [], 0
    while n < cap and (chunk := fh.read(min(1 << 16, cap - n))):
        parts.append(chunk)
        n += len(chunk)
    return b"".join(parts)


def read_text(path: str | Path, what: str = "file", limit: int = MAX_JSON_BYTES, plain: bool = False) -> str:
    """A UTF-8 text file, or one clear error (missing, a folder, unreadable, too large, not UTF-8).

    ``plain``: refuse a pipe or device too (files of a run folder; a --config may be ``<(...)``).
    """
    p = Path(path)
    try:
        if p.is_dir():
            raise AekitError(f"{p}: is a folder, not a {what}")
        with open_plain(p, what) if plain else p.open("rb") as fh:
            data = _read_capped(fh, limit + 1)
    except FileNotFoundError:
        raise AekitError(f"{p}: not found") from None
    except PermissionError:
        raise AekitError(f"{p}: cannot read it (permission denied)") from None
    except OSError as exc:
        raise AekitError(f"{p}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise AekitError(f"{p}: larger than {limit >> 20} MiB; not a {what} aekit wrote")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AekitError(f"{p}: not UTF-8 text (byte {exc.start})") from None


def read_json(path: str | Path) -> Any:
    """A JSON file of a run folder (config.json, summary.json, last/state.json)."""
    p = Path(path)
    text = read_text(p, "JSON file", plain=True)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AekitError(f"{p}: corrupt JSON ({exc})") from None
    except RecursionError:
        raise AekitError(f"{p}: corrupt JSON (nested too deeply)") from None


# JSON's names for what json.loads returns: "found a NoneType" would tell a user nothing.
_JSON_NAMES = {type(None): "null", bool: "true or false", int: "a number", float: "a number", str: "a string",
               list: "a list"}


def read_json_object(path: str | Path) -> dict[str, Any]:
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise AekitError(f"{path}: expected a JSON object, found {_JSON_NAMES.get(type(obj), type(obj).__name__)}")
    return obj

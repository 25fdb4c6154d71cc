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


NAME_MAX = 255  # bytes in one file name (ext4, XFS, btrfs, tmpfs, APFS)
PATH_MAX = 4096  # bytes in a whole path, its terminating NUL included (Linux)


def _short(text: str) -> str:
    return text if len(text) <= 80 else f"{text[:50]}...{text[-20:]}"


def check_name(path: str | Path, what: str = "") -> None:
    """Refuse a path the kernel would refuse as too long (ENAMETOOLONG), in one line: a name in it
    over NAME_MAX bytes, or the whole over PATH_MAX. ``what`` (e.g. ``"--out"``) starts the message."""
    raw = os.fsencode(path)
    where = (f"{what} " if what else "") + _short(os.fsdecode(raw))
    if len(raw) >= PATH_MAX:
        raise AekitError(f"{where}: path too long ({len(raw)} bytes; at most {PATH_MAX - 1})")
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        raise AekitError(f"{where}: file name too long ({len(longest)} bytes; at most {NAME_MAX} fit in one name)")


def temp_path(path: Path, suffix: str = ".tmp") -> Path:
    """A fresh hidden name beside ``path`` (same folder, so the final rename is atomic).

    It fits in NAME_MAX bytes whenever ``path``'s own name does: the random part and ``suffix``
    are kept whole (they make the name unique and say what it is), and a long final name is cut
    to the bytes left (a file name may hold any bytes, so half a UTF-8 character is no problem).
    """
    check_name(path.name)
    tail = f".{secrets.token_hex(6)}{suffix}"
    room = NAME_MAX - 1 - len(os.fsencode(tail))  # 1: the leading dot
    return path.parent / f".{os.fsdecode(os.fsencode(path.name)[:room])}{tail}"


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


# --- run folders this process holds the writer lock of (aekit.run registers them) ----------------
#
# A user may delete a run folder, or its lock, while a command writes it; a second writer may then
# take the folder. Every write below a held folder first checks that the folder's lock file is
# still the one this process holds open (same device and inode: an open file's inode is not
# reused), so the writer stops with one line instead of writing into -- or recreating -- a folder
# it no longer owns.

# absolute folder -> (the folder as the user named it, its lock file, the open fd holding the lock)
_HELD: dict[str, tuple[Path, Path, int]] = {}


def hold_folder(folder: str | Path, lock: Path, fd: int) -> None:
    _HELD[os.path.abspath(folder)] = (Path(folder), Path(os.path.abspath(lock)), fd)


def release_folder(folder: str | Path, fd: int) -> None:
    key = os.path.abspath(folder)
    if key in _HELD and _HELD[key][2] == fd:
        del _HELD[key]


def check_owned(path: str | Path) -> None:
    """Raise unless this process still holds the lock of the held folder ``path`` lies in (if any)."""
    if not _HELD:
        return
    p = Path(os.path.abspath(path))
    for parent in (p, *p.parents):
        held = _HELD.get(str(parent))
        if held is None:
            continue
        folder, lock, fd = held
        mine = os.fstat(fd)
        try:
            now = os.stat(lock, follow_symlinks=False)
            if (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
                return
        except OSError:  # gone, or the folder itself gone
            pass
        what = "the folder was deleted" if not parent.is_dir() else f"its {lock.name} was removed or replaced"
        raise AekitError(f"{folder}: {what} while this process was writing it; stopped without writing more "
                         "(another process may own the folder now)")


def _held_root(path: Path) -> Path | None:
    """The held folder ``path`` lies in, if any."""
    p = Path(os.path.abspath(path))
    return next((parent for parent in (p, *p.parents) if str(parent) in _HELD), None)


def make_parents(folder: Path) -> None:
    """Create ``folder`` and its missing parents; inside a held folder only the levels below it, so that
    a run folder deleted after :func:`check_owned` looked is not remade (the caller's check then says so)."""
    root = _held_root(folder)
    if root is None:
        folder.mkdir(parents=True, exist_ok=True)
        return
    below = Path(os.path.abspath(folder)).relative_to(root).parts
    level = root
    for part in below:
        level = level / part
        level.mkdir(exist_ok=True)  # FileNotFoundError where the held folder itself is gone


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    check_name(path)
    check_owned(path)
    try:
        if not path.parent.is_dir():  # only where missing: a run folder deleted after the check is not remade
            make_parents(path.parent)
    except FileNotFoundError:  # the held folder went away since check_owned: one line saying so
        check_owned(path)
        raise
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
    except OSError:
        check_owned(path)  # the folder deleted since the check above: say so, in one line
        raise
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        check_owned(path)  # the folder deleted while writing: say so, in one line
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


def read_plain_bytes(path: str | Path, what: str = "file", *, missing: str = "not found",
                     limit: int | None = None, too_big: str = "") -> bytes:
    """The whole of a plain file of a run folder (:func:`open_plain`), or one error line: ``"{path}:
    {missing}"`` where it is absent, ``"{path}: {too_big}"`` where it is over ``limit`` bytes (told by
    its size before anything is read), and the system's reason where it cannot be read."""
    p = Path(path)
    try:
        with open_plain(p, what) as fh:
            if limit is not None and os.fstat(fh.fileno()).st_size > limit:
                raise AekitError(f"{p}: {too_big or f'larger than {limit:,} bytes; not a {what} aekit wrote'}")
            return fh.read()
    except FileNotFoundError:
        raise AekitError(f"{p}: {missing}") from None
    except OSError as exc:
        raise AekitError(f"{p}: cannot read it ({exc.strerror or exc})") from None


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

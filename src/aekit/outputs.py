"""Checks on what a command will write, made before it does any work.

``aekit report --out DIR`` used to compute for 55 s and then fail on the write; a picture named
``x.jpg`` was PNG bytes under a JPEG name. :func:`check_output_file` refuses, in one line and
before anything is loaded, a folder where a file is wanted, a path under a file, a folder that
cannot be written and a suffix the writer cannot produce. The write itself still goes through
:func:`aekit.io.atomic_write_bytes`, which handles what only shows then (a full disk).
"""

from __future__ import annotations

import errno
import numbers
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aekit.errors import AekitError

# The picture formats matplotlib writes without extra packages (JPEG through Pillow, a dependency).
PICTURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
# Most images in one picture (reconstruct --n, interpolate --steps): the grid wraps every 32, so
# 1024 is 32 rows of 32, about 3,000 x 6,000 pixels; more is no longer a picture anyone can read.
MAX_PICTURE_IMAGES = 1024


def check_output_file(path: str | Path | None, suffixes: Sequence[str], what: str = "--out") -> Path | None:
    """Refuse an output path that cannot be written as a file of one of ``suffixes``; None passes.

    Checked: the suffix, that the path is not a folder, that no file stands where a folder must
    be, and that the folder it lands in (or the nearest one that exists) takes a new file; the
    last by creating and removing an empty temp file, which also answers for read-only file
    systems, ACLs and root.
    """
    if path is None:
        return None
    p = Path(path)
    from aekit.io import check_name

    check_name(p, what)  # a name the kernel refuses as too long is one line, not an OSError from is_dir()
    if p.suffix.lower() not in suffixes:
        names = ", ".join(suffixes[:-1]) + (f" or {suffixes[-1]}" if len(suffixes) > 1 else suffixes[0])
        raise AekitError(f"{what} {p}: name a {names} file")
    if p.is_dir():
        raise AekitError(f"{what} {p}: is a folder; name a file to write")
    folder = p.parent
    while not folder.exists():  # the writer creates missing folders: check the first one that exists
        if folder.is_symlink():  # a dangling link: creating the folder would fail
            raise AekitError(f"{what} {p}: {folder} is a broken link")
        folder = folder.parent
    if not folder.is_dir():
        raise AekitError(f"{what} {p}: {folder} is a file, not a folder")
    from aekit.io import open_new, temp_path

    probe = temp_path(folder / p.name, ".probe")
    try:
        os.close(open_new(probe))
    except PermissionError:
        raise AekitError(f"{what} {p}: cannot write in {folder} (permission denied)") from None
    except OSError as exc:
        reason = "read-only file system" if exc.errno == errno.EROFS else (exc.strerror or str(exc))
        raise AekitError(f"{what} {p}: cannot write in {folder} ({reason})") from None
    probe.unlink(missing_ok=True)
    return p


def check_picture_file(path: str | Path | None, what: str = "--out") -> Path | None:
    """:func:`check_output_file` for a picture: PNG, PDF, SVG or JPEG, chosen by the suffix."""
    return check_output_file(path, PICTURE_SUFFIXES, what)


def check_count(what: str, value: Any, low: int, high: int) -> int:
    """A whole-number flag in [low, high] (steps, images, iterations), as an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= int(value) <= high:
        raise AekitError(f"{what} must be a whole number, at least {low:,} and at most {high:,}, got {value!r:.40}")
    return int(value)


def check_picture(out: str | Path | None, n: int | None = None, what: str = "--n") -> None:
    """Before a picture of ``n`` images (reconstruct's grid): the count and the output file."""
    if n is not None:
        check_count(what, n, 1, MAX_PICTURE_IMAGES)
    check_picture_file(out)

"""Array sources: ``npy:PATH``, ``npz:PATH``, ``csv:PATH`` and ``images:DIR``.

Sources that carry no test part are split 80/20 with a fixed seed (:func:`holdout`); a large
``.npy`` file is memory-mapped instead and its last 20% is the test part (:mod:`aekit.data.mapped`).
2-D float arrays are tabular rows; 3-D arrays are single-channel images ``(N, H, W)`` and 4-D
arrays are ``(N, C, H, W)``. uint8 arrays are taken as images scaled by 255, and so are integer
arrays whose values all lie in 0..255 and are not just 0/1 (8-bit pixels saved in a wider type);
other integers are real values.

Files may be hostile (the same readers serve a web page): every header, archive member and image
size is checked against the file's real size and :mod:`aekit.data.limits` before anything is
allocated or decompressed, and every failure is one :class:`AekitError` line.
"""

from __future__ import annotations

import csv
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from aekit.data import mapped
from aekit.data.dataset import Dataset, Split, holdout
from aekit.data.limits import MAX_DEFLATE_RATIO, MAX_IMAGE_PIXELS, fmt_bytes, max_unpacked_bytes, over_limit
from aekit.errors import AekitError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
# What Pillow may decode. Image.open picks a decoder by content, not by name, so without this a
# file named x.png could be fed to any of Pillow's ~40 decoders (EPS even runs Ghostscript).
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF")
_GRAY_MODES = ("L", "1", "LA", "I", "I;16", "F")


# --- arrays -------------------------------------------------------------------------------------


def _as_samples(x: np.ndarray, name: str) -> tuple[np.ndarray, str]:
    """Give an array its sample layout and kind; reject what no model can take."""
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":  # complex, text, dates, records
        raise AekitError(f"{name}: array of dtype {getattr(x, 'dtype', type(x).__name__)} is not numeric "
                         "(expected integers, floats or booleans)")
    if x.ndim == 2:
        kind = "tabular"
    elif x.ndim == 3:
        x, kind = x[:, None], "image"
    elif x.ndim == 4:
        kind = "image"
    else:
        raise AekitError(f"{name}: expected a 2-D (rows), 3-D (N,H,W) or 4-D (N,C,H,W) array, got shape {x.shape}")
    if 0 in x.shape[1:]:
        raise AekitError(f"{name}: each sample has shape {x.shape[1:]}, which holds no values")
    if mapped.is_mapped(x) and x.dtype in (np.uint8, np.float32):
        finite = mapped.all_finite(x)  # a memory map stays one: read piece by piece, never converted whole
    elif x.dtype == np.uint8:
        x, finite = np.ascontiguousarray(x), True
    elif x.dtype.kind in "iu" and x.size and x.min() >= 0 and 1 < x.max() <= 255:
        # 8-bit pixels saved as int64 (np.array of a list, PIL via np.asarray(..., int)...): taken
        # like uint8, scaled to [0, 1]. Left as they were, the errors come out 65,025 times larger.
        x, finite = np.ascontiguousarray(x, dtype=np.uint8), True
    else:
        x, finite = _float32(x, name), True
    if not finite:
        raise AekitError(f"{name}: contains NaN or infinite values; clean or impute them first")
    return x, kind


def _float32(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` as C-ordered float32, refusing NaN, infinities and values float32 cannot hold."""
    with np.errstate(over="ignore", invalid="ignore"):  # the check below says it better than a warning
        out = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(out).all():
        if x.dtype.kind == "f" and np.isfinite(x).all():
            raise AekitError(f"{name}: holds values beyond float32's range (about ±3.4e38); rescale the data first")
        raise AekitError(f"{name}: contains NaN or infinite values; clean or impute them first")
    return out


def _labels(y: np.ndarray | None, name: str, n: int) -> np.ndarray | None:
    """Labels ``y`` for ``n`` samples: 1-D, numeric, one per sample."""
    if y is None:
        return None
    if y.ndim != 1:
        raise AekitError(f"{name}: labels must be 1-D, got shape {y.shape}")
    if y.dtype.kind not in "biuf":
        raise AekitError(f"{name}: labels of dtype {y.dtype} are not numbers")
    if len(y) != n:
        raise AekitError(f"{name}: {len(y)} labels for {n} samples; give one label per sample")
    return y


def _why(exc: BaseException) -> str:
    """An exception's message on one line (numpy's can span several), or its type when it has none."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _read_npy_header(fh: IO[bytes], name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of the ``.npy`` header at ``fh``'s position, checked.

    numpy parses the header (a Python literal, at most 10,000 characters); what it accepts is
    then checked here: only numeric dtypes (never pickled objects), no negative dimensions.
    """
    from numpy.lib import format as npf

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on Python 2 headers; they read fine
            version = npf.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = npf.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = npf.read_array_header_2_0(fh)
            else:
                impl = getattr(npf, "_read_array_header", None)
                if impl is None:
                    from numpy.lib import _format_impl

                    impl = _format_impl._read_array_header  # type: ignore[attr-defined]  # private: not in numpy's stubs
                shape, fortran, dtype = impl(fh, version)
    except Exception as exc:
        # numpy parses the header with ast and, for old files, tokenize: on hostile bytes they raise
        # ValueError, SyntaxError, tokenize.TokenError, RecursionError, ... Whatever it is, the file
        # is not a readable .npy; nothing has been allocated or read past the header yet.
        raise AekitError(f"{name}: not a readable .npy array ({_why(exc)})") from None
    if dtype.hasobject or dtype.kind not in "biuf":
        raise AekitError(f"{name}: array of dtype {dtype} is not numeric (expected integers, floats or booleans)")
    if any(d < 0 for d in shape):
        raise AekitError(f"{name}: the .npy header gives a negative dimension {shape}")
    if any(d > np.iinfo(np.intp).max for d in shape):  # numpy cannot even describe such an array
        raise AekitError(f"{name}: the .npy header gives a dimension too large for any array {shape}")
    return tuple(int(d) for d in shape), bool(fortran), dtype


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    n = dtype.itemsize
    for d in shape:  # Python ints: no overflow, however large the header's numbers
        n *= d
    return n


def _sniff(p: Path) -> bytes:
    try:
        with p.open("rb") as fh:
            return fh.read(6)
    except PermissionError:
        raise AekitError(f"{p}: cannot read it (permission denied)") from None
    except OSError as exc:
        raise AekitError(f"{p}: cannot read it ({exc.strerror or exc})") from None


def _existing_file(p: Path) -> None:
    if p.is_dir():
        raise AekitError(f"{p}: is a folder, not a file")
    if not p.is_file():
        raise AekitError(f"{p}: file not found")


def load_npy(path: str) -> Dataset:
    """A ``.npy`` array; from :data:`~aekit.data.mapped.MMAP_MIN_BYTES` on (uint8 or float32), memory-mapped."""
    p = Path(path)
    _existing_file(p)
    magic = _sniff(p)
    if not magic:
        raise AekitError(f"{p}: the file is empty (0 bytes); not a .npy array")
    if magic.startswith(b"PK"):
        raise AekitError(f"{p}: is a .npz (zip) archive, not a .npy array; use npz:{path}")
    size = p.stat().st_size
    with p.open("rb") as fh:
        shape, fortran, dtype = _read_npy_header(fh, str(p))
        offset = fh.tell()
    nbytes = _nbytes(shape, dtype)
    if size != offset + nbytes:  # known before reading a byte of the data
        what = "truncated" if size < offset + nbytes else "has trailing bytes"
        raise AekitError(f"{p}: {what}: the header says {dtype} {shape} ({offset + nbytes} bytes with the header) "
                         f"but the file holds {size} bytes")
    if len(shape) not in (2, 3, 4):  # before reading: the data would be refused anyway
        raise AekitError(f"{p}: expected a 2-D (rows), 3-D (N,H,W) or 4-D (N,C,H,W) array, got shape {shape}")
    big = nbytes >= mapped.MMAP_MIN_BYTES and dtype in (np.uint8, np.float32)
    if big and fortran:
        # Rows of a column-major array are scattered over the whole file: reading one batch would
        # touch every page, and a copy in row order is as large as the file.
        raise AekitError(f"{p}: the array is in Fortran (column-major) order and {fmt_bytes(nbytes)}, too large to "
                         "reorder in memory; save it in C order: np.save(path, np.ascontiguousarray(x))")
    try:
        x = np.load(p, mmap_mode="r" if big else None, allow_pickle=False)
    except (ValueError, OSError, EOFError, OverflowError) as exc:
        raise AekitError(f"{p}: not a readable .npy array ({_why(exc)})") from None
    if big:
        return _mapped_dataset(x, str(p), f"npy:{path}")
    x, kind = _as_samples(x, str(p))
    train, test = holdout(x, None)
    return Dataset(f"npy:{path}", train, test, kind=kind)


def _mapped_dataset(x: np.ndarray, where: str, name: str) -> Dataset:
    """A dataset over a read-only map: views only, checked piece by piece, split into contiguous blocks."""
    x, kind = _as_samples(x, where)
    n_test = round(len(x) * 0.2) if len(x) > 1 else 0
    return Dataset(name, Split(x[: len(x) - n_test]), Split(x[len(x) - n_test :]), kind=kind,
                   meta={"memory_mapped": True})


# What zipfile raises on a corrupt archive: its own BadZipFile, but also, from fields it trusts,
# NotImplementedError (an unknown version or method), zlib.error (bad deflate data), struct.error...
_ZIP_ERRORS: tuple[type[BaseException], ...] = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
                                                struct.error, NotImplementedError, OverflowError, zlib.error)
_MEMBER_ERRORS: tuple[type[BaseException], ...] = (*_ZIP_ERRORS, RuntimeError)  # RuntimeError: an encrypted member


class _Npz:
    """The members of an ``.npz`` archive, each checked before it is read.

    ``np.load`` would trust every member's header and unpack whatever the archive holds (a 3 MB
    file can hold 10 GB of zeros). Here only the members asked for are read, and each one's
    header, declared size and compression ratio are checked first; compressed members together
    may unpack to at most :func:`~aekit.data.limits.max_unpacked_bytes`.
    """

    def __init__(self, p: Path) -> None:
        self.p, self.size = p, p.stat().st_size
        try:
            self.zf = zipfile.ZipFile(p)
        except _ZIP_ERRORS as exc:
            if _sniff(p).startswith(b"\x93NUMPY"):
                raise AekitError(f"{p}: is a single .npy array, not a .npz archive; use npy:{p}") from None
            raise AekitError(f"{p}: not a readable .npz (zip) archive ({_why(exc)})") from None
        # np.savez stores array NAME as member NAME.npy
        # (not ZipInfo.is_dir(): it fails on the empty name a corrupt directory can give)
        self.members = {i.filename.removesuffix(".npy"): i for i in self.zf.infolist()
                        if i.filename and not i.filename.endswith("/")}
        self.unpacked = 0

    def __enter__(self) -> _Npz:
        return self

    def __exit__(self, *exc: object) -> None:
        self.zf.close()

    def __contains__(self, key: str) -> bool:
        return key in self.members

    def get(self, key: str) -> np.ndarray | None:
        return self[key] if key in self.members else None

    def __getitem__(self, key: str) -> np.ndarray:
        info = self.members[key]
        where = f"{self.p}[{info.filename}]"
        if not info.filename.endswith(".npy"):
            raise AekitError(f"{where}: the member is not a .npy array (np.savez stores each array as NAME.npy)")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            # bzip2 and lzma expand far more than deflate's 1032:1, and numpy never writes them.
            raise AekitError(f"{where}: compressed with method {info.compress_type}; numpy writes stored or "
                             "deflated members only (np.savez, np.savez_compressed)")
        if info.compress_size > self.size or (
            info.file_size > info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED else
                                                   MAX_DEFLATE_RATIO) + 1024):
            raise AekitError(f"{where}: the archive's sizes are impossible ({info.compress_size} bytes claimed to "
                             f"unpack to {info.file_size} in a {self.size}-byte file); the file is corrupt")
        try:
            with self.zf.open(info) as fh:
                shape, _, dtype = _read_npy_header(fh, where)
                offset = fh.tell()
                nbytes = _nbytes(shape, dtype)
                if info.file_size != offset + nbytes:
                    raise AekitError(f"{where}: the header says {dtype} {shape} ({offset + nbytes} bytes with the "
                                     f"header) but the member holds {info.file_size} bytes; the file is corrupt")
                if info.compress_type != zipfile.ZIP_STORED:  # stored bytes are on disk already, not unpacked
                    self.unpacked += nbytes
                    if self.unpacked > (limit := max_unpacked_bytes()):
                        raise over_limit(f"{where}: the arrays read from the archive declare {self.unpacked} bytes",
                                         self.unpacked, limit)
                # read_array reads exactly the declared count, in pieces, whatever the member holds.
                fh.seek(0)
                x = np.lib.format.read_array(fh, allow_pickle=False)
        except AekitError:
            raise
        except _MEMBER_ERRORS as exc:
            raise AekitError(f"{where}: not a readable .npy array ({_why(exc)})") from None
        return x


def load_npz(path: str) -> Dataset:
    p = Path(path)
    _existing_file(p)
    with _Npz(p) as z:
        if "x_train" in z:
            xtr, kind = _as_samples(z["x_train"], f"{p}[x_train]")
            xte = _as_samples(z["x_test"], f"{p}[x_test]")[0] if "x_test" in z else xtr[:0]
            train = Split(xtr, _labels(z.get("y_train"), f"{p}[y_train]", len(xtr)))
            test = Split(xte, _labels(z.get("y_test"), f"{p}[y_test]", len(xte)) if "x_test" in z else None)
        else:
            key = "x" if "x" in z else (next(iter(z.members)) if len(z.members) == 1 else None)
            if key is None:
                raise AekitError(f"{p}: expected arrays x (and y) or x_train/y_train/x_test/y_test, found "
                                 f"{sorted(z.members)}")
            x, kind = _as_samples(z[key], f"{p}[{key}]")
            train, test = holdout(x, _labels(z.get("y") if key == "x" else None, f"{p}[y]", len(x)))
    return Dataset(f"npz:{path}", train, test, kind=kind)


# --- CSV ----------------------------------------------------------------------------------------


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _csv_rows(p: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each non-blank row; a bad byte or field is one clear error."""
    with p.open(newline="", encoding="utf-8-sig") as fh:  # -sig: a byte-order mark (Excel) is no header cell
        reader = csv.reader(fh)
        try:
            for row in reader:
                if row and any(c.strip() for c in row):
                    yield reader.line_num, row
        except UnicodeDecodeError:
            line, offset = _first_bad_utf8(p)
            raise AekitError(f"{p}: not UTF-8 text (line {line}, byte {offset}); save the CSV as UTF-8") from None
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise AekitError(f"{p}: line {reader.line_num} has a field longer than "
                                 f"{fmt_bytes(csv.field_size_limit())}; this is not a CSV file of numbers") from None
            raise AekitError(f"{p}: not a readable CSV file (line {reader.line_num}: {_why(exc)})") from None


def _first_bad_utf8(p: Path) -> tuple[int, int]:
    """(line, byte offset) of the first byte that is not UTF-8; read in pieces, as the text reader
    only reports a position inside the piece it was decoding."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line, done = 1, 0
    with p.open("rb") as fh:
        while chunk := fh.read(1 << 16):
            held = len(decoder.getstate()[0])  # an incomplete character from the last piece, decoded with this one
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad = max(0, exc.start - held)
                return line + chunk[:bad].count(b"\n"), done + bad
            line += chunk.count(b"\n")
            done += len(chunk)
    return line, done


def load_csv(path: str) -> Dataset:
    """Numeric rows; an optional header row whose column named ``label`` (or ``y``) holds labels.

    Rows are parsed one at a time into float64 blocks, so memory stays a small multiple of the
    values' size, not of Python's lists of strings.
    """
    p = Path(path)
    _existing_file(p)
    rows = _csv_rows(p)
    first = next(rows, None)
    if first is None:
        raise AekitError(f"{p}: empty CSV file")
    header = None
    if not all(_is_number(c) for c in first[1]):
        header = [c.strip() for c in first[1]]
        first = next(rows, None)
        if first is None:
            raise AekitError(f"{p}: CSV file has a header but no rows")
    width = len(header) if header else len(first[1])
    blocks: list[np.ndarray] = []
    block: list[list[float]] = []
    for line, row in _chain(first, rows):
        if len(row) != width:
            raise AekitError(f"{p}: line {line} has {len(row)} cells, expected {width}")
        try:
            block.append([float(c) for c in row])
        except ValueError:
            j = next(j for j, c in enumerate(row) if not _is_number(c))
            raise AekitError(f"{p}: line {line}, column {j + 1}: {row[j]!r} is not a number") from None
        if not np.isfinite(block[-1]).all():
            j = int(np.argmin(np.isfinite(block[-1])))
            raise AekitError(f"{p}: line {line}, column {j + 1} is NaN or infinite")
        if len(block) == 4096:
            blocks.append(np.array(block, dtype=np.float64))
            block = []
    if block:
        blocks.append(np.array(block, dtype=np.float64))
    values = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    y = None
    label_col = None
    if header:
        names = [h.lower() for h in header]
        label_col = next((names.index(n) for n in ("label", "y", "target", "class") if n in names), None)
    if label_col is not None:
        y = values[:, label_col]
        if np.all(y == np.round(y)) and np.abs(y).max() <= 2**53:  # whole numbers int64 holds exactly
            y = y.astype(np.int64)
        else:
            y = _float32(y, f"{p}: column {label_col + 1} (labels)")
        values = np.delete(values, label_col, axis=1)
    if values.shape[1] == 0:
        raise AekitError(f"{p}: no feature columns besides the label")
    train, test = holdout(_float32(values, str(p)), y)
    return Dataset(f"csv:{path}", train, test, kind="tabular")


def _chain(first: tuple[int, list[str]], rest: Iterator[tuple[int, list[str]]]) -> Iterator[tuple[int, list[str]]]:
    yield first
    yield from rest


# --- images -------------------------------------------------------------------------------------

# What a hostile or broken image file makes Pillow raise while opening or decoding it.
_PIL_ERRORS: tuple[type[BaseException], ...] = (OSError, SyntaxError, ValueError, EOFError, struct.error,
                                                IndexError, TypeError, ZeroDivisionError)


def _open_image(path: Path, what: str = "image") -> Any:
    """A lazily opened Pillow image (header read, pixels not), its size checked against the limit."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 Mpx and refuses from 179 Mpx; aekit's own, lower limit is below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path, formats=IMAGE_FORMATS)
    except FileNotFoundError:
        raise AekitError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        raise AekitError(f"{path}: is a folder, not an {what} file") from None
    except Image.DecompressionBombError:
        raise AekitError(f"{path}: the {what} is far larger than aekit reads ({MAX_IMAGE_PIXELS:,} pixels at most); "
                         "shrink it first") from None
    except _PIL_ERRORS as exc:  # UnidentifiedImageError is an OSError
        raise AekitError(f"{path}: not a readable {what} ({', '.join(IMAGE_FORMATS)}): {_why(exc)}") from None
    return im


def _check_pixels(im: Any, path: Path, what: str) -> None:
    w, h = im.size
    if w < 1 or h < 1:
        raise AekitError(f"{path}: the {what} is {w}x{h} pixels; nothing to read")
    if w * h > MAX_IMAGE_PIXELS:
        raise AekitError(f"{path}: the {what} is {w}x{h} pixels, more than aekit reads ({MAX_IMAGE_PIXELS:,} pixels "
                         "at most); shrink it first")


def image_header(path: str | Path, what: str = "image") -> tuple[int, int, str]:
    """(width, height, Pillow mode) from the file's header alone; no pixel is decoded."""
    p = Path(path)
    with _open_image(p, what) as im:
        return im.size[0], im.size[1], im.mode


def read_image(path: str | Path, mode: str, size: tuple[int, int] | None = None, what: str = "image") -> np.ndarray:
    """One image file as uint8 ``(H, W)`` (mode ``L``) or ``(H, W, 3)`` (``RGB``), resized to ``size`` = (w, h).

    The size in the header is checked before any pixel is decoded; a JPEG is decoded at the
    smallest of its 1/1 to 1/8 scales that is still at least ``size`` (``draft``), so a large photo
    costs little memory.
    """
    from PIL import Image

    p = Path(path)
    with _open_image(p, what) as im:
        try:
            if size is not None and im.format == "JPEG":
                im.draft(mode, size)
            _check_pixels(im, p, what)
            im = im.convert(mode)
            if size is not None and im.size != size:
                im = im.resize(size, resample=Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
        except AekitError:
            raise
        except Image.DecompressionBombError:  # some decoders check again while loading
            raise AekitError(f"{p}: the {what} is far larger than aekit reads ({MAX_IMAGE_PIXELS:,} pixels at "
                             "most); shrink it first") from None
        except _PIL_ERRORS as exc:
            raise AekitError(f"{p}: not a readable {what} ({_why(exc)})") from None


def load_images(path: str, size: int | tuple[int, int] | None = None, color: str | None = None) -> Dataset:
    """A folder of PNG/JPEG files, resized to one size. Sub-folders, if any, are the class labels.

    Two passes: the headers first (every image's mode, the common size, the memory the result
    needs, all checked before a pixel is decoded), then each image decoded, resized and copied
    into the result one at a time, so at most one full-size image is in memory.
    """
    root = Path(path)
    if not root.is_dir():
        raise AekitError(f"{root}: not a directory of images")
    files = sorted(f for f in root.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    if not files:
        raise AekitError(f"{root}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    headers = [image_header(f) for f in files]
    if color is None:
        color = "gray" if all(m in _GRAY_MODES for _, _, m in headers) else "rgb"
    if color not in ("gray", "rgb"):
        raise AekitError(f"color must be gray or rgb, got {color!r}")
    if size is None:
        w, h = headers[0][:2]
    elif isinstance(size, int):
        w = h = size
    else:
        h, w = size
    if w < 1 or h < 1:
        raise AekitError(f"image size must be positive, got {size}")
    channels = 1 if color == "gray" else 3
    need = len(files) * h * w * channels
    if need > (limit := max_unpacked_bytes()):
        raise AekitError(f"{root}: {len(files)} images of {w}x{h} pixels ({channels} channel(s)) need "
                         f"{fmt_bytes(need)}, over the {fmt_bytes(limit)} limit; pass a smaller --image-size "
                         "(or set AEKIT_MAX_DATA_BYTES)")
    mode = "L" if color == "gray" else "RGB"
    arr = np.empty((len(files), h, w) if mode == "L" else (len(files), h, w, 3), dtype=np.uint8)
    for i, f in enumerate(files):
        arr[i] = read_image(f, mode, (w, h))
    arr = arr[:, None] if mode == "L" else arr.transpose(0, 3, 1, 2)
    classes = sorted({f.parent.relative_to(root).as_posix() for f in files})
    y = None
    if len(classes) > 1 or classes[0] != ".":
        lookup = {c: i for i, c in enumerate(classes)}
        y = np.array([lookup[f.parent.relative_to(root).as_posix()] for f in files], dtype=np.int64)
    train, test = holdout(np.ascontiguousarray(arr, dtype=np.uint8), y)
    return Dataset(f"images:{path}", train, test, kind="image", meta={"classes": classes if y is not None else None})


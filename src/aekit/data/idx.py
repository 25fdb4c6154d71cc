"""Reader for the IDX format of the MNIST family (LeCun et al.), gzip-compressed or raw.

Layout: two zero bytes, a type code, the number of dimensions, then one big-endian uint32 per
dimension, then the values in C order. Every check here names the file and what is wrong, so a
truncated download or a renamed HTML error page is a one-line error, not a reshape traceback.

A file can be hostile (a 2 MB gzip file can unpack to gigabytes), so the header is read and
checked first: the size it declares must be within :func:`~aekit.data.limits.max_unpacked_bytes`
and possible for the file's size; then exactly that many bytes are decompressed, piece by piece, straight into the
result array, and one more byte is asked for to notice trailing data. Memory stays at the size
the header declares, whatever the file unpacks to.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from pathlib import Path

import numpy as np

from aekit.data.limits import MAX_DEFLATE_RATIO, max_unpacked_bytes, over_limit
from aekit.errors import AekitError

# type code -> big-endian numpy dtype
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_CHUNK = 1 << 20  # bytes decompressed at a time


def parse_header(head: bytes, name: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """(big-endian dtype, dims, header length) from the first bytes of an IDX file.

    ``head`` needs at least the 4-byte magic and the dims (up to 20 bytes in all); the declared
    payload is checked against :func:`~aekit.data.limits.max_unpacked_bytes` here, before anything is allocated.
    """
    if len(head) < 4:
        raise AekitError(f"{name}: too short to be an IDX file ({len(head)} bytes)")
    if head[0] != 0 or head[1] != 0 or head[2] not in _DTYPES:
        raise AekitError(
            f"{name}: not an IDX file (bad magic number 0x{head[:4].hex()}; expected 0x0000TTNN "
            "with a known type code TT)"
        )
    dtype, ndim = _DTYPES[head[2]], head[3]
    if not 1 <= ndim <= 4:
        raise AekitError(f"{name}: IDX header claims {ndim} dimensions (expected 1 to 4)")
    header = 4 + 4 * ndim
    if len(head) < header:
        raise AekitError(f"{name}: truncated IDX header")
    dims = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    # Python ints: the product of four uint32s cannot overflow here (it would in int64).
    nbytes = dtype.itemsize
    for d in dims:
        nbytes *= d
    if nbytes > (limit := max_unpacked_bytes()):
        what = f"{name}: the IDX header declares {'x'.join(map(str, dims))} values of {dtype.itemsize} byte(s)"
        raise over_limit(what, nbytes, limit)
    return dtype, dims, header


def _size_error(name: str, dims: tuple[int, ...], dtype: np.dtype, expected: int, what: str, held: str) -> AekitError:
    return AekitError(
        f"{name}: {what}: header says {'x'.join(map(str, dims))} values of {dtype.itemsize} byte(s) "
        f"({expected} bytes with the header) but the file holds {held}"
    )


def _finish(out: np.ndarray, dtype: np.dtype, dims: tuple[int, ...]) -> np.ndarray:
    """The filled big-endian buffer as a writable, native-endian array of ``dims`` (no copy)."""
    if dtype.itemsize > 1 and not dtype.isnative:
        out = out.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return out.reshape(dims)


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file into a native-endian array."""
    dtype, dims, header = parse_header(bytes(data[:20]), name)
    expected = header + int(np.prod(dims, dtype=object)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise _size_error(name, dims, dtype, expected, what, f"{len(data)} bytes")
    # A copy: the result is writable and native-endian (torch refuses read-only buffers).
    out = np.frombuffer(data, dtype=dtype, offset=header).copy()
    return _finish(out, dtype, dims)


def _read_exact(fh: io.BufferedIOBase, view: memoryview) -> int:
    """Fill ``view`` from ``fh`` a chunk at a time; returns how many bytes came (fewer at EOF)."""
    got = 0
    while got < len(view):
        n = fh.readinto(view[got : got + _CHUNK])
        if not n:
            break
        got += n
    return got


def _read_stream(fh: io.BufferedIOBase, name: str, stored_size: int | None) -> np.ndarray:
    """Header, then exactly the declared payload, then a one-byte probe for trailing data.

    ``stored_size`` is the compressed file's size (gzip) or None (raw; its size is checked by
    the caller before this), used to reject a header that no gzip file of that size can fill.
    """
    head = fh.read(4)
    if len(head) == 4 and 1 <= head[3] <= 4:
        head += fh.read(4 * head[3])
    dtype, dims, header = parse_header(head, name)
    nbytes = int(np.prod(dims, dtype=object)) * dtype.itemsize
    expected = header + nbytes
    if stored_size is not None and expected > stored_size * MAX_DEFLATE_RATIO + 1024:
        raise _size_error(name, dims, dtype, expected, "truncated", f"{stored_size} compressed bytes, "
                          f"which cannot unpack to more than {stored_size * MAX_DEFLATE_RATIO}")
    out = np.empty(nbytes, dtype=np.uint8)
    got = _read_exact(fh, out.data)  # the array's memoryview
    if got < nbytes:
        raise _size_error(name, dims, dtype, expected, "truncated", f"{header + got} bytes")
    if fh.read(1):  # one byte, not the rest: a bomb's tail is never unpacked
        raise _size_error(name, dims, dtype, expected, "has trailing bytes", "more")
    return _finish(out.view(dtype), dtype, dims)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) and return its array (uint8 for MNIST images and labels)."""
    path = Path(path)
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise AekitError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise AekitError(f"{path}: is a directory, expected an IDX file") from None
    except PermissionError:
        raise AekitError(f"{path}: cannot read it (permission denied)") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if fh.read(2) == b"\x1f\x8b":
            fh.seek(0)
            try:
                with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
                    return _read_stream(gz, str(path), size)
            except (EOFError, OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
                raise AekitError(f"{path}: corrupt or truncated gzip data ({exc})") from None
        fh.seek(0)
        head = fh.read(20)
        dtype, dims, header = parse_header(head, str(path))
        expected = header + int(np.prod(dims, dtype=object)) * dtype.itemsize
        if size != expected:  # known before reading a byte of the payload
            what = "truncated" if size < expected else "has trailing bytes"
            raise _size_error(str(path), dims, dtype, expected, what, f"{size} bytes")
        fh.seek(0)
        return _read_stream(fh, str(path), None)


def peek_idx(path: str | Path) -> tuple[np.dtype, tuple[int, ...]]:
    """(native dtype, dims) from an IDX file's header alone; for checks across files before reading."""
    path = Path(path)
    try:
        with path.open("rb") as raw:
            fh: io.BufferedIOBase = raw
            if raw.read(2) == b"\x1f\x8b":
                raw.seek(0)
                fh = gzip.GzipFile(fileobj=raw, mode="rb")
            else:
                raw.seek(0)
            head = fh.read(4)
            if len(head) == 4 and 1 <= head[3] <= 4:
                head += fh.read(4 * head[3])
    except FileNotFoundError:
        raise AekitError(f"{path}: file not found") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise AekitError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    except OSError as exc:
        raise AekitError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    dtype, dims, _ = parse_header(head, str(path))
    return dtype.newbyteorder("="), dims


def write_idx(path: str | Path, arr: np.ndarray, compress: bool | None = None) -> None:
    """Write ``arr`` as an IDX file (gzip when the name ends in ``.gz``); used by tests and tools."""
    path = Path(path)
    codes = {v.newbyteorder("="): k for k, v in _DTYPES.items()}
    dt = arr.dtype.newbyteorder("=")
    if dt not in codes:
        raise ValueError(f"IDX cannot hold dtype {arr.dtype}")
    header = bytes([0, 0, codes[dt], arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    body = header + np.ascontiguousarray(arr, dtype=_DTYPES[codes[dt]]).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        body = gzip.compress(body, compresslevel=6, mtime=0)
    path.write_bytes(body)


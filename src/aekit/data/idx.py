"""Reader for the IDX format of the MNIST family (LeCun et al.), gzip-compressed or raw.

Layout: two zero bytes, a type code, the number of dimensions, then one big-endian uint32 per
dimension, then the values in C order. Every check here names the file and what is wrong, so a
truncated download or a renamed HTML error page is a one-line error, not a reshape traceback.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from aekit.errors import AekitError

# type code -> big-endian numpy dtype
_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AekitError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise AekitError(f"{path}: is a directory, expected an IDX file") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise AekitError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    return raw


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file into a native-endian array."""
    if len(data) < 4:
        raise AekitError(f"{name}: too short to be an IDX file ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise AekitError(
            f"{name}: not an IDX file (bad magic number 0x{data[:4].hex()}; expected 0x0000TTNN "
            "with a known type code TT)"
        )
    dtype, ndim = _DTYPES[data[2]], data[3]
    if not 1 <= ndim <= 4:
        raise AekitError(f"{name}: IDX header claims {ndim} dimensions (expected 1 to 4)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise AekitError(f"{name}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise AekitError(
            f"{name}: {what}: header says {'x'.join(map(str, dims))} values of {dtype.itemsize} byte(s) "
            f"({expected} bytes with the header) but the file holds {len(data)} bytes"
        )
    # astype copies: the result is writable and native-endian (torch refuses read-only buffers).
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) and return its array (uint8 for MNIST images and labels)."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


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

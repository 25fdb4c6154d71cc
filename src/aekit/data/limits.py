"""Size limits for hostile files: what a header, an archive or an image may declare before it is read.

A small file can declare (or unpack to) gigabytes: a 2 MB gzip file holds 2 GB of zeros, a 1 MB PNG
a 12000 x 12000 image. Every reader checks the declared size against these limits before it
allocates or decompresses anything, and the error says which limit and how to raise it.
"""

from __future__ import annotations

import os

from aekit.errors import AekitError

# The most a compressed source may unpack to (an IDX payload, the .npz members read). The largest
# IDX dataset in use, EMNIST by_class (697,932 x 28 x 28), is 547 MB.
MAX_UNPACKED_BYTES = 1 << 30
# Deflate (gzip, zip) cannot expand data by more than 1032:1; a member that claims more is corrupt.
MAX_DEFLATE_RATIO = 1032
# One decoded image: 2^25 pixels (e.g. 8192 x 4096, a 33-megapixel photo) is at most 134 MB even
# at 4 bytes a pixel. Pillow itself only refuses images from 179 Mpx on.
MAX_IMAGE_PIXELS = 1 << 25


def fmt_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def max_unpacked_bytes() -> int:
    """:data:`MAX_UNPACKED_BYTES`, or ``$AEKIT_MAX_DATA_BYTES`` for genuinely larger data."""
    env = os.environ.get("AEKIT_MAX_DATA_BYTES", "").strip()
    if not env:
        return MAX_UNPACKED_BYTES
    try:
        value = int(env)
    except ValueError:
        raise AekitError(f"AEKIT_MAX_DATA_BYTES={env!r}: expected a whole number of bytes") from None
    if value < 1:
        raise AekitError(f"AEKIT_MAX_DATA_BYTES={env!r}: must be at least 1")
    return value


def over_limit(what: str, nbytes: int, limit: int) -> AekitError:
    return AekitError(
        f"{what} ({fmt_bytes(nbytes)}), over the {fmt_bytes(limit)} limit; the file is corrupt or hostile "
        "(for genuine data that large set AEKIT_MAX_DATA_BYTES)"
    )

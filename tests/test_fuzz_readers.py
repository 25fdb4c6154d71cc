"""Property-based fuzzing of the data readers (Hypothesis): IDX, CSV, ``.npy`` and ``.npz``.

Start from small valid files, mutate their bytes (mostly the headers, where sizes live), and read
them. Two properties, whatever the bytes:

- nothing but :class:`AekitError` escapes (no traceback for any file a user can give);
- memory stays proportional to the input: the peak of traced allocations (numpy registers its
  buffers with ``tracemalloc``) is at most a small multiple of the file's size, or for gzip, of
  what deflate can expand it to (1032:1); a header can never make a reader allocate what the
  file does not hold.

Runs are derandomized and use no example database, so every run tries the same inputs.
"""

from __future__ import annotations

import gzip
import io
import os
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aekit.data import arrays
from aekit.data.dataset import Dataset
from aekit.data.idx import read_idx
from aekit.errors import AekitError

# AEKIT_FUZZ_EXAMPLES=5000 for a deeper run by hand; CI keeps 200 (a few seconds in all).
FUZZ = settings(max_examples=int(os.environ.get("AEKIT_FUZZ_EXAMPLES", "200")), derandomize=True, database=None,
                deadline=2000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLACK = 2 << 20  # fixed costs: read buffers, zipfile's structures, small arrays


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def mutate(data: bytes, draw: Callable[..., Any], hot: int) -> bytes:
    """``data`` with a few bytes changed (mostly in the first ``hot`` bytes), maybe cut or extended."""
    b = bytearray(data)
    for _ in range(draw(st.integers(0, 6))):
        if not b:
            break
        limit = min(len(b), hot) if draw(st.booleans()) else len(b)
        pos = draw(st.integers(0, limit - 1))
        b[pos] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
    cut = draw(st.one_of(st.none(), st.integers(0, len(b))))
    if cut is not None:
        del b[cut:]
    b += draw(st.binary(max_size=16))
    return bytes(b)


def mutated_or_random(seed: bytes, alphabet: st.SearchStrategy[int], draw: Callable[..., Any]) -> bytes:
    """A text file's bytes: ``seed`` mutated, or up to 200 bytes drawn from ``alphabet``."""
    if draw(st.booleans()):
        return mutate(seed, draw, len(seed))
    return bytes(draw(st.lists(alphabet, max_size=200)))


def read_bounded(read: Callable[[], Any], limit: int) -> Any:
    """``read()`` under tracemalloc: AekitError or a result, and a traced peak under ``limit`` bytes."""
    tracemalloc.start()
    try:
        result = read()
    except AekitError as exc:
        result = exc
        assert "\n" not in str(exc), str(exc)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak <= limit, f"traced peak {peak} bytes > {limit} for a small file"
    return result


def dataset_bytes(ds: Dataset) -> int:
    parts = [ds.train.x, ds.test.x, ds.train.y, ds.test.y]
    return sum(p.nbytes for p in parts if p is not None)


# --- IDX ----------------------------------------------------------------------------------------

IDX_SEEDS = [
    bytes([0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5]) + bytes(range(60)),
    bytes([0, 0, 8, 1, 0, 0, 0, 7]) + bytes(7),
    bytes([0, 0, 0x0D, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + np.arange(6, dtype=">f4").tobytes(),
    bytes([0, 0, 0x0C, 1, 0, 0, 0, 4]) + np.arange(4, dtype=">i4").tobytes(),
]


@FUZZ
@given(seed=st.sampled_from(IDX_SEEDS), packed=st.booleans(), data=st.data())
def test_idx_reader(workdir: Path, seed: bytes, packed: bool, data: st.DataObject) -> None:
    if packed:  # mutate the compressed bytes (gzip's own header and deflate), or the IDX header inside
        body = gzip.compress(mutate(seed, data.draw, 20), mtime=0)
        body = mutate(body, data.draw, 24) if data.draw(st.booleans()) else body
    else:
        body = mutate(seed, data.draw, 20)
    path = workdir / ("x.idx.gz" if packed else "x.idx")
    path.write_bytes(body)
    ratio = 1100 if body[:2] == b"\x1f\x8b" else 4
    result = read_bounded(lambda: read_idx(path), ratio * len(body) + SLACK)
    if isinstance(result, np.ndarray):
        assert result.dtype.isnative and result.flags.writeable
        assert result.nbytes <= ratio * len(body)


# --- CSV ----------------------------------------------------------------------------------------

CSV_SEEDS = [
    b"a,b,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n",
    b"0.5,0.25\n0.125,1\n1e-3,2\n",
    b'"x","y"\n"1","2"\n"3","4"\n',
    "\ufeffa,b\n1,2\n".encode(),
]
CSV_ALPHABET = st.sampled_from([*b"0123456789.,;-+eE\n\r\t \"'abnifINF", 0, 0xC3, 0xA9, 0xFF])


@FUZZ
@given(seed=st.sampled_from(CSV_SEEDS), data=st.data())
def test_csv_reader(workdir: Path, seed: bytes, data: st.DataObject) -> None:
    body = mutated_or_random(seed, CSV_ALPHABET, data.draw)
    path = workdir / "x.csv"
    path.write_bytes(body)
    # Python's csv module holds a row as strings (~60 bytes a cell): transient, a multiple of the row.
    result = read_bounded(lambda: arrays.load_csv(str(path)), 200 * len(body) + SLACK)
    if isinstance(result, Dataset):
        # a cell takes at least 2 bytes ("1,"); it becomes 4 (float32), its label 8 (int64)
        assert dataset_bytes(result) <= 8 * len(body) + 64


# --- .npy ---------------------------------------------------------------------------------------


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


NPY_SEEDS = [
    npy(np.arange(24, dtype=np.float32).reshape(6, 4)),
    npy(np.arange(60, dtype=np.uint8).reshape(5, 3, 4)),
    npy(np.arange(12, dtype=np.int16).reshape(3, 4)),
    npy(np.ones((2, 1, 3, 3), dtype=">f8")),
    npy(np.asfortranarray(np.eye(4, dtype=np.float32))),
]
DESCRS = ["<f4", ">f8", "|u1", "|b1", "<i8", "<c8", "|O", "<U3", "|V8", "<M8[D]", "<f2", "[('a', '<f4')]", "xyz"]
DIMS = st.one_of(st.integers(-2, 8), st.sampled_from([2**31, 2**32 - 1, 2**63 - 1, 2**64, 10**30]))


def npy_with_header(descr: str, shape: tuple[int, ...], fortran: bool, body: bytes) -> bytes:
    text = "{'descr': %s, 'fortran_order': %s, 'shape': %r, }" % (  # noqa: UP031
        descr if descr.startswith("[") else repr(descr), fortran, shape)
    text += " " * (63 - (10 + len(text)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1") + body


@FUZZ
@given(data=st.data())
def test_npy_reader(workdir: Path, data: st.DataObject) -> None:
    if data.draw(st.booleans()):
        seed = data.draw(st.sampled_from(NPY_SEEDS))
        body = mutate(seed, data.draw, 128)
    else:  # a well-formed header that says anything
        shape = tuple(data.draw(st.lists(DIMS, max_size=5)))
        body = npy_with_header(data.draw(st.sampled_from(DESCRS)), shape, data.draw(st.booleans()),
                               data.draw(st.binary(max_size=256)))
    path = workdir / "x.npy"
    path.write_bytes(body)
    # int8 or bool values become float32 (4 bytes each); the split copies them once more
    result = read_bounded(lambda: arrays.load_npy(str(path)), 16 * len(body) + SLACK)
    if isinstance(result, Dataset):
        assert dataset_bytes(result) <= 4 * len(body)


# --- .npz ---------------------------------------------------------------------------------------


def npz(compressed: bool, **arrs: np.ndarray) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrs)
    return buf.getvalue()


_X = np.arange(40, dtype=np.float32).reshape(10, 4)
NPZ_SEEDS = [
    npz(False, x=_X, y=np.arange(10)),
    npz(True, x=_X, y=np.arange(10)),
    npz(True, x_train=_X, y_train=np.arange(10), x_test=_X[:3], y_test=np.arange(3)),
    npz(False, images=np.zeros((4, 5, 5), np.uint8)),
]


@FUZZ
@given(seed=st.sampled_from(NPZ_SEEDS), data=st.data())
def test_npz_reader(workdir: Path, seed: bytes, data: st.DataObject) -> None:
    # Mutations anywhere: local headers (front), the npy headers inside, the central directory (end).
    if data.draw(st.booleans()):
        b = bytearray(seed)
        for _ in range(data.draw(st.integers(1, 6))):
            b[data.draw(st.integers(max(0, len(b) - 200), len(b) - 1))] = data.draw(st.integers(0, 255))
        body = bytes(b)
    else:
        body = mutate(seed, data.draw, 200)
    path = workdir / "x.npz"
    path.write_bytes(body)
    # A deflated member may unpack to 1032 times its size; the archive's own structures are small.
    limit = 1100 * len(body) + SLACK
    result = read_bounded(lambda: arrays.load_npz(str(path)), limit)
    if isinstance(result, Dataset):
        assert dataset_bytes(result) <= limit


def test_fuzz_seeds_are_valid(workdir: Path) -> None:
    """The unmutated seeds read fine, so the fuzzing starts from real files."""
    for i, s in enumerate(IDX_SEEDS):
        (workdir / f"s{i}.idx").write_bytes(s)
        assert isinstance(read_idx(workdir / f"s{i}.idx"), np.ndarray)
    for i, s in enumerate(NPY_SEEDS):
        (workdir / f"s{i}.npy").write_bytes(s)
        assert isinstance(arrays.load_npy(str(workdir / f"s{i}.npy")), Dataset)
    for i, s in enumerate(NPZ_SEEDS):
        (workdir / f"s{i}.npz").write_bytes(s)
        assert isinstance(arrays.load_npz(str(workdir / f"s{i}.npz")), Dataset)
    for i, s in enumerate(CSV_SEEDS):
        (workdir / f"s{i}.csv").write_bytes(s)
        assert isinstance(arrays.load_csv(str(workdir / f"s{i}.csv")), Dataset)
    assert zipfile.is_zipfile(io.BytesIO(NPZ_SEEDS[0]))

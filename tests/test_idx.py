import gzip

import numpy as np
import pytest

from aekit.data.idx import parse_idx, read_idx, write_idx
from aekit.errors import AekitError


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_roundtrip_images_and_labels(tmp_path, name):
    x = np.random.default_rng(0).integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    write_idx(tmp_path / name, x)
    np.testing.assert_array_equal(read_idx(tmp_path / name), x)
    y = np.arange(5, dtype=np.uint8)
    write_idx(tmp_path / ("l" + name), y)
    np.testing.assert_array_equal(read_idx(tmp_path / ("l" + name)), y)


def test_big_endian_floats_and_ints(tmp_path):
    f = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    i = np.array([[1, -2], [300000, 4]], dtype=np.int32)
    write_idx(tmp_path / "f.idx", f)
    write_idx(tmp_path / "i.idx", i)
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), f)
    np.testing.assert_array_equal(read_idx(tmp_path / "i.idx"), i)
    assert read_idx(tmp_path / "f.idx").dtype.isnative


def test_truncated_file_names_file_and_sizes(tmp_path):
    x = np.zeros((10, 28, 28), np.uint8)
    write_idx(tmp_path / "t.idx", x)
    data = (tmp_path / "t.idx").read_bytes()
    (tmp_path / "t.idx").write_bytes(data[:-100])
    with pytest.raises(AekitError, match=r"t\.idx: truncated.*10x28x28"):
        read_idx(tmp_path / "t.idx")


def test_trailing_bytes_are_an_error(tmp_path):
    write_idx(tmp_path / "t.idx", np.zeros((2, 2), np.uint8))
    (tmp_path / "t.idx").write_bytes((tmp_path / "t.idx").read_bytes() + b"xx")
    with pytest.raises(AekitError, match="trailing bytes"):
        read_idx(tmp_path / "t.idx")


def test_wrong_magic(tmp_path):
    (tmp_path / "page.gz").write_bytes(gzip.compress(b"<html>not found</html>"))
    with pytest.raises(AekitError, match="not an IDX file.*magic"):
        read_idx(tmp_path / "page.gz")
    with pytest.raises(AekitError, match="not an IDX file"):
        parse_idx(bytes([0, 0, 0x07, 1, 0, 0, 0, 0]))


def test_wrong_dimension_count_and_short_header():
    with pytest.raises(AekitError, match="dimensions"):
        parse_idx(bytes([0, 0, 8, 0]))
    with pytest.raises(AekitError, match="truncated IDX header"):
        parse_idx(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(AekitError, match="too short"):
        parse_idx(b"\x00")


def test_truncated_gzip(tmp_path):
    write_idx(tmp_path / "x.gz", np.zeros((50, 28, 28), np.uint8) + 7)
    data = (tmp_path / "x.gz").read_bytes()
    (tmp_path / "x.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(AekitError, match=r"x\.gz: corrupt or truncated gzip"):
        read_idx(tmp_path / "x.gz")


def test_missing_file(tmp_path):
    with pytest.raises(AekitError, match="file not found"):
        read_idx(tmp_path / "nope.gz")

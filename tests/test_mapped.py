"""Memory-mapped .npy sources: views instead of copies, contiguous splits, pages handed back."""

import numpy as np
import pytest

import aekit
from aekit.data import mapped
from aekit.data.sources import load_dataset
from aekit.errors import AekitError


@pytest.fixture
def small_threshold(monkeypatch):
    monkeypatch.setattr(mapped, "MMAP_MIN_BYTES", 0)
    monkeypatch.setattr(mapped, "RELEASE_BYTES", 4096)  # release often, so the path is exercised


def write(tmp_path, x):
    p = tmp_path / "big.npy"
    np.save(p, x)
    return p


def test_large_npy_is_mapped_and_split_into_contiguous_views(tmp_path, small_threshold, mini):
    x = mini.train.x[:500].astype(np.float32) / 255
    p = write(tmp_path, x[:, 0])  # (N, H, W): single-channel images
    ds = load_dataset(f"npy:{p}")
    assert mapped.is_mapped(ds.train.x) and mapped.is_mapped(ds.test.x) and ds.meta["memory_mapped"]
    assert ds.sample_shape == (1, 28, 28) and len(ds.train) == 400 and len(ds.test) == 100
    np.testing.assert_array_equal(ds.test.x, x[400:])  # the last 20% is the test part
    tr, va = ds.split("train", 0.1), ds.split("val", 0.1)
    assert mapped.is_mapped(tr.x) and mapped.is_mapped(va.x)
    np.testing.assert_array_equal(va.x, x[360:400])
    assert ds.value_range == "unit"


def test_training_on_a_mapped_file_matches_the_data(tmp_path, small_threshold, mini):
    x = mini.train.x[:600]  # uint8 images stay uint8 on disk and are scaled per batch
    p = write(tmp_path, x)
    run = aekit.train(None, tmp_path / "run", progress=False, **{"data.name": f"npy:{p}", "train.epochs": 2,
                                                                   "model.code": 8, "train.noise": "block:6"})
    s = run.summary["metrics"]
    assert s["train"]["n"] == 432 and s["val"]["n"] == 48 and s["test"]["n"] == 120
    ds = load_dataset(f"npy:{p}")
    np.testing.assert_allclose(run.model.reconstruct(ds.test.x), run.model.reconstruct(x[480:]), atol=1e-6)
    assert run.model.encode(ds.test.x).shape == (120, 8)


def test_mapped_file_with_nan_is_refused(tmp_path, small_threshold):
    x = np.zeros((50, 6), np.float32)
    x[40, 2] = np.nan
    with pytest.raises(AekitError, match="NaN"):
        load_dataset(f"npy:{write(tmp_path, x)}")


def test_page_budget_releases_and_small_files_load_into_memory(tmp_path):
    x = np.arange(20000, dtype=np.float32).reshape(1000, 20)
    ds = load_dataset(f"npy:{write(tmp_path, x)}")  # far below the threshold: an ordinary array
    assert not mapped.is_mapped(ds.train.x)
    m = np.load(tmp_path / "big.npy", mmap_mode="r")
    pieces = list(mapped.chunks(m, 300))
    assert [len(c) for c in pieces] == [300, 300, 300, 100]
    mapped.release(m)  # dropping pages keeps the data readable
    np.testing.assert_array_equal(np.asarray(m[999]), x[999])
    assert mapped.min_max(m) == (0.0, 19999.0)


def test_row_reader_reads_the_rows_of_a_view(tmp_path):
    x = np.random.default_rng(0).random((300, 3, 5)).astype(np.float32)
    m = np.load(write(tmp_path, x), mmap_mode="r")
    view = m[120:250]
    idx = np.array([0, 3, 3, 77, 129])
    np.testing.assert_array_equal(mapped.RowReader(view)(idx), x[120:250][idx])

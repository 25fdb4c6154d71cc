import functools
import hashlib
import http.server
import threading

import numpy as np
import pytest

from aekit.data import sources
from aekit.data.idx import write_idx
from aekit.data.sources import IDX_FILES, IDXDataset, fetch_idx, list_datasets, load_dataset
from aekit.errors import AekitError
from tests.conftest import tabular


def make_idx_folder(folder, n_train=30, n_test=10, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        IDX_FILES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        IDX_FILES[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
        IDX_FILES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        IDX_FILES[3]: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for stem, a in arrays.items():
        write_idx(folder / (stem + (".gz" if gz else "")), a)
    return arrays


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_list_has_every_named_source():
    names = list_datasets()
    for n in ["mnist", "fashion-mnist", "kmnist", "mnist-mini", "npy:PATH", "csv:PATH", "synthetic:plane",
              "mnist-binary", "mnist-mini-binary", "fashion-mnist-binary", "kmnist-binary"]:
        assert n in names


def test_only_named_images_have_a_binary_variant():
    for source in ("synthetic:plane-binary", "mnist-mini-binary-binary", "cifar-binary"):
        with pytest.raises(AekitError, match="unknown"):
            load_dataset(source)


def test_mnist_mini_is_stratified_and_small(mini):
    assert mini.sample_shape == (1, 28, 28)
    assert mini.train.x.dtype == np.uint8
    assert len(mini.train) == 6000 and len(mini.test) == 1000
    assert np.bincount(mini.train.y).tolist() == [600] * 10
    assert np.bincount(mini.test.y).tolist() == [100] * 10
    assert mini.value_range == "unit"
    import importlib.resources as r

    asset = r.files("aekit.data") / "assets" / "mnist-mini.npz"
    assert asset.stat().st_size <= 2_000_000
    assert "CC BY-SA 3.0" in (r.files("aekit.data") / "assets" / "README.md").read_text()


def test_splits_are_deterministic_and_disjoint(mini):
    a, b = mini.split("val", 0.1, 0), mini.split("val", 0.1, 0)
    np.testing.assert_array_equal(a.x, b.x)
    tr = mini.split("train", 0.1, 0)
    assert len(tr) + len(a) == len(mini.train)
    assert len(mini.split("val", 0.1, 1).x) == 600
    assert not np.array_equal(mini.split("val", 0.1, 1).y, a.y)
    with pytest.raises(AekitError, match="unknown split"):
        mini.split("dev")


def test_idx_dataset_from_data_dir_gz_and_raw(tmp_path):
    arrays = make_idx_folder(tmp_path / "gz")
    ds = load_dataset("fashion-mnist", data_dir=tmp_path / "gz")
    assert ds.sample_shape == (1, 28, 28) and len(ds.train) == 30 and len(ds.test) == 10
    np.testing.assert_array_equal(ds.train.x[:, 0], arrays[IDX_FILES[0]])
    make_idx_folder(tmp_path / "raw", gz=False)
    assert len(load_dataset("kmnist", data_dir=tmp_path / "raw").train) == 30


def test_data_dir_from_environment(tmp_path, monkeypatch):
    make_idx_folder(tmp_path / "d")
    monkeypatch.setenv("AEKIT_DATA_DIR", str(tmp_path / "d"))
    assert len(load_dataset("mnist").test) == 10


def test_data_dir_missing_files_is_clear(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AekitError, match="files are not there.*train-images-idx3-ubyte.gz"):
        load_dataset("mnist", data_dir=tmp_path / "empty")


def test_mismatched_label_count(tmp_path):
    make_idx_folder(tmp_path / "d")
    write_idx(tmp_path / "d" / f"{IDX_FILES[1]}.gz", np.zeros(7, np.uint8))
    with pytest.raises(AekitError, match="30 images but the labels file"):
        load_dataset("mnist", data_dir=tmp_path / "d")


def test_cache_is_used_before_download(tmp_path, monkeypatch):
    make_idx_folder(tmp_path / "cache" / "mnist")  # AEKIT_CACHE points at tmp_path/cache (conftest)
    monkeypatch.setattr(sources, "fetch_idx", lambda *a, **k: pytest.fail("must not download"))
    assert len(load_dataset("mnist").train) == 30


def test_download_verifies_checksums_into_cache(tmp_path, http_server):
    www, url = http_server
    make_idx_folder(www / "toy")
    md5 = {s: hashlib.md5((www / "toy" / f"{s}.gz").read_bytes()).hexdigest() for s in IDX_FILES}
    spec = IDXDataset("toy", "test", (url + "/missing/", url + "/toy/"), md5)  # first mirror 404s
    paths = fetch_idx(spec, root=tmp_path / "c", progress=False)
    assert sorted(p.name for p in (tmp_path / "c" / "toy").iterdir()) == sorted(s + ".gz" for s in IDX_FILES)
    assert all(p.is_file() for p in paths.values())


def test_download_with_wrong_checksum_leaves_nothing(tmp_path, http_server, monkeypatch):
    www, url = http_server
    make_idx_folder(www / "mnist")
    monkeypatch.setenv("AEKIT_MIRROR", url)
    spec = sources.IDX_DATASETS["mnist"]
    with pytest.raises(AekitError, match="checksum mismatch") as e:
        fetch_idx(spec, root=tmp_path / "c", mirrors=(url + "/mnist/",), progress=False)
    assert "put the four files" in str(e.value).lower()
    assert list((tmp_path / "c" / "mnist").iterdir()) == []  # no partial or bad file kept


def test_offline_error_says_where_to_put_files(tmp_path):
    spec = sources.IDX_DATASETS["kmnist"]
    with pytest.raises(AekitError, match=r"could not download kmnist.*Put the four files.*--data-dir"):
        fetch_idx(spec, root=tmp_path / "c", mirrors=("http://127.0.0.1:9/",), progress=False)


def test_npy_rows_and_images(tmp_path):
    np.save(tmp_path / "rows.npy", tabular(100, 5))
    ds = load_dataset(f"npy:{tmp_path / 'rows.npy'}")
    assert ds.kind == "tabular" and ds.sample_shape == (5,) and len(ds.train) == 80 and len(ds.test) == 20
    np.save(tmp_path / "img.npy", np.zeros((10, 12, 9), np.uint8))
    ds = load_dataset(f"npy:{tmp_path / 'img.npy'}")
    assert ds.kind == "image" and ds.sample_shape == (1, 12, 9) and ds.train.x.dtype == np.uint8


def test_npy_with_nan_and_bad_shapes(tmp_path):
    a = tabular(10, 3)
    a[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", a)
    with pytest.raises(AekitError, match="NaN"):
        load_dataset(f"npy:{tmp_path / 'nan.npy'}")
    np.save(tmp_path / "flat.npy", np.zeros(10))
    with pytest.raises(AekitError, match="expected a 2-D"):
        load_dataset(f"npy:{tmp_path / 'flat.npy'}")
    with pytest.raises(AekitError, match="file not found"):
        load_dataset(f"npy:{tmp_path / 'none.npy'}")
    (tmp_path / "junk.npy").write_text("hello")
    with pytest.raises(AekitError, match="not a readable"):
        load_dataset(f"npy:{tmp_path / 'junk.npy'}")


def test_npz_both_layouts(tmp_path):
    x = tabular(50, 4)
    y = np.arange(50) % 3
    np.savez(tmp_path / "a.npz", x=x, y=y)
    ds = load_dataset(f"npz:{tmp_path / 'a.npz'}")
    assert len(ds.train) == 40 and ds.train.y is not None
    np.savez(tmp_path / "b.npz", x_train=x, y_train=y, x_test=x[:5], y_test=y[:5])
    ds = load_dataset(f"npz:{tmp_path / 'b.npz'}")
    assert len(ds.train) == 50 and len(ds.test) == 5
    np.savez(tmp_path / "c.npz", a=x, b=y)
    with pytest.raises(AekitError, match="expected arrays x"):
        load_dataset(f"npz:{tmp_path / 'c.npz'}")


def test_csv_with_header_label_and_plain(tmp_path):
    (tmp_path / "h.csv").write_text("a,b,label\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(20)))
    ds = load_dataset(f"csv:{tmp_path / 'h.csv'}")
    assert ds.sample_shape == (2,) and ds.train.y is not None and set(ds.train.y) <= {0, 1}
    assert ds.value_range == "real"
    (tmp_path / "p.csv").write_text("".join(f"0.{i},0.5\n" for i in range(10)))
    ds = load_dataset(f"csv:{tmp_path / 'p.csv'}")
    assert ds.sample_shape == (2,) and ds.train.y is None and ds.value_range == "unit"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("a,b\n1,2\n3,x\n", r"line 3, column 2: 'x' is not a number"),
        ("1,2\n3,nan\n", r"line 2, column 2 is NaN"),
        ("1,2\n3\n", "line 2 has 1 cells, expected 2"),
        ("", "empty CSV"),
        ("label\n1\n2\n", "no feature columns"),
    ],
)
def test_csv_errors(tmp_path, body, message):
    (tmp_path / "bad.csv").write_text(body)
    with pytest.raises(AekitError, match=message):
        load_dataset(f"csv:{tmp_path / 'bad.csv'}")


def test_image_folder_gray_rgb_resize_and_classes(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(5):
            arr = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / "imgs" / cls / f"{i}.png")
    ds = load_dataset(f"images:{tmp_path / 'imgs'}")
    assert ds.sample_shape == (3, 40, 30) and ds.train.x.dtype == np.uint8
    assert ds.meta["classes"] == ["cats", "dogs"] and ds.train.y is not None
    ds = load_dataset(f"images:{tmp_path / 'imgs'}", image_size=16, color="gray")
    assert ds.sample_shape == (1, 16, 16)


def test_image_folder_errors(tmp_path):
    (tmp_path / "e").mkdir()
    with pytest.raises(AekitError, match="no image files"):
        load_dataset(f"images:{tmp_path / 'e'}")
    (tmp_path / "e" / "fake.png").write_text("not an image")
    with pytest.raises(AekitError, match="fake.png: not a readable image"):
        load_dataset(f"images:{tmp_path / 'e'}")
    with pytest.raises(AekitError, match="not a directory"):
        load_dataset(f"images:{tmp_path / 'nothing'}")


def test_synthetic_plane_and_curve():
    from aekit.baselines import PCA

    plane, curve = load_dataset("synthetic:plane"), load_dataset("synthetic:curve")
    assert plane.sample_shape == (4,) and plane.value_range == "real"
    floor = plane.meta["noise_floor_mse"]
    # A 2-D PCA fits the plane down to the noise floor but not the curve.
    assert PCA(2).fit(plane.train.x).evaluate(plane.test.x, unit_range=False)["mse"] < floor * 1.1
    assert PCA(2).fit(curve.train.x).evaluate(curve.test.x, unit_range=False)["mse"] > floor * 4
    np.testing.assert_array_equal(load_dataset("synthetic:plane").train.x, plane.train.x)


@pytest.mark.parametrize("spec", ["nope", "synthetic:sphere", "npy:", "foo:bar"])
def test_unknown_sources(spec):
    with pytest.raises(AekitError):
        load_dataset(spec)

"""The bad-input corpus for data files: every reader, given a hostile or broken file, prints one
``aekit: error:`` line and exits 2 (see :mod:`tests.badinput`).

Each row: an id, a function that builds the input in ``tmp_path`` and returns the command line,
and a piece of the expected message. Commands run in this process through ``aekit.cli.main``.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from aekit.data import sources
from aekit.data.idx import write_idx
from aekit.data.sources import IDX_FILES
from tests.badinput import assert_one_line_error, run_cli
from tests.test_bombs import gzip_bomb, idx_header, png_header_only, write_png


@dataclasses.dataclass
class Env:
    """What a row's builder may use: a folder, monkeypatch, and (made on first use) a trained run."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    request: pytest.FixtureRequest

    @property
    def run(self) -> Path:
        return self.request.getfixturevalue("trained_run")


def train(data: str, *extra: str) -> Callable[[Env], list[str]]:
    return lambda env: ["train", "--data", data, *extra, "--epochs", "1", "--max-steps", "1", "--quiet",
                        "--out", str(env.tmp / "run")]


def train_on(build: Callable[[Path], str], *extra: str) -> Callable[[Env], list[str]]:
    """``aekit train --data SOURCE`` where ``build(tmp)`` writes the file and returns the source."""
    return lambda env: train(build(env.tmp), *extra)(env)


# --- builders -----------------------------------------------------------------------------------


def mnist_dir(tmp: Path, images: bytes | None = None, labels: np.ndarray | None = None, raw: bool = False) -> Path:
    """A valid small MNIST folder; ``images`` replaces the training images file's bytes."""
    d = tmp / "mnist"
    d.mkdir(exist_ok=True)
    suffix = "" if raw else ".gz"
    write_idx(d / f"{IDX_FILES[0]}{suffix}", np.zeros((20, 28, 28), np.uint8))
    write_idx(d / f"{IDX_FILES[1]}{suffix}", np.zeros(20, np.uint8) if labels is None else labels)
    write_idx(d / f"{IDX_FILES[2]}{suffix}", np.zeros((5, 28, 28), np.uint8))
    write_idx(d / f"{IDX_FILES[3]}{suffix}", np.zeros(5, np.uint8))
    if images is not None:
        (d / f"{IDX_FILES[0]}{suffix}").write_bytes(images)
    return d


def mnist(images: bytes | None = None, labels: np.ndarray | None = None, raw: bool = False,
          ) -> Callable[[Env], list[str]]:
    return lambda env: train("mnist", "--data-dir", str(mnist_dir(env.tmp, images, labels, raw)))(env)


def idx_bytes(arr: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 8, np.dtype(np.float32): 0x0D}[arr.dtype]
    return idx_header(code, arr.shape) + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def file_source(kind: str, name: str, data: bytes) -> Callable[[Path], str]:
    def build(tmp: Path) -> str:
        (tmp / name).write_bytes(data)
        return f"{kind}:{tmp / name}"

    return build


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def raw_npy(descr: str, shape: str, body: bytes = b"", header_len: int | None = None) -> bytes:
    """A .npy file with a hand-written header (numpy would refuse to write these)."""
    text = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)  # noqa: UP031
    text = text + " " * ((header_len or 118) - len(text) - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1") + body


def fortran_npy(tmp: Path) -> str:
    """A 256 MiB Fortran-order float32 .npy that takes no disk space (a sparse file)."""
    p = tmp / "f.npy"
    m = np.lib.format.open_memmap(p, mode="w+", dtype=np.float32, shape=(65536, 1024), fortran_order=True)
    del m
    return f"npy:{p}"


def image_folder(files: dict[str, bytes | Callable[[Path], object]]) -> Callable[[Path], str]:
    def build(tmp: Path) -> str:
        d = tmp / "imgs"
        d.mkdir()
        for name, data in files.items():
            if callable(data):
                data(d / name)
            else:
                (d / name).write_bytes(data)
        return f"images:{d}"

    return build


def png_bytes(w: int, h: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (w, h), 255).save(buf, "PNG")
    return buf.getvalue()


def tiff_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "TIFF")
    return buf.getvalue()


def interpolate_from(make: Callable[[Path], Path]) -> Callable[[Env], list[str]]:
    return lambda env: ["interpolate", str(env.run), "--from", str(make(env.tmp)), "--to", "1",
                        "--out", str(env.tmp / "s.png")]


def inpaint_mask(make: Callable[[Path], Path]) -> Callable[[Env], list[str]]:
    return lambda env: ["inpaint", str(env.run), "--mask", str(make(env.tmp)), "--iters", "1"]


def download(mirror: str | None = None, insecure: bool = False, files: bytes | None = None,
             cap: int | None = None, **env_vars: str) -> Callable[[Env], list[str]]:
    """``train --data mnist`` with nothing local, so it downloads (never from the internet here)."""

    def build(env: Env) -> list[str]:
        spec = sources.IDX_DATASETS["mnist"]
        url = mirror
        if files is not None:  # a file:// mirror holding these bytes as every file
            (env.tmp / "www" / "mnist").mkdir(parents=True)
            for s in IDX_FILES:
                (env.tmp / "www" / "mnist" / f"{s}.gz").write_bytes(files)
            url = f"file://{env.tmp / 'www'}"
        env.monkeypatch.setitem(sources.IDX_DATASETS, "mnist", dataclasses.replace(spec, mirrors=()))
        if url:
            env.monkeypatch.setenv("AEKIT_MIRROR", url)
        if insecure:
            env.monkeypatch.setenv("AEKIT_ALLOW_INSECURE_MIRROR", "1")
        if cap is not None:
            env.monkeypatch.setattr(sources, "MAX_DOWNLOAD_BYTES", cap)
        for k, v in env_vars.items():
            env.monkeypatch.setenv(k, v)
        return train("mnist")(env)

    return build


def with_env(build: Callable[[Env], list[str]], **env_vars: str) -> Callable[[Env], list[str]]:
    def wrapped(env: Env) -> list[str]:
        for k, v in env_vars.items():
            env.monkeypatch.setenv(k, v)
        return build(env)

    return wrapped


X = np.zeros((20, 4), np.float32)
IMG = np.zeros((10, 8, 8), np.uint8)

# --- the corpus ---------------------------------------------------------------------------------

CASES: list[tuple[str, Callable[[Env], list[str]], str]] = [
    # IDX (--data mnist --data-dir D)
    ("idx-missing-files", lambda env: train("mnist", "--data-dir", str(env.tmp))(env), "files are not there"),
    ("idx-html-error-page", mnist(gzip.compress(b"<html>404 not found</html>")), "not an IDX file"),
    ("idx-truncated-gzip", mnist(gzip.compress(idx_bytes(np.random.default_rng(0).integers(0, 256, (20, 28, 28),
                                                                                        np.uint8)))[:3000]),
     "corrupt or truncated gzip"),
    ("idx-gzip-garbage", mnist(b"\x1f\x8b" + bytes(50)), "corrupt or truncated gzip"),
    ("idx-truncated-raw", mnist(idx_bytes(np.zeros((20, 28, 28), np.uint8))[:-10], raw=True), "truncated"),
    ("idx-trailing-bytes-raw", mnist(idx_bytes(np.zeros((20, 28, 28), np.uint8)) + b"xx", raw=True),
     "trailing bytes"),
    ("idx-gzip-bomb-trailing", mnist(gzip_bomb(idx_header(8, (20, 28, 28)), 64 << 20)), "trailing bytes"),
    ("idx-size-overflows-int64", mnist(gzip.compress(idx_header(0x0E, (2**31, 2**31, 4)))), "over the 1 GiB limit"),
    ("idx-claims-more-than-gzip-holds", mnist(gzip.compress(idx_header(8, (300000, 28, 28))),
                                               labels=np.zeros(300000, np.uint8)), "cannot unpack"),
    ("idx-nine-dimensions", mnist(gzip.compress(bytes([0, 0, 8, 9]) + bytes(36))), "9 dimensions"),
    ("idx-float-images", mnist(gzip.compress(idx_bytes(np.zeros((20, 28, 28), np.float32)))),
     "expected uint8 images"),
    ("idx-label-count", mnist(labels=np.zeros(7, np.uint8)), "20 images but the labels file holds (7,)"),
    ("idx-data-limit-env", with_env(mnist(), AEKIT_MAX_DATA_BYTES="lots"), "AEKIT_MAX_DATA_BYTES"),
    # .npy
    ("npy-missing", train_on(lambda t: f"npy:{t / 'none.npy'}"), "file not found"),
    ("npy-folder", train_on(lambda t: f"npy:{t}"), "is a folder"),
    ("npy-empty-file", train_on(file_source("npy", "e.npy", b"")), "empty (0 bytes)"),
    ("npy-text", train_on(file_source("npy", "t.npy", b"hello world")), "not a readable .npy"),
    ("npy-is-an-npz", train_on(file_source("npy", "a.npz", npz_bytes(x=X))), "use npz:"),
    ("npy-truncated", train_on(file_source("npy", "t.npy", npy_bytes(X)[:-8])), "truncated"),
    ("npy-trailing", train_on(file_source("npy", "t.npy", npy_bytes(X) + b"\0" * 8)), "trailing bytes"),
    ("npy-object-dtype", train_on(file_source("npy", "o.npy", raw_npy("|O", "(3, 2)", bytes(48)))), "not numeric"),
    ("npy-complex", train_on(file_source("npy", "c.npy", npy_bytes(X.astype(np.complex64)))), "not numeric"),
    ("npy-strings", train_on(file_source("npy", "s.npy", npy_bytes(np.array([["a", "b"]] * 3)))), "not numeric"),
    ("npy-negative-dim", train_on(file_source("npy", "n.npy", raw_npy("<f4", "(-3, 2)"))), "negative dimension"),
    ("npy-header-too-long", train_on(file_source("npy", "h.npy", raw_npy("<f4", "(3, 2)", header_len=20000))),
     "not a readable .npy"),
    ("npy-header-not-a-dict", train_on(file_source("npy", "d.npy", b"\x93NUMPY\x01\x00\x08\x00[1, 2]\n")),
     "not a readable .npy"),
    ("npy-one-dimensional", train_on(file_source("npy", "v.npy", npy_bytes(np.zeros(10)))), "expected a 2-D"),
    ("npy-no-values-per-sample", train_on(file_source("npy", "z.npy", npy_bytes(np.zeros((10, 0))))),
     "holds no values"),
    ("npy-nan", train_on(file_source("npy", "n.npy", npy_bytes(np.full((10, 3), np.nan, np.float32)))), "NaN"),
    ("npy-fortran-mapped", train_on(fortran_npy), "Fortran"),
    ("npy-beyond-float32", train_on(file_source("npy", "b.npy", npy_bytes(np.full((10, 3), 1e300)))),
     "beyond float32's range"),
    ("npy-huge-dimension", train_on(file_source("npy", "h.npy", raw_npy("<f4", f"(0, {2**64})"))),
     "too large for any array"),
    # .npz
    ("npz-given-an-npy", train_on(file_source("npz", "a.npy", npy_bytes(X))), "use npy:"),
    ("npz-not-a-zip", train_on(file_source("npz", "j.npz", b"PK\x03\x04 broken")), "not a readable .npz"),
    ("npz-y-shorter-than-x", train_on(file_source("npz", "a.npz", npz_bytes(x=X, y=np.arange(5)))),
     "5 labels for 20 samples"),
    ("npz-y-train-shorter", train_on(file_source("npz", "a.npz", npz_bytes(x_train=X, y_train=np.arange(3)))),
     "3 labels for 20 samples"),
    ("npz-y-two-dimensional", train_on(file_source("npz", "a.npz", npz_bytes(x=X, y=np.zeros((20, 2))))),
     "labels must be 1-D"),
    ("npz-y-text", train_on(file_source("npz", "a.npz", npz_bytes(x=X, y=np.array(["a"] * 20)))), "not numeric"),
    ("npz-member-not-npy", train_on(file_source("npz", "t.npz", zip_bytes({"x.txt": b"1,2,3"}))),
     "not a .npy array"),
    ("npz-member-garbage", train_on(file_source("npz", "g.npz", zip_bytes({"x.npy": b"garbage"}))),
     "not a readable .npy"),
    ("npz-member-bzip2", train_on(file_source("npz", "b.npz", zip_bytes({"x.npy": npy_bytes(X)}, zipfile.ZIP_BZIP2))),
     "compressed with method"),
    ("npz-no-x", train_on(file_source("npz", "c.npz", npz_bytes(a=X, b=X))), "expected arrays x"),
    ("npz-train-test-shapes", train_on(file_source("npz", "s.npz", npz_bytes(x_train=X, x_test=X[:, :3]))),
     "train samples are"),
    ("npz-over-data-limit", with_env(train_on(file_source("npz", "big.npz", zip_bytes(
        {"x.npy": npy_bytes(np.zeros((100, 100), np.float32))}, zipfile.ZIP_DEFLATED))),
        AEKIT_MAX_DATA_BYTES="10000"), "over the 9.8 KiB limit"),
    # CSV
    ("csv-missing", train_on(lambda t: f"csv:{t / 'none.csv'}"), "file not found"),
    ("csv-not-utf8", train_on(file_source("csv", "l.csv", "a,b\n1,2\nçà,3\n".encode("latin-1"))),
     "not UTF-8 text (line 3"),
    ("csv-field-over-128k", train_on(file_source("csv", "f.csv", b"a,b\n1," + b"9" * 140_000 + b"\n")),
     "longer than 128 KiB"),
    ("csv-text-cell", train_on(file_source("csv", "t.csv", b"a,b\n1,2\n3,x\n")), "'x' is not a number"),
    ("csv-nul-byte", train_on(file_source("csv", "z.csv", b"1,2\n3,\x00\n")), "is not a number"),
    ("csv-ragged", train_on(file_source("csv", "r.csv", b"1,2\n3\n")), "has 1 cells, expected 2"),
    ("csv-empty", train_on(file_source("csv", "e.csv", b"\n\n")), "empty CSV"),
    ("csv-header-only", train_on(file_source("csv", "h.csv", b"a,b,label\n")), "header but no rows"),
    ("csv-infinite", train_on(file_source("csv", "i.csv", b"1,2\n3,inf\n")), "NaN or infinite"),
    ("csv-beyond-float32", train_on(file_source("csv", "b.csv", b"a,b\n1,2\n3,1e300\n")), "beyond float32's range"),
    ("csv-only-labels", train_on(file_source("csv", "o.csv", b"label\n1\n2\n")), "no feature columns"),
    # images:DIR
    ("images-not-a-folder", train_on(lambda t: f"images:{t / 'none'}"), "not a directory"),
    ("images-no-images", train_on(image_folder({"a.txt": b"hi"})), "no image files"),
    ("images-fake-png", train_on(image_folder({"a.png": b"not an image"})), "not a readable image"),
    ("images-tiff-named-png", train_on(image_folder({"a.png": tiff_bytes()})), "not a readable image"),
    ("images-truncated-png", train_on(image_folder({"a.png": png_bytes(64, 64)[:60]}), "--image-size", "8"),
     "not a readable image"),
    ("images-30000-pixel-header",
     train_on(image_folder({"a.png": lambda p: png_header_only(p, 30000, 30000)}), "--image-size", "8"),
     "far larger than aekit reads"),
    ("images-over-pixel-limit",
     train_on(image_folder({"a.png": lambda p: png_header_only(p, 6000, 6000)}), "--image-size", "8"),
     "6000x6000 pixels, more than aekit reads"),
    ("images-zero-size", train_on(image_folder({"a.png": lambda p: write_png(p, 0, 5, b"")})), "not a readable image"),
    ("images-result-over-data-limit",
     with_env(train_on(image_folder({f"{i}.png": png_bytes(40, 40) for i in range(4)})), AEKIT_MAX_DATA_BYTES="5000"),
     "pass a smaller --image-size"),
    # source strings
    ("synthetic-unknown", train("synthetic:sphere"), "use synthetic:plane or synthetic:curve"),
    ("synthetic-empty", train("synthetic:"), "unknown synthetic"),
    ("source-without-path", train("npz:"), "give a path after 'npz:'"),
    ("source-unknown", train("parquet:/x"), "unknown dataset"),
    # image files given to commands that use a trained run
    ("interpolate-30000-pixel-png", interpolate_from(lambda t: png_header_only(t / "h.png", 30000, 30000)),
     "far larger than aekit reads"),
    ("interpolate-over-pixel-limit", interpolate_from(lambda t: png_header_only(t / "h.png", 6000, 6000)),
     "more than aekit reads"),
    ("interpolate-missing-file", interpolate_from(lambda t: t / "none.png"), "file not found"),
    ("inpaint-30000-pixel-mask", inpaint_mask(lambda t: png_header_only(t / "m.png", 30000, 30000)),
     "far larger than aekit reads"),
    ("inpaint-mask-wrong-size", inpaint_mask(lambda t: png_header_only(t / "m.png", 12000, 12000)),
     "the mask is 12000x12000 but the images are 28x28"),
    ("inpaint-mask-missing", inpaint_mask(lambda t: t / "none.png"), "mask file not found"),
    # downloads (no network: file:// and closed local ports only)
    ("download-http-mirror-not-allowed", download("http://127.0.0.1:9"), "AEKIT_ALLOW_INSECURE_MIRROR=1"),
    ("download-file-mirror-not-allowed", download("file:///tmp"), "AEKIT_ALLOW_INSECURE_MIRROR=1"),
    ("download-ftp-mirror", download("ftp://127.0.0.1/x"), "expected an https:// URL"),
    ("download-offline", download("https://127.0.0.1:9"), "could not download mnist"),
    ("download-checksum-mismatch", download(files=b"not mnist", insecure=True), "checksum mismatch"),
    ("download-larger-than-cap", download(files=bytes(5000), insecure=True, cap=4096), "offers 5000 bytes"),
    ("download-bad-deadline", download("https://127.0.0.1:9", AEKIT_DOWNLOAD_DEADLINE="soon"),
     "AEKIT_DOWNLOAD_DEADLINE"),
    ("download-infinite-deadline", download("https://127.0.0.1:9", AEKIT_DOWNLOAD_DEADLINE="inf"),
     "AEKIT_DOWNLOAD_DEADLINE"),
]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 28x28 gray model trained for one step: enough for interpolate and inpaint to open it."""
    from aekit.cli import main

    folder = tmp_path_factory.mktemp("run")
    np.save(folder / "px.npy", np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8))
    out = folder / "run"
    argv = ["train", "--data", f"npy:{folder / 'px.npy'}", "--layers", "", "--code", "4", "--epochs", "1",
            "--max-steps", "1", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    return out


@pytest.mark.parametrize(("build", "expect"), [pytest.param(b, e, id=i) for i, b, e in CASES])
def test_bad_data_is_one_error_line(build: Callable[[Env], list[str]], expect: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    argv = build(Env(tmp_path, monkeypatch, request))
    assert_one_line_error(argv, capsys, expect)
    assert not list(tmp_path.rglob("*.part"))  # no download leaves a partial file behind


def test_corpus_ids_are_unique() -> None:
    ids = [i for i, _, _ in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 30


# --- integer data: scaled like 8-bit pixels when it is 8-bit pixels -----------------------------


def test_integer_pixels_are_scaled_like_uint8(tmp_path: Path) -> None:
    from aekit.data.sources import load_dataset

    rng = np.random.default_rng(0)
    np.save(tmp_path / "px.npy", rng.integers(0, 256, (20, 8, 8)))  # int64 holding 8-bit pixels
    ds = load_dataset(f"npy:{tmp_path / 'px.npy'}")
    assert ds.train.x.dtype == np.uint8 and ds.value_range == "unit"
    np.save(tmp_path / "bits.npy", rng.integers(0, 2, (20, 6)))  # 0/1 data is in [0, 1] already
    ds = load_dataset(f"npy:{tmp_path / 'bits.npy'}")
    assert ds.train.x.dtype == np.float32 and ds.value_range == "unit" and ds.train.x.max() == 1
    np.save(tmp_path / "counts.npy", rng.integers(0, 1000, (20, 6)))  # other integers are real values
    ds = load_dataset(f"npy:{tmp_path / 'counts.npy'}")
    assert ds.train.x.dtype == np.float32 and ds.value_range == "real" and ds.train.x.max() > 255


def test_integer_pixels_train_at_the_scale_of_uint8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    np.save(tmp_path / "px.npy", np.random.default_rng(0).integers(0, 256, (40, 8, 8)))
    rc, out, err = run_cli(["train", "--data", f"npy:{tmp_path / 'px.npy'}", "--epochs", "1", "--max-steps", "1",
                            "--quiet", "--json", "--out", str(tmp_path / "run")], capsys)
    assert rc == 0, err
    mse = json.loads(out)["metrics"]["test"]["mse"]
    assert mse < 1.0  # was about 2e4 (4e5 on larger images): pixels taken as values up to 255


def test_small_fortran_order_npy_is_read(tmp_path: Path) -> None:
    from aekit.data.sources import load_dataset

    x = np.asfortranarray(np.arange(60, dtype=np.float32).reshape(20, 3))
    np.save(tmp_path / "f.npy", x)
    ds = load_dataset(f"npy:{tmp_path / 'f.npy'}")
    assert ds.train.x.flags.c_contiguous and sorted(np.concatenate([ds.train.x, ds.test.x])[:, 0]) == list(x[:, 0])

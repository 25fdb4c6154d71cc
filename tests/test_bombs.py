"""Small hostile files must not cost large memory: gzip, zip and image bombs, and hostile mirrors.

Each bomb is read in a child process (``python -c``) whose peak resident memory (``VmHWM``) is
compared with :data:`PEAK_LIMIT_MB`; the child also caps its address space, so a regression fails
with a MemoryError instead of taking the shared machine's memory. The bombs are built without
ever holding their unpacked size: deflate segments of zeros are made once and repeated.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aekit.data import sources
from aekit.data.sources import IDX_FILES, IDXDataset, fetch_idx
from aekit.errors import AekitError

PEAK_LIMIT_MB = 500
LOAD = "from aekit.data.sources import load_dataset"
SEGMENT = 64 << 20  # bytes of zeros per repeated deflate segment


# --- building bombs -----------------------------------------------------------------------------


@functools.cache
def _zero_segment(n: int = SEGMENT) -> bytes:
    """Raw deflate of ``n`` zeros ending on a byte boundary (full flush), so copies can follow it."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(bytes(n)) + c.flush(zlib.Z_FULL_FLUSH)


def deflate_zeros(n: int, prefix: bytes = b"") -> bytes:
    """A complete raw deflate stream of ``prefix`` then ``n`` zeros (about n / 1000 bytes)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    rest = tail.compress(bytes(n % SEGMENT)) + tail.flush(zlib.Z_FINISH)
    return head + _zero_segment() * (n // SEGMENT) + rest


@functools.cache
def _gzip_zero_member() -> bytes:
    return gzip.compress(bytes(SEGMENT), compresslevel=9, mtime=0)


def gzip_bomb(prefix: bytes, total: int) -> bytes:
    """A multi-member gzip file: ``prefix`` then zeros, about ``total`` bytes unpacked (total / 1000 packed)."""
    return gzip.compress(prefix, mtime=0) + _gzip_zero_member() * max(1, total // SEGMENT)


def idx_header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


def write_idx_bomb(folder: Path, images: bytes) -> Path:
    """An MNIST folder whose training images are ``images`` (gzip bytes); the other files are fine."""
    from aekit.data.idx import write_idx

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{IDX_FILES[0]}.gz").write_bytes(images)
    write_idx(folder / f"{IDX_FILES[1]}.gz", np.zeros(60000, np.uint8))
    write_idx(folder / f"{IDX_FILES[2]}.gz", np.zeros((10, 28, 28), np.uint8))
    write_idx(folder / f"{IDX_FILES[3]}.gz", np.zeros(10, np.uint8))
    return folder


def npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    return np.lib.format.magic(1, 0) + _npy_header_body(shape, descr)


def _npy_header_body(shape: tuple[int, ...], descr: str) -> bytes:
    text = repr({"descr": descr, "fortran_order": False, "shape": shape})
    pad = 64 - (10 + len(text) + 1) % 64
    text = text + " " * pad + "\n"
    return struct.pack("<H", len(text)) + text.encode("latin1")


def write_zip(path: Path, members: list[tuple[str, bytes, int, int, int]]) -> None:
    """A zip file of raw members: (name, data as stored, method, uncompressed size, CRC-32).

    Written by hand because zipfile would have to compress the gigabytes itself.
    """
    out, central = bytearray(), bytearray()
    for name, data, method, size, crc in members:
        fn = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(fn), 0)
        out += fn + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data), size,
                               len(fn), 0, 0, 0, 0, 0, offset) + fn
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    path.write_bytes(bytes(out + central + eocd))


def png_header_only(path: Path, w: int, h: int) -> Path:
    """A PNG that declares ``w`` x ``h`` gray pixels and holds none (for size checks at open)."""
    return write_png(path, w, h, zlib.compress(b""))


def write_png(path: Path, w: int, h: int, idat: bytes) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit gray
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def png_bomb(path: Path, w: int, h: int) -> Path:
    """A complete, valid gray PNG of ``w`` x ``h`` black pixels, about w * h / 1000 bytes."""
    n = h * (w + 1)  # a filter byte, then the row
    adler = ((n % 65521) << 16) | 1  # Adler-32 of n zeros: A stays 1, B counts the bytes
    return write_png(path, w, h, b"\x78\xda" + deflate_zeros(n) + struct.pack(">I", adler))


# --- measuring ----------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, resource, sys
    # A safety net: a regression fails with MemoryError instead of eating the shared machine.
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
    from aekit.errors import AekitError
    try:
        exec(sys.argv[1])
        result = "ok"
    except AekitError as exc:
        result = "error: " + str(exc)
    # VmHWM, the peak of this process's own memory: ru_maxrss would also count the parent's
    # resident memory at the fork (Linux keeps the larger of the two across exec).
    with open("/proc/self/status") as fh:
        peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
    print(json.dumps({"result": result, "peak_mb": peak}))
    """
)


def read_in_child(code: str, env: dict[str, str] | None = None) -> tuple[str, float]:
    """Run ``code`` in a fresh interpreter; (its result or one-line error, its peak RSS in MB)."""
    proc = subprocess.run([sys.executable, "-c", CHILD, code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return report["result"], report["peak_mb"]


def assert_bounded(code: str, expect: str, env: dict[str, str] | None = None) -> float:
    result, peak = read_in_child(code, env)
    assert expect.lower() in result.lower(), result
    assert "\n" not in result
    assert peak < PEAK_LIMIT_MB, f"peak {peak:.0f} MB: {result}"
    return peak


# --- IDX ----------------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform != "linux", reason="peak RSS is read from /proc")
@pytest.mark.parametrize("packed_mb", [2, 8])
def test_idx_gzip_bomb_with_trailing_zeros(tmp_path, packed_mb):
    # The MNIST header, then gigabytes of zeros: only the 47 MB the header declares are unpacked.
    bomb = gzip_bomb(idx_header(8, (60000, 28, 28)), packed_mb * 1000 << 20)
    assert packed_mb - 1 < len(bomb) / 1e6 < packed_mb + 1
    folder = write_idx_bomb(tmp_path / "d", bomb)
    peak = assert_bounded(f"{LOAD}; load_dataset('mnist', data_dir={str(folder)!r})",
                          "trailing bytes")
    assert peak < 200  # 47 MB of images and the interpreter


@pytest.mark.skipif(sys.platform != "linux", reason="peak RSS is read from /proc")
def test_idx_gzip_bomb_with_a_matching_header_is_refused_before_unpacking(tmp_path):
    # 8 GB of zeros that the header honestly declares: over the limit, refused from the header.
    n = (8000 << 20) // 784
    folder = write_idx_bomb(tmp_path / "d", gzip_bomb(idx_header(8, (n, 28, 28)), 8000 << 20))
    from aekit.data.idx import write_idx

    write_idx(folder / f"{IDX_FILES[1]}.gz", np.zeros(n, np.uint8))
    peak = assert_bounded(f"{LOAD}; load_dataset('mnist', data_dir={str(folder)!r})",
                          "over the 1 GiB limit")
    assert peak < 100


def test_idx_header_that_overflows_int64(tmp_path):
    from aekit.data.idx import read_idx

    (tmp_path / "x.idx").write_bytes(idx_header(0x0E, (2**31, 2**31, 4)) + bytes(64))
    with pytest.raises(AekitError, match=r"2147483648x2147483648x4 values.*over the 1 GiB limit"):
        read_idx(tmp_path / "x.idx")


def test_idx_header_larger_than_the_gzip_file_can_hold(tmp_path):
    from aekit.data.idx import read_idx

    (tmp_path / "x.gz").write_bytes(gzip.compress(idx_header(8, (100000, 28, 28)) + bytes(100)))
    with pytest.raises(AekitError, match="truncated.*cannot unpack to more than"):
        read_idx(tmp_path / "x.gz")


# --- npz ----------------------------------------------------------------------------------------


def _deflated_member(name: str, shape: tuple[int, ...], descr: str = "|u1") -> tuple[str, bytes, int, int, int]:
    head = npy_header(shape, descr)
    nbytes = int(np.prod(shape)) * np.dtype(descr).itemsize
    return name, deflate_zeros(nbytes, head), zipfile_deflated(), len(head) + nbytes, 0  # CRC never reached


def zipfile_deflated() -> int:
    import zipfile

    return zipfile.ZIP_DEFLATED


def _small_member(name: str, arr: np.ndarray) -> tuple[str, bytes, int, int, int]:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr)
    data = buf.getvalue()
    return name, data, 0, len(data), zlib.crc32(data)


@pytest.mark.skipif(sys.platform != "linux", reason="peak RSS is read from /proc")
def test_npz_zip_bomb_members_not_asked_for_are_never_read(tmp_path):
    # A valid x and three 1 GB members of zeros, 3.2 MB in all: np.load unpacked every member.
    members = [_small_member("x.npy", np.zeros((20, 4), np.float32))]
    members += [_deflated_member(f"junk{i}.npy", (1050 << 20,)) for i in range(3)]
    write_zip(tmp_path / "b.npz", members)
    assert 3e6 < (tmp_path / "b.npz").stat().st_size < 4e6
    result, peak = read_in_child(f"from aekit.data.sources import load_dataset; load_dataset('npz:{tmp_path}/b.npz')")
    assert result == "ok" and peak < 150


@pytest.mark.skipif(sys.platform != "linux", reason="peak RSS is read from /proc")
def test_npz_zip_bomb_over_the_limit_is_refused_from_its_header(tmp_path):
    # x_train and x_test, 3.3 GB each as declared by their .npy headers and the zip's sizes.
    shape = ((3300 << 20) // 784, 784)
    write_zip(tmp_path / "b.npz", [_deflated_member("x_train.npy", shape), _deflated_member("x_test.npy", shape)])
    assert_bounded(f"from aekit.data.sources import load_dataset; load_dataset('npz:{tmp_path}/b.npz')",
                   "over the 1 GiB limit")


def test_npz_member_claiming_an_impossible_ratio(tmp_path):
    from aekit.data.sources import load_dataset

    name, data, method, size, crc = _deflated_member("x.npy", (1000, 10))
    write_zip(tmp_path / "b.npz", [(name, data, method, size * 5000, crc)])
    with pytest.raises(AekitError, match="sizes are impossible"):
        load_dataset(f"npz:{tmp_path}/b.npz")


# --- exported models (aekit export --check-only) ----------------------------------------------------


def zeros_crc(n: int) -> int:
    """CRC-32 of ``n`` zero bytes, a segment at a time (never ``n`` bytes at once)."""
    crc, seg = 0, bytes(min(n, SEGMENT))
    for start in range(0, n, SEGMENT):
        crc = zlib.crc32(seg[: min(SEGMENT, n - start)], crc)
    return crc


def torchscript_bomb(src: Path, dst: Path, entries: dict[str, int]) -> Path:
    """The TorchScript archive ``src`` rewritten to ``dst`` with each entry named in ``entries`` (a name
    inside its archive folder, e.g. ``data/0``) replaced, or added, as that many deflated zeros: a
    valid zip whose sizes and CRCs are right, so torch would inflate every byte."""
    import zipfile

    with zipfile.ZipFile(src) as z:
        root = z.infolist()[0].filename.split("/")[0]
        old = {i.filename: z.read(i) for i in z.infolist()}
    members = [(name, data, 0, len(data), zlib.crc32(data)) for name, data in old.items()
               if name.removeprefix(root + "/") not in entries]
    members += [(f"{root}/{name}", deflate_zeros(n), zipfile.ZIP_DEFLATED, n, zeros_crc(n))
                for name, n in entries.items()]
    write_zip(dst, members)
    return dst


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    import aekit
    from aekit.config import RunConfig

    d = tmp_path_factory.mktemp("bomb-run") / "run"
    aekit.train(RunConfig.from_dict({"model": {"name": "mlp", "code": 4}, "train": {"epochs": 1, "max_steps": 1}}),
                d, progress=False)
    return d


@pytest.mark.skipif(sys.platform != "linux", reason="peak RSS is read from /proc")
def test_torchscript_zip_bomb_is_refused_from_its_directory(tmp_path, tiny_run):
    # The file: a real export whose data/0 entry inflates to 1 GiB, 1.1 MB on disk; torch.jit.load
    # allocated and inflated it (1,362 MB peak) before the check failed.
    import aekit

    aekit.export(tiny_run, format="torchscript", part="full", out=tmp_path / "full.pt", check=False)
    bomb = torchscript_bomb(tmp_path / "full.pt", tmp_path / "bomb.pt", {"data/0": 1 << 30})
    assert bomb.stat().st_size < 2e6
    assert_bounded(f"import aekit; aekit.export({str(tiny_run)!r}, format='torchscript', part='full', "
                   f"out={str(bomb)!r}, check_only=True)", "declares 1,073,741,824 bytes")


# --- images -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def png_12000(tmp_path_factory) -> Path:
    return png_bomb(tmp_path_factory.mktemp("png") / "big.png", 12000, 12000)


@pytest.mark.skipif(sys.platform != "linux", reason="peak RSS is read from /proc")
@pytest.mark.parametrize("size", [None, 28])
def test_folder_of_12000_pixel_pngs(tmp_path, png_12000, size):
    (tmp_path / "imgs").mkdir()
    for i in range(10):
        (tmp_path / "imgs" / f"{i}.png").write_bytes(png_12000.read_bytes())
    assert sum(f.stat().st_size for f in (tmp_path / "imgs").iterdir()) < 2e6
    code = f"from aekit.data.sources import load_dataset; load_dataset('images:{tmp_path}/imgs', image_size={size})"
    expect = "12000x12000 pixels, more than aekit reads" if size else "need 1.3 GiB, over the 1 GiB limit"
    assert_bounded(code, expect)


@pytest.mark.skipif(sys.platform != "linux", reason="peak RSS is read from /proc")
def test_png_bomb_as_interpolation_endpoint_and_mask(tmp_path, png_12000):
    assert_bounded(f"from aekit.tasks.blend import load_image_file; load_image_file({str(png_12000)!r}, (1, 28, 28))",
                   "more than aekit reads")
    assert_bounded(f"from aekit.tasks.inpaint import parse_mask; parse_mask({str(png_12000)!r}, (28, 28))",
                   "the mask is 12000x12000 but the images are 28x28")


def test_30000_pixel_png_header_is_one_error_everywhere(tmp_path):
    from aekit.data.sources import load_dataset
    from aekit.tasks.blend import load_image_file
    from aekit.tasks.inpaint import parse_mask

    (tmp_path / "imgs").mkdir()
    png = png_header_only(tmp_path / "imgs" / "huge.png", 30000, 30000)
    for call in (lambda: load_dataset(f"images:{tmp_path / 'imgs'}"), lambda: load_image_file(png, (1, 28, 28)),
                 lambda: parse_mask(str(png), (28, 28))):
        with pytest.raises(AekitError, match="far larger than aekit reads"):
            call()


def test_large_images_are_resized_one_at_a_time(tmp_path):
    # Under the pixel limit, each image is decoded, resized and dropped before the next.
    from PIL import Image

    from aekit.data.sources import load_dataset

    (tmp_path / "imgs").mkdir()
    for i in range(3):
        Image.new("L", (3000, 2000), color=40 * i).save(tmp_path / "imgs" / f"{i}.png")
    Image.new("RGB", (4000, 3000), color=(255, 0, 0)).save(tmp_path / "imgs" / "photo.jpg", quality=90)
    ds = load_dataset(f"images:{tmp_path / 'imgs'}", image_size=16)
    assert ds.sample_shape == (3, 16, 16) and len(ds.train) + len(ds.test) == 4


# --- downloads ----------------------------------------------------------------------------------


class HostileMirror(http.server.BaseHTTPRequestHandler):
    """/big: zeros without end (no Content-Length); /liar: claims 400 MB; /slow: a byte every 0.2 s."""

    def do_GET(self) -> None:
        self.send_response(200)
        if self.path.endswith("liar/train-images-idx3-ubyte.gz"):
            self.send_header("Content-Length", str(400 << 20))
        self.end_headers()
        try:
            if "/big/" in self.path or "/liar/" in self.path:
                for _ in range(400):  # 400 MB at most, in case the client never stops
                    self.wfile.write(bytes(1 << 20))
            elif "/slow/" in self.path:
                for _ in range(600):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile_mirror() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HostileMirror)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


TOY = IDXDataset("toy", "test", (), {s: "0" * 32 for s in IDX_FILES})


def _no_parts(root: Path) -> bool:
    return not list(root.rglob("*.part"))


@pytest.mark.skipif(sys.platform != "linux", reason="peak RSS is read from /proc")
def test_download_without_end_stops_at_the_size_limit(tmp_path, hostile_mirror):
    code = (f"from aekit.data.sources import fetch_idx, IDXDataset, IDX_FILES; from pathlib import Path\n"
            f"fetch_idx(IDXDataset('toy', '', (), {{s: '0' * 32 for s in IDX_FILES}}), root=Path({str(tmp_path)!r}), "
            f"mirrors=({hostile_mirror + '/big/'!r},), progress=False, max_bytes=4 << 20)")
    assert_bounded(code, "more than 4194304 bytes arrived")
    assert _no_parts(tmp_path)


def test_download_default_size_limit_and_content_length(tmp_path, hostile_mirror):
    with pytest.raises(AekitError, match=f"more than {64 << 20} bytes arrived"):
        fetch_idx(TOY, root=tmp_path, mirrors=(hostile_mirror + "/big/",), progress=False)
    with pytest.raises(AekitError, match="offers 419430400 bytes"):
        fetch_idx(TOY, root=tmp_path, mirrors=(hostile_mirror + "/liar/",), progress=False)
    assert _no_parts(tmp_path)


def test_download_trickle_hits_the_deadline(tmp_path, hostile_mirror, monkeypatch):
    monkeypatch.setenv("AEKIT_DOWNLOAD_DEADLINE", "1")
    t0 = time.monotonic()
    with pytest.raises(AekitError, match=r"not finished after 1 s"):
        fetch_idx(TOY, root=tmp_path, mirrors=(hostile_mirror + "/slow/",), progress=False)
    assert time.monotonic() - t0 < 5
    assert _no_parts(tmp_path)


def test_sigterm_during_a_download_leaves_no_part_file(tmp_path, hostile_mirror):
    code = (f"from aekit.data.sources import fetch_idx, IDXDataset, IDX_FILES; from pathlib import Path\n"
            f"fetch_idx(IDXDataset('toy', '', (), {{s: '0' * 32 for s in IDX_FILES}}), root=Path({str(tmp_path)!r}), "
            f"mirrors=({hostile_mirror + '/slow/'!r},), progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while _no_parts(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _no_parts(tmp_path), "the download never started"
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == -signal.SIGTERM
    assert _no_parts(tmp_path)


def test_stale_part_files_are_removed(tmp_path, monkeypatch):
    folder = tmp_path / "toy"
    folder.mkdir()
    stale, fresh = folder / f".{IDX_FILES[0]}.gz.abc.part", folder / f".{IDX_FILES[0]}.gz.def.part"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    with pytest.raises(AekitError):
        fetch_idx(TOY, root=tmp_path, mirrors=("http://127.0.0.1:9/",), progress=False, deadline=60)
    assert not stale.exists() and fresh.exists()  # a fresh one may be another process's live download


def test_insecure_mirrors_only_when_asked_for(tmp_path, monkeypatch):
    from aekit.data.idx import write_idx

    www = tmp_path / "www" / "toy"
    www.mkdir(parents=True)
    for s in IDX_FILES:
        write_idx(www / f"{s}.gz", np.zeros((2, 28, 28) if "images" in s else 2, np.uint8))
    import hashlib

    spec = IDXDataset("toy", "", (), {s: hashlib.md5((www / f"{s}.gz").read_bytes()).hexdigest() for s in IDX_FILES})
    for url in (f"file://{tmp_path / 'www'}", "http://127.0.0.1:9", "ftp://example.org/x"):
        monkeypatch.setenv("AEKIT_MIRROR", url)
        with pytest.raises(AekitError, match="AEKIT_ALLOW_INSECURE_MIRROR=1"):
            fetch_idx(spec, root=tmp_path / "c", progress=False)
    monkeypatch.setenv("AEKIT_MIRROR", f"file://{tmp_path / 'www'}")
    monkeypatch.setenv("AEKIT_ALLOW_INSECURE_MIRROR", "1")
    paths = fetch_idx(spec, root=tmp_path / "c", progress=False)
    assert sorted(p.name for p in paths.values()) == sorted(f"{s}.gz" for s in IDX_FILES)
    monkeypatch.setenv("AEKIT_MIRROR", "ftp://example.org/x")
    with pytest.raises(AekitError, match="expected an https:// URL"):
        fetch_idx(spec, root=tmp_path / "d", progress=False)


def test_https_redirect_to_http_is_refused():
    import urllib.error
    import urllib.request

    class Req:
        full_url = "https://mirror.example/x.gz"

    with pytest.raises(urllib.error.URLError, match="refused a redirect from https"):
        sources._NoDowngrade().redirect_request(Req(), None, 302, "Found", {}, "http://evil.example/x.gz")
    assert isinstance(urllib.request.build_opener(sources._NoDowngrade), urllib.request.OpenerDirector)

"""Named datasets and the source strings users type (``mnist``, ``npz:PATH``, ``synthetic:plane``...).

IDX datasets (``mnist``, ``fashion-mnist``, ``kmnist``) are looked for, in order:
1. in ``data_dir`` (``--data-dir`` or ``AEKIT_DATA_DIR``): the four standard files, gzip or raw,
   taken as they are (re-packed copies with other checksums are fine);
2. in the cache, ``$AEKIT_CACHE`` or ``~/.cache/aekit``, under the dataset's name;
3. downloaded from the standard mirrors into the cache, each file's official MD5 verified before
   it is moved into place, so an interrupted or tampered download never lands in the cache.
   ``AEKIT_MIRROR=URL`` puts a mirror of your own first (files under ``URL/<dataset>/``): https, or
   http/file when ``AEKIT_ALLOW_INSECURE_MIRROR=1`` says so. A download is capped in size
   (:data:`MAX_DOWNLOAD_BYTES`) and in time (``AEKIT_DOWNLOAD_DEADLINE``, seconds), and never
   leaves a partial file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, BinaryIO

import numpy as np

from aekit.data.dataset import Dataset, Split
from aekit.errors import AekitError
from aekit.io import open_new, temp_path

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class IDXDataset:
    """Where an IDX dataset lives on the web and the MD5 of each official ``.gz`` file."""

    name: str
    description: str
    mirrors: tuple[str, ...]
    md5: dict[str, str]


IDX_DATASETS = {
    "mnist": IDXDataset(
        "mnist",
        "handwritten digits, 60,000 train + 10,000 test, 28x28 gray (LeCun et al.)",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        {
            "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion-mnist": IDXDataset(
        "fashion-mnist",
        "Zalando clothing images, 60,000 train + 10,000 test, 28x28 gray (Xiao et al. 2017)",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {
            "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
    "kmnist": IDXDataset(
        "kmnist",
        "Kuzushiji (cursive Japanese) characters, 60,000 + 10,000, 28x28 gray (Clanuwat et al. 2018)",
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        {
            "train-images-idx3-ubyte": "bdb82020997e1d708af4cf47b453dcf7",
            "train-labels-idx1-ubyte": "e144d726b3acfaa3e44228e80efcd344",
            "t10k-images-idx3-ubyte": "5c965bf0a639b31b8f53240b1b52f4d7",
            "t10k-labels-idx1-ubyte": "7320c461ea6c1c855c0b718fb2a4b134",
        },
    ),
}

# No official file is over 26.5 MB (Fashion-MNIST's training images); a mirror that sends more than
# this is broken or hostile, and the rest is not read.
MAX_DOWNLOAD_BYTES = 64 << 20
# One file, start to end. A healthy mirror sends the largest file in seconds; a slow link gets minutes.
DOWNLOAD_DEADLINE_S = 900.0

OTHER_SOURCES = {
    "mnist-mini": "6,000 + 1,000 MNIST digits shipped with aekit (offline; CC BY-SA 3.0)",
    "npy:PATH": "one .npy array: rows (N,D), images (N,H,W) or (N,C,H,W); 20% held out as test",
    "npz:PATH": ".npz with x_train/y_train/x_test/y_test, or x (and y)",
    "csv:PATH": "numeric rows; a header column named 'label' holds labels; 20% held out as test",
    "images:DIR": "a folder of PNG/JPEG images (sub-folders = classes), resized to one size",
    "synthetic:plane": "points on a 2-D plane in R^4 plus noise (the lecture's linear example)",
    "synthetic:curve": "points on a curved 2-D surface in R^4 plus noise (non-linear example)",
}


# ``NAME-binary``: a named image dataset dynamically binarised (aekit.data.dataset.binarized). Its
# validation and test values are drawn once with this seed, recorded in a run's config.json
# (data.binarisation), so that every likelihood on it is measured on the same binary digits.
BINARY_SUFFIX = "-binary"
BINARY_SEED = 0


def binary_bases() -> tuple[str, ...]:
    """The named datasets that have a ``-binary`` variant: the images shipped or downloaded by name."""
    return (*IDX_DATASETS, "mnist-mini")


def list_datasets() -> dict[str, str]:
    """Every source name (or pattern) with a one-line description."""
    described = {**{k: v.description for k, v in IDX_DATASETS.items()}, **OTHER_SOURCES}
    out = {}
    for name, desc in described.items():
        out[name] = desc
        if name in binary_bases():
            out[name + BINARY_SUFFIX] = (f"{name} dynamically binarised: fresh binary pixels every training batch, "
                                         f"validation and test drawn once (seed {BINARY_SEED})")
    return out


def cache_dir() -> Path:
    return Path(os.environ.get("AEKIT_CACHE") or Path.home() / ".cache" / "aekit")


def _find_files(folder: Path) -> dict[str, Path] | None:
    """The four IDX files in ``folder`` (``.gz`` or raw), or None if any is missing."""
    found = {}
    for stem in IDX_FILES:
        for cand in (folder / f"{stem}.gz", folder / stem):
            if cand.is_file():
                found[stem] = cand
                break
        else:
            return None
    return found


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_deadline() -> float:
    """Seconds one file may take in all: :data:`DOWNLOAD_DEADLINE_S`, or ``$AEKIT_DOWNLOAD_DEADLINE``."""
    env = os.environ.get("AEKIT_DOWNLOAD_DEADLINE", "").strip()
    if not env:
        return DOWNLOAD_DEADLINE_S
    try:
        value = float(env)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1e7:  # also refuses NaN and infinity: a download must end some time
        raise AekitError(f"AEKIT_DOWNLOAD_DEADLINE={env!r}: expected a number of seconds, more than 0")
    return value


def mirror_from_env() -> str | None:
    """``$AEKIT_MIRROR`` if it is https, or http/file with ``AEKIT_ALLOW_INSECURE_MIRROR=1``; else an error.

    A plain http mirror can be tampered with on the way and a file:// one reads any local path, so
    either must be asked for explicitly; the MD5 checks apply to every mirror all the same.
    """
    own = os.environ.get("AEKIT_MIRROR", "").strip()
    if not own:
        return None
    scheme = urllib.parse.urlsplit(own).scheme.lower()
    if scheme == "https":
        return own
    if scheme in ("http", "file"):
        if os.environ.get("AEKIT_ALLOW_INSECURE_MIRROR", "").strip() == "1":
            return own
        raise AekitError(
            f"AEKIT_MIRROR={own!r}: a {scheme}:// mirror is used only with AEKIT_ALLOW_INSECURE_MIRROR=1 "
            "set as well; use an https:// mirror, or set it if you trust this one"
        )
    raise AekitError(f"AEKIT_MIRROR={own!r}: expected an https:// URL (http:// or file:// with "
                     "AEKIT_ALLOW_INSECURE_MIRROR=1)")


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never from https to anything weaker."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: http.client.HTTPMessage, newurl: str) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(req.full_url).scheme == "https" and urllib.parse.urlsplit(newurl).scheme != "https":
            raise urllib.error.URLError(f"refused a redirect from https to {newurl}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Terminated(BaseException):
    """SIGTERM arrived during a download (a BaseException, so no ``except Exception`` swallows it)."""


@contextlib.contextmanager
def _no_part_left_on_sigterm(tmp: Path) -> Iterator[None]:
    """On SIGTERM, delete ``tmp`` and then die of the signal as the process would have anyway.

    Only the main thread can own signal handlers; elsewhere (and where SIGTERM is ignored) this
    does nothing, and the ``finally`` of :func:`download` still removes the file on any exception.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return
    old = signal.getsignal(signal.SIGTERM)
    if old is None or old == signal.SIG_IGN:  # None: a handler set outside Python, which could not be put back
        yield
        return

    def on_term(signum: int, frame: object) -> None:
        raise _Terminated

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    except _Terminated:
        tmp.unlink(missing_ok=True)
        signal.signal(signal.SIGTERM, old)
        os.kill(os.getpid(), signal.SIGTERM)  # the old handler's turn: by default, the process ends here
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        if signal.getsignal(signal.SIGTERM) is on_term:
            signal.signal(signal.SIGTERM, old)


def download(url: str, dest: Path, md5: str | None = None, progress: bool = True, timeout: float = 30.0,
             max_bytes: int | None = None, deadline: float | None = None) -> Path:
    """Fetch ``url`` to ``dest`` via a temp file in the same folder; verify MD5 before the rename.

    At most ``max_bytes`` (:data:`MAX_DOWNLOAD_BYTES`) are taken and the whole transfer must end
    within ``deadline`` seconds (:func:`download_deadline`): ``timeout`` alone only bounds each
    wait for the socket, which a server sending a byte every few seconds never trips. Whatever
    goes wrong, including SIGTERM, the temp file is removed.
    """
    max_bytes = MAX_DOWNLOAD_BYTES if max_bytes is None else max_bytes
    deadline = download_deadline() if deadline is None else deadline
    end = time.monotonic() + deadline
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(dest, ".part")
    fd = open_new(tmp)  # mode 0666 less the umask, like the final file should have
    opener = urllib.request.build_opener(_NoDowngrade)
    try:
        with _no_part_left_on_sigterm(tmp):
            with os.fdopen(fd, "wb") as out:
                _transfer(opener, url, out, dest.name, progress, min(timeout, deadline), max_bytes, end, deadline)
                out.flush()
                os.fsync(out.fileno())
            if md5 is not None and (got_md5 := md5sum(tmp)) != md5:
                raise AekitError(f"{url}: checksum mismatch (MD5 {got_md5}, expected {md5}); the download was "
                                 "discarded")
            os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def _transfer(opener: urllib.request.OpenerDirector, url: str, out: BinaryIO, desc: str, progress: bool,
              timeout: float, max_bytes: int, end: float, deadline: float) -> None:
    """Copy the body of ``url`` to ``out``, within ``max_bytes`` and before ``end`` (monotonic clock)."""
    from tqdm.auto import tqdm

    with opener.open(url, timeout=timeout) as resp:
        try:
            total: int | None = int(resp.headers.get("Content-Length") or 0)
        except ValueError:  # a garbled header is no size at all; the byte count below still applies
            total = 0
        total = total if total and total > 0 else None
        if total is not None and total > max_bytes:
            raise AekitError(f"{url}: the server offers {total} bytes, more than the {max_bytes} such a file can be; "
                             "nothing was downloaded")
        read = getattr(resp, "read1", resp.read)  # read1: whatever has arrived, without waiting for more
        got = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress, leave=False) as bar:
            while chunk := read(1 << 16):
                got += len(chunk)
                if got > max_bytes:
                    raise AekitError(f"{url}: more than {max_bytes} bytes arrived, more than such a file can be; "
                                     "the download was stopped and discarded")
                if time.monotonic() > end:
                    raise AekitError(
                        f"{url}: not finished after {deadline:g} s ({got} bytes so far); the download was stopped "
                        "and discarded (AEKIT_DOWNLOAD_DEADLINE=SECONDS allows longer)"
                    )
                out.write(chunk)
                bar.update(len(chunk))


def _remove_stale_parts(folder: Path, stem: str, older_than: float) -> None:
    """Temp files a killed download left (SIGKILL or a power cut: nothing could clean up then).

    A live download ends within its deadline, so a file untouched for longer than that (plus a
    margin) was left by a process that no longer runs.
    """
    now = time.time()
    for part in folder.glob(f".{stem}.gz.*.part"):
        with contextlib.suppress(OSError):  # another process may be removing it too
            if now - part.stat().st_mtime > older_than:
                part.unlink()


def fetch_idx(spec: IDXDataset, root: Path | None = None, mirrors: tuple[str, ...] | None = None,
              progress: bool = True, max_bytes: int | None = None, deadline: float | None = None) -> dict[str, Path]:
    """Download the four files of ``spec`` into ``root/<name>`` (the cache) unless already there."""
    folder = (root or cache_dir()) / spec.name
    deadline = download_deadline() if deadline is None else deadline
    paths = {}
    for stem in IDX_FILES:
        dest = folder / f"{stem}.gz"
        if dest.is_file():
            paths[stem] = dest
            continue
        if folder.is_dir():
            _remove_stale_parts(folder, stem, deadline + 60)
        errors = []
        if mirrors is None:
            own = mirror_from_env()
            mirrors = ((own.rstrip("/") + f"/{spec.name}/",) if own else ()) + spec.mirrors
        for mirror in mirrors:
            try:
                paths[stem] = download(mirror + f"{stem}.gz", dest, spec.md5[stem], progress=progress,
                                       max_bytes=max_bytes, deadline=deadline)
                break
            except AekitError as exc:  # first: an AekitError is a ValueError too, and names its URL already
                errors.append(str(exc))
            except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException, ValueError) as exc:
                # ValueError: a malformed mirror URL; HTTPException: a server that speaks no proper HTTP.
                errors.append(f"{mirror}: {getattr(exc, 'reason', None) or str(exc) or type(exc).__name__}")
        else:
            raise AekitError(
                f"could not download {spec.name} ({'; '.join(errors)}). Offline? Put the four files "
                f"({', '.join(s + '.gz' for s in IDX_FILES)}) in {folder} or pass --data-dir DIR"
            )
    return paths


def load_idx_dataset(name: str, data_dir: str | Path | None = None, download_ok: bool = True,
                     progress: bool = True) -> Dataset:
    from aekit.data.idx import peek_idx, read_idx

    spec = IDX_DATASETS[name]
    data_dir = data_dir or os.environ.get("AEKIT_DATA_DIR")
    if data_dir:
        folder = Path(data_dir)
        files = _find_files(folder) or _find_files(folder / name)
        if files is None:
            raise AekitError(
                f"{folder}: the {name} files are not there; expected {', '.join(s + '.gz' for s in IDX_FILES)} "
                "(gzip or uncompressed)"
            )
    else:
        files = _find_files(cache_dir() / name)
        if files is None:
            if not download_ok:
                raise AekitError(f"{name} is not in {cache_dir() / name}; pass --data-dir DIR")
            files = fetch_idx(spec, progress=progress)
    # The headers first: a wrong shape or a label count that does not match is found before any
    # payload is decompressed.
    for fx, fy in ((IDX_FILES[0], IDX_FILES[1]), (IDX_FILES[2], IDX_FILES[3])):
        (dx, sx), (_, sy) = peek_idx(files[fx]), peek_idx(files[fy])
        if len(sx) != 3 or dx != np.uint8:
            raise AekitError(f"{files[fx]}: expected uint8 images (N, H, W), got {dx} {sx}")
        if len(sy) != 1 or sy[0] != sx[0]:
            raise AekitError(f"{files[fx]}: {sx[0]} images but the labels file holds {sy} values")
    xtr, ytr = read_idx(files[IDX_FILES[0]]), read_idx(files[IDX_FILES[1]])
    xte, yte = read_idx(files[IDX_FILES[2]]), read_idx(files[IDX_FILES[3]])
    return Dataset(name, Split(xtr[:, None], ytr.astype(np.int64)), Split(xte[:, None], yte.astype(np.int64)),
                   kind="image", meta={"classes": [str(i) for i in range(10)]})


def load_mnist_mini() -> Dataset:
    ref = resources.files("aekit.data") / "assets" / "mnist-mini.npz"
    with resources.as_file(ref) as path, np.load(path) as z:
        return Dataset(
            "mnist-mini",
            Split(z["x_train"][:, None], z["y_train"].astype(np.int64)),
            Split(z["x_test"][:, None], z["y_test"].astype(np.int64)),
            kind="image",
            meta={"classes": [str(i) for i in range(10)]},
        )


def load_dataset(source: str, data_dir: str | Path | None = None, image_size: int | None = None,
                 color: str | None = None, progress: bool = True) -> Dataset:
    """Load a dataset from a source string; see :func:`list_datasets` for what is accepted."""
    from aekit.data import arrays, synthetic
    from aekit.data.dataset import binarized

    base = source.removesuffix(BINARY_SUFFIX)
    if base != source and base in binary_bases():
        return binarized(load_dataset(base, data_dir, progress=progress), BINARY_SEED)
    if source in IDX_DATASETS:
        return load_idx_dataset(source, data_dir, progress=progress)
    if source == "mnist-mini":
        return load_mnist_mini()
    prefix, sep, rest = source.partition(":")
    loaders: dict[str, Callable[[str], Dataset]] = {
        "npy": arrays.load_npy,
        "npz": arrays.load_npz,
        "csv": arrays.load_csv,
        "images": lambda p: arrays.load_images(p, image_size, color),
    }
    if sep and prefix in loaders:
        if not rest:
            raise AekitError(f"dataset {source!r}: give a path after '{prefix}:'")
        return loaders[prefix](rest)
    if sep and prefix == "synthetic":
        if rest not in ("plane", "curve"):
            raise AekitError(f"unknown synthetic dataset {rest!r}: use synthetic:plane or synthetic:curve")
        return synthetic.load_synthetic(rest)
    raise AekitError(f"unknown dataset {source!r}; known: {', '.join(list_datasets())} (see `aekit datasets`)")

"""Named datasets and the source strings users type (``mnist``, ``npz:PATH``, ``synthetic:plane``...).

IDX datasets (``mnist``, ``fashion-mnist``, ``kmnist``) are looked for, in order:
1. in ``data_dir`` (``--data-dir`` or ``AEKIT_DATA_DIR``): the four standard files, gzip or raw,
   taken as they are (re-packed copies with other checksums are fine);
2. in the cache, ``$AEKIT_CACHE`` or ``~/.cache/aekit``, under the dataset's name;
3. downloaded from the standard mirrors into the cache, each file's official MD5 verified before
   it is moved into place, so an interrupted or tampered download never lands in the cache.
   ``AEKIT_MIRROR=URL`` puts a mirror of your own first (files under ``URL/<dataset>/``).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

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

OTHER_SOURCES = {
    "mnist-mini": "6,000 + 1,000 MNIST digits shipped with aekit (offline; CC BY-SA 3.0)",
    "npy:PATH": "one .npy array: rows (N,D), images (N,H,W) or (N,C,H,W); 20% held out as test",
    "npz:PATH": ".npz with x_train/y_train/x_test/y_test, or x (and y)",
    "csv:PATH": "numeric rows; a header column named 'label' holds labels; 20% held out as test",
    "images:DIR": "a folder of PNG/JPEG images (sub-folders = classes), resized to one size",
    "synthetic:plane": "points on a 2-D plane in R^4 plus noise (the lecture's linear example)",
    "synthetic:curve": "points on a curved 2-D surface in R^4 plus noise (non-linear example)",
}


def list_datasets() -> dict[str, str]:
    """Every source name (or pattern) with a one-line description."""
    out = {k: v.description for k, v in IDX_DATASETS.items()}
    out.update(OTHER_SOURCES)
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


def download(url: str, dest: Path, md5: str | None = None, progress: bool = True, timeout: float = 30.0) -> Path:
    """Fetch ``url`` to ``dest`` via a temp file in the same folder; verify MD5 before the rename."""
    from tqdm.auto import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(dest, ".part")
    fd = open_new(tmp)  # mode 0666 less the umask, like the final file should have
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, os.fdopen(fd, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress, leave=False) as bar:
                for chunk in iter(lambda: resp.read(1 << 16), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if md5 is not None and (got := md5sum(tmp)) != md5:
            raise AekitError(f"{url}: checksum mismatch (MD5 {got}, expected {md5}); the download was discarded")
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def fetch_idx(spec: IDXDataset, root: Path | None = None, mirrors: tuple[str, ...] | None = None,
              progress: bool = True) -> dict[str, Path]:
    """Download the four files of ``spec`` into ``root/<name>`` (the cache) unless already there."""
    folder = (root or cache_dir()) / spec.name
    paths = {}
    for stem in IDX_FILES:
        dest = folder / f"{stem}.gz"
        if dest.is_file():
            paths[stem] = dest
            continue
        errors = []
        own = os.environ.get("AEKIT_MIRROR")
        default = ((own.rstrip("/") + f"/{spec.name}/",) if own else ()) + spec.mirrors
        for mirror in mirrors or default:
            try:
                paths[stem] = download(mirror + f"{stem}.gz", dest, spec.md5[stem], progress=progress)
                break
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                errors.append(f"{mirror}: {getattr(exc, 'reason', exc)}")
            except AekitError as exc:
                errors.append(str(exc))
        else:
            raise AekitError(
                f"could not download {spec.name} ({'; '.join(errors)}). Offline? Put the four files "
                f"({', '.join(s + '.gz' for s in IDX_FILES)}) in {folder} or pass --data-dir DIR"
            )
    return paths


def load_idx_dataset(name: str, data_dir: str | Path | None = None, download_ok: bool = True,
                     progress: bool = True) -> Dataset:
    from aekit.data.idx import read_idx

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
    xtr, ytr = read_idx(files[IDX_FILES[0]]), read_idx(files[IDX_FILES[1]])
    xte, yte = read_idx(files[IDX_FILES[2]]), read_idx(files[IDX_FILES[3]])
    for x, y, f in ((xtr, ytr, IDX_FILES[0]), (xte, yte, IDX_FILES[2])):
        if x.ndim != 3 or x.dtype != np.uint8:
            raise AekitError(f"{files[f]}: expected uint8 images (N, H, W), got {x.dtype} {x.shape}")
        if y.ndim != 1 or len(y) != len(x):
            raise AekitError(f"{files[f]}: {len(x)} images but the labels file holds {y.shape} values")
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

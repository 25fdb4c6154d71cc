"""Autoencoder codes as representations: export them, probe them, map them.

The probes answer "how much of the label is in the code?": a logistic regression and a 5-nearest-
neighbour classifier fitted on the training split's codes and scored on the test split, next to
the same probes on raw pixels and on PCA codes of the same size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aekit.errors import AekitError
from aekit.io import atomic_write_bytes, atomic_write_text

CODE_SUFFIXES = (".npy", ".csv")
MAP_METHODS = ("pca", "tsne")
MIN_PROBE_TRAIN = 10  # 5-NN needs five neighbours, and a logistic regression more than one class


def labels_path(out: str | Path) -> Path:
    """Where :func:`save_codes` puts the labels next to ``codes.npy``: ``codes.labels.npy``."""
    out = Path(out)
    return out.with_name(out.stem + ".labels.npy")


def check_codes_file(out: str | Path) -> None:
    """Before encoding: ``--out`` is a .npy or .csv file that can be written (and so is the labels
    file beside a .npy)."""
    from aekit.outputs import check_output_file

    check_output_file(out, CODE_SUFFIXES)
    if Path(out).suffix.lower() == ".npy":
        check_output_file(labels_path(out), (".npy",), "--out (its labels file)")


def save_codes(codes: np.ndarray, labels: np.ndarray | None, out: str | Path) -> list[Path]:
    """Write codes to ``.npy`` (labels to ``<stem>.labels.npy``) or ``.csv`` (a ``label`` column)."""
    import io

    check_codes_file(out)
    out = Path(out)
    if out.suffix.lower() == ".npy":
        buf = io.BytesIO()
        np.save(buf, codes.astype(np.float32))
        atomic_write_bytes(out, buf.getvalue())
        written = [out]
        if labels is not None:
            lab = labels_path(out)
            buf = io.BytesIO()
            np.save(buf, labels)
            atomic_write_bytes(lab, buf.getvalue())
            written.append(lab)
        return written
    if out.suffix.lower() == ".csv":
        header = [f"code{i}" for i in range(codes.shape[1])] + (["label"] if labels is not None else [])
        lines = [",".join(header)]
        for i, row in enumerate(codes):
            cells = [f"{v:.7g}" for v in row] + ([str(labels[i])] if labels is not None else [])
            lines.append(",".join(cells))
        atomic_write_text(out, "\n".join(lines) + "\n")
        return [out]
    raise AekitError(f"--out {out}: use a .npy or .csv file name")


def codes_of(model: Any, x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    """The codes of ``x``: a conditional VAE encodes each sample with its label (its code holds what
    the label does not say), every other model from the sample alone."""
    if not getattr(model, "n_classes", 0):
        return model.encode(x)
    if y is None:
        raise AekitError("a conditional VAE encodes each sample with its label, and this split has no labels")
    return model.encode(x, y)


def check_max_train(max_train: Any) -> int | None:
    """``--max-train``: None (all), else at least :data:`MIN_PROBE_TRAIN` samples."""
    if max_train is None:
        return None
    if isinstance(max_train, bool) or not isinstance(max_train, int) or max_train < MIN_PROBE_TRAIN:
        raise AekitError(f"--max-train must be a whole number of at least {MIN_PROBE_TRAIN} "
                         f"(5-NN needs five neighbours), got {max_train!r:.40}")
    return max_train


def check_map_method(method: Any) -> str:
    if method not in MAP_METHODS:
        raise AekitError(f"unknown map method {method!r:.40}; use pca or tsne")
    return method


def probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
          max_iter: int = 1000) -> dict[str, float]:
    """Test accuracy of a logistic-regression probe and a 5-NN classifier (features standardised)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a = train_x.reshape(len(train_x), -1)
    b = test_x.reshape(len(test_x), -1)
    logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter)).fit(a, train_y)
    knn = KNeighborsClassifier(5).fit(a, train_y)
    return {"logistic": float(logreg.score(b, test_y)), "knn5": float(knn.score(b, test_y))}


def probe_table(model: Any, train_x: np.ndarray, train_y: np.ndarray | None, test_x: np.ndarray,
                test_y: np.ndarray | None, max_train: int | None = None,
                progress: bool | None = None) -> dict[str, Any]:
    """Probes on the model's codes, on raw inputs and on PCA codes of the same size.

    ``progress``: a bar on a terminal, a line per feature set on stderr elsewhere (the logistic
    regression on 60,000 raw images takes minutes); False prints nothing."""
    from aekit.baselines import PCA
    from aekit.metrics import as_float
    from aekit.progress import Progress, say

    if train_y is None or test_y is None:
        raise AekitError("probing needs labels, and this dataset has none")
    max_train = check_max_train(max_train)
    if max_train is not None and len(train_x) > max_train:
        idx = np.random.default_rng(0).choice(len(train_x), max_train, replace=False)
        train_x, train_y = train_x[idx], train_y[idx]
    if len(train_x) < MIN_PROBE_TRAIN or len(test_x) == 0:
        raise AekitError(f"probing needs at least {MIN_PROBE_TRAIN} training samples and one test sample; "
                         f"this data has {len(train_x)} and {len(test_x)}")
    if len(np.unique(train_y)) < 2:
        raise AekitError("probing needs at least two classes among the training labels; "
                         "raise --max-train or use labelled data with several classes")
    k = model.code_size
    features = {  # each computed only when its turn comes
        "autoencoder": ("the autoencoder's codes",
                        lambda: (codes_of(model, train_x, train_y), codes_of(model, test_x, test_y))),
        "pixels": ("raw pixels", lambda: (as_float(train_x), as_float(test_x))),
        "pca": (f"PCA-{k} codes", lambda: _pca_features(PCA, k, train_x, test_x)),
    }
    bar = Progress(len(features), "probes", progress, unit="feature set")
    rows = {}
    for key, (what, make) in features.items():
        if not bar.tty:
            say(f"probes: logistic regression and 5-NN on {what} ({len(train_x):,} training samples)", progress)
        a, b = make()
        rows[key] = probe(a, train_y, b, test_y)
        bar.update(1, done=key)
    bar.close()
    return {"code_size": k, "n_train": len(train_x), "n_test": len(test_x), "probes": rows}


def _pca_features(pca_class: Any, k: int, train_x: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pca = pca_class(min(k, int(np.prod(train_x.shape[1:])))).fit(train_x)
    return pca.transform(train_x), pca.transform(test_x)


def latent_map(model: Any, x: np.ndarray, y: np.ndarray | None, out: str | Path, method: str = "pca",
               title: str = "", progress: bool | None = None) -> Path:
    """A 2-D picture of the codes: the code itself when 2-D, else a PCA (or t-SNE) of it.

    A 2-number code of images also gets its decoded manifold beside the scatter (:func:`decoded_grid`).
    t-SNE of 5,000 codes takes about a minute on two cores and reports nothing itself, so
    ``progress`` (unless False) says on stderr when it starts and how long it took."""
    from aekit import plots
    from aekit.outputs import check_picture_file

    check_map_method(method)
    check_picture_file(out)
    if len(x) < 2:
        raise AekitError(f"a latent map needs at least 2 samples; this split has {len(x)}")
    codes = codes_of(model, x, y)
    if codes.shape[1] == 2:
        pts, axes = codes, ("code 1", "code 2")
    elif method == "pca":
        from aekit.baselines import PCA

        pts, axes = PCA(2).fit(codes).transform(codes), ("PC 1 of the codes", "PC 2 of the codes")
    elif method == "tsne":
        import time

        from sklearn.manifold import TSNE

        from aekit.progress import say

        say(f"latent map: t-SNE of {len(codes):,} codes of size {codes.shape[1]} (about a minute per 5,000)...",
            progress)
        t0 = time.perf_counter()
        # Perplexity must stay below the sample count: small splits get a smaller one.
        tsne = TSNE(2, random_state=0, init="pca", perplexity=min(30.0, max(1.0, (len(codes) - 1) / 3)))
        pts, axes = tsne.fit_transform(codes), ("t-SNE 1", "t-SNE 2")
        say(f"latent map: t-SNE done in {time.perf_counter() - t0:.0f}s", progress)
    else:
        raise AekitError(f"unknown map method {method!r}; use pca or tsne")
    colour = y if y is not None else np.zeros(len(pts))
    categorical = y is not None and np.issubdtype(np.asarray(y).dtype, np.integer)
    grid = decoded_grid(model, codes) if codes.shape[1] == 2 else None
    if grid is not None:
        return plots.scatter_and_manifold(codes, colour, grid[0], grid[1], tuple(model.input_shape), out,
                                          title=title, categorical=categorical, grid_title=grid[2])
    return plots.scatter_2d(np.asarray(pts), colour, out, title=title, categorical=categorical, ax_labels=axes)


MANIFOLD_GRID = 20  # decoded images per side of a latent map's manifold
MANIFOLD_SPAN = 0.9  # the central share of each axis it covers


def decoded_grid(model: Any, codes: np.ndarray, grid: int = MANIFOLD_GRID,
                 span: float = MANIFOLD_SPAN) -> tuple[np.ndarray, np.ndarray, str] | None:
    """The decoded manifold of a 2-number code of images: (images ``(grid, grid, *shape)``, their codes
    ``(grid, grid, 2)``, a title), rows from high to low code 2. A VAE's grid is its prior's quantiles
    (:func:`aekit.tasks.generate.manifold`, Kingma & Welling's figure); another autoencoder's is
    even steps over the central ``span`` of its ``codes``, the region its decoder was trained on.
    None where there is no picture to draw: samples that are not images, a conditional VAE (whose
    decoder needs a label as well), or a family with no decoder for codes (``decodes_codes``, mae)."""
    from aekit.models.variational import VariationalAE
    from aekit.tasks.generate import manifold

    no_decoder = not getattr(model, "decodes_codes", True)
    if len(model.input_shape) != 3 or bool(getattr(model, "n_classes", 0)) or no_decoder:
        return None
    lo, hi = 100 * (1 - span) / 2, 100 * (1 + span) / 2
    if isinstance(model, VariationalAE):
        images, grid_codes = manifold(model, grid, span)
        return images, grid_codes, f"decoded at the prior's {lo:g}th to {hi:g}th percentiles"
    q = np.percentile(codes.astype(np.float64), [lo, hi], axis=0)  # (2, 2): low and high of each axis
    a, b = np.linspace(q[0, 0], q[1, 0], grid), np.linspace(q[0, 1], q[1, 1], grid)
    grid_codes = np.stack(np.meshgrid(a, b[::-1]), -1).astype(np.float32)  # [i, j] = (a[j], b[grid - 1 - i])
    images = model.decode(grid_codes.reshape(-1, 2)).reshape(grid, grid, *model.input_shape)
    return images, grid_codes, f"decoded on the codes' {lo:g}th to {hi:g}th percentiles"

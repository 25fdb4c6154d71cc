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


def save_codes(codes: np.ndarray, labels: np.ndarray | None, out: str | Path) -> list[Path]:
    """Write codes to ``.npy`` (labels to ``<stem>.labels.npy``) or ``.csv`` (a ``label`` column)."""
    import io

    out = Path(out)
    if out.suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, codes.astype(np.float32))
        atomic_write_bytes(out, buf.getvalue())
        written = [out]
        if labels is not None:
            lab = out.with_name(out.stem + ".labels.npy")
            buf = io.BytesIO()
            np.save(buf, labels)
            atomic_write_bytes(lab, buf.getvalue())
            written.append(lab)
        return written
    if out.suffix == ".csv":
        header = [f"code{i}" for i in range(codes.shape[1])] + (["label"] if labels is not None else [])
        lines = [",".join(header)]
        for i, row in enumerate(codes):
            cells = [f"{v:.7g}" for v in row] + ([str(labels[i])] if labels is not None else [])
            lines.append(",".join(cells))
        atomic_write_text(out, "\n".join(lines) + "\n")
        return [out]
    raise AekitError(f"--out {out}: use a .npy or .csv file name")


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
                test_y: np.ndarray | None, max_train: int | None = None) -> dict[str, Any]:
    """Probes on the model's codes, on raw inputs and on PCA codes of the same size."""
    from aekit.baselines import PCA
    from aekit.metrics import as_float

    if train_y is None or test_y is None:
        raise AekitError("probing needs labels, and this dataset has none")
    if max_train is not None and len(train_x) > max_train:
        idx = np.random.default_rng(0).choice(len(train_x), max_train, replace=False)
        train_x, train_y = train_x[idx], train_y[idx]
    k = model.code_size
    pca = PCA(min(k, int(np.prod(train_x.shape[1:])))).fit(train_x)
    rows = {
        "autoencoder": probe(model.encode(train_x), train_y, model.encode(test_x), test_y),
        "pixels": probe(as_float(train_x), train_y, as_float(test_x), test_y),
        "pca": probe(pca.transform(train_x), train_y, pca.transform(test_x), test_y),
    }
    return {"code_size": k, "n_train": len(train_x), "n_test": len(test_x), "probes": rows}


def latent_map(model: Any, x: np.ndarray, y: np.ndarray | None, out: str | Path, method: str = "pca",
               title: str = "") -> Path:
    """A 2-D picture of the codes: the code itself when 2-D, else a PCA (or t-SNE) of it."""
    from aekit import plots

    codes = model.encode(x)
    if codes.shape[1] == 2:
        pts, axes = codes, ("code 1", "code 2")
    elif method == "pca":
        from aekit.baselines import PCA

        pts, axes = PCA(2).fit(codes).transform(codes), ("PC 1 of the codes", "PC 2 of the codes")
    elif method == "tsne":
        from sklearn.manifold import TSNE

        pts, axes = TSNE(2, random_state=0, init="pca").fit_transform(codes), ("t-SNE 1", "t-SNE 2")
    else:
        raise AekitError(f"unknown map method {method!r}; use pca or tsne")
    colour = y if y is not None else np.zeros(len(pts))
    categorical = y is not None and np.issubdtype(np.asarray(y).dtype, np.integer)
    return plots.scatter_2d(np.asarray(pts), colour, out, title=title, categorical=categorical, ax_labels=axes)

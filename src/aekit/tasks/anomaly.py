"""Reconstruction error as an anomaly score.

An autoencoder reconstructs what resembles its training data well and anything else badly, so
the per-sample squared error is a score: higher is more anomalous. The threshold is the
(1 - contamination) quantile of the scores on the validation split, i.e. the rate of false alarms
on normal data that the user accepts.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from aekit.errors import AekitError
from aekit.io import atomic_write_text


def scores(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-sample squared error summed over values, per-value squared error maps)."""
    from aekit.metrics import as_float

    xf = as_float(x)
    err = np.square(xf - model.reconstruct(xf))
    return err.reshape(len(err), -1).sum(1), err


def threshold(val_scores: np.ndarray, contamination: float) -> float:
    if not 0 < contamination < 0.5:
        raise AekitError(f"--contamination must lie in (0, 0.5), got {contamination}")
    return float(np.quantile(val_scores, 1 - contamination))


def write_scores(path: str | Path, s: np.ndarray, flagged: np.ndarray, labels: np.ndarray | None) -> Path:
    buf = io.StringIO()
    buf.write("index,score,anomaly" + (",label" if labels is not None else "") + "\n")
    for i, (v, f) in enumerate(zip(s, flagged, strict=True)):
        buf.write(f"{i},{v:.6g},{int(f)}" + (f",{labels[i]}" if labels is not None else "") + "\n")
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def error_maps(x: np.ndarray, maps: np.ndarray, s: np.ndarray, shape: tuple[int, ...], path: str | Path,
               n: int = 10) -> Path:
    """The top-scored samples above their per-pixel error maps."""
    from aekit import plots
    from aekit.metrics import as_float

    top = np.argsort(s)[::-1][:n]
    m = maps[top]
    m = m / max(float(m.max()), 1e-12)
    return plots.image_rows([as_float(x[top]), m], shape, path, labels=["input", "error"],
                            title="highest anomaly scores (error maps scaled to the largest error)")


def auroc(scores_: np.ndarray, is_anomaly: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(is_anomaly, scores_))

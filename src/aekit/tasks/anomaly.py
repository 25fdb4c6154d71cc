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


def check_contamination(contamination: Any) -> float:
    """The expected share of anomalies: in (0, 0.5], as scikit-learn's outlier detectors take it."""
    if isinstance(contamination, bool) or not isinstance(contamination, int | float) \
            or not 0 < contamination <= 0.5:  # NaN fails both comparisons
        raise AekitError(f"--contamination must lie in (0, 0.5], got {contamination!r:.40}")
    return float(contamination)


def check_outputs(out: str | Path | None, maps: str | Path | None) -> None:
    """Before any work: the scores file is CSV, the maps a picture, and both can be written."""
    from aekit.outputs import check_output_file, check_picture_file

    check_output_file(out, (".csv",), "--out")
    check_picture_file(maps, "--maps")


def threshold(val_scores: np.ndarray, contamination: float) -> float:
    check_contamination(contamination)
    if len(val_scores) == 0:
        raise AekitError("no validation or training samples to set the anomaly threshold on")
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


def anomaly_report(model: Any, ref_x: np.ndarray, x: np.ndarray, y: np.ndarray | None, contamination: float = 0.01,
                   out: str | Path | None = None, maps: str | Path | None = None) -> dict[str, Any]:
    """Scores of ``x``, the threshold from the reference scores (``ref_x``, the validation split) at
    the given contamination, and optionally a CSV of the scores and a picture of the top error maps."""
    thr = threshold(scores(model, ref_x)[0], contamination)
    sc, err = scores(model, x)
    flagged = sc > thr
    res: dict[str, Any] = {"n": len(sc), "threshold": thr, "contamination": contamination,
                           "flagged": int(flagged.sum()), "flagged_fraction": float(flagged.mean()),
                           "score_mean": float(sc.mean()), "score_max": float(sc.max())}
    if out is not None:
        res["scores_csv"] = str(write_scores(out, sc, flagged, y))
    if maps is not None:
        res["maps"] = str(error_maps(x, err, sc, tuple(model.input_shape), maps))
    return res

"""Reconstruction error as an anomaly score.

An autoencoder reconstructs what resembles its training data well and anything else badly, so
the per-sample squared error, summed over all values (the unit of ``sse_per_image``), is a score:
higher is more anomalous. It is the one definition in aekit: ``aekit anomaly``, the scikit-learn
detector (:mod:`aekit.estimator`) and an exported ``score`` model all compute :func:`score_of`.

The threshold is set on the validation split, in one of three ways (``--threshold KIND:VALUE``):
``contamination:c``, the (1 - c) quantile of all validation scores (the share of anomalies the
user expects); ``percentile:p``, the p-th percentile of them; ``fpr:f``, the (1 - f) quantile of
the validation scores of *normal* samples only, so that f of the normal data is flagged (needs
labels; normal is the run's training classes or ``--normal-classes``), as alibi-detect offers.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aekit.errors import AekitError
from aekit.io import atomic_write_text


def score_of(err: np.ndarray) -> np.ndarray:
    """Per-sample anomaly score from squared errors ``(n, ...)``: their sum over values, in float64."""
    return err.reshape(len(err), -1).sum(1, dtype=np.float64)


def scores(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-sample squared error summed over values, per-value squared error maps)."""
    from aekit.metrics import as_float

    xf = as_float(x)
    err = np.square(xf - model.reconstruct(xf))
    return score_of(err), err


# (low, high, low included, high included) for each threshold kind's value
_RANGES = {"contamination": (0.0, 0.5, False, True), "percentile": (50.0, 100.0, True, True),
           "fpr": (0.0, 1.0, False, False)}


@dataclass(frozen=True)
class Threshold:
    """How the anomaly threshold is chosen: ``kind`` is one of config.THRESHOLD_KINDS."""

    kind: str
    value: float

    def __str__(self) -> str:
        return f"{self.kind}:{self.value:g}"


def _bounds_text(kind: str) -> str:
    lo, hi, lo_in, hi_in = _RANGES[kind]
    return f"{'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"


def check_value(kind: str, value: Any, flag: str) -> float:
    lo, hi, lo_in, hi_in = _RANGES[kind]
    ok = isinstance(value, int | float) and not isinstance(value, bool) \
        and (lo <= value if lo_in else lo < value) and (value <= hi if hi_in else value < hi)  # NaN fails
    if not ok:
        raise AekitError(f"{flag} must lie in {_bounds_text(kind)}, got {value!r:.40}")
    return float(value)


def check_contamination(contamination: Any) -> float:
    """The expected share of anomalies: in (0, 0.5], as scikit-learn's outlier detectors take it."""
    return check_value("contamination", contamination, "--contamination")


def parse_threshold(spec: Any) -> Threshold:
    """``"contamination:0.01"``, ``"percentile:99.5"``, ``"fpr:0.01"``, a Threshold, or a bare number
    (a contamination, as before ``--threshold`` existed)."""
    from aekit.config import THRESHOLD_KINDS

    if isinstance(spec, Threshold):
        return Threshold(spec.kind, check_value(spec.kind, spec.value, f"--threshold {spec.kind}"))
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        return Threshold("contamination", check_contamination(spec))
    kind, sep, text = str(spec).partition(":")
    if not sep or kind not in THRESHOLD_KINDS:
        raise AekitError(f"--threshold takes KIND:VALUE with KIND one of {', '.join(THRESHOLD_KINDS)}, "
                         f"got {str(spec)!r:.60}")
    try:
        value = float(text)
    except ValueError:
        raise AekitError(f"--threshold {kind}: expected a number, got {text!r:.40}") from None
    return Threshold(kind, check_value(kind, value, f"--threshold {kind}"))


def threshold_value(th: Threshold, val_scores: np.ndarray, val_normal: np.ndarray | None = None) -> float:
    """The score above which a sample is flagged, from the validation scores (``val_normal``: a mask
    of the normal validation samples, needed by ``fpr``)."""
    if len(val_scores) == 0:
        raise AekitError("no validation or training samples to set the anomaly threshold on")
    if th.kind == "contamination":
        return float(np.quantile(val_scores, 1 - th.value))
    if th.kind == "percentile":
        return float(np.quantile(val_scores, th.value / 100))
    if val_normal is None:
        raise AekitError("--threshold fpr: needs labels on the validation split; "
                         "use contamination: or percentile: for unlabelled data")
    if not val_normal.any():
        raise AekitError("--threshold fpr: no normal samples in the validation split (see --normal-classes)")
    return float(np.quantile(val_scores[val_normal], 1 - th.value))


def threshold(val_scores: np.ndarray, contamination: float) -> float:
    return threshold_value(Threshold("contamination", check_contamination(contamination)), val_scores)


def label_metrics(sc: np.ndarray, flagged: np.ndarray, is_anomaly: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of the flags, and the ROC AUC of the scores; empty when the labels
    hold only one of the two kinds (then none of these is defined)."""
    from sklearn.metrics import precision_recall_fscore_support

    if is_anomaly.all() or not is_anomaly.any():
        return {}
    p, r, f, _ = precision_recall_fscore_support(is_anomaly, flagged, average="binary", zero_division=0.0)
    return {"precision": float(p), "recall": float(r), "f1": float(f), "roc_auc": auroc(sc, is_anomaly),
            "fpr": float(flagged[~is_anomaly].mean())}


def check_outputs(out: str | Path | None, maps: str | Path | None) -> None:
    """Before any work: the scores file is CSV, the maps a picture, and both can be written."""
    from aekit.outputs import check_output_file, check_picture_file

    check_output_file(out, (".csv",), "--out")
    check_picture_file(maps, "--maps")


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


def training_classes(y: np.ndarray | None) -> list[int] | None:
    """The classes a run was trained on (its normal data), or None without labels."""
    return None if y is None else sorted(int(c) for c in np.unique(y))


def normal_mask(y: np.ndarray | None, normal: Any) -> np.ndarray | None:
    return None if y is None or normal is None else np.isin(y, np.asarray(list(normal)))


def anomaly_report(model: Any, ref_x: np.ndarray, x: np.ndarray, y: np.ndarray | None, threshold: Any = 0.01,
                   out: str | Path | None = None, maps: str | Path | None = None, ref_y: np.ndarray | None = None,
                   normal: Any = None) -> dict[str, Any]:
    """Scores of ``x``, the threshold from the reference scores (``ref_x``, the validation split)
    chosen as ``threshold`` says, precision/recall/F1/ROC AUC where ``y`` and the ``normal`` classes
    are known, and optionally a CSV of the scores and a picture of the top error maps."""
    th = parse_threshold(threshold)
    thr = threshold_value(th, scores(model, ref_x)[0], normal_mask(ref_y, normal))
    sc, err = scores(model, x)
    flagged = sc > thr
    res: dict[str, Any] = {"n": len(sc), "threshold": thr, "threshold_rule": str(th),
                           "flagged": int(flagged.sum()), "flagged_fraction": float(flagged.mean()),
                           "score_mean": float(sc.mean()), "score_max": float(sc.max())}
    if th.kind == "contamination":
        res["contamination"] = th.value
    is_normal = normal_mask(y, normal)
    if is_normal is not None:
        res["normal_classes"] = sorted(int(c) for c in normal)
        res.update(label_metrics(sc, flagged, ~is_normal))
    if out is not None:
        res["scores_csv"] = str(write_scores(out, sc, flagged, y))
    if maps is not None:
        res["maps"] = str(error_maps(x, err, sc, tuple(model.input_shape), maps))
    return res

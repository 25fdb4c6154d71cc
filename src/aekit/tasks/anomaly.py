"""Reconstruction error as an anomaly score.

An autoencoder reconstructs what resembles its training data well and anything else badly, so
the per-sample squared error, summed over all values (the unit of ``sse_per_image``), is a score:
higher is more anomalous. It is the one definition in aekit: ``aekit anomaly``, the scikit-learn
detector (:mod:`aekit.estimator`), ``aekit serve`` and an exported ``score`` model all compute
:func:`score_of`.

Each value's squared error is measured in the units that suit the data (:func:`error_scale`):
- data in [0, 1] (pixels): as it is. Every value has the same unit, and a per-pixel scale would be
  unstable: a pixel that is blank in every training image has no error to scale by, and normal test
  digits still put ink in such places now and then (on MNIST one-class, scaling the pixels lowered
  the mean AUROC from 0.964 to 0.940).
- other data (features in units of their own, usually standardised): divided by that feature's
  mean squared error on the training rows, floored at a quarter of the mean over features, so that
  a feature the model always reconstructs well counts a miss as much as a noisy one counts its
  usual error (a residual in standard units). On breast cancer (``benchmarks/outliers.py``) this
  lifted the mean AUROC from 0.955 to 0.968 over five random states.
The scale belongs to the weights it was measured with and travels with the threshold (threshold.json,
the detector's ``scale_``, an exported ``score`` model's constants). The error maps are each value's
share of the score (its squared error over its scale), so a map sums to its score.

On a variational autoencoder the score is the same: the squared error of the reconstruction decoded at
the posterior mean (the likelihood's mean at z = E[z|x]), not the negative ELBO or the importance-
sampled NLL of ``aekit nll``. Those are Monte-Carlo estimates (a fixed seed would make them repeatable,
not exact), in nats that can be negative for real-valued data, with a KL part that has no per-value
map; the reconstruction score is deterministic, has error maps that sum to it, and so goes unchanged
through threshold.json, an exported ``score`` model and ``aekit serve``. ``aekit anomaly`` and ``aekit
export`` refuse a conditional VAE: its reconstruction needs each sample's label, which anomalous data
does not come with.

The threshold is set on the validation split, in one of three ways (``--threshold KIND:VALUE``):
``contamination:c``, the (1 - c) quantile of all validation scores (the share of anomalies the
user expects); ``percentile:p``, the p-th percentile of them; ``fpr:f``, the (1 - f) quantile of
the validation scores of *normal* samples only, so that f of the normal data is flagged (needs
labels; normal is the run's training classes or ``--normal-classes``), as alibi-detect offers.

A run keeps its threshold in ``threshold.json`` (docs/guides/run-folder.md): the value, the rule that chose
it, the split it was chosen on and a digest of the weights it belongs to. Training writes one
(:data:`DEFAULT_RULE`, or the rule already stored when a run is resumed), ``aekit anomaly --threshold
RULE --save-threshold`` replaces it, and ``aekit anomaly`` and ``aekit export --part score`` use it
when no rule is given. A file whose digest does not match ``model.safetensors`` (weights trained
further or replaced since) is refused, never used.

``aekit anomaly --score latent`` scores by the code instead: minus its log-density under a Gaussian
mixture fitted on the training split's codes (:mod:`aekit.tasks.density`, where the reasons are), which
finds the anomalies simpler than the normal data that reconstruct well. Its threshold is chosen by the
same rules on the validation split's latent scores, and its record says ``"score": "latent"`` (a record
without the field is an error threshold, as every file from before it). A threshold of one score is never
applied to the other: ``aekit anomaly`` refuses it, an exported ``score`` part (which computes the
reconstruction error) refuses a latent one, and ``aekit serve``, which keeps the error score, sets its
own error threshold where the run stores a latent one.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aekit.errors import AekitError
from aekit.io import atomic_write_text, open_plain, read_json_object, write_json
from aekit.tasks.density import LatentDensity, check_components, codes_for

THRESHOLD_FILE = "threshold.json"
DEFAULT_RULE = "contamination:0.01"  # what training stores and `aekit anomaly` uses when none is given
SET_BY_TRAINING = "aekit train"  # threshold.json's set_by for the threshold training stores by DEFAULT_RULE


SCORE_PLAIN = "squared error summed over values"
SCORE_SCALED = "squared error over each value's error scale, summed"
SCORES = ("error", "latent")  # aekit anomaly --score: the reconstruction error, or the code's density
SCORE_LATENT = ("minus the log-density of the code under a {k}-component Gaussian mixture fitted on the training "
                "codes")
SCALE_FLOOR = 0.25  # a feature's error scale is at least this share of the mean scale over features


def scale_from_errors(mean_err: np.ndarray) -> np.ndarray:
    """The error scale from each value's mean squared error on the training rows (see the module's notes)."""
    m = np.asarray(mean_err, dtype=np.float64).reshape(-1)
    return np.maximum(m, SCALE_FLOOR * float(m.mean()) + 1e-12)


def error_scale(model: Any, train_x: np.ndarray, unit_range: bool, chunk: int = 4096) -> np.ndarray | None:
    """Per-value error scale of ``model`` measured on its training rows ``train_x``: None for data in
    [0, 1] (squared errors count as they are), else :func:`scale_from_errors`."""
    from aekit.data import mapped

    if unit_range or len(train_x) == 0:
        return None
    total = np.zeros(model.n_inputs, np.float64)
    for piece in mapped.chunks(train_x, chunk):
        total += scores(model, piece)[1].reshape(len(piece), -1).sum(0, dtype=np.float64)
    return scale_from_errors(total / len(train_x))


def shares(err: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    """Each value's share of its sample's score, from squared errors ``(n, ...)``: the error over its
    ``scale`` (:func:`error_scale`) in float64, or the error itself where there is no scale."""
    if scale is None:
        return err
    return err.astype(np.float64) / np.asarray(scale, np.float64).reshape(err.shape[1:])


def score_of(err: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Per-sample anomaly score from squared errors ``(n, ...)``: the sum of their :func:`shares`, in
    float64."""
    return shares(err, scale).reshape(len(err), -1).sum(1, dtype=np.float64)


def scores(model: Any, x: np.ndarray, scale: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(per-sample scores, per-value error maps: each value's share of its score, float32)."""
    from aekit.metrics import as_float

    xf = as_float(x)
    share = shares(np.square(xf - model.reconstruct(xf)), scale)
    return score_of(share), share.astype(np.float32, copy=False)


def sample_scores(model: Any, x: np.ndarray, *, scale: np.ndarray | None = None, chunk: int = 4096) -> np.ndarray:
    """The scores of :func:`scores` without the error maps, a chunk at a time (the memory of one
    chunk's maps, not of a whole split's; the same numbers, as reconstruction runs in 4,096-row batches)."""
    from aekit.data import mapped

    parts = [scores(model, piece, scale)[0] for piece in mapped.chunks(x, chunk)]
    return np.concatenate(parts) if parts else np.zeros(0)


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


def check_score(score: Any) -> str:
    """``--score``: error (the reconstruction error) or latent (the code's density)."""
    if score not in SCORES:
        raise AekitError(f"--score must be one of {', '.join(SCORES)}, got {score!r:.40}")
    return str(score)


def score_kind(rec: dict[str, Any]) -> str:
    """The score a threshold record was chosen on: error where it names none (files from before --score)."""
    return str(rec.get("score", "error"))


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


def latent_scores(model: Any, x: np.ndarray, density: LatentDensity) -> np.ndarray:
    """Minus the log-density of each sample's code under ``density`` (higher is more abnormal)."""
    return density.score(codes_for(model, x))


def choose_threshold(model: Any, ref_x: np.ndarray, ref_y: np.ndarray | None, rule: Any, normal: Any,
                     split: str, scale: np.ndarray | None = None,
                     density: LatentDensity | None = None) -> dict[str, Any]:
    """The threshold ``rule`` picks from the scores of ``ref_x`` (the rows of ``split``), as a record:
    value, rule, split, row count, the normal classes ``fpr`` counted as normal, and the error scale
    the scores were computed with (``error_scale``, where the data has one). With ``density``, the
    scores are the latent ones (:func:`latent_scores`) and the record says ``"score": "latent"``."""
    th = parse_threshold(rule)
    sc = latent_scores(model, ref_x, density) if density is not None else sample_scores(model, ref_x, scale=scale)
    value = threshold_value(th, sc, normal_mask(ref_y, normal) if th.kind == "fpr" else None)
    rec: dict[str, Any] = {"threshold": value, "rule": str(th), "split": split, "n": len(ref_x)}
    if density is not None:
        rec["score"] = "latent"
    if scale is not None:
        rec["error_scale"] = [float(v) for v in scale]
    if th.kind == "fpr":
        rec["normal_classes"] = sorted(int(c) for c in normal)
    return rec


def threshold_on_splits(model: Any, train: Any, val: Any, rule: Any, normal: Any, *,
                        unit_range: bool, density: LatentDensity | None = None) -> dict[str, Any]:
    """:func:`choose_threshold` on the validation split (the training split where it has none);
    normal is ``normal`` or the training split's classes; the error scale is measured on the
    training split unless the data lies in [0, 1] (``unit_range``) or the scores are the latent
    ones of ``density`` (which has no error scale)."""
    split, ref = ("val", val) if val is not None and len(val) else ("train", train)
    if normal is None:
        normal = training_classes(train.y)
    scale = None if density is not None else error_scale(model, train.x, unit_range)
    return choose_threshold(model, ref.x, ref.y, rule, normal, split, scale, density)


def run_threshold(o: Any, rule: Any, data: str | None = None, data_dir: str | None = None,
                  normal: Any = None, density: LatentDensity | None = None,
                  components: int | None = None) -> dict[str, Any]:
    """The threshold of an opened run ``o`` chosen by ``rule`` (see :func:`threshold_on_splits`); on the
    latent scores of ``density`` (fitted with ``components`` asked for) where it is given."""
    ds = o.dataset(data, data_dir)[0]
    rec = threshold_on_splits(o.model, o.split("train", data, data_dir), o.split("val", data, data_dir), rule, normal,
                              unit_range=ds.value_range == "unit", density=density)
    if density is not None:
        rec["components"] = components
    return {**rec, "data": str(ds.name)}


MIN_SCALE = 1e-12  # what scale_from_errors adds: a smaller scale would turn scores into inf
MIN_SHARE = SCALE_FLOOR / (1 + SCALE_FLOOR)  # the least share of its mean a measured scale holds


def checked_scale(scale: Any, n_values: int, where: str) -> np.ndarray | None:
    """``scale`` (from a file: threshold.json, a saved detector, an exported model's metadata) as a
    float64 vector of ``n_values`` numbers each at least MIN_SCALE, or None where there is none; one
    error line otherwise."""
    if scale is None:
        return None
    if not isinstance(scale, list | tuple | np.ndarray) or len(scale) != n_values:
        n = len(scale) if isinstance(scale, list | tuple | np.ndarray) else "no list of"
        raise AekitError(f"{where}: error_scale holds {n} numbers but the model has {n_values} values; "
                         "set the threshold again with aekit anomaly RUN --threshold RULE --save-threshold")
    try:
        out = np.asarray(scale, np.float64)
    except (TypeError, ValueError, OverflowError):
        out = np.full(1, np.nan)
    if out.shape != (n_values,) or not (np.isfinite(out).all() and (out >= MIN_SCALE).all()):
        raise AekitError(f"{where}: error_scale must be a list of finite numbers of at least {MIN_SCALE:g}")
    # scale_from_errors floors every value at SCALE_FLOOR of the errors' mean, and that mean is at least
    # the scale's mean over (1 + SCALE_FLOOR): no value it writes is under MIN_SHARE of the scale's mean.
    # A smaller one (a feature made to dominate every score) was not measured by aekit.
    if out.min() < MIN_SHARE * out.mean() * (1 - 1e-9):
        raise AekitError(f"{where}: error_scale has values under {MIN_SHARE:g} of its mean, which aekit never "
                         "measures; set the threshold again with aekit anomaly RUN --threshold RULE --save-threshold")
    return out


def record_scale(rec: dict[str, Any], model: Any) -> np.ndarray | None:
    """The error scale a threshold record was computed with (None: squared errors as they are), checked
    against the model's number of values."""
    return checked_scale(rec.get("error_scale"), model.n_inputs, THRESHOLD_FILE)


# --- threshold.json: the threshold a run keeps -----------------------------------------------------


def weights_digest(run_dir: str | Path) -> str:
    """SHA-256 of the run's model.safetensors: which weights a stored threshold belongs to."""
    p = Path(run_dir) / "model.safetensors"
    h = hashlib.sha256()
    try:
        with open_plain(p, "weights file") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    except FileNotFoundError:
        raise AekitError(f"{p}: not found; is this an aekit run directory?") from None
    except OSError as exc:
        raise AekitError(f"{p}: cannot read it ({exc.strerror or exc})") from None
    return h.hexdigest()


def save_threshold(run_dir: str | Path, record: dict[str, Any], set_by: str) -> Path:
    """Write ``record`` (from :func:`choose_threshold`) as the run's threshold.json, atomically, with
    the digest of the weights it was computed with."""
    from aekit import __version__

    path = Path(run_dir) / THRESHOLD_FILE
    write_json(path, {**record, "set_by": set_by, "weights_sha256": weights_digest(run_dir),
                      "aekit_version": __version__})
    return path


THRESHOLD_SPLITS = ("val", "train", "fit")  # where a threshold is chosen (see threshold_on_splits, the detector)
# who writes threshold.json: training, aekit anomaly, a saved detector (its class name, then .save)
_WRITERS = re.compile(r"aekit train|aekit anomaly --save-threshold|[A-Za-z_][A-Za-z0-9_]{0,99}\.save")
_DIGEST = re.compile(r"[0-9a-f]{64}")


def shown(text: Any, limit: int = 80) -> str:
    """A string read from a file, safe to print on a terminal or in an error line: every character
    that is not printable (newlines, escape codes, bidirectional overrides) escaped as Python writes
    it, and cut to ``limit`` characters."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text)[:limit])
    return out + ("..." if len(str(text)) > limit else "")


def _check_stored(rec: dict[str, Any], where: Path, value_range: str | None) -> None:
    """Every field of a threshold.json against what aekit writes for a run whose data lies in
    ``value_range`` ("unit": [0, 1], "real", None: unknown, as for a saved detector). The error scale's
    values are checked against the model by :func:`record_scale`, its callers' next step."""
    kind = rec.get("score", "error")
    if kind not in SCORES:
        raise AekitError(f"{where}: score must be one of {', '.join(SCORES)}, got {kind!r:.40}")
    value: Any = rec.get("threshold")
    number = isinstance(value, int | float) and not isinstance(value, bool) and _finite(value)
    if kind == "latent" and not number:  # minus a log-density: any finite number (a density may exceed 1)
        raise AekitError(f"{where}: threshold must be a finite number, got {value!r:.40}")
    # An error score is a sum of squared errors: a negative threshold would flag every sample.
    if kind == "error" and (not number or value < 0):
        raise AekitError(f"{where}: threshold must be a finite number >= 0 (a score is a sum of squared errors), "
                         f"got {value!r:.40}")
    if kind == "latent":
        try:
            check_components(rec.get("components"), "components")
        except AekitError as exc:
            raise AekitError(f"{where}: {exc}") from None
        if "error_scale" in rec:
            raise AekitError(f"{where}: error_scale belongs to the error score, and this threshold is on the latent "
                             "one; set the threshold again with aekit anomaly RUN --score latent --threshold RULE "
                             "--save-threshold")
    elif "components" in rec:
        raise AekitError(f"{where}: components belongs to the latent score, and this threshold is on the error "
                         "one; set the threshold again with aekit anomaly RUN --threshold RULE --save-threshold")
    rule = rec.get("rule")
    try:
        th = parse_threshold(rule)
    except AekitError as exc:
        raise AekitError(f"{where}: rule: {str(exc).replace('--threshold ', '')}") from None
    if rule != str(th):  # aekit writes str(Threshold): no spaces, newlines or bare numbers
        raise AekitError(f"{where}: rule must be written as {th}, got {rule!r:.40}")
    if rec.get("split") not in THRESHOLD_SPLITS:
        raise AekitError(f"{where}: split must be one of {', '.join(THRESHOLD_SPLITS)}, got {rec.get('split')!r:.40}")
    if not isinstance(rec.get("weights_sha256"), str):
        raise AekitError(f"{where}: no weights_sha256; not a threshold file aekit wrote")
    if not _DIGEST.fullmatch(rec["weights_sha256"]):
        raise AekitError(f"{where}: weights_sha256 must be 64 hex digits, got {rec['weights_sha256']!r:.40}")
    set_by = rec.get("set_by")
    if not isinstance(set_by, str) or not _WRITERS.fullmatch(set_by):
        raise AekitError(f"{where}: set_by must name what wrote it (aekit train, aekit anomaly --save-threshold, "
                         f"AutoencoderOutlierDetector.save), got {set_by!r:.40}")
    n = rec.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise AekitError(f"{where}: n must be the number of samples the threshold was chosen on, got {n!r:.40}")
    classes = rec.get("normal_classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        raise AekitError(f"{where}: normal_classes must be a list of class labels (integers)")
    for key in ("data", "aekit_version"):
        if not isinstance(rec.get(key, ""), str):
            raise AekitError(f"{where}: {key} must be a string, got {rec[key]!r:.40}")
    scale = rec.get("error_scale")
    if scale is not None and not isinstance(scale, list):
        raise AekitError(f"{where}: error_scale must be a list of numbers")  # its values: record_scale
    if scale is not None and value_range == "unit":
        raise AekitError(f"{where}: error_scale is for data outside [0, 1], and this run's data lies in [0, 1] "
                         "(its scores are plain sums); set the threshold again with aekit anomaly RUN --threshold "
                         "RULE --save-threshold")


def _finite(v: int | float) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer too large for a float
        return False


def stored_threshold(run_dir: str | Path | None, check_weights: bool = True,
                     score: str | None = "error") -> dict[str, Any] | None:
    """The run's threshold.json, checked, or None where the run has none. One error line for a
    damaged file or one written for other weights than the run's model.safetensors.

    ``score``: the score the caller computes; a threshold on the other one is none to it (None: any
    score, for the caller to check with :func:`score_kind`, as ``aekit anomaly`` and export do to say so).
    The default keeps every reader of the error score (training's resume, ``aekit serve``) off a
    latent threshold."""
    if run_dir is None:
        return None
    where = Path(run_dir) / THRESHOLD_FILE
    if not where.exists() and not where.is_symlink():
        return None
    rec = read_json_object(where)
    _check_stored(rec, where, _value_range(run_dir))
    if score is not None and score_kind(rec) != score:
        return None
    if check_weights and rec["weights_sha256"] != weights_digest(run_dir):
        raise AekitError(f"{where}: set for other weights than {Path(run_dir) / 'model.safetensors'} (trained "
                         f"further or replaced since); set it again with aekit anomaly {run_dir} --threshold "
                         f"{rec['rule']} --save-threshold")
    return rec


def _value_range(run_dir: str | Path) -> str | None:
    """The run's data range from its config.json ("unit" or "real"), None where it names none (a
    saved detector's folder, whose data aekit never saw) or the folder has no config.json. Read as
    plain JSON: the run folder's format is aekit.run's, a layer above this one, which checked it when
    the run was opened."""
    if not (Path(run_dir) / "config.json").exists():
        return None
    data = read_json_object(Path(run_dir) / "config.json").get("data")
    vr = data.get("value_range") if isinstance(data, dict) else None
    return vr if vr in ("unit", "real") else None


def anomaly_report(model: Any, x: np.ndarray, y: np.ndarray | None, thr: dict[str, Any],
                   out: str | Path | None = None, maps: str | Path | None = None, normal: Any = None,
                   density: LatentDensity | None = None) -> dict[str, Any]:
    """Scores of ``x`` against the threshold record ``thr`` (:func:`choose_threshold` or
    :func:`stored_threshold`), precision/recall/F1/ROC AUC where ``y`` and the ``normal`` classes
    are known, and optionally a CSV of the scores and a picture of the top error maps. A latent
    record (:func:`score_kind`) scores by ``density``; its maps are still the reconstruction error's,
    of the samples with the highest latent scores."""
    th = parse_threshold(thr["rule"])
    err: np.ndarray | None
    if score_kind(thr) == "latent":
        if density is None:
            raise ValueError("a latent threshold needs the density it was chosen with")  # a caller's bug
        sc, definition = latent_scores(model, x, density), SCORE_LATENT.format(k=len(density.weights))
        err = scores(model, x)[1] if maps is not None else None  # squared errors: a latent record has no scale
    else:
        scale = record_scale(thr, model)
        sc, err = scores(model, x, scale)
        definition = SCORE_SCALED if scale is not None else SCORE_PLAIN
    flagged = sc > thr["threshold"]
    res: dict[str, Any] = {"n": len(sc), "threshold": thr["threshold"], "threshold_rule": str(th),
                           "threshold_split": thr["split"], "threshold_stored": bool(thr.get("set_by")),
                           "flagged": int(flagged.sum()), "flagged_fraction": float(flagged.mean()),
                           "score_mean": float(sc.mean()), "score_max": float(sc.max()),
                           "score": score_kind(thr), "score_definition": definition}
    if th.kind == "contamination":
        res["contamination"] = th.value
    is_normal = normal_mask(y, normal)
    if is_normal is not None:
        res["normal_classes"] = sorted(int(c) for c in normal)
        res.update(label_metrics(sc, flagged, ~is_normal))
    if out is not None:
        res["scores_csv"] = str(write_scores(out, sc, flagged, y))
    if maps is not None and err is not None:
        res["maps"] = str(error_maps(x, err, sc, tuple(model.input_shape), maps))
    return res

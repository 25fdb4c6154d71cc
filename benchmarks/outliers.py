"""Outlier detection against the library people use for it: aekit's ``AutoencoderOutlierDetector``,
PyOD's ``AutoEncoder`` and ``VAE`` and scikit-learn's ``IsolationForest``, each with its defaults as a
user would call it (the same settings for every data family), in one run on the same splits. ROC AUC
and average precision (outliers as the positive class) per task, their mean per data family, and the
total fit time (time it on an otherwise idle machine).

Data (no download): MNIST one-class (each digit normal, the other digits outliers: the Deep SVDD
protocol of Ruff et al. 2018, train on that digit's training images, score the 10,000 test images);
scikit-learn's ``load_digits`` one-class (each digit normal; a fixed stratified 70/30 split, train on
the normal training rows); ``load_breast_cancer`` (benign normal; malignant rows subsampled to 10% of
the test set as outliers; train on 60% of the benign rows; 5 seeds).

Each method runs with ``random_state=0`` by default. One seed is one draw: on breast cancer a
detector's AUROC moves by about 0.01 from one random state to the next, more than the methods
differ, so ``--detector-seeds 5`` runs every method with random states 0-4 and reports the means
(fit time per pass over the family's tasks).

PyOD is installed for this script only, never as an aekit dependency:

    pip install -c constraints.txt --target /tmp/pyod-lib pyod==3.6.7
    mkdir /tmp/pyod-only
    for d in pyod numba llvmlite cloudpickle narwhals; do ln -s /tmp/pyod-lib/$d* /tmp/pyod-only/; done
    PYTHONPATH=/tmp/pyod-only python benchmarks/outliers.py [--quick]

(/tmp/pyod-only holds only PyOD and what it adds, so that the environment's own torch, NumPy and
scikit-learn are the ones measured.)
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from aekit.estimator import AutoencoderOutlierDetector

ROOT = Path(__file__).resolve().parents[1]
Task = tuple[str, np.ndarray, np.ndarray, np.ndarray]  # (name, normal training rows, test rows, test is-outlier)


def mnist_tasks(data_dir: str, digits: list[int]) -> Iterator[Task]:
    from aekit.data.sources import load_dataset
    from aekit.metrics import as_float

    ds = load_dataset("mnist", data_dir)
    xtr, xte = as_float(ds.train.x).reshape(len(ds.train.x), -1), as_float(ds.test.x).reshape(len(ds.test.x), -1)
    for d in digits:
        yield f"digit {d}", xtr[ds.train.y == d], xte, (ds.test.y != d).astype(int)


def sk_digits_tasks(digits: list[int]) -> Iterator[Task]:
    x, y = load_digits(return_X_y=True)
    x = x / 16.0  # pixel values 0..16 to [0, 1]
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    for d in digits:
        yield f"digit {d}", xtr[ytr == d], xte, (yte != d).astype(int)


def breast_cancer_tasks(seeds: int) -> Iterator[Task]:
    x, y = load_breast_cancer(return_X_y=True)  # y: 0 malignant, 1 benign
    benign, malignant = x[y == 1], x[y == 0]
    for s in range(seeds):
        rng = np.random.default_rng(s)
        order = rng.permutation(len(benign))
        n_tr = int(0.6 * len(benign))
        tr, te_normal = benign[order[:n_tr]], benign[order[n_tr:]]
        n_out = round(len(te_normal) / 9)  # outliers are 10% of the test set
        out = malignant[rng.choice(len(malignant), n_out, replace=False)]
        scaler = StandardScaler().fit(tr)  # fitted on the training rows only
        te = np.concatenate([te_normal, out])
        yield f"seed {s}", scaler.transform(tr), scaler.transform(te), np.r_[np.zeros(len(te_normal)), np.ones(n_out)]


def detectors() -> dict[str, Callable[[int], Any]]:
    """Every method with its defaults, as a user calls it, given its random seed: the same settings
    for every data family (aekit's detector sizes its network from the number of features, see
    aekit.estimator)."""
    from pyod.models.auto_encoder import AutoEncoder
    from pyod.models.vae import VAE

    return {
        "aekit": lambda seed: AutoencoderOutlierDetector(random_state=seed),
        "PyOD AutoEncoder": lambda seed: AutoEncoder(random_state=seed, verbose=0),
        "PyOD VAE": lambda seed: VAE(random_state=seed, verbose=0),
        "IsolationForest": lambda seed: IsolationForest(random_state=seed),
    }


def outlier_scores(det: Any, x: np.ndarray) -> np.ndarray:
    """Higher = more abnormal, whatever the library's sign convention."""
    if hasattr(det, "decision_scores_"):  # PyOD: decision_function is already "higher is abnormal"
        return det.decision_function(x)
    return -det.score_samples(x)  # scikit-learn's convention, which aekit follows


WARMED: set[str] = set()  # methods whose one-time costs (imports, first kernels, numba) are paid


def warm_up(method: str, make: Callable[[int], Any], xtr: np.ndarray) -> None:
    """One untimed fit on a few rows, the first time a method runs in this process, so that its
    one-time costs do not land in the fit time of whichever task comes first."""
    if method not in WARMED:
        make(0).fit(xtr[:256].astype(np.float32))
        WARMED.add(method)


def run_family(family: str, tasks: Iterator[Task], seeds: int = 1) -> list[dict[str, Any]]:
    """Each method on each task, once per detector seed (random_state 0, 1, ...)."""
    rows = []
    for name, xtr, xte, is_out in tasks:
        for method, make in detectors().items():
            warm_up(method, make, xtr)
        for method, make in detectors().items():
            for seed in range(seeds):
                det = make(seed)
                t0 = time.perf_counter()
                det.fit(xtr.astype(np.float32))
                fit_s = time.perf_counter() - t0
                s = outlier_scores(det, xte.astype(np.float32))
                rows.append({"family": family, "task": name, "method": method, "seed": seed,
                             "auroc": float(roc_auc_score(is_out, s)), "ap": float(average_precision_score(is_out, s)),
                             "fit_seconds": round(fit_s, 4)})
                print(f"{family:<15} {name:<9} {method:<17} seed {seed} AUROC {rows[-1]['auroc']:.4f}  "
                      f"AP {rows[-1]['ap']:.4f}  fit {fit_s:.2f}s", flush=True)
    return rows


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for family in dict.fromkeys(r["family"] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows):
            rs = [r for r in rows if r["family"] == family and r["method"] == method]
            out.append({"family": family, "method": method, "mean_auroc": float(np.mean([r["auroc"] for r in rs])),
                        "mean_ap": float(np.mean([r["ap"] for r in rs])),
                        # per seed: the fit time of one pass over the family's tasks
                        "fit_seconds": round(sum(r["fit_seconds"] for r in rs) / len({r["seed"] for r in rs}), 2),
                        "tasks": len({r["task"] for r in rs}), "seeds": len({r["seed"] for r in rs})})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared/datasets/mnist"))
    ap.add_argument("--quick", action="store_true", help="MNIST digits 0 and 1 only, sklearn digits 0-2, 2 seeds")
    ap.add_argument("--mnist-digits", type=lambda t: [int(v) for v in t.split(",")],
                    help="which MNIST digits to take as normal (default all ten; ~30 s each on 2 cores)")
    ap.add_argument("--families", default="mnist,digits,breast-cancer",
                    help="which data families to run (comma-separated)")
    ap.add_argument("--detector-seeds", type=int, default=1,
                    help="run every method with random_state 0..N-1 and average (default 1: random_state=0)")
    ap.add_argument("--out", default="benchmarks/results/outliers.json")
    args = ap.parse_args()
    mnist_digits, sk_digits, seeds = ([0, 1], [0, 1, 2], 2) if args.quick else (list(range(10)), list(range(10)), 5)
    mnist_digits = args.mnist_digits or mnist_digits
    t0 = time.perf_counter()
    if args.detector_seeds < 1:
        ap.error("--detector-seeds must be at least 1")
    families = args.families.split(",")
    if unknown := set(families) - {"mnist", "digits", "breast-cancer"}:
        ap.error(f"unknown --families {', '.join(sorted(unknown))}; use mnist, digits, breast-cancer")
    rows = []
    if "mnist" in families:
        rows += run_family("mnist", mnist_tasks(args.data_dir, mnist_digits), args.detector_seeds)
    if "digits" in families:
        rows += run_family("sklearn digits", sk_digits_tasks(sk_digits), args.detector_seeds)
    if "breast-cancer" in families:
        rows += run_family("breast cancer", breast_cancer_tasks(seeds), args.detector_seeds)
    table = summary(rows)
    print(f"\n{'family':<15} {'method':<17} {'mean AUROC':>10} {'mean AP':>8} {'fit s':>7}")
    for r in table:
        print(f"{r['family']:<15} {r['method']:<17} {r['mean_auroc']:>10.4f} {r['mean_ap']:>8.4f} "
              f"{r['fit_seconds']:>7.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": vars(args), "summary": table, "rows": rows,
                               "seconds": round(time.perf_counter() - t0, 1)}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

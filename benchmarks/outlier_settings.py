"""Which settings of aekit's outlier detector help where: mean AUROC over detector seeds on the small
data families of ``benchmarks/outliers.py`` (scikit-learn's digits one-class, breast cancer; MNIST
one-class on request, ``--families mnist``, from ``--data-dir``) and on two tabular families that
played no part in choosing the detector's score (``--families wine,iris``: scikit-learn's
``load_wine`` and ``load_iris`` one-class, each class normal, three stratified 70/30 splits,
standardised on the normal training rows), for variants of the detector's defaults.

For each variant (keyword arguments of ``AutoencoderOutlierDetector``), each task and each random
state 0..N-1, it fits the detector on the task's normal training rows and scores the test rows two
ways:

- ``score``: the detector's own score, aekit's anomaly score (each squared error over its feature's
  error scale on features outside [0, 1], as they are on pixels; see ``aekit.tasks.anomaly``);
- ``unscaled``: the squared errors summed as they are, the score's definition before error scales
  (on pixel families the two are the same number);

and, once per task, the squared distance to the training rows' mean, the baseline that needs no model.
It prints mean AUROC per family and the mean fit time per task, and writes JSON.

    python benchmarks/outlier_settings.py [--seeds 3] [--families digits,breast-cancer,wine,iris,mnist]
        [--variants '{"name": {"batch_size": 32}, ...}'] [--out benchmarks/results/outlier-settings.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_iris, load_wine
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from outliers import ROOT, Task, breast_cancer_tasks, mnist_tasks, sk_digits_tasks, warm_up

from aekit.estimator import AutoencoderOutlierDetector

VARIANTS = {
    "defaults": {},
    "batch 32": {"batch_size": 32},
    "tanh": {"activation": "tanh"},
    "tanh, batch 32": {"activation": "tanh", "batch_size": 32},
    "60 epochs": {"epochs": 60},
    "code 2": {"code": 2},
    "code 12": {"code": 12},
    "64-32-16 (PyOD's widths)": {"layers": [64, 32], "code": 16},
    "masking noise 0.1": {"noise": "masking:0.1"},
}


def small_tabular_tasks(loader: Any, splits: int = 3) -> Iterator[Task]:
    """Each class normal in turn, the other classes outliers, on ``splits`` stratified 70/30 splits;
    standardised on the normal training rows (as breast cancer is)."""
    x, y = loader(return_X_y=True)
    for split in range(splits):
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, stratify=y, random_state=split)
        for c in np.unique(y):
            scaler = StandardScaler().fit(xtr[ytr == c])
            yield (f"split {split} class {c}", scaler.transform(xtr[ytr == c]), scaler.transform(xte),
                   (yte != c).astype(int))


FAMILIES = {"digits": lambda data_dir: sk_digits_tasks(list(range(10))),
            "breast-cancer": lambda data_dir: breast_cancer_tasks(5),
            "wine": lambda data_dir: small_tabular_tasks(load_wine),
            "iris": lambda data_dir: small_tabular_tasks(load_iris),
            "mnist": lambda data_dir: mnist_tasks(data_dir, list(range(10)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared/datasets/mnist"),
                    help="MNIST, for --families mnist")
    ap.add_argument("--families", default="digits,breast-cancer,wine,iris")
    ap.add_argument("--variants", type=json.loads, default=VARIANTS)
    ap.add_argument("--out", default="benchmarks/results/outlier-settings.json")
    args = ap.parse_args()
    if args.seeds < 1:
        ap.error("--seeds must be at least 1")
    families = args.families.split(",")
    if unknown := set(families) - set(FAMILIES):
        ap.error(f"unknown --families {', '.join(sorted(unknown))}; use {', '.join(FAMILIES)}")
    tasks = {f: list(FAMILIES[f](args.data_dir)) for f in families}
    warm_up("aekit", lambda seed: AutoencoderOutlierDetector(random_state=seed), next(iter(tasks.values()))[0][1])
    rows = []
    for fam, ts in tasks.items():
        dist = [roc_auc_score(y, ((xte - xtr.mean(0)) ** 2).sum(1)) for _, xtr, xte, y in ts]
        rows.append({"variant": "distance to the training mean", "family": fam, "score": float(np.mean(dist))})
    for name, kw in args.variants.items():
        for fam, ts in tasks.items():
            own, unscaled, seconds = [], [], 0.0
            for _, xtr, xte, y in ts:
                xtr, xte = xtr.astype(np.float32), xte.astype(np.float32)
                for seed in range(args.seeds):
                    t0 = time.perf_counter()
                    det = AutoencoderOutlierDetector(random_state=seed, **kw).fit(xtr)
                    seconds += time.perf_counter() - t0
                    own.append(roc_auc_score(y, -det.score_samples(xte)))
                    unscaled.append(roc_auc_score(y, det._squared_errors(xte).sum(1)))
            rows.append({"variant": name, "family": fam, "score": float(np.mean(own)),
                         "unscaled": float(np.mean(unscaled)), "fit_ms": 1e3 * seconds / len(ts) / args.seeds})
            print(f"{name:<28} {fam:<14} score {rows[-1]['score']:.4f}  unscaled {rows[-1]['unscaled']:.4f}  "
                  f"fit {rows[-1]['fit_ms']:.0f} ms", flush=True)
    print(f"\n{'variant':<30}" + "".join(f"{f + ' score':>22}{'unscaled':>11}{'fit ms':>8}" for f in families))
    for name in ["distance to the training mean", *args.variants]:
        cells = ""
        for fam in families:
            r = next(r for r in rows if r["variant"] == name and r["family"] == fam)
            cells += f"{r['score']:>22.4f}" + (f"{r['unscaled']:>11.4f}{r['fit_ms']:>8.0f}" if "fit_ms" in r
                                               else f"{'':>11}{'':>8}")
        print(f"{name:<30}{cells}")
    print(f"(mean AUROC over the family's tasks and random states 0-{args.seeds - 1})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": {"seeds": args.seeds, "families": families, "variants": args.variants},
                               "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

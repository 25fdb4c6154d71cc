"""Which settings of aekit's outlier detector help where: mean AUROC over detector seeds on the small
data families of ``benchmarks/outliers.py`` (scikit-learn's digits one-class, breast cancer; MNIST
one-class on request, ``--families mnist``, from ``--data-dir``), for variants of the
detector's defaults and for a second score beside aekit's own.

For each variant (keyword arguments of ``AutoencoderOutlierDetector``), each task and each random
state 0..N-1, it fits the detector on the task's normal training rows and scores the test rows:

- ``score``: aekit's anomaly score (squared error summed over features), what the detector uses;
- ``normalised``: the squared error of each feature divided by that feature's mean squared error on
  the training rows (floored at a quarter of the mean over features, so that features the model
  reconstructs perfectly, such as MNIST's border pixels, do not dominate), then summed; a candidate
  score definition, not aekit's;

and, once per task, the squared distance to the training rows' mean, the baseline that needs no model.
It prints mean AUROC per family and the mean fit time per task, and writes JSON.

    python benchmarks/outlier_settings.py [--seeds 3] [--families digits,breast-cancer,mnist]
        [--variants '{"name": {"batch_size": 32}, ...}'] [--out benchmarks/results/outlier-settings.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from outliers import ROOT, breast_cancer_tasks, mnist_tasks, sk_digits_tasks, warm_up

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
FAMILIES = {"digits": lambda data_dir: sk_digits_tasks(list(range(10))),
            "breast-cancer": lambda data_dir: breast_cancer_tasks(5),
            "mnist": lambda data_dir: mnist_tasks(data_dir, list(range(10)))}


def normalised(err_train: np.ndarray, err_test: np.ndarray) -> np.ndarray:
    scale = err_train.mean(0)
    return (err_test / np.maximum(scale, 0.25 * scale.mean() + 1e-12)).sum(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared/datasets/mnist"),
                    help="MNIST, for --families mnist")
    ap.add_argument("--families", default="digits,breast-cancer")
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
            plain, norm, seconds = [], [], 0.0
            for _, xtr, xte, y in ts:
                xtr, xte = xtr.astype(np.float32), xte.astype(np.float32)
                for seed in range(args.seeds):
                    t0 = time.perf_counter()
                    det = AutoencoderOutlierDetector(random_state=seed, **kw).fit(xtr)
                    seconds += time.perf_counter() - t0
                    e_tr, e_te = det._squared_errors(xtr), det._squared_errors(xte)
                    plain.append(roc_auc_score(y, e_te.sum(1)))
                    norm.append(roc_auc_score(y, normalised(e_tr, e_te)))
            rows.append({"variant": name, "family": fam, "score": float(np.mean(plain)),
                         "normalised": float(np.mean(norm)), "fit_ms": 1e3 * seconds / len(ts) / args.seeds})
            print(f"{name:<28} {fam:<14} score {rows[-1]['score']:.4f}  normalised {rows[-1]['normalised']:.4f}  "
                  f"fit {rows[-1]['fit_ms']:.0f} ms", flush=True)
    print(f"\n{'variant':<30}" + "".join(f"{f + ' score':>22}{'normalised':>11}{'fit ms':>8}" for f in families))
    for name in ["distance to the training mean", *args.variants]:
        cells = ""
        for fam in families:
            r = next(r for r in rows if r["variant"] == name and r["family"] == fam)
            cells += f"{r['score']:>22.4f}" + (f"{r['normalised']:>11.4f}{r['fit_ms']:>8.0f}" if "fit_ms" in r
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

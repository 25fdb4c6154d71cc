"""One-class MNIST: train on the training images of one digit, score the whole test set by
reconstruction error, and report the AUROC of "another digit" -- for each digit and their mean,
next to PCA's reconstruction error (same code size, fitted on the same images) as the baseline.

    python benchmarks/anomaly.py [--data-dir ../shared/datasets/mnist] [--epochs 20] [--code 32]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import aekit
from aekit.baselines import PCA
from aekit.config import RunConfig, TrainConfig
from aekit.data.dataset import Dataset, Split
from aekit.data.sources import load_dataset
from aekit.metrics import as_float
from aekit.tasks.anomaly import auroc, error_scale, scores

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="mnist")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared/datasets/mnist"))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--code", type=int, default=32)
    ap.add_argument("--layers", default="512,128")
    ap.add_argument("--out", default="benchmarks/results/anomaly.json")
    args = ap.parse_args()
    ds = load_dataset(args.data, args.data_dir if args.data == "mnist" else None)
    layers = [int(v) for v in args.layers.split(",") if v]
    rows = []
    for digit in range(10):
        t0 = time.perf_counter()
        normal = ds.train.x[ds.train.y == digit]
        one = Dataset(f"{args.data}-digit{digit}", Split(normal), Split(ds.test.x[:0]), kind="image")
        cfg = RunConfig(model={"name": "mlp", "layers": layers, "code": args.code, "activation": "elu"},
                        train=TrainConfig(epochs=args.epochs, batch_size=128, lr=1e-3, schedule="cosine"))
        run = aekit.train(cfg, Path("benchmarks/results/anomaly-runs") / f"digit{digit}-{int(time.time())}",
                          dataset=one, progress=False)
        other = (ds.test.y != digit).astype(int)
        scale = error_scale(run.model, normal, ds.value_range == "unit")  # None for pixels, as aekit anomaly
        ae_auc = auroc(scores(run.model, ds.test.x, scale)[0], other)
        pca = PCA(args.code).fit(normal)
        te = as_float(ds.test.x)
        pca_err = np.square(te.reshape(len(te), -1) - pca.inverse_transform(pca.transform(te))).sum(1)
        rows.append({"digit": digit, "autoencoder_auroc": ae_auc, "pca_auroc": auroc(pca_err, other),
                     "n_train": len(normal), "seconds": round(time.perf_counter() - t0, 1)})
        print(f"digit {digit}: autoencoder {ae_auc:.4f}  PCA {rows[-1]['pca_auroc']:.4f}  ({rows[-1]['seconds']}s)",
              flush=True)
    mean_ae = float(np.mean([r["autoencoder_auroc"] for r in rows]))
    mean_pca = float(np.mean([r["pca_auroc"] for r in rows]))
    print(f"\n{'digit':<6} {'autoencoder AUROC':>18} {'PCA AUROC':>10}")
    for r in rows:
        print(f"{r['digit']:<6} {r['autoencoder_auroc']:>18.4f} {r['pca_auroc']:>10.4f}")
    print(f"{'mean':<6} {mean_ae:>18.4f} {mean_pca:>10.4f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": vars(args), "digits": rows, "mean_autoencoder_auroc": mean_ae,
                               "mean_pca_auroc": mean_pca}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

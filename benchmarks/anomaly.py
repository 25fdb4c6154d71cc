"""One-class MNIST (Ruff et al. 2018's protocol): train on the training images of one digit, score
the whole test set, and report the AUROC of "another digit" for each digit and their mean, over
seeds (mean and spread), against the published anchors and the goal (mean >= 98.0, every digit
>= 95.0).

Each seed trains one convolutional autoencoder per digit (configs/anomaly-conv.toml, 20 epochs, on
9/10 of that digit's training images; the rest is the validation split a threshold would be set on) and scores the
test images three ways:

- latent density (the detector aekit recommends for images): minus the log-density of the code
  under a 10-component Gaussian mixture fitted on the training images' codes
  (``aekit anomaly RUN --score latent``, ``AutoencoderOutlierDetector(anomaly_score="latent")``);
- reconstruction error (``aekit anomaly RUN``, the default score);
- PCA's reconstruction error at the same code size, fitted on the same images (the baseline).

    python benchmarks/anomaly.py [--data-dir ../shared/datasets/mnist] [--seeds 0,1,2] [--digits 0,...,9]
    python benchmarks/anomaly.py --quick     # mnist-mini, 1 epoch: a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

import aekit
from aekit.baselines import PCA
from aekit.config import RunConfig, load_config
from aekit.data.dataset import Dataset, Split
from aekit.data.sources import load_dataset
from aekit.metrics import as_float
from aekit.tasks.anomaly import auroc, error_scale, scores
from aekit.tasks.density import DEFAULT_COMPONENTS, LatentDensity

ROOT = Path(__file__).resolve().parents[1]
GOAL_MEAN, GOAL_DIGIT = 98.0, 95.0
ANCHORS = [("Deep SVDD (Ruff et al. 2018)", 94.8), ("OCGAN (Perera et al. 2019)", 97.5),
           ("GeoTrans (Golan & El-Yaniv 2018)", 98.0), ("ARNet (Fei et al. 2020)", 98.3)]
SCORES = ("latent", "error", "pca")
NAMES = {"latent": "latent density", "error": "reconstruction error", "pca": "PCA error"}


MLP = {"name": "mlp", "layers": [512, 128], "activation": "elu", "loss": "bce"}  # for comparison (--model mlp)


def recipe(model: str, epochs: int, code: int, seed: int) -> RunConfig:
    """The detector's autoencoder: configs/anomaly-conv.toml (``--model conv``) or a fully connected
    one with the same code and loss (``--model mlp``), for ``epochs`` epochs."""
    cfg = load_config(ROOT / "configs/anomaly-conv.toml")
    if model == "mlp":
        cfg.model = dict(MLP)
    cfg.model["code"] = code
    cfg.train.epochs, cfg.train.seed = epochs, seed
    return cfg


def one_digit(ds: Dataset, digit: int, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    normal = ds.train.x[ds.train.y == digit]
    one = Dataset(f"{ds.name}-digit{digit}", Split(normal), Split(ds.test.x[:0]), kind="image")
    out = Path(args.runs) / f"digit{digit}-seed{seed}"
    run = aekit.train(recipe(args.model, args.epochs, args.code, seed), out, dataset=one, progress=False,
                      **({"train.max_steps": 20} if args.quick else {}))
    t_train = time.perf_counter() - t0
    other = (ds.test.y != digit).astype(int)
    train_x = one.split("train").x  # the rows the model trained on, as aekit anomaly --score latent fits
    density = LatentDensity.fit(run.model.encode(train_x), args.components, seed)
    latent = density.score(run.model.encode(ds.test.x))
    scale = error_scale(run.model, normal, ds.value_range == "unit")  # None for pixels, as aekit anomaly
    err = scores(run.model, ds.test.x, scale)[0]
    pca = PCA(args.code).fit(normal)
    te = as_float(ds.test.x).reshape(len(ds.test.x), -1)
    pca_err = np.square(te - pca.inverse_transform(pca.transform(te))).sum(1)
    row = {"digit": digit, "seed": seed, "n_train": len(normal), "train_seconds": round(t_train, 1),
           "seconds": round(time.perf_counter() - t0, 1),
           **{k: 100 * auroc(s, other) for k, s in zip(SCORES, (latent, err, pca_err), strict=True)}}
    print(f"digit {digit} seed {seed}: " + "  ".join(f"{NAMES[k]} {row[k]:.2f}" for k in SCORES)
          + f"  ({row['seconds']}s)", flush=True)
    return row


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{mean:.2f}"


def summarise(rows: list[dict[str, Any]], digits: list[int], seeds: list[int]) -> dict[str, Any]:
    per_digit = {d: {k: [r[k] for r in rows if r["digit"] == d] for k in SCORES} for d in digits}
    # the mean over digits, once per seed: its spread is the seeds' spread of the headline figure
    means = {k: [statistics.fmean(r[k] for r in rows if r["seed"] == s) for s in seeds] for k in SCORES}
    head = ["digit", *[NAMES[k] for k in SCORES], "goal", "verdict"]
    table = []
    for d in digits:
        v = statistics.fmean(per_digit[d]["latent"])
        table.append([str(d), *[spread(per_digit[d][k]) for k in SCORES], f">= {GOAL_DIGIT}",
                      "met" if v >= GOAL_DIGIT else f"short by {GOAL_DIGIT - v:.2f}"])
    mean_latent = statistics.fmean(means["latent"])
    worst = min(statistics.fmean(per_digit[d]["latent"]) for d in digits)
    table.append(["mean", *[spread(means[k]) for k in SCORES], f">= {GOAL_MEAN}",
                  "met" if mean_latent >= GOAL_MEAN else f"short by {GOAL_MEAN - mean_latent:.2f}"])
    for name, v in ANCHORS:
        table.append([name, f"{v:.1f}", "", "", "", "(published mean)"])
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(head)]
    print(f"\n## One-class MNIST, AUROC (%) of \"another digit\" on the 10,000 test images, "
          f"mean ± spread over {len(seeds)} seed(s)\n")
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in table:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    met = mean_latent >= GOAL_MEAN and worst >= GOAL_DIGIT
    return {"mean_by_seed": means, "mean": {k: statistics.fmean(v) for k, v in means.items()},
            "worst_digit_latent": worst, "verdict": "met" if met else "short"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared/datasets/mnist"))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--code", type=int, default=32)
    ap.add_argument("--model", default="conv", choices=("conv", "mlp"))
    ap.add_argument("--components", type=int, default=DEFAULT_COMPONENTS)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--digits", default="0,1,2,3,4,5,6,7,8,9")
    ap.add_argument("--runs", default="benchmarks/results/anomaly-runs")
    ap.add_argument("--quick", action="store_true", help="mnist-mini and 20 steps per model: a smoke run")
    ap.add_argument("--out", default=None, help="JSON (default benchmarks/results/anomaly.json; -quick with --quick)")
    args = ap.parse_args()
    ds = load_dataset("mnist-mini") if args.quick else load_dataset("mnist", args.data_dir)
    seeds = [int(s) for s in args.seeds.split(",")]
    digits = [int(d) for d in args.digits.split(",")]
    t0 = time.perf_counter()
    rows = [one_digit(ds, d, s, args) for s in seeds for d in digits]
    summary = summarise(rows, digits, seeds)
    out = Path(args.out or ROOT / "benchmarks/results" / ("anomaly-quick.json" if args.quick else "anomaly.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": vars(args), "recipe": recipe(args.model, args.epochs, args.code, 0).to_dict(),
                               "goal": {"mean": GOAL_MEAN, "every_digit": GOAL_DIGIT}, "anchors": dict(ANCHORS),
                               "rows": rows, **summary, "wall_seconds": round(time.perf_counter() - t0, 1)},
                              indent=2) + "\n")
    print(f"\n{summary['verdict']}; {time.perf_counter() - t0:.0f} s in all; wrote {out}")


if __name__ == "__main__":
    main()

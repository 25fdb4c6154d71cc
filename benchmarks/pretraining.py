"""When does autoencoder pre-training help? MNIST test error (%) for
{random init, greedy AE, greedy denoising AE, end-to-end AE} x labelled training set sizes,
mean +- std over seeds for the small sizes, each cell's wall time, published anchors alongside.

Each pre-training runs once on all (unlabelled) training images; each cell then fine-tunes in the
lecture's two steps (``stage="both"``: the softmax layer on the frozen encoder, then everything).
Random init trains the same network from scratch with the same fine-tuning budget.

``--part best`` runs the all-labels recipe instead: greedy denoising pre-training of
784-1000-1000-1000, then the two fine-tuning steps with dropout, random 2-pixel shifts of the
training images and a cosine learning rate; it reports the test error and the total wall time
(pre-training and fine-tuning together) and writes ``pretraining-best.json``.

    python benchmarks/pretraining.py --data-dir ../shared/datasets/mnist [--sizes 100,1000,10000,60000]
    python benchmarks/pretraining.py --data-dir ../shared/datasets/mnist --part best
    python benchmarks/pretraining.py --quick     # mnist-mini, tiny budgets: a smoke run
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import aekit
from aekit.data.sources import load_dataset

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = [
    ("Hinton & Salakhutdinov 2006, 784-500-500-2000-10, RBM pre-training", 1.2),
    ("Vincent et al. 2010, SdA-3 (stacked denoising AE)", 1.28),
    ("Vincent et al. 2010, SAA-3 (stacked AE)", 1.40),
    ("Rifai et al. 2011, CAE", 1.14),
    ("Theano SdA tutorial (~17 CPU-hours)", 1.3),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared/datasets/mnist"))
    ap.add_argument("--sizes", default="100,1000,10000,60000")
    ap.add_argument("--seeds", type=int, default=3, help="seeds for sizes below 60,000")
    ap.add_argument("--layers", default="1000,1000,1000")
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--finetune-epochs", type=int, default=30)
    ap.add_argument("--out", default="benchmarks/results/pretraining")
    ap.add_argument("--part", default="table", choices=["table", "best"])
    ap.add_argument("--best-pretrain-epochs", type=int, default=3, help="per layer, for --part best")
    ap.add_argument("--best-finetune-epochs", type=int, default=40,
                    help="epochs per fine-tuning stage, for --part best")
    ap.add_argument("--shift", type=int, default=2,
                    help="for --part best: random shifts of up to this many pixels (0: no augmentation)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="auto", help="for --part best: where to train")
    ap.add_argument("--compile", default="off", choices=["off", "on"], help="for --part best: torch.compile the step")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"], help="for --part best")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_dataset("mnist-mini") if args.quick else load_dataset("mnist", args.data_dir)
    layers = [int(v) for v in args.layers.split(",")]
    if args.part == "best":
        best(args, ds, layers, out)
        return
    pe, fe = (1, 2) if args.quick else (args.pretrain_epochs, args.finetune_epochs)
    n_train = len(ds.split("train"))
    sizes = [min(int(s), n_train) if s != "all" else n_train for s in args.sizes.split(",")]
    methods = {"random init": None, "greedy AE": ("greedy", None), "greedy denoising AE": ("greedy", "masking:0.25"),
               "end-to-end AE": ("end-to-end", None)}
    pre_dirs, pre_secs = {}, {}
    for name, spec in methods.items():
        if spec is None:
            continue
        t0 = time.perf_counter()
        d = out / "runs" / name.replace(" ", "-")
        if d.exists():  # a fresh run each time (a run folder is never overwritten in place)
            shutil.rmtree(d)
        aekit.pretrain(layers, spec[0], spec[1], out=d, dataset=ds, epochs=pe, batch_size=128, lr=1e-3)
        pre_dirs[name], pre_secs[name] = d, round(time.perf_counter() - t0, 1)
        print(f"pre-trained {name} in {pre_secs[name]}s", flush=True)
    # random init uses the greedy run's architecture, freshly initialised
    pre_dirs["random init"], pre_secs["random init"] = pre_dirs["greedy AE"], 0.0
    cells = []
    for size in sizes:
        seeds = range(args.seeds if size < n_train else 1)
        for name in methods:
            errs, secs = [], []
            for seed in seeds:
                s = aekit.finetune(pre_dirs[name], labels=size, stage="both",
                                   init="random" if name == "random init" else "pretrained", epochs=fe,
                                   batch_size=128 if size >= 1000 else 32, lr=1e-3, patience=5, seed=seed, dataset=ds)
                errs.append(s["test_error_percent"])
                secs.append(s["seconds"])
            cell = {"labels": size, "method": name, "errors": errs, "mean": statistics.mean(errs),
                    "std": statistics.stdev(errs) if len(errs) > 1 else 0.0, "finetune_seconds": statistics.mean(secs),
                    "pretrain_seconds": pre_secs[name]}
            cells.append(cell)
            print(f"{size:>6} labels  {name:<20} {cell['mean']:6.2f} +- {cell['std']:.2f} %  "
                  f"({cell['finetune_seconds']:.0f}s fine-tuning)", flush=True)
    print(f"\n{'labels':>7} | " + " | ".join(f"{m:>22}" for m in methods))
    for size in sizes:
        row = [c for c in cells if c["labels"] == size]
        print(f"{size:>7} | " + " | ".join(f"{c['mean']:>13.2f} +- {c['std']:.2f}%" for c in row))
    print("\npublished anchors (all 60,000 labels):")
    for text, err in ANCHORS:
        print(f"  {err:.2f}%  {text}")
    (out / "pretraining.json").write_text(json.dumps({"config": vars(args), "cells": cells,
                                                      "anchors": ANCHORS}, indent=2) + "\n")
    _plot(cells, list(methods), out / "pretraining.png")
    print(f"wrote {out / 'pretraining.json'} and {out / 'pretraining.png'}")


def best(args: argparse.Namespace, ds: Any, layers: list[int], out: Path) -> None:
    """All labels: greedy denoising pre-training, then both fine-tuning steps, timed together."""
    pe, fe = (1, 2) if args.quick else (args.best_pretrain_epochs, args.best_finetune_epochs)
    t0 = time.perf_counter()
    pre = out / "runs" / f"best-greedy-dae-shift{args.shift}"
    if pre.exists():
        shutil.rmtree(pre)
    how = {"device": args.device, "compile": args.compile, "precision": args.precision}
    aekit.pretrain(layers, "greedy", "masking:0.25", out=pre, dataset=ds, epochs=pe, batch_size=128, lr=1e-3, **how)
    t_pre = time.perf_counter() - t0
    print(f"pre-trained {'-'.join(map(str, layers))} (greedy, masking:0.25, {pe} epochs a layer) in {t_pre:.0f}s",
          flush=True)
    ft = out / "runs" / f"best-finetuned-shift{args.shift}"
    if ft.exists():
        shutil.rmtree(ft)
    s = aekit.finetune(pre, labels="all", stage="both", epochs=fe, batch_size=128, lr=1e-3, patience=10, seed=0,
                       dropout=0.2, shift=args.shift, schedule="cosine", dataset=ds, out=ft, **how)
    total = time.perf_counter() - t0
    res = {"test_error_percent": s["test_error_percent"], "pretrain_seconds": round(t_pre, 1),
           "finetune_seconds": s["seconds"], "total_seconds": round(total, 1), "stages": s["stages"],
           "labels": s["labels"], "recipe": {"layers": layers, "pretrain": "greedy masking:0.25",
                                             "pretrain_epochs": pe, "finetune_epochs": fe, "dropout": 0.2,
                                             "shift": args.shift, "schedule": "cosine", "lr": 1e-3, "batch_size": 128},
           **how}
    print(f"\nall {s['labels']} labels: test error {s['test_error_percent']:.2f}% in {total / 60:.1f} min "
          f"(pre-training {t_pre:.0f}s, fine-tuning {s['seconds']:.0f}s)")
    for text, err in ANCHORS:
        print(f"  {err:.2f}%  {text}")
    name = "pretraining-best.json" if args.shift else "pretraining-best-noshift.json"
    (out / name).write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out / name}")


def _plot(cells: list[dict], methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in methods:
        row = sorted((c for c in cells if c["method"] == m), key=lambda c: c["labels"])
        ax.errorbar([c["labels"] for c in row], [c["mean"] for c in row], yerr=[c["std"] for c in row],
                    marker="o", capsize=3, label=m)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("labelled training images")
    ax.set_ylabel("test error (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")


if __name__ == "__main__":
    main()

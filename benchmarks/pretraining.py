"""When does autoencoder pre-training help? MNIST test error (%) for
{random init, greedy AE, greedy denoising AE, end-to-end AE} x labelled training set sizes,
mean +- std over seeds for the small sizes, each cell's wall time, published anchors alongside.

Each pre-training runs once on all (unlabelled) training images; each cell then fine-tunes in the
lecture's two steps (``stage="both"``: the softmax layer on the frozen encoder, then everything).
Random init trains the same network from scratch with the same fine-tuning budget.

``--part best`` runs the all-labels recipe instead: greedy denoising pre-training of
784-1000-1000-1000, then the two fine-tuning steps with dropout, random 2-pixel shifts of the
training images (``--shift 0``: none) and a cosine learning rate; it reports the test error and the
total wall time (pre-training and fine-tuning together) against its goal (1.10% without shifts, 0.80%
with them) and writes ``pretraining-best.json`` (``pretraining-best-noshift.json``).

``--part conv`` does the same with a convolutional encoder: ``configs/pretrain-conv.toml`` pre-trains a
denoising conv autoencoder on the unlabelled images, then both fine-tuning steps with dropout and a cosine
schedule, without shifts and with ``--shift``, beside the same network from a random start on the same
budget; it writes ``pretraining-conv.json`` (the anchors are fully connected networks: the row says so).
``--conv-seeds 1,2 --conv-inits pretrained --reuse`` adds seeds to it (rows from earlier calls are kept).

``--part mae`` fine-tunes a masked autoencoder (a run of ``configs/mae-mnist.toml``, ``--mae-run``)
with the table's fine-tuning settings at 100, 1,000 and all labels, 3 seeds each, beside the same ViT
from a random start, and writes ``pretraining-mae.json``. ``--part summary`` trains nothing: it prints
the lecture's table with the MAE rows and the goals with their verdicts from the JSON files.

    python benchmarks/pretraining.py --data-dir ../shared/datasets/mnist [--sizes 100,1000,10000,60000]
    python benchmarks/pretraining.py --data-dir ../shared/datasets/mnist --part best [--shift 0]
    python benchmarks/pretraining.py --data-dir ../shared/datasets/mnist --part conv [--conv-seeds 0,1,2]
    aekit train --config mae-mnist --data-dir ../shared/datasets/mnist \
        --out benchmarks/results/pretraining/runs/mae-mnist
    python benchmarks/pretraining.py --data-dir ../shared/datasets/mnist --part mae
    python benchmarks/pretraining.py --part summary
    python benchmarks/pretraining.py --quick     # mnist-mini, tiny budgets: a smoke run, into results/pretraining-quick
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
# The goals for all labels (test error, %): without augmentation (the CAE's 1.14% beaten), and with it.
GOALS = {0: 1.10, 2: 0.80}
TABLE_SIZES, MAE_SIZES = "100,1000,10000,60000", "100,1000,all"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared/datasets/mnist"))
    ap.add_argument("--sizes", help=f"labelled sizes (default {TABLE_SIZES}; --part mae: {MAE_SIZES})")
    ap.add_argument("--seeds", type=int, default=3, help="seeds for sizes below 60,000")
    ap.add_argument("--layers", default="1000,1000,1000")
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--finetune-epochs", type=int, default=30)
    ap.add_argument("--out", help="folder (default benchmarks/results/pretraining; pretraining-quick with --quick, "
                                  "so that a smoke run never replaces measured results)")
    ap.add_argument("--part", default="table", choices=["table", "best", "conv", "mae", "summary"])
    ap.add_argument("--mae-run", default="benchmarks/results/pretraining/runs/mae-mnist",
                    help="for --part mae: the masked autoencoder's run folder")
    ap.add_argument("--mae-inits", default="pretrained,random",
                    help="for --part mae: from the MAE's weights, and the same ViT from a random start")
    ap.add_argument("--best-pretrain-epochs", type=int, default=3, help="per layer, for --part best")
    ap.add_argument("--best-finetune-epochs", type=int, default=40,
                    help="epochs per fine-tuning stage, for --part best")
    ap.add_argument("--best-dropout", type=float, default=0.2, help="for --part best: dropout after each hidden layer")
    ap.add_argument("--best-weight-decay", type=float, default=0.0, help="for --part best: the fine-tuning's")
    ap.add_argument("--shift", type=int, default=2,
                    help="for --part best: random shifts of up to this many pixels (0: no augmentation); "
                         "--part conv runs without and with them")
    ap.add_argument("--conv-finetune-epochs", type=int, default=25, help="epochs per fine-tuning stage, --part conv")
    ap.add_argument("--conv-dropout", type=float, default=0.2, help="for --part conv")
    ap.add_argument("--conv-seeds", default="0", help="for --part conv: fine-tuning seeds (e.g. 0,1,2)")
    ap.add_argument("--conv-inits", default="pretrained,random", help="for --part conv")
    ap.add_argument("--conv-shifts", help="for --part conv: the shifts to run (default 0 and --shift)")
    ap.add_argument("--reuse", action="store_true", help="for --part conv: keep a finished pre-training run")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="auto", help="for --part best: where to train")
    ap.add_argument("--compile", default="off", choices=["off", "on"], help="for --part best: torch.compile the step")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"], help="for --part best")
    args = ap.parse_args()
    out = Path(args.out or ("benchmarks/results/pretraining-quick" if args.quick else "benchmarks/results/pretraining"))
    out.mkdir(parents=True, exist_ok=True)
    if args.part == "summary":
        summary(out)
        return
    ds = load_dataset("mnist-mini") if args.quick else load_dataset("mnist", args.data_dir)
    layers = [int(v) for v in args.layers.split(",")]
    if args.part == "best":
        best(args, ds, layers, out)
        return
    if args.part == "mae":
        mae(args, ds, out)
        return
    if args.part == "conv":
        conv(args, ds, out)
        return
    pe, fe = (1, 2) if args.quick else (args.pretrain_epochs, args.finetune_epochs)
    n_train = len(ds.split("train"))
    sizes = [min(int(s), n_train) if s != "all" else n_train for s in (args.sizes or TABLE_SIZES).split(",")]
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
                       dropout=args.best_dropout, weight_decay=args.best_weight_decay, shift=args.shift,
                       schedule="cosine", dataset=ds, out=ft, **how)
    total = time.perf_counter() - t0
    res = {"test_error_percent": s["test_error_percent"], "pretrain_seconds": round(t_pre, 1),
           "finetune_seconds": s["seconds"], "total_seconds": round(total, 1), "stages": s["stages"],
           "labels": s["labels"], "recipe": {"layers": layers, "pretrain": "greedy masking:0.25",
                                             "pretrain_epochs": pe, "finetune_epochs": fe, "dropout": args.best_dropout,
                                             "weight_decay": args.best_weight_decay,
                                             "shift": args.shift, "schedule": "cosine", "lr": 1e-3, "batch_size": 128},
           **how}
    goal = GOALS.get(args.shift)
    res["goal_percent"], res["verdict"] = goal, verdict(s["test_error_percent"], goal)
    print(f"\nall {s['labels']} labels: test error {s['test_error_percent']:.2f}% in {total / 60:.1f} min "
          f"(pre-training {t_pre:.0f}s, fine-tuning {s['seconds']:.0f}s); goal {goal}%: {res['verdict']}")
    for text, err in ANCHORS:
        print(f"  {err:.2f}%  {text}")
    name = "pretraining-best.json" if args.shift else "pretraining-best-noshift.json"
    (out / name).write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out / name}")


def conv(args: argparse.Namespace, ds: Any, out: Path) -> None:
    """All labels with a convolutional encoder: the denoising conv autoencoder of configs/pretrain-conv.toml
    pre-trained once, then fine-tuned (both steps, dropout, cosine) without shifts and with ``--shift``
    (``--conv-shifts``), beside the same network from a random start with the same fine-tuning budget,
    for each of ``--conv-seeds``. Rows of other seeds, inits or shifts from an earlier call are kept."""
    pre, t_pre = pretrained_conv(args, ds, out)
    fe = 1 if args.quick else args.conv_finetune_epochs
    shifts = sorted({int(v) for v in args.conv_shifts.split(",")}) if args.conv_shifts else sorted({0, args.shift})
    rows = []
    for shift in shifts:
        for init in args.conv_inits.split(","):
            for seed in (int(v) for v in args.conv_seeds.split(",")):
                ft = out / "runs" / (f"conv-{init}-shift{shift}" + ("" if seed == 0 else f"-seed{seed}"))
                if ft.exists():
                    shutil.rmtree(ft)
                s = aekit.finetune(pre, labels="all", stage="both", init=init, epochs=fe, batch_size=128, lr=1e-3,
                                   patience=10, seed=seed, dropout=args.conv_dropout, shift=shift, schedule="cosine",
                                   dataset=ds, out=ft, progress=False)
                rows.append({"init": init, "shift": shift, "seed": seed, "test_error_percent": s["test_error_percent"],
                             "finetune_seconds": s["seconds"],
                             "pretrain_seconds": t_pre if init == "pretrained" else 0.0, "labels": s["labels"]})
                print(f"  {init:<10} shifts {shift}, seed {seed}: {s['test_error_percent']:.2f}% "
                      f"({s['seconds']:.0f}s fine-tuning)", flush=True)
    path = out / "pretraining-conv.json"
    old = json.loads(path.read_text())["rows"] if path.is_file() and not args.quick else []
    key = lambda r: (r["init"], r["shift"], r.get("seed", 0))  # noqa: E731
    new = {key(r) for r in rows}
    rows = sorted([r for r in old if key(r) not in new] + rows, key=key)
    res = {"config": vars(args), "recipe": "configs/pretrain-conv.toml", "pretrain_seconds": t_pre,
           "finetune": {"epochs_per_stage": fe, "dropout": args.conv_dropout, "lr": 1e-3, "batch_size": 128,
                        "schedule": "cosine", "stage": "both"}, "rows": rows}
    path.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {path}")
    summary(out)


def pretrained_conv(args: argparse.Namespace, ds: Any, out: Path) -> tuple[Path, float]:
    """The run of configs/pretrain-conv.toml in OUT/runs/pretrain-conv (kept with ``--reuse`` where its
    settings match) and its training time."""
    from family import same_settings  # the check family.py's --reuse makes (a sibling script)

    from aekit.config import apply_overrides, load_config

    pre = out / "runs" / "pretrain-conv"
    done = pre / "summary.json"
    over = {"train.epochs": 1, "train.max_steps": 20} if args.quick else {}
    want = apply_overrides(load_config(ROOT / "configs/pretrain-conv.toml"), dict(over))
    if args.reuse and done.is_file() and same_settings(pre, want):
        print(f"(reusing the finished pre-training in {pre})")
    else:
        if pre.exists():
            shutil.rmtree(pre)
        aekit.train(want, pre, dataset=ds, progress=False)
    t_pre = json.loads(done.read_text())["train_seconds"]
    print(f"pre-trained the conv denoising autoencoder in {t_pre:.0f}s", flush=True)
    return pre, t_pre


def verdict(err: float, goal: float | None) -> str:
    if goal is None:
        return "no goal at this shift"
    return "met" if err <= goal else f"short: {err:.2f}% > {goal:.2f}%"


def mae(args: argparse.Namespace, ds: Any, out: Path) -> None:
    """The masked autoencoder's row: its encoder fine-tuned with the table's settings (both steps,
    ``--finetune-epochs``, patience 5, batch 32 below 1,000 labels), and the same ViT from a random start."""
    pre = Path(args.mae_run)
    info = json.loads((pre / "summary.json").read_text())
    fe = 2 if args.quick else args.finetune_epochs
    sizes = [s if s == "all" else int(s) for s in (args.sizes or MAE_SIZES).split(",")]
    cells = []
    for size in sizes:
        for init in args.mae_inits.split(","):
            errs, secs, n = [], [], 0
            for seed in range(args.seeds):
                s = aekit.finetune(pre, labels=size, stage="both", init=init, epochs=fe,
                                   batch_size=32 if size != "all" and size < 1000 else 128, lr=1e-3, patience=5,
                                   seed=seed, dataset=ds)
                errs.append(s["test_error_percent"])
                secs.append(s["seconds"])
                n = s["labels"]
                print(f"  {size} labels, MAE {init}, seed {seed}: {errs[-1]:.2f}% ({secs[-1]:.0f}s)", flush=True)
            cell = {"labels": n, "method": "MAE" if init == "pretrained" else "ViT, random init", "errors": errs,
                    "mean": statistics.mean(errs), "std": statistics.stdev(errs) if len(errs) > 1 else 0.0,
                    "finetune_seconds": statistics.mean(secs),
                    "pretrain_seconds": info.get("train_seconds", 0.0) if init == "pretrained" else 0.0}
            cells.append(cell)
            print(f"{n:>6} labels  {cell['method']:<18} {cell['mean']:6.2f} +- {cell['std']:.2f} %  "
                  f"({cell['finetune_seconds']:.0f}s fine-tuning a seed)", flush=True)
    # Cells of other sizes or inits from an earlier call are kept (the costly all-labels cells run apart).
    path = out / "pretraining-mae.json"
    old = json.loads(path.read_text())["cells"] if path.is_file() else []
    new = {(c["labels"], c["method"]) for c in cells}
    cells = [c for c in old if (c["labels"], c["method"]) not in new] + cells
    res = {"config": vars(args), "mae_run": str(pre), "pretrain_seconds": info.get("train_seconds"),
           "pretrain_epochs": info.get("epochs_run"), "cells": sorted(cells, key=lambda c: (c["labels"], c["method"]))}
    path.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out / 'pretraining-mae.json'}")
    summary(out)


def summary(out: Path) -> None:
    """The lecture's table with the MAE rows, and the all-label goals with their verdicts, from the
    JSON files the other parts wrote (nothing is trained)."""
    table = json.loads((out / "pretraining.json").read_text())["cells"] if (out / "pretraining.json").is_file() else []
    mae_path = out / "pretraining-mae.json"
    table += json.loads(mae_path.read_text())["cells"] if mae_path.is_file() else []
    methods = list(dict.fromkeys(c["method"] for c in table))
    sizes = sorted({c["labels"] for c in table})
    print("MNIST test error (%), mean +- std over seeds, by labelled training images "
          "(the largest size: all labels, the training split less its validation part)")
    print(f"{'method':<22} | " + " | ".join(f"{n:>15}" for n in sizes) + " | pre-training")
    for m in methods:
        row = {c["labels"]: c for c in table if c["method"] == m}
        cells = [f"{row[n]['mean']:6.2f} +- {row[n]['std']:.2f}" if n in row else "not run" for n in sizes]
        pre = max(c["pretrain_seconds"] for c in row.values())
        print(f"{m:<22} | " + " | ".join(f"{c:>15}" for c in cells) + f" | {pre:.0f}s")
    print("\nall labels, the best recipe (greedy denoising 784-1000-1000-1000, dropout, cosine):")
    print(f"{'augmentation':<28} | {'test error':>10} | {'time':>8} | {'goal':>6} | verdict")
    for shift, name in ((0, "pretraining-best-noshift.json"), (2, "pretraining-best.json")):
        path = out / name
        if not path.is_file():
            print(f"{f'shifts up to {shift} px' if shift else 'none':<28} | {'not run':>10} | | {GOALS[shift]:>5}% |")
            continue
        r = json.loads(path.read_text())
        err = r["test_error_percent"]
        label = f"random shifts up to {shift} px" if shift else "none"
        print(f"{label:<28} | {err:>9.2f}% | {r['total_seconds'] / 60:>6.1f}m | {GOALS[shift]:>5}% | "
              f"{verdict(err, GOALS[shift])}")
    conv_path = out / "pretraining-conv.json"
    if conv_path.is_file():
        conv_summary(json.loads(conv_path.read_text())["rows"])
    print("\npublished anchors (all 60,000 labels):")
    for text, err in ANCHORS:
        print(f"  {err:.2f}%  {text}")


def conv_summary(rows: list[dict]) -> None:
    """The convolutional encoder's rows: mean +- std over the seeds run, pre-trained and from a random start."""
    print("\nall labels, a convolutional encoder (configs/pretrain-conv.toml; the anchors below are fully "
          "connected networks), mean +- std over the seeds run:")
    print(f"{'augmentation':<26} | {'pre-trained':>20} | {'random init':>20} | {'time':>6} | {'goal':>5} | verdict")
    for shift in sorted({r["shift"] for r in rows}):
        cell = {}
        for init in ("pretrained", "random"):
            errs = [r["test_error_percent"] for r in rows if r["shift"] == shift and r["init"] == init]
            sd = statistics.stdev(errs) if len(errs) > 1 else 0.0
            cell[init] = (f"{statistics.mean(errs):.2f} +- {sd:.2f}% ({len(errs)})" if errs else "not run", errs)
        p = [r for r in rows if r["shift"] == shift and r["init"] == "pretrained"]
        mins = (p[0]["pretrain_seconds"] + statistics.mean(r["finetune_seconds"] for r in p)) / 60 if p else 0.0
        goal = GOALS.get(shift)
        judged = verdict(statistics.mean(cell["pretrained"][1]), goal) if p else ""
        label = f"random shifts up to {shift} px" if shift else "none"
        print(f"{label:<26} | {cell['pretrained'][0]:>20} | {cell['random'][0]:>20} | {mins:>5.1f}m | "
              f"{goal if goal is not None else '':>5} | {judged}")


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

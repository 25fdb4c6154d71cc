"""Denoising and infilling against the strongest classical methods (issue 24, parts 2 and 3): the
tables with their goal column and a verdict.

Denoising: for each noise, a denoising autoencoder's run given on the command line against every
baseline of ``aekit denoise`` (median 3x3, median with its window chosen, Gaussian blur, PCA
projection, BM3D, non-local means, total variation; each setting chosen on the validation split),
the best of them, the margin and the verdict against the goal (+4 dB PSNR). Infilling: each
``--infill`` model's fill of the centre 14x14 square, rows 10 to 18 and a random half of the pixels
(or of the one mask given with it) against the mean-image, nearest, biharmonic and Telea fills (PSNR
on the missing pixels), in as many passes as ``aekit inpaint`` makes for that run by default; the
same goal for the centre square's best model, the other masks reported. Then the
seconds each baseline took per 1,000 test images, wall clock and CPU (the CPU time does not depend
on what else the machine runs).

    python benchmarks/denoising.py --data-dir DIR \\
        --dae gaussian:0.5=runs/dae-g05 --dae masking:0.5=runs/dae-m05 \\
        --dae salt-pepper:0.2=runs/dae-sp02 --dae salt-pepper:0.3=runs/dae-sp03 \\
        --infill center:14=runs/infill-center-14 --infill runs/inpaint-block14 \\
        --infill benchmarks/results/pretraining/runs/mae-mnist [--limit-test N]

``--dae DIR`` (no noise) scores one run at every noise. A noise without a run is a row that says so.
``--limit-test N`` scores the first N test images only (a quick check; its JSON goes to
``denoising-quick.json`` unless ``--out`` says otherwise).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from aekit.io import write_json
from aekit.run import open_run
from aekit.tasks import classical
from aekit.tasks.denoise import DENOISERS, denoise_report
from aekit.tasks.inpaint import FILLS, default_passes, inpaint_report

ROOT = Path(__file__).resolve().parents[1]
NOISES = ("gaussian:0.5", "masking:0.5", "salt-pepper:0.2", "salt-pepper:0.3")  # 0.3: the README's level
MASKS = ("center:14", "rows:10-18", "random:0.5")
GOAL_MASKS = ("center:14",)  # the goal is set for the centre square; the other masks are reported
SHORT = {"median3x3": "median 3x3", "median": "median", "gaussian_blur": "blur", "pca_projection": "PCA",
         "bm3d": "BM3D", "nl_means": "NLM", "total_variation": "TV", "mean_image": "mean",
         "nearest_observed": "nearest", "biharmonic": "biharmonic", "telea": "Telea"}


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    cells = [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    print(f"\n## {title}\n")
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in cells:
        print(" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)), flush=True)


def _fmt(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, float) else "" if v is None else str(v)


def signed(db: float | None) -> str | None:
    return None if db is None else f"{db:+.2f}"


def verdict(margin: float | None, goal: float) -> str:
    if margin is None:
        return "no run"
    return "met" if margin >= goal else f"short by {goal - margin:.2f} dB"


def splits(run_dir: str, data: str | None, data_dir: str | None, limit: int | None) -> tuple[Any, ...]:
    """The run's model and its train, validation and (first ``limit``) test images."""
    o = open_run(run_dir, ("autoencoder", "pretrain"))
    test = o.split("test", data, data_dir).x
    return (o.model, o.split("train", data, data_dir).x, o.split("val", data, data_dir).x,
            test[:limit] if limit else test, o.config().to_dict())


def per_1000(report: dict[str, Any], name: str) -> tuple[float, float]:
    """A baseline's wall-clock and CPU seconds per 1,000 test images (applying its chosen setting)."""
    s, n = report["seconds"][name], report["n"] / 1000
    return s["apply"] / n, s["apply_cpu"] / n


def denoising(args: argparse.Namespace, runs: dict[str, str]) -> list[dict[str, Any]]:
    if not runs:
        print("(no --dae run: the denoising table is not made)")
        return []
    rows, table = [], []
    for noise in NOISES:
        if noise not in runs:
            rows.append({"noise": noise, "run": None})
            table.append([noise, *[None] * (len(DENOISERS) + 4), args.goal_db, "no run"])
            continue
        t0 = time.perf_counter()
        model, train_x, val_x, test_x, config = splits(runs[noise], args.data, args.data_dir, args.limit_test)
        r = denoise_report(model, train_x, val_x, test_x, noise)
        r.update(run=runs[noise], recipe=config, seconds_total=round(time.perf_counter() - t0, 1))
        r["verdict"] = verdict(r["gain_db"], args.goal_db)
        rows.append(r)
        b = r["baselines"]
        table.append([noise, r["psnr_noisy"], *[b[n]["psnr"] if n in b else "skipped" for n in DENOISERS],
                      SHORT.get(r["best_baseline"], r["best_baseline"]), r["psnr_autoencoder"], signed(r["gain_db"]),
                      signed(args.goal_db), r["verdict"]])
        print(f"({noise}: {r['seconds_total']:.0f} s, {r['n']} test images)", flush=True)
    print_table(f"Denoising: PSNR (dB) on {rows_n(rows)} test images; goal: the DAE beats the best baseline by "
                f"{args.goal_db:+.1f} dB",
                ["noise", "noisy", *[SHORT[n] for n in DENOISERS], "best baseline", "DAE", "margin", "goal",
                 "verdict"], table)
    return rows


def infilling(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each ``--infill`` run on the masks it is given (every mask, or ``MASK=DIR``'s one); the verdict of
    a mask goes to its best model."""
    if not args.infill:
        print("\n(no --infill run: the infilling table is not made)")
        return []
    rows, table = [], []
    for run, masks in parse_infill(args.infill).items():
        model, train_x, val_x, test_x, config = splits(run, args.data, args.data_dir, args.limit_test)
        iters = args.iters or default_passes(config["train"]["noise"])  # aekit inpaint's default for the run
        for mask in masks:
            t0 = time.perf_counter()
            r = inpaint_report(model, train_x, test_x, mask, iters=iters, start=args.start, val_x=val_x)
            r.update(run=run, recipe=config, seconds_total=round(time.perf_counter() - t0, 1))
            rows.append(r)
            print(f"({mask}, {run}: {r['seconds_total']:.0f} s)", flush=True)
    for mask in MASKS:
        of_mask = [r for r in rows if r["mask"] == mask]
        best = max(of_mask, key=lambda r: r["gain_db"], default=None)
        for r in of_mask:
            r["verdict"] = ("(not the best model)" if r is not best else verdict(r["gain_db"], args.goal_db)
                            if mask in GOAL_MASKS else "(reported; no goal)")
            b = r["baselines"]
            table.append([mask, f"{100 * r['missing_fraction']:.0f}%", Path(r["run"]).name, r["passes"],
                          r["psnr_autoencoder"], *[b.get(n, "skipped") for n in FILLS],
                          r["settings"].get("telea", {}).get("radius"),
                          SHORT.get(r["best_baseline"], r["best_baseline"]), signed(r["gain_db"]),
                          signed(args.goal_db), r["verdict"]])
    print_table(f"Infilling: PSNR (dB) on the missing pixels of {rows_n(rows)} test images, from the {args.start} "
                f"image; goal: the best model beats the best fill by {args.goal_db:+.1f} dB",
                ["mask", "missing", "model (run)", "passes", "PSNR", *[SHORT[n] for n in FILLS], "Telea radius",
                 "best baseline", "margin", "goal", "verdict"], table)
    return rows


def first_per_mask(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row a mask (the baselines' times; every run's row of a mask repeats them)."""
    first: dict[str, dict[str, Any]] = {}
    for r in rows:
        first.setdefault(r["mask"], r)
    return list(first.values())


def parse_infill(values: list[str]) -> dict[str, list[str]]:
    """``DIR`` (scored on every mask) or ``MASK=DIR`` (on that mask), each as often as wanted."""
    runs: dict[str, list[str]] = {}
    for v in values:
        mask, sep, run = v.partition("=")
        if not sep:
            runs.setdefault(v, []).extend(m for m in MASKS if m not in runs.get(v, []))
        elif mask not in MASKS:
            raise SystemExit(f"--infill {v}: the mask must be one of {', '.join(MASKS)}")
        elif mask not in runs.setdefault(run, []):
            runs[run].append(mask)
    return runs


def rows_n(rows: list[dict[str, Any]]) -> str:
    ns = sorted({r["n"] for r in rows if "n" in r})
    return ", ".join(f"{n:,}" for n in ns) or "no"


def timing(rows: list[dict[str, Any]], names: tuple[str, ...], key: str, what: str) -> dict[str, dict[str, Any]]:
    """Seconds per 1,000 images of each baseline in each row (wall / CPU), and the choice's seconds."""
    done = [r for r in rows if "seconds" in r]
    out: dict[str, dict[str, Any]] = {}
    table = []
    for name in names:
        cells, per = [], {}
        for r in done:
            if name in r["seconds"]:
                wall, cpu = per_1000(r, name)
                per[r[key]] = {"wall_s_per_1000": round(wall, 3), "cpu_s_per_1000": round(cpu, 3),
                               "choose_s": r["seconds"][name]["choose"]}
                cells.append(f"{wall:.2f} / {cpu:.2f} (+{r['seconds'][name]['choose']:.1f})")
            else:
                cells.append("skipped")
        out[name] = per
        table.append([SHORT[name], *cells])
    if done:
        print_table(f"{what}: seconds per 1,000 test images, wall / CPU (+ seconds to choose the setting on "
                    f"validation images), {classical.workers()} thread(s)",
                    ["baseline", *[r[key] for r in done]], table)
    return out


def parse_runs(values: list[str]) -> dict[str, str]:
    """``NOISE=DIR`` pairs, or one ``DIR`` for every noise."""
    runs: dict[str, str] = {}
    for v in values:
        noise, sep, run = v.partition("=")
        if not sep:
            runs.update(dict.fromkeys(NOISES, v))
        elif noise not in NOISES:
            raise SystemExit(f"--dae {v}: the noise must be one of {', '.join(NOISES)}")
        else:
            runs[noise] = run
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dae", action="append", default=[], metavar="NOISE=DIR",
                    help=f"a denoising autoencoder's run for one noise ({', '.join(NOISES)}); DIR alone: every noise")
    ap.add_argument("--infill", action="append", default=[], metavar="[MASK=]DIR",
                    help="an infilling model's run, scored on every mask (" + ", ".join(MASKS) + ") or on MASK; "
                    "as often as wanted")
    ap.add_argument("--data", help="the dataset (default: each run's own)")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared/datasets/mnist"))
    ap.add_argument("--limit-test", type=int, metavar="N", help="score only the first N test images (a quick check)")
    ap.add_argument("--iters", type=int, help="infilling passes (default: aekit inpaint's for each run: 20, "
                    "or 1 for a run trained with center:S)")
    ap.add_argument("--start", default="mean", choices=("mean", "zeros"), help="infilling's first guess")
    ap.add_argument("--goal-db", type=float, default=4.0)
    ap.add_argument("--out", help="JSON (default benchmarks/results/denoising.json, or denoising-quick.json "
                    "with --limit-test)")
    args = ap.parse_args()
    if args.limit_test is not None and args.limit_test < 1:
        raise SystemExit("--limit-test takes a number of images, at least 1")
    runs = parse_runs(args.dae)
    out = Path(args.out or ROOT / "benchmarks/results" / ("denoising-quick.json" if args.limit_test else
                                                          "denoising.json"))
    t0, load0 = time.perf_counter(), os.getloadavg()
    den = denoising(args, runs)
    inf = infilling(args)
    seconds = {"denoising": timing(den, DENOISERS, "noise", "Denoising baselines"),
               "infilling": timing(first_per_mask(inf), FILLS, "mask", "Infilling baselines")}
    skipped = {n: p for r in den + inf for n, p in r.get("skipped", {}).items()}
    if skipped:
        print("\n" + classical.skipped_line(skipped))
    result = {"config": vars(args), "goal_db": args.goal_db, "denoising": den, "infilling": inf,
              "seconds_per_1000": seconds, "threads": classical.workers(), "cpus": os.cpu_count(),
              "load_average": {"start": load0, "end": os.getloadavg()},
              "wall_seconds": round(time.perf_counter() - t0, 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    print(f"\n{result['wall_seconds']:.0f} s in all; wrote {out}")


if __name__ == "__main__":
    main()

"""The lecture pages' figures: small runs on ``mnist-mini`` (shipped, offline) through aekit's CLI and API.

    AEKIT_THREADS=1 python scripts/docs_figures.py              # every figure, a few minutes on 2 cores
    AEKIT_THREADS=1 python scripts/docs_figures.py --only blending,denoising

Each run is an ``aekit`` command with its run folder under ``runs/docs/`` (emptied first, so a rerun starts
afresh and gives the same pictures on the same machine); each figure is written to ``docs/figures/``,
either by an aekit command (``aekit reconstruct``, ``denoise``, ``inpaint``, ``interpolate``,
``latent-map``, ``sample``, ``traverse``) or, where a page compares several runs, drawn here from
the runs through the Python API. Every command is printed as it runs, and the lecture pages show the
same commands next to each figure. The runs are small (seconds each) so the whole script takes minutes:
the pictures show what each idea does, and the full-size figures are on the benchmarks page.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNS = Path("runs/docs")  # relative to ROOT, as the pages write them
FIGURES = Path("docs/figures")
DATA = ["--data", "mnist-mini"]
DEMO = ["--epochs", "40", "--batch-size", "64", "--lr", "5e-3", "--schedule", "cosine"]  # aekit demo's settings
OVER = ["--layers", "", "--code", "1000", "--epochs", "10", "--lr", "3e-3"]  # overcomplete: 784-1000-784

# The training commands, by run name: `aekit train ...` (or pretrain / finetune) with `--out runs/docs/NAME`.
TRAIN: dict[str, list[str]] = {
    "simplest": ["demo"],  # 784-32-784 on mnist-mini, 40 epochs in batches of 64, lr 5e-3 on a cosine schedule
    "code2-shallow": ["train", *DATA, "--layers", "", "--code", "2", *DEMO],
    "code8-shallow": ["train", *DATA, "--layers", "", "--code", "8", *DEMO],
    "linear16": ["train", *DATA, "--model", "linear", "--code", "16", "--epochs", "100", "--lr", "1e-2",
                 "--schedule", "cosine"],
    "plane-linear": ["train", "--data", "synthetic:plane", "--model", "linear", "--code", "2", "--epochs", "30",
                     "--lr", "1e-2"],
    "plane-mlp": ["train", "--data", "synthetic:plane", "--layers", "32,32", "--activation", "tanh",
                  "--code", "2", "--epochs", "30"],
    "curve-linear": ["train", "--data", "synthetic:curve", "--model", "linear", "--code", "2", "--epochs", "30",
                     "--lr", "1e-2"],
    "curve-mlp": ["train", "--data", "synthetic:curve", "--layers", "32,32", "--activation", "tanh",
                  "--code", "2", "--epochs", "30"],
    "deep": ["train", *DATA, "--layers", "512,128", "--code", "32", *DEMO],
    "conv": ["train", *DATA, "--model", "conv", "--channels", "16,32", "--code", "32", "--epochs", "8"],
    "over-none": ["train", *DATA, *OVER],
    "over-decay": ["train", *DATA, *OVER, "--weight-decay", "1.0", "--optimizer", "adamw"],
    "over-l1": ["train", *DATA, *OVER, "--sparse", "l1:1e-3"],
    "over-contractive": ["train", *DATA, *OVER, "--contractive", "1e-3"],
    "dae": ["train", *DATA, "--layers", "512", "--code", "64", "--noise", "gaussian:0.5", "--epochs", "15"],
    "code2": ["train", *DATA, "--layers", "512,128", "--code", "2", "--epochs", "20"],
    "infill": ["train", *DATA, "--layers", "512,256", "--code", "64", "--noise", "block:14", "--epochs", "20",
               "--schedule", "cosine"],
    "pre-greedy": ["pretrain", *DATA, "--layers", "500,500", "--mode", "greedy", "--epochs", "3"],
    "pre-greedy-dae": ["pretrain", *DATA, "--layers", "500,500", "--mode", "greedy", "--noise", "masking:0.25",
                       "--epochs", "3"],
    "pre-end-to-end": ["pretrain", *DATA, "--layers", "500,500", "--mode", "end-to-end", "--epochs", "3"],
    "vae": ["train", "--model", "vae", "--data", "mnist-mini-binary", "--code", "16", "--layers", "400",
            "--epochs", "20", "--batch-size", "100"],
    "vae2": ["train", "--model", "vae", "--data", "mnist-mini-binary", "--code", "2", "--layers", "400",
             "--epochs", "40", "--batch-size", "100"],
    "cvae": ["train", "--model", "vae", "--conditional", "--data", "mnist-mini-binary", "--code", "16",
             "--layers", "400", "--epochs", "20", "--batch-size", "100"],
}
FINETUNE_LABELS = (100, 1000)
PRETRAINED = {"random init": "pre-greedy", "greedy AE": "pre-greedy", "greedy denoising AE": "pre-greedy-dae",
              "end-to-end AE": "pre-end-to-end"}
for _labels in FINETUNE_LABELS:
    for _name, _pre in PRETRAINED.items():
        _init = ["--init", "random"] if _name == "random init" else []
        TRAIN[f"ft-{_labels}-{_name.replace(' ', '-')}"] = [
            "finetune", str(RUNS / _pre), "--labels", str(_labels), "--stage", "both", *_init, "--epochs", "10"]


def aekit(*argv: str) -> None:
    """One aekit command, in this process (torch is imported once), printed as a reader would type it."""
    from aekit.cli import main

    print("$ aekit " + shlex.join(argv), flush=True)
    code = main(list(argv))
    if code != 0:
        raise SystemExit(f"aekit {shlex.join(argv)} exited with {code}")


def run(name: str) -> Path:
    """The run folder ``runs/docs/NAME``, trained (with the runs it starts from) when first asked for."""
    out = RUNS / name
    if not (out / "config.json").exists():
        argv = TRAIN[name]
        if argv[0] == "finetune":
            run(Path(argv[1]).name)
        aekit(*argv, "--out", str(out), "--quiet")
    return out


def test_images(n: int, source: str = "mnist-mini") -> np.ndarray:
    """The first ``n`` test images, float32 in [0, 1]."""
    from aekit import load_dataset
    from aekit.metrics import as_float

    return as_float(load_dataset(source, progress=False).test.x[:n])


def sse(model_or_dir: Any) -> float:
    import aekit

    return aekit.evaluate(model_or_dir)["sse_per_image"]


def rows_figure(path: Path, x: np.ndarray, rows: list[tuple[str, np.ndarray]], title: str) -> None:
    from aekit.plots import image_rows

    image_rows([x, *[r for _, r in rows]], tuple(x.shape[1:]), path, labels=["original", *[n for n, _ in rows]],
               title=title)


# -- the figures, by lecture page --------------------------------------------------------------------------------
def bottleneck() -> None:
    aekit("reconstruct", str(run("simplest")), "--n", "16", "--out", str(FIGURES / "simplest-reconstructions.png"))
    shutil.copyfile(run("simplest") / "loss.png", FIGURES / "simplest-loss.png")  # the run's own loss curve
    import aekit as ae

    x = test_images(12)
    rows = [(f"code {c}: {sse(run(n)):.1f}", ae.load(run(n)).reconstruct(x))
            for c, n in ((2, "code2-shallow"), (8, "code8-shallow"), (32, "simplest"))]
    rows_figure(FIGURES / "bottleneck-sizes.png", x, rows, "784-c-784 on mnist-mini: test sse_per_image by code size")


def linear_pca() -> None:
    import aekit as ae
    from aekit.baselines import PCA

    data = ae.load_dataset("mnist-mini", progress=False)
    pca = PCA(16).fit(data.train.x)
    model = ae.load(run("linear16"))
    x = test_images(12)
    pca_sse = ae.baseline_pca(16, "mnist-mini")["sse_per_image"]
    # The linear AE's decoder spans a 16-D subspace of the 784 pixels: compare it with PCA's (principal angles).
    (w,) = [p.detach().double().numpy() for p in model.state_dict().values() if tuple(p.shape) == (784, 16)]
    q, _ = np.linalg.qr(w)
    cos = np.linalg.svd(pca.components_ @ q, compute_uv=False)
    rows = [(f"PCA 16: {pca_sse:.2f}", pca.inverse_transform(pca.transform(x)).reshape(x.shape)),
            (f"linear AE 16: {sse(model):.2f}", model.reconstruct(x))]
    rows_figure(FIGURES / "linear-vs-pca.png", x, rows,
                f"test sse_per_image; mean cos² of the 16 principal angles between the subspaces {np.mean(cos**2):.3f}")

    from aekit.plots import _plt, _save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    names = ["plane", "curve"]
    floor = 0.05**2 * 2 / 4  # the noise off a 2-D surface in R^4 (aekit.data.synthetic.NOISE_STD = 0.05)
    for i, (kind, label) in enumerate((("linear", "linear AE"), ("mlp", "non-linear AE 4-32-32-2"))):
        mse = [ae.evaluate(run(f"{n}-{kind}"))["mse"] / floor for n in names]
        ax.bar(np.arange(2) + (i - 0.5) * 0.38, mse, 0.38, label=label)
        for j, m in enumerate(mse):
            ax.annotate(f"{m:.2f}", (j + (i - 0.5) * 0.38, m), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(2), [f"synthetic:{n}" for n in names])
    ax.set_yscale("log")
    ax.axhline(1, color="grey", lw=0.8, ls="--")
    ax.set_ylabel("test MSE / noise floor")
    ax.set_title("4-D -> 2-D: a plane, and a curved surface")
    ax.legend(fontsize=8)
    _save(fig, FIGURES / "linear-vs-nonlinear.png")


def deep() -> None:
    import aekit as ae

    x = test_images(12)
    rows = [(f"784-32-784: {sse(run('simplest')):.2f}", ae.load(run("simplest")).reconstruct(x)),
            (f"784-512-128-32: {sse(run('deep')):.2f}", ae.load(run("deep")).reconstruct(x))]
    rows_figure(FIGURES / "deep-vs-simplest.png", x, rows, "the same code size, deeper: test sse_per_image")


def convolutional() -> None:
    aekit("reconstruct", str(run("conv")), "--n", "16", "--out", str(FIGURES / "conv-reconstructions.png"))


def regularised() -> None:
    import aekit as ae

    # Test digits with a little Gaussian noise: a network that copies passes the noise on, one that has
    # learnt what digits share removes it. "passed on": the change of the output over the change of the
    # input, in squared error, over 200 test digits (1: all of the noise comes through).
    rng = np.random.default_rng(0)
    clean = test_images(200)
    noisy = np.clip(clean + rng.normal(0, 0.2, clean.shape).astype(np.float32), 0, 1)
    rows = [("noisy input", noisy[:12])]
    for name, label in (("over-none", "none"), ("over-decay", "weight decay 1.0"), ("over-l1", "sparse l1:1e-3"),
                        ("over-contractive", "contractive 1e-3")):
        model = ae.load(run(name))
        out, base = model.reconstruct(noisy), model.reconstruct(clean)
        passed = ((out - base) ** 2).sum() / ((noisy - clean) ** 2).sum()
        rows.append((f"{label}: {sse(model):.1f}, {passed:.2f}", out[:12]))
    rows_figure(FIGURES / "overcomplete-copying.png", clean[:12], rows,
                "784-1000-784 on noisy test digits: test sse_per_image (clean digits), share of the noise passed on")


def denoising() -> None:
    aekit("denoise", str(run("dae")), "--noise", "gaussian:0.5", "--out", str(FIGURES / "denoising.png"))
    aekit("denoise", str(run("deep")), "--noise", "gaussian:0.5", "--out", str(FIGURES / "denoising-untrained.png"))


def representations() -> None:
    aekit("latent-map", str(run("code2")), "--out", str(FIGURES / "latent-map.png"))
    aekit("latent-map", str(run("deep")), "--out", str(FIGURES / "latent-map-deep.png"))


def blending() -> None:
    aekit("interpolate", str(run("deep")), "--from", "3", "--to", "7", "--steps", "10",
          "--out", str(FIGURES / "blending.png"))
    aekit("interpolate", str(run("code2")), "--from", "3", "--to", "7", "--steps", "10",
          "--out", str(FIGURES / "blending-code2.png"))


def infilling() -> None:
    aekit("inpaint", str(run("infill")), "--mask", "center:14", "--out", str(FIGURES / "infilling.png"))
    aekit("inpaint", str(run("deep")), "--mask", "center:14", "--out", str(FIGURES / "infilling-untrained.png"))


def pretraining() -> None:
    import aekit as ae
    from aekit.plots import _plt, _save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    width = 0.8 / len(PRETRAINED)
    for i, name in enumerate(PRETRAINED):
        err = [ae.classify(run(f"ft-{n}-{name.replace(' ', '-')}"))["error_percent"] for n in FINETUNE_LABELS]
        pos = np.arange(len(FINETUNE_LABELS)) + (i - (len(PRETRAINED) - 1) / 2) * width
        ax.bar(pos, err, width, label=name)
        for p, e in zip(pos, err, strict=True):
            ax.annotate(f"{e:.1f}", (p, e), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(FINETUNE_LABELS)), [f"{n:,} labels" for n in FINETUNE_LABELS])
    ax.set_ylabel("test error (%)")
    ax.set_title("784-500-500 sigmoid encoder, fine-tuned: mnist-mini test error")
    ax.legend(fontsize=8)
    _save(fig, FIGURES / "pretraining.png")


def variational() -> None:
    aekit("sample", str(run("vae")), "--n", "64", "--temperature", "0.8", "--seed", "1",
          "--out", str(FIGURES / "vae-samples.png"))
    aekit("traverse", str(run("vae")), "--dims", "0,1,2", "--out", str(FIGURES / "vae-traverse.png"))
    aekit("latent-map", str(run("vae2")), "--out", str(FIGURES / "vae-manifold.png"))
    aekit("sample", str(run("cvae")), "--n", "16", "--label", "3", "--temperature", "0.8", "--seed", "1",
          "--out", str(FIGURES / "cvae-samples-3.png"))


PAGES: dict[str, Callable[[], None]] = {
    "bottleneck": bottleneck, "linear-pca": linear_pca, "deep": deep, "convolutional": convolutional,
    "regularised": regularised, "denoising": denoising, "representations": representations,
    "blending": blending, "infilling": infilling, "pretraining": pretraining, "variational": variational,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", help=f"comma-separated lecture pages, of: {', '.join(PAGES)} (default all)")
    p.add_argument("--keep-runs", action="store_true", help="reuse the runs under runs/docs/ instead of retraining")
    args = p.parse_args(argv)
    pages = args.only.split(",") if args.only else list(PAGES)
    unknown = sorted(set(pages) - set(PAGES))
    if unknown:
        p.error(f"unknown page(s) {', '.join(unknown)}: choose from {', '.join(PAGES)}")
    import os

    os.chdir(ROOT)  # the commands name runs/docs/... and docs/figures/... as the pages show them
    if not args.keep_runs and RUNS.exists():
        shutil.rmtree(RUNS)
    FIGURES.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for page in pages:
        t = time.perf_counter()
        PAGES[page]()
        print(f"# {page}: {time.perf_counter() - t:.1f} s", flush=True)
    print(f"# all: {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The variational family measured (issue 22): each row of the issue's table trained from its recipe,
its test NLL with 5,000 importance samples, and, with ``--pythae``, the side-by-side with pythae 0.1.2.

**Rows** (``--rows``, default all), each trained by ``aekit.train`` from its TOML in ``configs/`` on
full MNIST read from ``--data-dir``:

- ``vae``: configs/vae-mnist.toml, Burda et al.'s 784-200-200-50 (tanh), dynamic binarisation;
- ``iwae``: configs/iwae-mnist.toml, the same model on the IWAE bound with k = 50;
- ``vamp``: configs/vamp-mnist.toml, 784-300-300-40 with a VampPrior of K = 500 pseudo-inputs;
- ``hierarchical``: configs/ladder-mnist.toml, a Ladder VAE (``--model ladder``) with stochastic layers of
  64 and 32 and top-down inference;
- ``cvae``: configs/cvae-mnist.toml, a conditional VAE on the grey levels. Its goal is not a likelihood:
  1,000 samples asked for each digit d are read by an aekit MNIST classifier (a conv network made by
  ``aekit.finetune`` from a one-epoch conv autoencoder, trained once into ``--classifier`` and reused
  from there), and the share read as d is reported per digit (goal >= 97% for every digit).

The binarised rows' NLL is ``aekit.nll(model, samples=--samples)`` on the 10,000 test digits, binarised
once with the dataset's recorded seed; training draws fresh binary pixels from the grey levels every
batch (``mnist-binary``). Dynamic and static (Larochelle) binarisations differ by about 2 nats: the
pythae anchors are static, Burda et al.'s dynamic. The recipes train for 1,000 epochs, far more than a
CPU allows: ``--epochs N`` shortens every row (the cosine schedule follows, and a KL warm-up keeps
its share of the epochs); the JSON records the epochs each figure was reached in.

**Side by side with pythae** (``--pythae``): the same 784-400-40 VAE (ReLU, Bernoulli decoder; the
network of pythae's reproduction script, examples/scripts/reproducibility/vae.py) and the IWAE with
k = 5, trained by each library in a process of its own, one after the other, as a user runs either
library (``--pythae-allocator aekit`` gives pythae's process the glibc malloc settings that aekit's
loop makes, training/speed.py, to measure the libraries under one allocator): the same 54,000 training and
6,000 validation digits (aekit's split of the training part), the same dynamic binarisation (pythae
is given a fresh Bernoulli draw of every training digit at the start of each epoch, made with a seeded
generator inside the timed epoch; each training digit is seen once per epoch, so this is a fresh draw
every time a digit is used, as aekit's per-batch draw is; the random bits themselves differ), the same
epochs (``--pythae-epochs``), batch size 100, Adam at 1e-3 without a schedule, ``--seed`` (each library
draws its initial weights and batches from its own streams), the best weights by validation loss kept
by both. Reported per library:

- training samples/s: training digits x epochs / seconds spent in the training passes (aekit: the
  loop's per-epoch training seconds; pythae: its ``train_step``, binarisation included), validation
  excluded for both; the wall time of each library's whole training call is recorded beside it;
- the test NLL of each model by its library's own estimator (aekit: ``aekit.nll``; pythae:
  ``model.get_nll(test, n_samples=S, batch_size=min(S, 100))``, which scores one digit at a time in
  float32, with each pixel's log-probability clamped at -100 by ``binary_cross_entropy``, and uses
  ``100 * (S // 100)`` samples when S > 100), and the pythae model's NLL by aekit's estimator: its
  weights are copied into an aekit VAE of the same architecture (pythae's decoder ends in a sigmoid,
  aekit's gives the logits before it; the copy is checked to give the same posterior and decoder
  outputs, else the script stops), and ``aekit.tasks.generate.nll_summary`` -- the function behind
  ``aekit.nll`` -- scores it on the same test digits with the same number of samples.

Goal: aekit's training samples/s >= 3x pythae's, at a test NLL (aekit's estimator on both models) no
worse than pythae's plus 0.3 nat.

pythae is installed for this script only, never as an aekit dependency. Its metadata asks for
cloudpickle, imageio, numpy, pydantic>=2, scikit-learn, scipy, torch, tqdm, typing-extensions and
``dataclasses`` (a Python 3.6 backport that must not shadow the standard library's). All but imageio
are in aekit's environment, and imageio is imported only by pythae's samplers (to write pictures),
which this script does not use; so pythae goes in alone, and the environment's own torch, NumPy and
pydantic are the ones measured:

    pip install --no-deps --target /tmp/pythae-lib pythae==0.1.2
    PYTHONPATH=/tmp/pythae-lib python benchmarks/vae.py --pythae --rows ""

Commands (``--limit-train N``, ``--limit-test N`` and ``--samples S`` for quick checks, which are no
results):

    python benchmarks/vae.py [--data-dir ../shared/datasets/mnist] [--rows vae,iwae,vamp,hierarchical,cvae]
        [--epochs N] [--samples 5000] [--device cpu] [--out benchmarks/results/vae.json]
    PYTHONPATH=/tmp/pythae-lib python benchmarks/vae.py --rows "" --pythae [--pythae-epochs 100]

The table's training seconds are the wall time of ``aekit.train`` (each epoch's validation and the
run's final scoring included); the JSON also holds ``train_seconds``, the loop's training passes alone.
Run it on an otherwise idle machine. On a CPU the IWAE row's 1,000 epochs take days (each step
decodes 50 samples of every digit): give it ``--epochs`` there, or run its recipe on a device.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Row:
    key: str
    label: str
    recipe: str | None  # a TOML under configs/; None: the model is not built yet
    anchor: str
    goal: str
    goal_nll: float | None = None  # the NLL (nats) to reach; None: the goal is not a likelihood


ROWS = {r.key: r for r in (
    Row("vae", "VAE 784-200-200-50", "vae-mnist.toml",
        "Burda et al. 2016 k=1 86.76 (dynamic); pythae 89.78 (static)", "<= 87.0 nats", 87.0),
    Row("iwae", "IWAE k=50", "iwae-mnist.toml", "Burda et al. 2016 84.78 (dynamic); pythae 86.82 (static)",
        "<= 84.5 nats", 84.5),
    Row("vamp", "VampPrior K=500", "vamp-mnist.toml", "pythae 85.79 (static)", "<= 84.5 nats", 84.5),
    Row("hierarchical", "Ladder VAE, 2 stochastic layers", "ladder-mnist.toml",
        "Ladder VAE 81.7 (dynamic); ladder-vae-pytorch 78.30 (static); NVAE 78.01", "<= 81.0 nats (moonshot)", 81.0),
    Row("cvae", "conditional VAE", "cvae-mnist.toml", "-", ">= 97% of samples read as the digit asked for"),
)}
CVAE_SAMPLES = 1000  # samples asked for each digit
CVAE_GOAL = 0.97
PYTHAE = {"layers": 400, "code": 40, "batch_size": 100, "lr": 1e-3, "iw_samples": 5, "epochs": 100}
PYTHAE_NLL_BATCH = 100  # importance samples per forward pass in pythae's get_nll (its default)
NLL_TOLERANCE = 0.3
SPEED_GOAL = 3.0


# --- data ----------------------------------------------------------------------------------------------
def limited(ds: Any, n_train: int | None, n_test: int | None) -> Any:
    """``ds`` with only its first ``n_train`` training and ``n_test`` test rows (None: all), grey levels
    and labels alike; the description a run stores is the dataset's own."""
    train = ds.train if n_train is None else ds.train.rows(slice(0, n_train))
    test = ds.test if n_test is None else ds.test.rows(slice(0, n_test))
    return dataclasses.replace(ds, train=train, test=test)


def recipe_config(row: Row, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The row's recipe with this run's data folder, device and, where given, epochs; returns (config,
    the settings changed from the recipe). A shortened run keeps the KL warm-up's share of the epochs."""
    from aekit.config import apply_overrides, load_config

    cfg = load_config(ROOT / "configs" / row.recipe)
    changed: dict[str, Any] = {"data.data_dir": args.data_dir, "train.device": args.device}
    if args.epochs is not None and args.epochs != cfg.train.epochs:
        changed["train.epochs"] = args.epochs
        warmup = cfg.model.get("kl_warmup", 0)
        if warmup:
            changed["model.kl_warmup"] = max(1, round(warmup * args.epochs / cfg.train.epochs))
    return apply_overrides(cfg, changed), changed


# --- the rows -------------------------------------------------------------------------------------------
def train_row(row: Row, args: argparse.Namespace, runs: Path) -> dict[str, Any]:
    import aekit
    from aekit.api import load_data

    cfg, changed = recipe_config(row, args)
    ds = limited(load_data(cfg), args.limit_train, args.limit_test)
    out = runs / row.key
    shutil.rmtree(out, ignore_errors=True)  # this script's own run folder, trained afresh
    print(f"\n== {row.key}: {row.label}, configs/{row.recipe}, {cfg.train.epochs} epochs on "
          f"{len(ds.train):,} training digits ({ds.name})", flush=True)
    t0 = time.perf_counter()
    run = aekit.train(cfg, out=out, dataset=ds)
    wall = time.perf_counter() - t0
    res: dict[str, Any] = {
        "row": row.key, "label": row.label, "recipe": f"configs/{row.recipe}", "anchor": row.anchor,
        "goal": row.goal, "changed_from_recipe": {k: v for k, v in changed.items()
                                                  if k not in ("data.data_dir", "train.device")},
        "epochs": run.summary["epochs_run"], "train_seconds": run.summary["train_seconds"],
        "train_wall_seconds": round(wall, 1), "n_train": len(ds.train), "n_test": len(ds.test),
        "run_dir": str(out), "device": args.device}
    run.model.to(device_of(args))  # (training hands the model back on the CPU)
    if row.goal_nll is not None:
        t0 = time.perf_counter()
        m = aekit.nll(run.model, samples=args.samples, seed=args.seed)
        res.update({k: m[k] for k in ("nll", "elbo", "kl", "recon", "samples", "values", "binarisation")},
                   nll_seconds=round(time.perf_counter() - t0, 1),
                   # a goal is judged only on the benchmark's own measurement
                   reached=bool(m["nll"] <= row.goal_nll) if full_measure(args) else None)
    else:
        from aekit.tasks.generate import elbo_terms

        s = ds.test
        res.update(elbo_terms(run.model, s.x, s.y if run.model.n_classes else None, seed=args.seed))
        res.update(label_shares(run.model, classifier(args, runs), args.seed, full_measure(args)))
    return res


def classifier(args: argparse.Namespace, runs: Path) -> Any:
    """An aekit MNIST classifier: the one finished in ``--classifier`` (default RUNS/classifier), else one
    trained there: a conv autoencoder for one epoch, then ``aekit.finetune`` of its whole network on all
    labels (shifts of up to 2 pixels, cosine schedule). Returns (model, its summary)."""
    import aekit
    from aekit.run import open_run

    where = Path(args.classifier) if args.classifier else runs / "classifier"
    if not (where / "summary.json").is_file():
        ae = where.with_name(where.name + "-ae")
        for d in (where, ae):  # an unfinished attempt of this script's
            shutil.rmtree(d, ignore_errors=True)
        t0 = time.perf_counter()
        print(f"\n== classifier for the conditional VAE's samples -> {where}", flush=True)
        pre = aekit.train(out=ae, **{
            "data.name": "mnist", "data.data_dir": args.data_dir, "model.name": "conv", "train.epochs": 1,
            "train.device": args.device, "train.seed": args.seed})
        aekit.finetune(pre.dir, labels="all", stage="all", epochs=args.classifier_epochs, shift=2,
                       schedule="cosine", seed=args.seed, device=args.device, out=where)
        print(f"classifier trained in {time.perf_counter() - t0:.0f}s", flush=True)
    summary = json.loads((where / "summary.json").read_text())
    about = {"dir": str(where), "test_accuracy": summary["test_accuracy"],
             "epochs": sum(s["epochs"] for s in summary["stages"])}
    return open_run(where, ("classifier",)).model.to(device_of(args)), about


def label_shares(model: Any, clf: tuple[Any, dict[str, Any]], seed: int, judged: bool) -> dict[str, Any]:
    """For each digit d: the share of ``CVAE_SAMPLES`` samples asked for d that the classifier reads as d
    (``judged``: whether the goal is judged, i.e. the model was trained on all the digits)."""
    import aekit
    from aekit.training.classify import accuracy

    net, about = clf
    shares = {}
    for d in range(model.n_classes):
        images = aekit.sample(model, n=CVAE_SAMPLES, label=d, seed=seed + d)
        shares[str(d)] = accuracy(net, images, np.full(CVAE_SAMPLES, d))
    worst = min(shares.values())
    return {"label_shares": shares, "worst_share": worst, "reached": bool(worst >= CVAE_GOAL) if judged else None,
            "samples_per_digit": CVAE_SAMPLES, "classifier": about}


def device_of(args: argparse.Namespace) -> torch.device:
    from aekit.device import resolve_device

    return resolve_device(args.device)


def full_measure(args: argparse.Namespace) -> bool:
    """Whether figures are the benchmark's (all digits, 5,000 importance samples), not a quick check."""
    return args.limit_train is None and args.limit_test is None and args.samples >= 5000


def not_built(row: Row) -> dict[str, Any]:
    return {"row": row.key, "label": row.label, "recipe": None, "anchor": row.anchor, "goal": row.goal,
            "status": "not built"}


def print_rows(rows: list[dict[str, Any]]) -> None:
    def num(r: dict[str, Any], key: str, fmt: str) -> str:
        return format(r[key], fmt) if isinstance(r.get(key), float | int) else "-"

    # NLL in nats; for the conditional VAE, its worst digit's share of samples read as asked
    print(f"\n{'row':<24} {'NLL':>10} {'ELBO':>8} {'train s':>9} {'epochs':>6}  {'goal':<30} recipe / anchor")
    for r in rows:
        if r.get("status") == "not built":
            print(f"{r['label']:<24} {'not built':>37}  {r['goal']:<30} - / {r['anchor']}")
            continue
        nll = num(r, "nll", ".2f") if "nll" in r else f"min {100 * r['worst_share']:.1f}%"
        reached = {True: " (reached)", False: " (not reached)", None: ""}[r.get("reached")]
        print(f"{r['label']:<24} {nll:>10} {num(r, 'elbo', '.2f'):>8} {num(r, 'train_wall_seconds', '.0f'):>9} "
              f"{r['epochs']:>6}  {r['goal'] + reached:<30} {r['recipe']} / {r['anchor']}")
        if "label_shares" in r:
            print(" " * 25 + "share read as the digit asked for: " + "  ".join(
                f"{d}: {100 * s:.1f}%" for d, s in r["label_shares"].items())
                + f" (classifier test accuracy {100 * r['classifier']['test_accuracy']:.2f}%)")


# --- side by side with pythae ----------------------------------------------------------------------------
def pythae_networks(code: int, hidden: int) -> tuple[Any, Any]:
    """pythae's encoder and decoder of its VAE reproduction: 784-400 (ReLU) to mean and log-variance;
    z-400 (ReLU)-784 (sigmoid)."""
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from torch import nn

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            BaseEncoder.__init__(self)
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU())
            self.embedding, self.log_var = nn.Linear(hidden, code), nn.Linear(hidden, code)

        def forward(self, x: torch.Tensor) -> Any:
            h = self.body(x)
            return ModelOutput(embedding=self.embedding(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            BaseDecoder.__init__(self)
            self.body = nn.Sequential(nn.Linear(code, hidden), nn.ReLU(), nn.Linear(hidden, 784), nn.Sigmoid())

        def forward(self, z: torch.Tensor) -> Any:
            return ModelOutput(reconstruction=self.body(z).reshape(len(z), 1, 28, 28))

    return Encoder(), Decoder()


def as_aekit(pmodel: Any, device: str) -> Any:
    """The pythae model's weights in an aekit VAE of the same architecture (its one head is pythae's
    two, mean first; its decoder outputs the logits that pythae's sigmoid turns into means)."""
    from aekit.registry import create_model

    m = create_model("vae", (1, 28, 28), layers=[PYTHAE["layers"]], code=PYTHAE["code"], activation="relu",
                     likelihood="bernoulli")
    enc, dec = pmodel.encoder, pmodel.decoder.body
    with torch.no_grad():
        m.encoder.trunk[0].load_state_dict(enc.body[1].state_dict())
        m.encoder.head.weight.copy_(torch.cat([enc.embedding.weight, enc.log_var.weight]))
        m.encoder.head.bias.copy_(torch.cat([enc.embedding.bias, enc.log_var.bias]))
        m.decoder.net[0].load_state_dict(dec[0].state_dict())
        m.decoder.net[2].load_state_dict(dec[2].state_dict())
    m.to(device)
    m.pythae_copy_error = copy_error(pmodel, m, device)
    return m


@torch.no_grad()
def copy_error(pmodel: Any, m: Any, device: str) -> float:
    """The largest difference between the pythae model and its aekit copy: posterior means and
    log-variances, and decoder means, on 64 random binary images."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(64, 1, 28, 28, generator=g) < 0.3).float().to(device)
    out = pmodel.encoder(x)
    post = m.posterior(x)
    z = torch.randn(64, PYTHAE["code"], generator=g).to(device)
    diffs = [out.embedding - post.mean, out.log_covariance - post.logvar,
             pmodel.decoder(z)["reconstruction"] - m.decode(z)]
    err = max(float(d.abs().max()) for d in diffs)
    if err > 1e-4:
        raise SystemExit(f"the aekit copy of the pythae model differs from it by {err:.3g}")
    return err


def side_by_side(args: argparse.Namespace, runs: Path, argv: list[str]) -> dict[str, Any]:
    """The 784-400-40 VAE and the IWAE k=5, each trained by aekit then by pythae, each library in a
    process of its own (this script again, with ``--side-worker``), then scored."""
    from importlib import metadata

    try:
        import pythae
    except ImportError:
        raise SystemExit("--pythae needs pythae 0.1.2 on PYTHONPATH; see this script's docstring for the "
                         "pip command") from None
    epochs = args.pythae_epochs or args.epochs or PYTHAE["epochs"]
    out: dict[str, Any] = {"pythae_version": metadata.version("pythae"),
                           "pythae_from": str(Path(pythae.__file__).parent), "epochs": epochs,
                           "pythae_allocator": args.pythae_allocator, "models": []}
    for name, k in (("VAE", 1), ("IWAE", PYTHAE["iw_samples"])):
        print(f"\n== side by side: {name} 784-{PYTHAE['layers']}-{PYTHAE['code']}"
              f"{f' k={k}' if k > 1 else ''}, {epochs} epochs", flush=True)
        floor = products_samples_per_s(k)
        a = run_side("aekit", k, argv, runs / f"side-{name.lower()}")
        p = run_side("pythae", k, argv, runs / f"side-{name.lower()}-pythae")
        ratio = a["samples_per_s"] / p["samples_per_s"]
        margin = a["nll_aekit_estimator"] - p["nll_aekit_estimator"]
        out["models"].append({"model": name, "iw_samples": k, "aekit": a, "pythae": p,
                              "speed_ratio": round(ratio, 2), "nll_difference": margin,
                              "products_only_samples_per_s": round(floor, 1),
                              "most_any_loop_could_reach_over_pythae": round(floor / p["samples_per_s"], 2),
                              "reached": bool(ratio >= SPEED_GOAL and margin <= NLL_TOLERANCE)
                              if full_measure(args) else None})
    return out


def products_samples_per_s(k: int, batch: int = 100, repeat: int = 200) -> float:
    """Training samples/s of a loop that did nothing but the matrix products of the side by side's
    784-400-40 step (k decoded samples per digit), at its shapes, on this process's threads: the
    forward product of each layer, each weight's gradient and each input's gradient but the first
    layer's, as autograd computes them. No loop can train faster; with pythae's samples/s it bounds
    the ratio any library could reach over it."""
    import statistics

    h, z, n_in = PYTHAE["layers"], PYTHAE["code"], 784
    calls = []
    shapes = [(batch, n_in, h), (batch, h, 2 * z), (batch * k, z, h), (batch * k, h, n_in)]  # (rows, in, out)
    for i, (rows, a, b) in enumerate(shapes):
        x, g, w, bias = torch.rand(rows, a), torch.rand(rows, b), torch.rand(b, a), torch.rand(b)
        calls += [lambda x=x, w=w, bias=bias: torch.addmm(bias, x, w.t()), lambda x=x, g=g: torch.mm(g.t(), x)]
        if i:  # the first layer's input needs no gradient
            calls.append(lambda g=g, w=w: torch.mm(g, w))
    times = []
    for r in range(20 + repeat):
        t = time.perf_counter()
        for call in calls:
            call()
        if r >= 20:
            times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def run_side(lib: str, k: int, argv: list[str], out: Path) -> dict[str, Any]:
    """One library's half of the side by side in a fresh Python process: its figures, from the JSON
    the worker writes. A fresh process starts with glibc's own malloc settings and torch's own thread
    pool, whatever the other library did to its process."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "side.json"
        cmd = [sys.executable, __file__, *argv, "--side-worker", lib, "--side-k", str(k), "--side-out", str(out),
               "--side-json", str(result)]
        done = subprocess.run(cmd, check=False)
        if done.returncode != 0:
            raise SystemExit(f"the {lib} side (k={k}) failed with exit code {done.returncode}")
        return json.loads(result.read_text())


def side_worker(args: argparse.Namespace) -> None:
    """``--side-worker aekit|pythae``: train and score one library's model, write its figures."""
    from aekit.api import load_data
    from aekit.config import RunConfig
    from aekit.io import write_json

    if args.side_worker == "pythae" and args.pythae_allocator == "aekit":
        from aekit.training.speed import keep_freed_memory

        keep_freed_memory()
    base = RunConfig.from_dict({"data": {"name": "mnist-binary", "data_dir": args.data_dir}})
    ds = limited(load_data(base), args.limit_train, args.limit_test)
    epochs = args.pythae_epochs or args.epochs or PYTHAE["epochs"]
    side = aekit_side if args.side_worker == "aekit" else pythae_side
    write_json(Path(args.side_json), side(ds, base, args.side_k, epochs, args, Path(args.side_out)))


def aekit_side(ds: Any, base: Any, k: int, epochs: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    import aekit
    from aekit.config import apply_overrides

    cfg = apply_overrides(base, {
        "model.name": "vae", "model.layers": [PYTHAE["layers"]], "model.code": PYTHAE["code"],
        "model.activation": "relu", "model.likelihood": "bernoulli", "model.iw_samples": k,
        "train.epochs": epochs, "train.batch_size": PYTHAE["batch_size"], "train.lr": PYTHAE["lr"],
        "train.seed": args.seed, "train.device": args.device})
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    run = aekit.train(cfg, out=out, dataset=ds)
    wall = time.perf_counter() - t0
    n_train = len(ds.split("train", cfg.data.val_fraction, cfg.data.split_seed))
    run.model.to(device_of(args))
    t0 = time.perf_counter()
    m = aekit.nll(run.model, samples=args.samples, seed=args.seed)
    return {"n_train": n_train, "epochs": run.summary["epochs_run"], "train_seconds": run.summary["train_seconds"],
            "samples_per_s": round(n_train * run.summary["epochs_run"] / run.summary["train_seconds"], 1),
            "train_wall_seconds": round(wall, 1), "nll_aekit_estimator": m["nll"], "elbo": m["elbo"],
            "nll_seconds": round(time.perf_counter() - t0, 1), "run_dir": str(out)}


def pythae_side(ds: Any, base: Any, k: int, epochs: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from pythae.data.datasets import BaseDataset
    from pythae.models import IWAE, VAE, IWAEConfig, VAEConfig
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    from aekit.tasks.generate import nll_summary

    d = base.data
    tr, va = ds.split("train", d.val_fraction, d.split_seed), ds.split("val", d.val_fraction, d.split_seed)

    def floats(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).float().div_(255.0)

    levels = floats(tr.levels)  # grey levels in [0, 1]; the validation digits are aekit's fixed binary draw
    train_set = BaseDataset(torch.zeros_like(levels), torch.zeros(len(levels)))
    val_set = BaseDataset(floats(va.x), torch.zeros(len(va)))
    torch.manual_seed(args.seed)  # the initial weights
    conf = dict(input_dim=(1, 28, 28), latent_dim=PYTHAE["code"], reconstruction_loss="bce")
    model_cfg = IWAEConfig(**conf, number_samples=k) if k > 1 else VAEConfig(**conf)
    model = (IWAE if k > 1 else VAE)(model_cfg, *pythae_networks(PYTHAE["code"], PYTHAE["layers"]))
    shutil.rmtree(out, ignore_errors=True)
    train_cfg = BaseTrainerConfig(output_dir=str(out), num_epochs=epochs, learning_rate=PYTHAE["lr"],
                                  per_device_train_batch_size=PYTHAE["batch_size"],
                                  per_device_eval_batch_size=PYTHAE["batch_size"], optimizer_cls="Adam",
                                  seed=args.seed, no_cuda=args.device == "cpu")
    t0 = time.perf_counter()
    trainer = BaseTrainer(model, train_set, val_set, training_config=train_cfg)
    gen = torch.Generator().manual_seed(args.seed)
    step_seconds: list[float] = []
    train_step = trainer.train_step

    def timed_step(epoch: int) -> float:
        """A fresh binary draw of every training digit, then pythae's own training pass, timed together."""
        t = time.perf_counter()
        torch.bernoulli(levels, generator=gen, out=train_set.data)
        loss = train_step(epoch)
        step_seconds.append(time.perf_counter() - t)
        return loss

    trainer.train_step = timed_step
    trainer.train()
    wall = time.perf_counter() - t0
    best = trainer._best_model.eval()  # the weights of the best validation loss, as aekit keeps
    test = floats(ds.test.x).to(trainer.device)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        own = -float(best.get_nll(test, n_samples=args.samples, batch_size=min(args.samples, PYTHAE_NLL_BATCH)))
    own_seconds = time.perf_counter() - t0
    used = args.samples if args.samples <= PYTHAE_NLL_BATCH else PYTHAE_NLL_BATCH * (args.samples // PYTHAE_NLL_BATCH)
    copy = as_aekit(best, trainer.device)
    t0 = time.perf_counter()
    m = nll_summary(copy, ds.test.x, args.samples, seed=args.seed)
    train_seconds = sum(step_seconds)
    return {"n_train": len(tr), "epochs": len(step_seconds), "train_seconds": round(train_seconds, 2),
            "samples_per_s": round(len(tr) * len(step_seconds) / train_seconds, 1),
            "train_wall_seconds": round(wall, 1), "nll_own_estimator": own, "own_estimator_samples": used,
            "own_estimator_seconds": round(own_seconds, 1), "nll_aekit_estimator": m["nll"], "elbo": m["elbo"],
            "nll_seconds": round(time.perf_counter() - t0, 1), "copy_max_abs_difference": copy.pythae_copy_error,
            "output_dir": str(out)}


def print_side(side: dict[str, Any]) -> None:
    print(f"\nside by side with pythae {side['pythae_version']}, {side['epochs']} epochs "
          f"(NLL in nats; 'aekit est.' scores both models with aekit's estimator)")
    print(f"{'model':<6} {'library':<7} {'samples/s':>10} {'train s':>8} {'wall s':>7} {'NLL own est.':>12} "
          f"{'NLL aekit est.':>14}")
    for m in side["models"]:
        for lib in ("aekit", "pythae"):
            r = m[lib]
            own = r["nll_aekit_estimator"] if lib == "aekit" else r["nll_own_estimator"]
            print(f"{m['model']:<6} {lib:<7} {r['samples_per_s']:>10,.0f} {r['train_seconds']:>8.1f} "
                  f"{r['train_wall_seconds']:>7.1f} {own:>12.2f} "
                  f"{r['nll_aekit_estimator']:>14.2f}")
        print(f"{m['model']:<6} {'products':<7} {m['products_only_samples_per_s']:>10,.0f}  (a loop of nothing but "
              f"the step's matrix products: at most {m['most_any_loop_could_reach_over_pythae']:.2f}x pythae)")
        print(f"{'':<6} aekit/pythae speed {m['speed_ratio']:.2f}x (goal >= {SPEED_GOAL:g}x), NLL difference "
              f"{m['nll_difference']:+.2f} nat (goal <= +{NLL_TOLERANCE})"
              + {True: ": reached", False: ": not reached", None: ""}[m["reached"]])


# --- main -------------------------------------------------------------------------------------------------
def positive(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared/datasets/mnist"))
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {','.join(ROWS)} (\"\": none)")
    ap.add_argument("--epochs", type=positive, help="train every row (and the side by side) this many epochs "
                                                    "instead of its recipe's")
    ap.add_argument("--samples", type=positive, default=5000, help="importance samples per test digit (5000)")
    ap.add_argument("--limit-train", type=positive, metavar="N", help="train on the first N training digits only")
    ap.add_argument("--limit-test", type=positive, metavar="N", help="score the first N test digits only")
    ap.add_argument("--pythae", action="store_true", help="the side by side with pythae (see the docstring)")
    ap.add_argument("--pythae-epochs", type=positive,
                    help=f"epochs of the side by side (default --epochs, else {PYTHAE['epochs']})")
    ap.add_argument("--pythae-allocator", choices=("own", "aekit"), default="own",
                    help="pythae's process keeps glibc's malloc settings (own: as a user runs it), or gets "
                    "the ones aekit's loop sets (aekit: one allocator for both)")
    # one library's half of the side by side, run by side_by_side in a process of its own
    ap.add_argument("--side-worker", choices=("aekit", "pythae"), help=argparse.SUPPRESS)
    ap.add_argument("--side-k", type=positive, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--side-out", help=argparse.SUPPRESS)
    ap.add_argument("--side-json", help=argparse.SUPPRESS)
    ap.add_argument("--classifier", metavar="DIR", help="the classifier run for the conditional VAE's samples: "
                                                        "reused if finished, else trained there (RUNS/classifier)")
    ap.add_argument("--classifier-epochs", type=positive, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", default=str(ROOT / "runs" / "vae-benchmark"), help="where the runs are written")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "vae.json"))
    args = ap.parse_args(argv)
    if args.side_worker:
        side_worker(args)
        return
    keys = [k for k in args.rows.split(",") if k]
    if unknown := set(keys) - set(ROWS):
        ap.error(f"unknown --rows {', '.join(sorted(unknown))}; use {', '.join(ROWS)}")
    if not keys and not args.pythae:
        ap.error("nothing to do: give --rows, --pythae or both")
    from aekit.io import write_json

    t_start = time.perf_counter()
    runs, out = Path(args.runs), Path(args.out)
    quick = not full_measure(args)
    report: dict[str, Any] = {
        "meta": {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": args.device,
                 "quick_check": quick},
        "config": vars(args), "rows": [], "pythae": None}
    out.parent.mkdir(parents=True, exist_ok=True)
    for key in keys:  # each row's figures are written as soon as they exist: the rows take hours
        row = ROWS[key]
        report["rows"].append(not_built(row) if row.recipe is None else train_row(row, args, runs))
        write_json(out, report)
    if keys:
        print_rows(report["rows"])
    if args.pythae:
        report["pythae"] = side_by_side(args, runs, sys.argv[1:] if argv is None else argv)
        print_side(report["pythae"])
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    write_json(out, report)
    if quick:
        print("(a quick check: fewer digits or importance samples than the benchmark's; not a result)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""The speed table: samples/s of aekit's loop in fp32 and bf16 against a minimal fp32 PyTorch loop
(and, for the 784-32 model, scikit-learn's MLPRegressor).

Each model -- the deep 784-1000-500-250-30 mlp, the 784-32 mlp and the conv recipe's network --
trains for a fixed number of steps (batch 256, Adam, MSE on sigmoid outputs) on MNIST. The
contenders are interleaved in one process, round after round, in alternating order, after a
warm-up, so drifts in machine speed hit all alike; the table shows the median samples/s over the
rounds and the median of the per-round ratios against the minimal loop (each ratio compares
measurements taken back to back). The minimal loop gets its data already as float32 in [0, 1];
aekit keeps uint8 and converts each batch, as it does in use. MLPRegressor (one hidden layer of
32 ReLUs, identity output, Adam, batch 256) learns the same map with ``partial_fit``.

On the CPU aekit's loop makes glibc keep freed memory for reuse (``keep_freed_memory`` in
aekit/training/speed.py), which is process-wide; the script sets it before the first round so that
every contender runs under the same allocator, and the comparison is of the loops alone.

With ``--compile`` aekit also runs with ``compile="on"`` in each precision (torch.compile of the
step: inductor on the CPU, CUDA graphs on CUDA; the warm-up round pays for the compilation).

    python benchmarks/throughput.py [--data-dir ../shared/datasets/mnist] [--rounds 7] [--models deep,small,conv]
        [--device cpu|cuda] [--compile]

With ``--contended`` it measures instead what a shared machine costs: each model trains with
``aekit train`` on mnist-mini in a fresh process, alone and beside one busy process per usable CPU,
``--rounds`` times each, with aekit's thread choice (``AEKIT_THREADS=auto``, see
aekit/aekit/cpu_share.py) and with a fixed count of all usable CPUs (torch's default, which
aekit used before). The table gives the median training seconds and the contended/quiet ratio; the
goal is a ratio of at most 3 for every model (the fair share beside one busy process per core is
about 2x to 2.3x), with quiet times no worse than the fixed count's.

    python benchmarks/throughput.py --contended [--rounds 3] [--out benchmarks/results/contended.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import TrainConfig
from aekit.data.dataset import Split
from aekit.data.sources import load_dataset
from aekit.registry import create_model
from aekit.training.loop import fit
from aekit.training.speed import keep_freed_memory

MODELS = {  # key -> (label, model family, options, steps per measurement)
    "deep": ("mlp 784-1000-500-250-30", "mlp", {"layers": [1000, 500, 250], "code": 30, "activation": "relu"}, 40),
    "small": ("mlp 784-32", "mlp", {"layers": [], "code": 32, "activation": "relu"}, 200),  # < 1 epoch
    "conv": ("conv 32,64 code 32", "conv", {"channels": [32, 64], "code": 32}, 12),
}
BATCH = 256


def minimal_net(layers: list[int], code: int) -> nn.Sequential:
    sizes = [784, *layers, code, *layers[::-1], 784]
    mods: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        mods.append(nn.Linear(sizes[i], sizes[i + 1]))
        # ReLU between hidden layers; linear code layer and a linear last layer (sigmoid in the loss)
        if i < len(sizes) - 2 and i != len(layers):
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def run_minimal(net: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, steps: int) -> float:
    """The loop a user would write by hand; returns samples/s."""
    t0 = time.perf_counter()
    perm = torch.randperm(len(x), device=x.device)
    assert steps * BATCH <= len(x), "the measurement must fit in one epoch"
    for i in range(steps):
        xb = x[perm[i * BATCH : (i + 1) * BATCH]]
        loss = F.mse_loss(torch.sigmoid(net(xb)), xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(x.device)
    return steps * BATCH / (time.perf_counter() - t0)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_aekit(model: nn.Module, train: Split, steps: int, precision: str, device: torch.device,
              compile: str = "off") -> float:
    cfg = TrainConfig(epochs=1, batch_size=BATCH, lr=1e-3, max_steps=steps, precision=precision, compile=compile)
    t0 = time.perf_counter()
    res = fit(model, train, None, cfg, progress=False, device=device)
    sync(device)
    assert res.steps == steps, "the measurement must fit in one epoch"
    return res.steps * BATCH / (time.perf_counter() - t0)


def run_sklearn(reg: object, x: np.ndarray, steps: int, rng: np.random.Generator) -> float:
    """MLPRegressor.partial_fit over ``steps`` batches of 256; returns samples/s."""
    xb = x[rng.permutation(len(x))[: steps * BATCH]]
    t0 = time.perf_counter()
    reg.partial_fit(xb, xb)
    return len(xb) / (time.perf_counter() - t0)


class ConvMinimal(nn.Module):
    """The conv recipe's network (a fresh copy of its layers) without aekit's loop around it."""

    def __init__(self, options: dict) -> None:
        super().__init__()
        m = create_model("conv", (1, 28, 28), **options)
        self.encoder, self.decoder, self.shape = m.encoder, m.decoder, m.input_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x)).reshape(x.shape[0], *self.shape)


CONTENDED = {  # key -> (label, `aekit train` flags on mnist-mini)
    "small": ("mlp 784-32, 8 epochs", ["--layers", "", "--code", "32", "--epochs", "8"]),
    "512": ("mlp 784-512-32, 8 epochs", ["--layers", "512", "--code", "32", "--epochs", "8"]),
    "deep": ("mlp 784-1000-500-250-30, 2 epochs", ["--layers", "1000,500,250", "--code", "30", "--epochs", "2"]),
    "conv": ("conv 32,64 code 32, 1 epoch", ["--model", "conv", "--code", "32", "--epochs", "1"]),
}


def train_seconds(flags: list[str], threads: str, out: Path) -> float:
    """``aekit train`` in a fresh process (so the thread settings apply from its start); its training seconds."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["AEKIT_THREADS"] = threads
    proc = subprocess.run([sys.executable, "-m", "aekit", "train", "--data", "mnist-mini", *flags, "--out", str(out),
                           "--json", "--quiet", "--seed", "0"], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"aekit train failed: {proc.stderr.strip()[-500:]}")
    return float(json.loads(proc.stdout)["train_seconds"])


def contended(args: argparse.Namespace) -> None:
    """Each model alone and beside one busy process per usable CPU, with aekit's choice and a fixed count."""
    import shutil
    import subprocess
    import sys
    import tempfile

    from aekit.cpu_share import usable_cpus

    n_cpu = usable_cpus()
    keys = args.models.split(",") if args.models else list(CONTENDED)
    if unknown := set(keys) - set(CONTENDED):
        raise SystemExit(f"--models: unknown {sorted(unknown)}; with --contended use {','.join(CONTENDED)}")
    settings = {"aekit auto": "auto", f"fixed {n_cpu}": str(n_cpu)}
    times: dict[tuple[str, str, str], list[float]] = {}
    scratch = Path(tempfile.mkdtemp(prefix="aekit-contended-"))
    spin = "import time\nend = time.monotonic() + 900\nwhile time.monotonic() < end: pass"
    try:
        for r in range(args.rounds):
            for key in keys:
                for load in ("quiet", "contended"):
                    busy = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(n_cpu)] \
                        if load == "contended" else []
                    try:
                        time.sleep(0.5 if busy else 0)
                        for name, threads in settings.items() if r % 2 == 0 else list(settings.items())[::-1]:
                            out = scratch / f"{key}-{load}-{threads}-{r}"
                            times.setdefault((key, load, name), []).append(train_seconds(CONTENDED[key][1], threads,
                                                                                         out))
                            shutil.rmtree(out, ignore_errors=True)
                    finally:
                        for p in busy:
                            p.kill()
                            p.wait()
                print(f"round {r + 1}/{args.rounds}: {CONTENDED[key][0]} done", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows = []
    print(f"\n{'model':<36} {'threads':<11} {'quiet s':>8} {'contended s':>12} {'ratio':>6}  all contended")
    for key in keys:
        for name in settings:
            q, c = (statistics.median(times[key, load, name]) for load in ("quiet", "contended"))
            worst = max(times[key, "contended", name]) / q
            rows.append({"model": CONTENDED[key][0], "threads": name, "quiet_s": q, "contended_s": c,
                         "ratio": round(c / q, 2), "worst_ratio": round(worst, 2),
                         "quiet_all": times[key, "quiet", name], "contended_all": times[key, "contended", name]})
            print(f"{CONTENDED[key][0]:<36} {name:<11} {q:>8.2f} {c:>12.2f} {c / q:>5.2f}x  "
                  + " ".join(f"{v:.2f}" for v in times[key, "contended", name]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "usable_cpus": n_cpu, "busy_processes": n_cpu, "rounds": args.rounds}
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/mnist"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--models", default=None, help="default deep,small,conv (with --contended: small,512,deep,conv)")
    ap.add_argument("--precisions", default="fp32,bf16", help="aekit's precisions to measure")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--compile", action="store_true",
                    help="also aekit with --compile in each precision (the warm-up round compiles)")
    ap.add_argument("--contended", action="store_true",
                    help="aekit train alone and beside one busy process per CPU (see the docstring)")
    ap.add_argument("--out", default=None, help="the JSON file (default benchmarks/results/throughput.json, "
                                                "or contended.json with --contended)")
    args = ap.parse_args()
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    if args.contended:
        args.out = args.out or "benchmarks/results/contended.json"
        return contended(args)
    args.out = args.out or "benchmarks/results/throughput.json"
    args.models = args.models or "deep,small,conv"
    from aekit.device import resolve_device

    device = resolve_device(args.device)
    if device.type == "cpu":
        keep_freed_memory()  # process-wide: the same allocator for every contender (see the docstring)
    from sklearn.neural_network import MLPRegressor

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ds = load_dataset("mnist", args.data_dir)
    train = Split(ds.train.x)
    x_img = torch.from_numpy(ds.train.x.astype(np.float32) / 255.0).to(device)
    x_flat = x_img.reshape(len(x_img), -1)
    precisions = args.precisions.split(",")
    results = []
    for key in args.models.split(","):
        label, family, options, steps = MODELS[key]
        modes = [(p, c) for p in precisions for c in (("off", "on") if args.compile else ("off",))]
        models = {m: create_model(family, (1, 28, 28), **options) for m in modes}
        for m in models.values():
            m.resolve_output("unit")
        if family == "conv":
            net, x_min = ConvMinimal(options), x_img
        else:
            net, x_min = minimal_net(options["layers"], options["code"]), x_flat
        net.to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        runners = {f"aekit {p}{' compiled' if c == 'on' else ''}": partial(run_aekit, models[p, c], train, steps, p,
                                                                          device, c) for p, c in modes}
        runners["minimal fp32"] = partial(run_minimal, net, opt, x_min, steps)
        if key == "small" and device.type == "cpu":
            reg = MLPRegressor(hidden_layer_sizes=(options["code"],), batch_size=BATCH, learning_rate_init=1e-3,
                               random_state=0)
            x_np = x_flat.cpu().numpy()
            reg.partial_fit(x_np[:BATCH], x_np[:BATCH])
            runners["MLPRegressor"] = partial(run_sklearn, reg, x_np, steps, rng)
        for run in runners.values():  # warm-up
            run()
        speeds: dict[str, list[float]] = {name: [] for name in runners}
        order = list(runners)
        for r in range(args.rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                speeds[name].append(runners[name]())
            print(f"{label}: round {r + 1}/{args.rounds}", flush=True)
        base = speeds["minimal fp32"]
        for name, v in speeds.items():
            ratio = statistics.median(a / b for a, b in zip(v, base, strict=True))
            results.append({"model": label, "contender": name, "batch_size": BATCH, "steps": steps,
                            "rounds": args.rounds, "samples_per_s": round(statistics.median(v)),
                            "ratio_to_minimal": round(ratio, 3), "all": [round(x) for x in v]})
        if "MLPRegressor" in speeds:
            for p in precisions:
                v = speeds[f"aekit {p}"]
                results.append({"model": label, "contender": f"aekit {p} / MLPRegressor", "ratio": round(
                    statistics.median(a / b for a, b in zip(v, speeds["MLPRegressor"], strict=True)), 3)})
    print(f"\n{'model':<26} {'contender':<21} {'samples/s':>10} {'vs minimal fp32':>16}")
    for r in results:
        if "samples_per_s" in r:
            print(f"{r['model']:<26} {r['contender']:<21} {r['samples_per_s']:>10,} {r['ratio_to_minimal']:>15.2f}x")
        else:
            print(f"{r['model']:<26} {r['contender']:<30} {r['ratio']:>6.2f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from aekit.device import cpu_has_fast_bf16

    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "cpu_fast_bf16": cpu_has_fast_bf16()}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Training throughput: aekit's loop against a minimal hand-written PyTorch loop.

Both train the same architecture (same layers, sigmoid output, MSE, Adam, batch 256) on MNIST
for a fixed number of steps. The two are interleaved in one process -- aekit, minimal, minimal,
aekit, ... -- after a warm-up, so drifts in machine speed hit both alike; the table shows the
median samples/s of each over the rounds and the median of the per-round ratios (each ratio
compares two measurements taken back to back, which cancels most of a shared machine's drift).
The minimal loop gets its data already as float32 in [0, 1]; aekit keeps uint8 and converts each
batch, as it does in use.

    python benchmarks/throughput.py [--data-dir ../shared/datasets/mnist] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
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

MODELS = {  # name -> (hidden layers, code, steps per measurement)
    "mlp 784-1000-500-250-30": ([1000, 500, 250], 30, 40),
    "mlp 784-32": ([], 32, 400),
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
    perm = torch.randperm(len(x))
    for i in range(steps):
        xb = x[perm[i * BATCH : (i + 1) * BATCH]]
        loss = F.mse_loss(torch.sigmoid(net(xb)), xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * BATCH / (time.perf_counter() - t0)


def run_aekit(model: nn.Module, train: Split, steps: int) -> float:
    cfg = TrainConfig(epochs=1, batch_size=BATCH, lr=1e-3, max_steps=steps)
    t0 = time.perf_counter()
    fit(model, train, None, cfg, progress=False)
    return steps * BATCH / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/mnist"))
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--out", default="benchmarks/results/throughput.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    ds = load_dataset("mnist", args.data_dir)
    train = Split(ds.train.x)
    x_float = torch.from_numpy(ds.train.x.reshape(len(ds.train.x), -1).astype(np.float32) / 255.0)
    results = []
    for name, (layers, code, steps) in MODELS.items():
        model = create_model("mlp", (1, 28, 28), layers=layers, code=code, activation="relu")
        model.resolve_output("unit")
        net = minimal_net(layers, code)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        run_aekit(model, train, steps // 4)  # warm-up both
        run_minimal(net, opt, x_float, steps // 4)
        ours, theirs = [], []
        for r in range(args.rounds):
            if r % 2 == 0:
                ours.append(run_aekit(model, train, steps))
                theirs.append(run_minimal(net, opt, x_float, steps))
            else:
                theirs.append(run_minimal(net, opt, x_float, steps))
                ours.append(run_aekit(model, train, steps))
        a, m = statistics.median(ours), statistics.median(theirs)
        ratio = statistics.median(o / t for o, t in zip(ours, theirs, strict=True))
        results.append({"model": name, "batch_size": BATCH, "steps": steps, "rounds": args.rounds,
                        "aekit_samples_per_s": round(a), "minimal_samples_per_s": round(m), "ratio": round(ratio, 3),
                        "aekit_all": [round(v) for v in ours], "minimal_all": [round(v) for v in theirs]})
    print(f"{'model':<26} {'aekit samples/s':>16} {'minimal loop':>13} {'ratio':>6}")
    for r in results:
        print(f"{r['model']:<26} {r['aekit_samples_per_s']:>16,} {r['minimal_samples_per_s']:>13,} {r['ratio']:>6.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu"}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Training on data larger than memory: peak resident memory while training on a memory-mapped .npy.

Writes a float32 ``.npy`` of digit-like images (mnist-mini digits, each shifted and faded at
random; 1,000,000 x 1 x 28 x 28 = 3.1 GB by default) into a temporary folder, then trains the
784-32-784 autoencoder on it for one epoch in a fresh process (``aekit.train`` on ``npy:FILE``:
the file is memory-mapped, batches are read from the file) and reports that process's peak
resident set size (``VmHWM`` in ``/proc/self/status``, which counts the mapped file pages it
holds too; ``ru_maxrss`` is no use here, as it carries the parent's size over the fork).

    python benchmarks/memory.py [--rows 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time
import aekit
t0 = time.perf_counter()
run = aekit.train(None, sys.argv[2], progress=False, **{"data.name": "npy:" + sys.argv[1], "model.code": 32,
                  "train.epochs": 1, "train.batch_size": 256})
# VmHWM: this process's own peak (ru_maxrss would also count the parent's size at fork time).
hwm_kb = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
print(json.dumps({"peak_rss_mb": hwm_kb / 1024,
                  "train_seconds": run.summary["train_seconds"], "wall_seconds": time.perf_counter() - t0,
                  "test": run.summary["metrics"]["test"], "n_train": run.summary["metrics"]["train"]["n"]}))
"""


def write_npy(path: Path, rows: int, chunk: int = 20_000) -> float:
    """Digit-like float32 images, written a chunk at a time (the generator never holds the file)."""
    from aekit.data.sources import load_dataset

    digits = load_dataset("mnist-mini").train.x.astype(np.float32) / 255  # (6000, 1, 28, 28)
    rng = np.random.default_rng(0)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, 1, 28, 28))
    t0 = time.perf_counter()
    for i in range(0, rows, chunk):
        n = min(chunk, rows - i)
        pick = digits[rng.integers(0, len(digits), n)]
        dy, dx = rng.integers(-2, 3, 2)
        fade = rng.uniform(0.7, 1.0, (n, 1, 1, 1)).astype(np.float32)
        out[i : i + n] = np.roll(pick, (int(dy), int(dx)), axis=(2, 3)) * fade
    out.flush()
    del out
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="images in the file (1,000,000 = 3.1 GB)")
    ap.add_argument("--keep", metavar="DIR", help="write the file here and keep it (default: a temporary folder)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/memory.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "big.npy"
        gen_s = write_npy(path, args.rows)
        size_gb = path.stat().st_size / 1e9
        print(f"wrote {path} ({size_gb:.2f} GB) in {gen_s:.0f}s", flush=True)
        proc = subprocess.run([sys.executable, "-c", CHILD, str(path), str(folder / "run")], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            sys.exit(f"training failed:\n{proc.stderr[-3000:]}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
    res.update(file_gb=round(size_gb, 2), rows=args.rows, generate_seconds=round(gen_s, 1))
    print(f"\nfile {res['file_gb']} GB, {res['n_train']:,} training images, 1 epoch in {res['train_seconds']:.0f}s "
          f"(whole run {res['wall_seconds']:.0f}s)")
    print(f"peak RSS of the training process: {res['peak_rss_mb']:.0f} MB (target < 1,500 MB)")
    print(f"test sse_per_image after one epoch: {res['test']['sse_per_image']:.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Build src/aekit/data/assets/mnist-mini.npz: a stratified, seeded subset of MNIST.

600 training and 100 test images per digit (6,000 + 1,000), drawn with a fixed seed from the
full MNIST files. Usage: python scripts/make_mnist_mini.py ../shared/datasets/mnist
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from aekit.data.idx import read_idx

OUT = Path(__file__).resolve().parents[1] / "src/aekit/data/assets/mnist-mini.npz"


def stratified(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    picks = [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)]
    idx = np.concatenate(picks)
    return idx[rng.permutation(len(idx))]


def main(src: str) -> None:
    d = Path(src)
    rng = np.random.default_rng(20061)
    xtr, ytr = read_idx(d / "train-images-idx3-ubyte.gz"), read_idx(d / "train-labels-idx1-ubyte.gz")
    xte, yte = read_idx(d / "t10k-images-idx3-ubyte.gz"), read_idx(d / "t10k-labels-idx1-ubyte.gz")
    itr, ite = stratified(ytr, 600, rng), stratified(yte, 100, rng)
    np.savez_compressed(OUT, x_train=xtr[itr], y_train=ytr[itr], x_test=xte[ite], y_test=yte[ite])
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/mnist")

"""``aekit demo``: the lecture's simplest autoencoder on the shipped MNIST subset, next to PCA.

Offline and under a minute on two CPU cores: trains 784 -> 32 -> 784 on ``mnist-mini``, fits
PCA with 32 components on the same training images, and prints both on the test images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aekit.config import RunConfig, TrainConfig

DEMO_CONFIG = RunConfig(
    model={"name": "mlp", "code": 32, "layers": []},
    train=TrainConfig(epochs=40, batch_size=64, lr=5e-3, schedule="cosine"),
)


def run_demo(out: str | Path | None = None, progress: bool | None = None, epochs: int | None = None) -> dict[str, Any]:
    from aekit.api import baseline_pca, default_run_dir, train

    overrides: dict[str, Any] = {"train.epochs": epochs} if epochs else {}
    run = train(DEMO_CONFIG, out or default_run_dir("demo"), progress=progress, **overrides)
    pca = baseline_pca(32, "mnist-mini")
    return {"run_dir": str(run.dir), "autoencoder": run.summary["metrics"]["test"], "pca": pca,
            "train_seconds": run.summary["train_seconds"], "epochs": run.summary["epochs_run"]}


def format_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    head = f"{'model':<28} {'test sse/image':>14} {'mse':>8} {'psnr dB':>8} {'bce':>7}"
    lines = [head, "-" * len(head)]
    for name, m in rows:
        lines.append(f"{name:<28} {m['sse_per_image']:>14.2f} {m['mse']:>8.4f} {m['psnr']:>8.2f} {m['bce']:>7.4f}")
    return "\n".join(lines)

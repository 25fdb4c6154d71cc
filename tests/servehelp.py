"""A tiny trained run for the ``aekit serve`` tests: 784 -> 64 -> 2 on mnist-mini, one epoch (~5 s)."""

from __future__ import annotations

from pathlib import Path


def tiny_run(root: Path, name: str = "tiny") -> Path:
    import aekit
    from aekit.config import RunConfig

    out = root / name
    aekit.train(RunConfig(model={"name": "mlp", "code": 2, "layers": [64]}), out, progress=False,
                **{"train.epochs": 1})
    return out

"""A tiny trained run for the ``aekit serve`` tests: 784 -> 64 -> 2 on mnist-mini, one epoch.

Trained once per test session (a few seconds) and copied into each test module's runs folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

_TRAINED: list[Path] = []


def tiny_run(root: Path, factory, name: str = "tiny") -> Path:
    """A copy of the session's tiny run at ``root/name``; ``factory`` is pytest's tmp_path_factory."""
    if not _TRAINED:
        import aekit
        from aekit.config import RunConfig

        out = factory.mktemp("tiny-trained") / "tiny"
        aekit.train(RunConfig(model={"name": "mlp", "code": 2, "layers": [64]}), out, progress=False,
                    **{"train.epochs": 1})
        _TRAINED.append(out)
    shutil.copytree(_TRAINED[0], root / name, ignore=shutil.ignore_patterns("*.lock", "last"))
    return root / name

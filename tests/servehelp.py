"""Tiny trained runs for the ``aekit serve`` tests: 784 -> 64 -> 2 on mnist-mini, one epoch; and
small VAEs (:func:`tiny_vae`) for the Sample panel's calls.

Each is trained once per test session (a few seconds, or under one for a VAE) and copied into each
test module's runs folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

_TRAINED: list[Path] = []
_VAES: dict[tuple[int, bool], Path] = {}


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


def tiny_vae(root: Path, factory, name: str, code: int = 2, conditional: bool = False) -> Path:
    """A copy at ``root/name`` of the session's VAE 784 -> 32 -> ``code`` on mnist-mini (conditioned on
    the labels with ``conditional``), trained for 30 steps: the calls only need a VAE, not a good one."""
    key = (code, conditional)
    if key not in _VAES:
        import aekit
        from aekit.config import RunConfig

        out = factory.mktemp("tiny-vae") / "vae"
        aekit.train(RunConfig(model={"name": "vae", "code": code, "layers": [32], "conditional": conditional}), out,
                    progress=False, **{"train.epochs": 1, "train.max_steps": 30})
        _VAES[key] = out
    shutil.copytree(_VAES[key], root / name, ignore=shutil.ignore_patterns("*.lock", "last"))
    return root / name


def as_classifier(run: Path, dest: Path) -> Path:
    """A copy of ``run`` whose config.json says it is a classifier run (``aekit finetune``'s kind): what
    the run list shows, and the refusal to open it, come from config.json alone."""
    import json

    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("*.lock", "last"))
    info = json.loads((dest / "config.json").read_text())
    info.update(kind="classifier", n_classes=10, finetune={})
    (dest / "config.json").write_text(json.dumps(info))
    return dest


def with_broken_weights(run: Path, dest: Path) -> Path:
    """A copy of ``run`` whose config.json is fine and whose weights file is not: listed, but it fails to open."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("*.lock", "last"))
    (dest / "model.safetensors").write_bytes(b"not safetensors at all")
    return dest


_TASK_RUNS: dict[str, Path] = {}


def tiny_task_run(root: Path, factory, task: str, name: str) -> Path:
    """A copy at ``root/name`` of the session's tiny run trained for a panel's ``task``: ``denoise``
    (gaussian:0.3 noise) or ``infill`` (block:12 squares), 784 -> 64 -> 8, 30 steps on mnist-mini; or
    ``classify-pretrained`` / ``classify-random``, the tiny run fine-tuned at 1,000 labels, one epoch a
    stage, from its weights or from a random start. Trained once per session: the calls need such a run,
    not a good one."""
    if task not in _TASK_RUNS:
        import aekit
        from aekit.config import RunConfig

        out = factory.mktemp(f"tiny-{task}") / task
        if task.startswith("classify-"):
            parent = tiny_run(factory.mktemp("tiny-parent"), factory)
            aekit.finetune(parent, labels=1000, init=task.removeprefix("classify-"), out=out, epochs=1,
                           progress=False)
        else:
            noise = {"denoise": "gaussian:0.3", "infill": "block:12"}[task]
            aekit.train(RunConfig(model={"name": "mlp", "code": 8, "layers": [64]}), out, progress=False,
                        **{"train.epochs": 1, "train.max_steps": 30, "train.noise": noise})
        _TASK_RUNS[task] = out
    shutil.copytree(_TASK_RUNS[task], root / name, ignore=shutil.ignore_patterns("*.lock", "last", "stage-*"))
    return root / name


def panel_runs(root: Path, factory, conditional_vae: bool = False) -> Path:
    """A run for every panel under ``root``: a plain autoencoder ``ae``, runs trained to denoise (``den``)
    and to infill (``inf``), the classifier pair (``clf-pre`` fine-tuned from an autoencoder's encoder,
    ``clf-rand`` the same network from a random start), a VAE ``vae`` and, if asked, a conditional one ``cvae``."""
    tiny_run(root, factory, "ae")
    for task, name in (("denoise", "den"), ("infill", "inf"), ("classify-pretrained", "clf-pre"),
                       ("classify-random", "clf-rand")):
        tiny_task_run(root, factory, task, name)
    tiny_vae(root, factory, "vae")
    if conditional_vae:
        tiny_vae(root, factory, "cvae", conditional=True)
    return root

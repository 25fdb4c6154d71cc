"""Small run folders for the tests of what users do with variational runs (test_vae_use.py and the
bad-input corpus test_bad_input_generate.py): a VAE with a 2-number code, a conditional VAE, and a plain
autoencoder, on mnist-mini, each a few seconds of training on two cores."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def vae_run(folder: Path, epochs: int = 2) -> Path:
    """``aekit train --model vae --code 2 --layers 64`` on mnist-mini, through the CLI as a user runs it."""
    from aekit.cli import main

    out = folder / "vae"
    rc = main(["train", "--model", "vae", "--data", "mnist-mini", "--code", "2", "--layers", "64", "--epochs",
               str(epochs), "--batch-size", "128", "--lr", "3e-3", "--out", str(out), "--quiet"])
    assert rc == 0
    return out


def plain_run(folder: Path) -> Path:
    """An mlp autoencoder with a 2-number code (one step: only its family matters)."""
    import aekit
    from aekit.config import RunConfig

    cfg = RunConfig.from_dict({"model": {"name": "mlp", "code": 2, "layers": [32]}, "data": {"name": "mnist-mini"},
                               "train": {"epochs": 1, "max_steps": 20}})
    aekit.train(cfg, folder / "plain", progress=False)
    return folder / "plain"


def conditional_run(folder: Path, steps: int = 300) -> Path:
    """A conditional VAE (n_classes 10) on mnist-mini's labels, written as aekit train writes a run
    (config.json and model.safetensors). Trained here with Adam on its own loss: the training loop
    does not hand labels to a model yet (``aekit train --conditional`` is another piece of work)."""
    import torch

    from aekit.data.sources import load_dataset
    from aekit.registry import create_model
    from aekit.run import make_config, write_config
    from aekit.training.checkpoint import save_tensors

    ds = load_dataset("mnist-mini")
    torch.manual_seed(0)
    options = {"code": 2, "layers": [64], "n_classes": 10}
    model = create_model("vae", ds.sample_shape, **options)
    model.resolve_output(ds.value_range)
    x = torch.from_numpy(ds.train.x.astype(np.float32) / 255)
    y = torch.from_numpy(ds.train.y)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(steps):
        rows = slice((step * 128) % (len(x) - 128), (step * 128) % (len(x) - 128) + 128)
        opt.zero_grad()
        model(x[rows], labels=y[rows]).loss.backward()
        opt.step()
    out = folder / "cvae"
    out.mkdir(parents=True)
    run = {"model": {"name": "vae", **options}, "data": {"name": "mnist-mini", "val_fraction": 0.1, "split_seed": 0}}
    write_config(out, make_config("autoencoder", model.config(), run, ds.describe()))
    save_tensors(out / "model.safetensors", {k: v.contiguous() for k, v in model.state_dict().items()})
    return out

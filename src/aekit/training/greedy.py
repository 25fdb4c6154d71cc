"""Pre-training a deep encoder with autoencoders (the lecture's "autoencoders as initialisation").

Greedy layer-wise (Hinton et al. 2006; Bengio et al., "Greedy layer-wise training of deep
networks", NIPS 2006; Vincent et al. 2010 with denoising): layer 1 is trained as a shallow
autoencoder on the inputs; layer 2 as a shallow autoencoder on layer 1's codes, layer 1 frozen;
and so on, each with the one training loop (``fit``). End to end: the whole deep autoencoder is
trained at once and its encoder kept.

Either way the result is an ordinary ``mlp`` autoencoder whose encoder is the stack of layers (the
greedy decoders are stacked in reverse, "unrolled" as in Hinton & Salakhutdinov 2006), saved in an
ordinary run directory; ``summary.json`` records each layer's reconstruction error. Each fit
keeps its own checkpoints in a sub-folder (``layer-1/``, ... or ``end-to-end/``), so ``--resume``
replays finished layers from their weights and continues the open one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.config import PRETRAIN_MODES, TrainConfig
from aekit.data.dataset import Dataset, Split
from aekit.errors import AekitError
from aekit.io import write_json
from aekit.metrics import evaluate_model
from aekit.models.base import Autoencoder
from aekit.registry import create_model
from aekit.training import checkpoint as ckpt
from aekit.training.loop import fit

MODES = PRETRAIN_MODES


def noise_per_layer(noise: str | Sequence[str] | None, n_layers: int) -> list[str | None]:
    """One noise spec for every layer, or a comma-separated list with one per layer."""
    if noise is None or noise == "":
        return [None] * n_layers
    specs = noise.split(",") if isinstance(noise, str) else list(noise)
    if len(specs) == 1:
        specs = specs * n_layers
    if len(specs) != n_layers:
        raise AekitError(f"--noise: got {len(specs)} noise specs for {n_layers} layers; give one or one per layer")
    return [s or None for s in specs]


def stacked_model(input_shape: tuple[int, ...], layers: Sequence[int], activation: str) -> Autoencoder:
    """The deep ``mlp`` autoencoder whose encoder is the stack of ``layers`` (the last one is the code)."""
    if not layers:
        raise AekitError("--layers: give at least one layer size, e.g. 1000,1000,1000")
    return create_model("mlp", input_shape, layers=list(layers[:-1]), code=layers[-1], activation=activation,
                        code_activation=activation)


def encoder_linears(model: Autoencoder) -> list[torch.nn.Linear]:
    """The encoder's linear layers, bottom first."""
    return [m for m in model.encoder.children() if isinstance(m, torch.nn.Linear)]


def decoder_linears(model: Autoencoder) -> list[torch.nn.Linear]:
    """The decoder's linear layers, from the code outwards."""
    return [m for m in model.decoder.children() if isinstance(m, torch.nn.Linear)]


@torch.no_grad()
def _codes(shallow: Autoencoder, x: np.ndarray) -> np.ndarray:
    return shallow.encode(x) if x.dtype == np.uint8 else shallow.encode(np.asarray(x, np.float32))


def pretrain(
    dataset: Dataset,
    layers: Sequence[int],
    mode: str = "greedy",
    noise: str | Sequence[str] | None = None,
    activation: str = "sigmoid",
    train_cfg: TrainConfig | None = None,
    out: str | Path | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    progress: bool | None = None,
    resume: bool = False,
    device: torch.device | None = None,
) -> tuple[Autoencoder, dict[str, Any]]:
    """Pre-train an encoder of the given ``layers`` on ``dataset`` (labels unused); with ``out``,
    write ``model.safetensors`` and ``summary.json`` there (the caller writes ``config.json``)."""
    if mode not in MODES:
        raise AekitError(f"unknown pre-training mode {mode!r}; use greedy or end-to-end")
    sizes = [int(v) for v in layers]
    if any(s < 1 for s in sizes):
        raise AekitError(f"--layers: sizes must be positive, got {sizes}")
    cfg = train_cfg or TrainConfig()
    noises = noise_per_layer(noise, len(sizes) if mode == "greedy" else 1)
    tr = dataset.split("train", val_fraction, split_seed)
    va = dataset.split("val", val_fraction, split_seed) if val_fraction > 0 else None
    torch.manual_seed(cfg.seed)
    deep = stacked_model(dataset.sample_shape, sizes, activation)
    deep.resolve_output(dataset.value_range)
    layer_rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    if mode == "end-to-end":
        sub = _sub(out, "end-to-end", resume)
        res = fit(deep, tr, va, TrainConfig(**{**cfg.__dict__, "noise": noises[0]}), sub[0], resume=sub[1],
                  progress=progress, device=device)
        layer_rows.append({"layer": "all", "sizes": sizes, "noise": noises[0], "best_val_loss": res.best_val_loss,
                           "epochs": len(res.history)})
    else:
        enc, dec = encoder_linears(deep), decoder_linears(deep)
        x_tr, x_va = tr.x, (va.x if va is not None else None)
        in_shape: tuple[int, ...] = dataset.sample_shape
        value_range = dataset.value_range
        for i, h in enumerate(sizes):
            shallow = create_model("mlp", in_shape, code=h, code_activation=activation)
            shallow.resolve_output(value_range)
            layer_cfg = TrainConfig(**{**cfg.__dict__, "noise": noises[i], "seed": cfg.seed + i})
            sub = _sub(out, f"layer-{i + 1}", resume)
            res = fit(shallow, Split(x_tr), Split(x_va) if x_va is not None else None, layer_cfg, sub[0],
                      resume=sub[1], progress=progress, device=device)
            s_enc, s_dec = encoder_linears(shallow)[0], decoder_linears(shallow)[0]
            # Copy into the stack: encoder layer i, and its decoder as the mirror-image layer.
            enc[i].load_state_dict(s_enc.state_dict())
            dec[len(sizes) - 1 - i].load_state_dict(s_dec.state_dict())
            mse = res.history[-1].get("val_mse") if res.history else None
            layer_rows.append({"layer": i + 1, "size": h, "input": int(np.prod(in_shape)), "noise": noises[i],
                               "best_val_loss": res.best_val_loss, "val_mse": mse, "epochs": len(res.history)})
            # The next layer learns to reconstruct these codes, with this layer frozen (codes computed once).
            shallow.eval()
            x_tr = _codes(shallow, x_tr)
            x_va = _codes(shallow, x_va) if x_va is not None else None
            in_shape = (h,)
            value_range = "unit" if activation == "sigmoid" else "real"
    summary = {"mode": mode, "layers": sizes, "activation": activation, "per_layer": layer_rows,
               "pretrain_seconds": round(time.perf_counter() - t0, 1)}
    deep.eval()
    summary["metrics"] = {"test": evaluate_model(deep, dataset.test.x)} if len(dataset.test) else {}
    if out is not None:
        out = Path(out)
        ckpt.save_tensors(out / "model.safetensors", deep.state_dict())
        write_json(out / "summary.json", summary)
    return deep, summary


def plan(dataset: Dataset, layers: Sequence[int], mode: str, noise: str | Sequence[str] | None, activation: str,
         cfg: Any) -> dict[str, Any]:
    """The ``pretrain`` table of a run's config.json (with the stacked model's config under "model"),
    checked before anything is trained."""
    if mode not in MODES:
        raise AekitError(f"unknown pre-training mode {mode!r}; use greedy or end-to-end")
    sizes = [int(v) for v in layers]
    deep = stacked_model(dataset.sample_shape, sizes, activation)
    deep.resolve_output(dataset.value_range)
    noises = noise_per_layer(noise, len(sizes) if mode == "greedy" else 1)
    return {"model": deep.config(), "mode": mode, "layers": sizes, "noise": noises, "activation": activation,
            "train": cfg.to_dict()["train"], "val_fraction": cfg.data.val_fraction, "split_seed": cfg.data.split_seed}


def _sub(out: str | Path | None, name: str, resume: bool) -> tuple[Path | None, bool]:
    """The checkpoint folder of one fit of a pre-training run, and whether it has one to resume."""
    if out is None:
        return None, False
    sub = Path(out) / name
    return sub, resume and (sub / ckpt.LAST / "state.json").is_file()

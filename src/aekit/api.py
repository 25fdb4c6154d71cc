"""The Python API behind every CLI command: train, load, evaluate, reconstruct, PCA baseline."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aekit.config import RunConfig, apply_overrides
from aekit.data.dataset import Dataset
from aekit.data.sources import load_dataset
from aekit.errors import AekitError

RECON_GRID = 16


@dataclass
class Run:
    """A finished training run: its folder, the trained model and the summary figures."""

    dir: Path
    model: Any
    summary: dict[str, Any]
    config: RunConfig


def _version() -> str:
    from aekit import __version__

    return __version__


def default_run_dir(model_name: str) -> Path:
    return Path("runs") / f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{model_name}"


def load_data(cfg: RunConfig, progress: bool = True) -> Dataset:
    d = cfg.data
    return load_dataset(d.name, d.data_dir, image_size=d.image_size, color=d.color, progress=progress)


def train(
    config: RunConfig | None = None,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool | None = None,
    dataset: Dataset | None = None,
    **overrides: Any,
) -> Run:
    """Train an autoencoder and write its run directory.

    ``overrides`` use dotted keys, e.g. ``train(**{"train.epochs": 5, "model.code": 16})``; plain
    keyword names are looked up in the sections in the order train, model, data.
    """
    import torch

    from aekit.device import resolve_device
    from aekit.registry import create_model
    from aekit.training import checkpoint as ckpt
    from aekit.training import distributed
    from aekit.training.loop import fit

    cfg = config or RunConfig()
    cfg = apply_overrides(cfg, _dotted(cfg, overrides)).validate()
    if out is None and distributed.env_world_size() > 1:
        raise AekitError("distributed training needs --out DIR (every process must name the same run directory)")
    out = Path(out) if out is not None else default_run_dir(cfg.model.get("name", "mlp"))
    if resume:
        if not (out / "config.json").is_file():
            raise AekitError(f"--resume: {out} is not a run directory (no config.json)")
    elif (out / "last" / "state.json").is_file():
        raise AekitError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    ds = dataset if dataset is not None else load_data(cfg, progress=bool(progress))
    device = resolve_device(cfg.train.device)
    rank, _ = distributed.setup(device)
    torch.manual_seed(cfg.train.seed)
    opts = {k: v for k, v in cfg.model.items() if k != "name"}
    model = create_model(cfg.model.get("name", "mlp"), ds.sample_shape, **opts)
    model.resolve_output(ds.value_range)
    info = {"aekit_version": _version(), "run": cfg.to_dict(), "model": model.config(), "data": ds.describe()}
    if rank == 0:
        ckpt.write_json(out / "config.json", info)

    d = cfg.data
    train_split = ds.split("train", d.val_fraction, d.split_seed)
    val_split = ds.split("val", d.val_fraction, d.split_seed) if d.val_fraction > 0 else None
    res = fit(model, train_split, val_split, cfg.train, out, device=device, resume=resume, progress=progress)
    distributed.finish()
    if rank != 0:  # the other processes of a distributed run: rank 0 evaluates and writes
        model.cpu().eval()
        return Run(out, model, {}, cfg)

    splits = {"train": train_split, "val": val_split, "test": ds.test}
    metrics = {name: evaluate_model(model, s.x, cfg.train.eval_batch_size)
               for name, s in splits.items() if s is not None and len(s)}
    summary = {
        "metrics": metrics,
        "best_epoch": res.best_epoch,
        "epochs_run": len(res.history),
        "steps": res.steps,
        "train_seconds": round(sum(h["seconds"] for h in res.history), 2),
        "stopped_early": res.stopped_early,
        "n_parameters": model.n_parameters(),
    }
    ckpt.write_json(out / "summary.json", summary)
    ckpt.write_json(out / "config.json", {**info, "metrics": metrics})
    from aekit import plots

    plots.loss_curve(res.history, out / "loss.png", title=f"{model.family} on {ds.name}")
    show = ds.test if len(ds.test) else train_split
    reconstruct_grid(model, show.x[:RECON_GRID], out / "reconstructions.png")
    model.cpu().eval()
    return Run(out, model, summary, cfg)


def _dotted(cfg: RunConfig, overrides: dict[str, Any]) -> dict[str, Any]:
    import dataclasses

    out = {}
    for key, value in overrides.items():
        if "." in key:
            out[key] = value
            continue
        if key in {f.name for f in dataclasses.fields(cfg.train)}:
            out[f"train.{key}"] = value
        elif key in {f.name for f in dataclasses.fields(cfg.data)}:
            out[f"data.{key}"] = value
        else:
            out[f"model.{key}"] = value
    return out


def load(run_dir: str | Path):
    """Rebuild a trained model from its run directory alone (config.json + model.safetensors)."""
    from aekit.registry import create_model
    from aekit.training import checkpoint as ckpt

    d = Path(run_dir)
    if not d.is_dir():
        raise AekitError(f"{d}: no such run directory")
    info = ckpt.read_json(d / "config.json")
    mc = dict(info["model"])
    name, shape = mc.pop("name"), tuple(mc.pop("input_shape"))
    model = create_model(name, shape, **mc)
    try:
        model.load_state_dict(ckpt.load_tensors(d / "model.safetensors"))
    except RuntimeError as exc:
        raise AekitError(f"{d}: weights do not fit the model in config.json ({exc})") from None
    model.eval()
    model.run_dir = d
    model.info = info
    return model


def _model_and_info(model_or_dir: Any):
    model = load(model_or_dir) if isinstance(model_or_dir, str | Path) else model_or_dir
    return model, getattr(model, "info", {})


def run_dataset(info: dict[str, Any], data: str | None, data_dir: str | None) -> tuple[Dataset, RunConfig]:
    """The dataset a command works on: the one given, else the one the run was trained on."""
    cfg = RunConfig.from_dict(info.get("run", {}))
    if data is not None:
        cfg.data.name = data
        cfg.data.data_dir = None
    if data_dir is not None:
        cfg.data.data_dir = data_dir
    return load_data(cfg), cfg


def split_of(ds: Dataset, cfg: RunConfig, split: str):
    return ds.split(split, cfg.data.val_fraction, cfg.data.split_seed)


def check_shape(model: Any, ds: Dataset) -> None:
    if tuple(model.input_shape) != ds.sample_shape:
        raise AekitError(
            f"the model takes samples of shape {tuple(model.input_shape)} but {ds.name} has {ds.sample_shape}"
        )


def evaluate_model(model: Any, x: np.ndarray, batch_size: int = 2048) -> dict[str, Any]:
    from aekit.data.mapped import chunks
    from aekit.metrics import ReconMeter, as_float

    meter = ReconMeter(model.output == "sigmoid")
    for xb in chunks(x, batch_size):
        meter.update(as_float(xb), model.reconstruct(xb))
    return meter.result()


def evaluate(model_or_dir: Any, data: str | None = None, data_dir: str | None = None,
             split: str = "test") -> dict[str, Any]:
    """Reconstruction metrics (sse_per_image, mse, psnr, bce, n) of a trained model on a split."""
    model, info = _model_and_info(model_or_dir)
    ds, cfg = run_dataset(info, data, data_dir)
    check_shape(model, ds)
    return evaluate_model(model, split_of(ds, cfg, split).x)


def reconstruct_grid(model: Any, x: np.ndarray, path: str | Path) -> Path:
    from aekit import plots
    from aekit.metrics import as_float

    recon = model.reconstruct(x)
    return plots.image_rows([as_float(x), recon], tuple(model.input_shape), path,
                            labels=["input", "output"], title="originals (top) and reconstructions (bottom)")


def reconstruct(model_or_dir: Any, data: str | None = None, data_dir: str | None = None, n: int = 16,
                out: str | Path | None = None, split: str = "test") -> Path:
    """Write a PNG with ``n`` originals above their reconstructions; returns its path."""
    model, info = _model_and_info(model_or_dir)
    if n < 1:
        raise AekitError(f"--n must be at least 1, got {n}")
    ds, cfg = run_dataset(info, data, data_dir)
    check_shape(model, ds)
    x = split_of(ds, cfg, split).x[:n]
    if out is None:
        out = Path(getattr(model, "run_dir", ".")) / "reconstructions.png"
    return reconstruct_grid(model, x, out)


def denoise(model_or_dir: Any, noise: str, data: str | None = None, data_dir: str | None = None,
            split: str = "test", out: str | Path | None = None, seed: int = 0) -> dict[str, Any]:
    """PSNR of a trained model as a denoiser on ``split``, next to three classical baselines."""
    from aekit.tasks.denoise import denoise_report

    model, info = _model_and_info(model_or_dir)
    ds, cfg = run_dataset(info, data, data_dir)
    check_shape(model, ds)
    if out is None and getattr(model, "run_dir", None) is not None:
        out = Path(model.run_dir) / "denoise.png"
    return denoise_report(model, split_of(ds, cfg, "train").x, split_of(ds, cfg, "val").x,
                          split_of(ds, cfg, split).x, noise, seed=seed, picture=out)


def _run_split(model_or_dir: Any, data: str | None, data_dir: str | None, split: str):
    model, info = _model_and_info(model_or_dir)
    ds, cfg = run_dataset(info, data, data_dir)
    check_shape(model, ds)
    return model, ds, cfg, split_of(ds, cfg, split)


def encode(model_or_dir: Any, data: str | None = None, data_dir: str | None = None, split: str = "test",
           out: str | Path | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Codes (and labels, if any) of a split; with ``out`` (.npy or .csv) also written to disk."""
    from aekit.tasks.represent import save_codes

    model, _, _, s = _run_split(model_or_dir, data, data_dir, split)
    codes = model.encode(s.x)
    if out is not None:
        save_codes(codes, s.y, out)
    return codes, s.y


def probe(model_or_dir: Any, data: str | None = None, data_dir: str | None = None,
          max_train: int | None = None) -> dict[str, Any]:
    """Logistic-regression and 5-NN accuracy on the codes, the raw inputs and PCA codes (train -> test)."""
    from aekit.tasks.represent import probe_table

    model, ds, _, tr = _run_split(model_or_dir, data, data_dir, "all-train")
    return probe_table(model, tr.x, tr.y, ds.test.x, ds.test.y, max_train=max_train)


def latent_map(model_or_dir: Any, out: str | Path, data: str | None = None, data_dir: str | None = None,
               split: str = "test", method: str = "pca", n: int | None = 5000) -> Path:
    """A 2-D picture of the codes of (up to ``n`` samples of) a split, coloured by label."""
    from aekit.tasks.represent import latent_map as _map

    model, ds, _, s = _run_split(model_or_dir, data, data_dir, split)
    x, y = (s.x[:n], None if s.y is None else s.y[:n]) if n else (s.x, s.y)
    return _map(model, x, y, out, method=method, title=f"codes of {ds.name} ({split})")


def _pick(spec: str | int, s: Any, shape: tuple[int, ...]) -> np.ndarray:
    from aekit.metrics import as_float
    from aekit.tasks.blend import load_image_file

    text = str(spec)
    if text.lstrip("-").isdigit():
        i = int(text)
        if not 0 <= i < len(s):
            raise AekitError(f"sample index {i} is out of range: the split has {len(s)} samples (0 to {len(s) - 1})")
        return as_float(s.x[i])
    return load_image_file(text, shape)


def interpolate(model_or_dir: Any, src: str | int, dst: str | int, steps: int = 10, out: str | Path | None = None,
                data: str | None = None, data_dir: str | None = None, split: str = "test") -> Path:
    """Picture: decoding the line between the codes of two samples (indices or image files), and the
    pixel cross-fade of the same two underneath."""
    from aekit.tasks.blend import strip

    model, _, _, s = _run_split(model_or_dir, data, data_dir, split)
    shape = tuple(model.input_shape)
    a, b = _pick(src, s, shape), _pick(dst, s, shape)
    if out is None:
        out = Path(getattr(model, "run_dir", ".")) / "interpolation.png"
    return strip(model, a, b, steps, out)


def inpaint(model_or_dir: Any, mask: str, iters: int = 20, out: str | Path | None = None, data: str | None = None,
            data_dir: str | None = None, split: str = "test", start: str = "mean") -> dict[str, Any]:
    """Fill the masked pixels of a split's images; PSNR on those pixels vs mean-image and nearest fills."""
    from aekit.tasks.inpaint import inpaint_report

    model, ds, cfg, s = _run_split(model_or_dir, data, data_dir, split)
    if out is None and getattr(model, "run_dir", None) is not None:
        out = Path(model.run_dir) / "inpaint.png"
    return inpaint_report(model, split_of(ds, cfg, "train").x, s.x, mask, iters=iters, picture=out, start=start)


def anomaly(model_or_dir: Any, out: str | Path | None = None, contamination: float = 0.01,
            maps: str | Path | None = None, data: str | None = None, data_dir: str | None = None,
            split: str = "test") -> dict[str, Any]:
    """Anomaly scores (reconstruction error) of a split, the threshold from the validation split's
    scores at the given contamination, and optionally a CSV and a picture of the top error maps."""
    from aekit.tasks import anomaly as an

    model, ds, cfg, s = _run_split(model_or_dir, data, data_dir, split)
    val = split_of(ds, cfg, "val")
    ref = val if len(val) else split_of(ds, cfg, "train")
    thr = an.threshold(an.scores(model, ref.x)[0], contamination)
    sc, err = an.scores(model, s.x)
    flagged = sc > thr
    res: dict[str, Any] = {"n": len(sc), "threshold": thr, "contamination": contamination,
                           "flagged": int(flagged.sum()), "flagged_fraction": float(flagged.mean()),
                           "score_mean": float(sc.mean()), "score_max": float(sc.max())}
    if out is not None:
        res["scores_csv"] = str(an.write_scores(out, sc, flagged, s.y))
    if maps is not None:
        res["maps"] = str(an.error_maps(s.x, err, sc, tuple(model.input_shape), maps))
    return res


def pretrain(layers: list[int], mode: str = "greedy", noise: str | list[str] | None = None, data: str = "mnist-mini",
             data_dir: str | None = None, out: str | Path | None = None, activation: str = "sigmoid",
             progress: bool | None = None, dataset: Dataset | None = None, **train: Any):
    """Pre-train a stacked encoder greedily (one shallow autoencoder per layer) or end to end.

    ``train`` holds training options (epochs, batch_size, lr, ...) for every layer. Works on any
    dataset aekit loads, or on a :class:`Dataset` built from your own arrays. Returns the model
    (an ``mlp`` autoencoder) and the summary (each layer's reconstruction error).
    """
    from aekit.config import DataConfig, TrainConfig
    from aekit.training.greedy import pretrain as _pretrain

    cfg = RunConfig(data=DataConfig(name=data, data_dir=data_dir), model={"name": "mlp"},
                    train=TrainConfig(**train)).validate()
    ds = dataset if dataset is not None else load_data(cfg, progress=bool(progress))
    out = Path(out) if out is not None else default_run_dir(f"pretrain-{mode}")
    return _pretrain(ds, layers, mode, noise, activation, cfg.train, out, cfg.data.val_fraction,
                     cfg.data.split_seed, progress=progress, run_info=cfg.to_dict())


def finetune(pretrained: Any, labels: int | str = "all", stage: str = "both", init: str = "pretrained",
             out: str | Path | None = None, data: str | None = None, data_dir: str | None = None, epochs: int = 30,
             batch_size: int = 128, lr: float = 1e-3, patience: int | None = 5, seed: int = 0,
             dropout: float = 0.0, shift: int = 0, schedule: str = "none", weight_decay: float = 0.0,
             dataset: Dataset | None = None) -> dict[str, Any]:
    """Turn a pre-trained encoder into a classifier: step 1 trains a new softmax layer on the frozen
    encoder (``stage="top"``), step 2 the whole network (``"all"``); ``"both"`` does one then the other.
    ``init="random"`` trains the same network from scratch with the same budget. Returns the summary
    (test error in %), and writes a run directory if ``out`` is given. ``dropout``, ``shift`` (random
    translations of training images by up to that many pixels), ``schedule`` ("cosine") and
    ``weight_decay`` regularise long fine-tuning on many labels."""
    import torch

    from aekit.registry import create_model
    from aekit.training.classify import (
        INITS,
        STAGES,
        Classifier,
        accuracy,
        save_classifier,
        stratified_subset,
        train_stage,
    )

    if stage not in STAGES:
        raise AekitError(f"unknown stage {stage!r}; use top, all or both")
    if init not in INITS:
        raise AekitError(f"unknown init {init!r}; use pretrained or random")
    if schedule not in ("none", "cosine"):
        raise AekitError(f"unknown fine-tuning schedule {schedule!r}; use none or cosine")
    if shift < 0:
        raise AekitError(f"--shift must be 0 or more pixels, got {shift}")
    if not 0 <= dropout < 1:
        raise AekitError(f"--dropout must lie in [0, 1), got {dropout}")
    ae, info = _model_and_info(pretrained)
    if dataset is not None:
        ds, cfg = dataset, RunConfig.from_dict(info.get("run", {}))
    else:
        ds, cfg = run_dataset(info, data, data_dir)
    check_shape(ae, ds)
    tr, va = split_of(ds, cfg, "train"), split_of(ds, cfg, "val")
    if tr.y is None or ds.test.y is None:
        raise AekitError(f"{ds.name} has no labels to fine-tune on")
    if not np.issubdtype(tr.y.dtype, np.integer):
        raise AekitError(f"{ds.name}: fine-tuning needs class labels (whole numbers), got {tr.y.dtype}")
    n_classes = int(max(tr.y.max(), ds.test.y.max())) + 1
    idx = stratified_subset(tr.y, labels, seed)
    n_lab = len(idx)
    # A labelled validation subset in proportion to the labels (at least 10 per class), for early stopping.
    n_val = len(va) if labels == "all" else min(len(va), max(10 * n_classes, n_lab // 5))
    vidx = stratified_subset(va.y, n_val, seed + 1) if len(va) else idx
    xv, yv = (va.x[vidx], va.y[vidx]) if len(va) else (tr.x[idx], tr.y[idx])
    torch.manual_seed(seed)
    if init == "random":
        mc = ae.config()
        ae = create_model(mc.pop("name"), tuple(mc.pop("input_shape")), **mc)
    model = Classifier(ae.encoder, ae.code_size, n_classes, dropout=dropout)
    stages = ["top", "all"] if stage == "both" else [stage]
    results = [train_stage(model, s, tr.x[idx], tr.y[idx], xv, yv, epochs, batch_size, lr, patience, seed + k,
                           weight_decay=weight_decay, shift=shift, schedule=schedule)
               for k, s in enumerate(stages)]
    test_acc = accuracy(model, ds.test.x, ds.test.y)
    summary = {"labels": n_lab, "n_val": len(yv), "stage": stage, "init": init, "n_classes": n_classes,
               "stages": [r.__dict__ for r in results], "test_accuracy": test_acc,
               "test_error_percent": 100 * (1 - test_acc), "seconds": round(sum(r.seconds for r in results), 2)}
    if out is not None:
        from aekit import __version__

        conf = {"aekit_version": __version__, "kind": "classifier", "run": info.get("run", {}),
                "model": ae.config(), "n_classes": n_classes, "data": ds.describe(),
                "finetune": {"labels": labels, "stage": stage, "init": init, "epochs": epochs,
                             "batch_size": batch_size, "lr": lr, "patience": patience, "seed": seed,
                             "dropout": dropout, "shift": shift, "schedule": schedule,
                             "weight_decay": weight_decay,
                             "pretrained": str(getattr(pretrained, "run_dir", pretrained))}}
        save_classifier(out, model, conf, summary)
        summary["run_dir"] = str(out)
    return summary


def classify(run_dir: str | Path, data: str | None = None, data_dir: str | None = None,
             split: str = "test") -> dict[str, Any]:
    """Accuracy and error (%) of a saved classifier on a split."""
    from aekit.training.classify import accuracy, load_classifier

    model, info = load_classifier(run_dir)
    ds, cfg = run_dataset(info, data, data_dir)
    if tuple(model.input_shape) != ds.sample_shape:
        raise AekitError(f"the classifier takes samples of shape {model.input_shape} but {ds.name} has "
                         f"{ds.sample_shape}")
    s = split_of(ds, cfg, split)
    if s.y is None:
        raise AekitError(f"{ds.name} has no labels on its {split} split")
    acc = accuracy(model, s.x, s.y)
    return {"accuracy": acc, "error_percent": 100 * (1 - acc), "n": len(s), "split": split}


def baseline_pca(code: int, data: str = "mnist-mini", data_dir: str | None = None, split: str = "test",
                 val_fraction: float = 0.1, split_seed: int = 0) -> dict[str, Any]:
    """PCA with ``code`` components fitted on the whole training part, scored on ``split``."""
    from aekit.baselines import PCA

    ds = load_dataset(data, data_dir)
    pca = PCA(code).fit(ds.split("all-train").x)
    target = ds.split(split, val_fraction, split_seed)
    return pca.evaluate(target.x, unit_range=ds.value_range == "unit")

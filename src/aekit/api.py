"""The Python API behind every CLI command.

Each function opens its run folder (:mod:`aekit.run`), makes one call into :mod:`aekit.training` or
:mod:`aekit.tasks`, and returns. A function that takes ``model_or_dir`` accepts a run folder's path,
a model returned by :func:`load` or :func:`train` (its run is remembered, so its own dataset is
used), or an :class:`aekit.run.OpenRun`; ``data``/``data_dir`` name another dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aekit.config import RunConfig, apply_overrides
from aekit.data.dataset import Dataset
from aekit.run import OpenRun, Run, RunWriter, attach, dataset_for, default_run_dir, make_config, open_run, opened

if TYPE_CHECKING:  # for annotations only: `import aekit` does not import torch
    from aekit.models.base import Autoencoder


def load_data(cfg: RunConfig, progress: bool = True) -> Dataset:
    return dataset_for(cfg, progress)


def train(config: RunConfig | None = None, out: str | Path | None = None, *, resume: bool = False,
          progress: bool | None = None, dataset: Dataset | None = None, **overrides: Any) -> Run:
    """Train an autoencoder and write its run directory (``resume``: continue it, or start it if absent).

    ``overrides`` use dotted keys, e.g. ``train(**{"train.epochs": 5, "model.code": 16})``; plain
    keyword names are looked up in the sections in the order train, data, model.
    """
    from aekit.device import resolve_device
    from aekit.training import autoencoder, distributed

    cfg = apply_overrides(config or RunConfig(), overrides).validate()
    out = distributed.run_dir(out) or default_run_dir(cfg.model.get("name", "mlp"))
    device = resolve_device(cfg.train.device)
    with RunWriter(out, "autoencoder", resume, writes=distributed.env_rank() == 0, quiet=progress is False) as w:
        ds = dataset if dataset is not None else load_data(cfg, progress=progress is not False)
        autoencoder.check_trainable(ds, cfg)
        w.resuming = distributed.setup_and_agree(device, w.resuming)
        model = autoencoder.seeded_model(cfg, ds)
        info = make_config("autoencoder", model.config(), cfg.to_dict(), ds.describe())
        w.begin(info)
        w.check_epochs(cfg.train.epochs)
        summary, _ = autoencoder.train_autoencoder(model, ds, cfg, out, device=device, resume=w.resuming,
                                                   progress=progress)
        if summary:
            w.finish({**info, "metrics": summary["metrics"]})
    o = OpenRun(out, info, model)
    if dataset is not None:  # the returned model keeps working on the arrays it was trained on
        o._datasets[(None, None)] = (dataset, cfg)
    attach(model, o)
    return Run(out, model, summary, cfg)


def load(run_dir: str | Path) -> Any:
    """Rebuild a trained autoencoder from its run directory alone (config.json + model.safetensors)."""
    return open_run(run_dir, ("autoencoder", "pretrain")).model


def _use(model_or_dir: Any, data: str | None, data_dir: str | None, split: str) -> tuple[OpenRun, Any]:
    o = opened(model_or_dir, ("autoencoder", "pretrain"))
    return o, o.split(split, data, data_dir)


def _picture(o: OpenRun, out: str | Path | None, name: str) -> Path | None:
    return Path(out) if out is not None else (o.dir / name if o.dir is not None else None)


def evaluate(model_or_dir: Any, data: str | None = None, data_dir: str | None = None,
             split: str = "test") -> dict[str, Any]:
    """Reconstruction metrics (sse_per_image, mse, psnr, bce, n) of a trained model on a split."""
    from aekit.metrics import evaluate_model

    o, s = _use(model_or_dir, data, data_dir, split)
    return evaluate_model(o.model, s.x)


def reconstruct(model_or_dir: Any, data: str | None = None, data_dir: str | None = None, n: int = 16,
                out: str | Path | None = None, split: str = "test") -> Path:
    """Write a picture of ``n`` originals above their reconstructions; returns its path."""
    from aekit.outputs import check_picture_file
    from aekit.training.autoencoder import check_grid_size, reconstruct_grid

    check_grid_size(n)
    check_picture_file(out)
    o, s = _use(model_or_dir, data, data_dir, split)
    return reconstruct_grid(o.model, s.x[:n], _picture(o, out, "reconstructions.png") or "reconstructions.png")


def denoise(model_or_dir: Any, noise: str, data: str | None = None, data_dir: str | None = None,
            split: str = "test", out: str | Path | None = None, seed: int = 0,
            baselines: str | list[str] | None = None) -> dict[str, Any]:
    """PSNR of a trained model as a denoiser on ``split``, next to classical baselines (``baselines``:
    names from ``aekit.tasks.denoise.DENOISERS``, default all; those whose package, from the extra
    ``aekit[baselines]``, is missing are named in the result's ``skipped``)."""
    from aekit.tasks.classical import pick
    from aekit.tasks.denoise import DENOISERS, denoise_report

    pick(baselines, DENOISERS, (), True, "denoising")  # an unknown name fails before the data is read
    o, s = _use(model_or_dir, data, data_dir, split)
    return denoise_report(o.model, o.split("train", data, data_dir).x, o.split("val", data, data_dir).x, s.x,
                          noise, seed=seed, picture=_picture(o, out, "denoise.png"), baselines=baselines)


def encode(model_or_dir: Any, data: str | None = None, data_dir: str | None = None, split: str = "test",
           out: str | Path | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Codes (and labels, if any) of a split; with ``out`` (.npy or .csv) also written to disk."""
    from aekit.tasks.represent import codes_of, save_codes

    o, s = _use(model_or_dir, data, data_dir, split)
    codes = codes_of(o.model, s.x, s.y)  # a VAE's codes are its posterior means
    if out is not None:
        save_codes(codes, s.y, out)
    return codes, s.y


def probe(model_or_dir: Any, data: str | None = None, data_dir: str | None = None,
          max_train: int | None = None, progress: bool | None = None, split: str = "test") -> dict[str, Any]:
    """Logistic-regression and 5-NN accuracy on the codes, the raw inputs and PCA codes, fitted on the
    training part (train + val) and scored on ``split`` (test, or val)."""
    from aekit.errors import AekitError
    from aekit.tasks.represent import probe_table

    if split == "train":
        raise AekitError("--split train: probes are fitted on the training part; score them on val or test")
    o, tr = _use(model_or_dir, data, data_dir, "all-train" if split == "test" else "train")
    te = o.split(split, data, data_dir)
    return probe_table(o.model, tr.x, tr.y, te.x, te.y, max_train=max_train, progress=progress)


def latent_map(model_or_dir: Any, out: str | Path, data: str | None = None, data_dir: str | None = None,
               split: str = "test", method: str = "pca", n: int | None = 5000,
               progress: bool | None = None) -> Path:
    """A 2-D picture of the codes of (up to ``n`` samples of) a split, coloured by label."""
    from aekit.tasks.represent import latent_map as _map

    o, s = _use(model_or_dir, data, data_dir, split)
    x, y = (s.x[:n], None if s.y is None else s.y[:n]) if n else (s.x, s.y)
    return _map(o.model, x, y, out, method=method, title=f"codes of {o.dataset(data, data_dir)[0].name} ({split})",
                progress=progress)


def interpolate(model_or_dir: Any, src: str | int, dst: str | int, steps: int = 10, out: str | Path | None = None,
                data: str | None = None, data_dir: str | None = None, split: str = "test") -> Path:
    """Picture: decoding the line between the codes of two samples (indices or image files), and the
    pixel cross-fade of the same two underneath."""
    from aekit.tasks.blend import pick, strip
    from aekit.tasks.generate import check_unconditional

    o, s = _use(model_or_dir, data, data_dir, split)
    check_unconditional(o.model, "interpolate")
    shape = tuple(o.model.input_shape)
    return strip(o.model, pick(src, s.x, shape), pick(dst, s.x, shape), steps,
                 _picture(o, out, "interpolation.png") or "interpolation.png")


def inpaint(model_or_dir: Any, mask: str, iters: int | None = None, out: str | Path | None = None,
            data: str | None = None, data_dir: str | None = None, split: str = "test", start: str = "mean",
            baselines: str | list[str] | None = None) -> dict[str, Any]:
    """Fill the masked pixels of a split's images; PSNR on those pixels vs the mean-image, nearest,
    biharmonic and Telea fills (``baselines``: names from ``aekit.tasks.inpaint.FILLS``, default all;
    those whose package, from the extra ``aekit[baselines]``, is missing are named in ``skipped``).
    ``iters``: passes of "reconstruct, keep the observed pixels"; by default 20, or 1 for a run trained
    on one fixed hole (``--noise center:S``: :func:`aekit.tasks.inpaint.default_passes`)."""
    from aekit.tasks.classical import pick
    from aekit.tasks.inpaint import FILLS, default_passes, inpaint_report

    pick(baselines, FILLS, (), True, "infilling")  # an unknown name fails before the data is read
    o, s = _use(model_or_dir, data, data_dir, split)
    if iters is None:
        iters = default_passes(o.config().train.noise if o.dir is not None else None)
    return inpaint_report(o.model, o.split("train", data, data_dir).x, s.x, mask, iters=iters,
                          picture=_picture(o, out, "inpaint.png"), start=start,
                          val_x=o.split("val", data, data_dir).x, baselines=baselines)


def anomaly(model_or_dir: Any, out: str | Path | None = None, contamination: float | None = None,
            maps: str | Path | None = None, data: str | None = None, data_dir: str | None = None,
            split: str = "test", threshold: Any = None, normal_classes: list[int] | None = None,
            save_threshold: bool = False, score: str = "error", components: int | None = None) -> dict[str, Any]:
    """Anomaly scores of a split against a threshold, and optionally a CSV and a picture of the top
    error maps. ``threshold`` ("contamination:0.01", "percentile:99.5" or "fpr:0.01"; ``contamination``
    is short for the first) is chosen on the validation split's scores; without one, the run's stored
    threshold (threshold.json) is used, else contamination:0.01. ``save_threshold`` stores the threshold
    used in the run folder, for ``export`` and later calls. Where the data has labels, normal is the
    training split's classes (or ``normal_classes``), and the result holds precision, recall, F1 and ROC AUC.

    ``score="error"`` scores by the reconstruction error (on a VAE at the posterior mean, see
    :mod:`aekit.tasks.anomaly`); ``score="latent"`` by minus the log-density of the code under a Gaussian
    mixture of ``components`` components (default 10) fitted on the training split's codes, cached in the
    run folder (:mod:`aekit.tasks.density`), which is the better score for images (it finds the anomalies
    that are simpler than the normal data). A stored threshold on the other score is refused, not used."""
    from aekit.errors import AekitError
    from aekit.run import writing_lock
    from aekit.tasks.anomaly import (
        DEFAULT_RULE,
        SET_BY_TRAINING,
        THRESHOLD_FILE,
        anomaly_report,
        check_score,
        run_threshold,
        score_kind,
        stored_threshold,
        training_classes,
    )
    from aekit.tasks.density import DEFAULT_COMPONENTS, check_components
    from aekit.tasks.generate import check_unconditional

    score = check_score(score)
    if components is not None:
        if score != "latent":
            raise AekitError("--components sets the latent density's mixture; it needs --score latent")
        check_components(components)
    o, s = _use(model_or_dir, data, data_dir, split)
    check_unconditional(o.model, "an anomaly score")
    if save_threshold and o.dir is None:
        raise AekitError("save_threshold needs a run folder; this model was not loaded from one")
    normal = normal_classes if normal_classes is not None else training_classes(o.split("train", data, data_dir).y)
    rule = threshold if threshold is not None else contamination
    thr = stored_threshold(o.dir, score=None) if rule is None else None
    where = Path(o.dir or ".") / THRESHOLD_FILE  # (a stored threshold comes from a run folder)
    if thr is not None and score_kind(thr) != score and thr.get("set_by") == SET_BY_TRAINING:
        # Training stores a threshold on the error score by the default rule; nobody chose it for
        # another score, so that score gets the default rule too instead of an error.
        thr = None
    if thr is not None and score_kind(thr) != score:  # never applied to the other score
        raise AekitError(f"{where}: the stored threshold is on the {score_kind(thr)} score and this call scores by "
                         f"{score}; pass --threshold RULE (e.g. contamination:0.01) to choose one on the {score} "
                         f"scores, or --score {score_kind(thr)} to use the stored one")
    if thr is not None and score == "latent" and components not in (None, thr["components"]):
        raise AekitError(f"{where}: the stored threshold is for a {thr['components']}-component density, not "
                         f"{components}; pass --threshold RULE to choose one now")
    k = components if thr is None else thr.get("components", components)
    k = DEFAULT_COMPONENTS if k is None else k
    density = _latent_density(o, data, data_dir, k) if score == "latent" else None
    if thr is None:
        thr = run_threshold(o, rule if rule is not None else DEFAULT_RULE, data, data_dir, normal, density, k)
    res = anomaly_report(o.model, s.x, s.y, thr, out=out, maps=maps, normal=normal, density=density)
    # (a threshold read from the run is stored already; `o.dir is not None` was checked above)
    if save_threshold and not thr.get("set_by") and o.dir is not None:
        from aekit.tasks.anomaly import save_threshold as save

        with writing_lock(o.dir):
            res["threshold_file"] = str(save(o.dir, thr, "aekit anomaly --save-threshold"))
    return res


def _latent_density(o: OpenRun, data: str | None, data_dir: str | None, components: int) -> Any:
    """The latent density of the run's training codes (``components`` components, seed 0): the one
    cached in the run folder where it was fitted for these weights, components and data, else fitted
    now and cached (under the run's writing lock, atomically). A cache that cannot be used is said so
    in one stderr line and fitted again; a folder that cannot take the new one is one error line."""
    from aekit.progress import say
    from aekit.run import writing_lock
    from aekit.tasks.anomaly import weights_digest
    from aekit.tasks.density import DENSITY_FILE, LatentDensity, codes_for, load_cached

    train = o.split("train", data, data_dir)
    if o.dir is None:  # a model in memory: nowhere to cache it
        return LatentDensity.fit(codes_for(o.model, train.x), components)
    path = o.dir / DENSITY_FILE
    key = {"weights_sha256": weights_digest(o.dir), "components": str(components),
           "data": str(o.dataset(data, data_dir)[0].name)}
    cached, why = load_cached(path, key, o.model.code_size)
    if cached is not None:
        return cached
    n = f"the codes of {len(train):,} training samples"
    say(f"latent density: fitting {components} components on {n}, kept in {path}" if why == "none cached"
        else f"{why}; fitting it again on {n}")
    density = LatentDensity.fit(codes_for(o.model, train.x), components)
    with writing_lock(o.dir):
        density.save(path, key)
    return density


def export(model_or_dir: Any, format: str = "onnx", part: str = "full", out: str | Path = "model.onnx",
           threshold: Any = None, check: bool = True, check_only: bool = False, data: str | None = None,
           data_dir: str | None = None) -> dict[str, Any]:
    """Write ``part`` (full, encoder, decoder or score) of a trained autoencoder to ``out`` as ONNX or
    TorchScript, with its metadata, and check the file against aekit on 1,000 test samples (max abs
    difference <= 1e-5). ``score`` carries a threshold in the file: ``threshold`` ("contamination:0.01",
    ...) chosen on the validation split, else the run's stored one (threshold.json; an error where
    there is none). ``check_only``: only check an existing ``out``."""
    from aekit.export import export_run

    return export_run(opened(model_or_dir, ("autoencoder", "pretrain")), format, part, out, threshold=threshold,
                      check=check, check_only=check_only, data=data, data_dir=data_dir)


def _variational(model_or_dir: Any, what: str) -> OpenRun:
    """The opened run, if its model is a VAE (one error line naming the run's family otherwise)."""
    from aekit.tasks.generate import check_variational

    o = opened(model_or_dir, ("autoencoder", "pretrain"))  # a pre-training run: "this run is mlp"
    check_variational(o.model, what)
    return o


def nll(model_or_dir: Any, samples: int = 5000, split: str = "test", data: str | None = None,
        data_dir: str | None = None, batch: int = 4096, seed: int = 0,
        progress: bool | None = None) -> dict[str, Any]:
    """Importance-sampled negative log-likelihood of a VAE on ``split``, in nats per sample, beside the
    ELBO, its KL and its reconstruction term: ``{"nll", "elbo", "kl", "recon", "samples", "n", "split",
    "data", "values", "binarisation", "conditional"}``. ``values`` says what the figure is a likelihood of
    (the binarisation the data records, else grey levels); ``batch`` bounds the decoded samples per
    forward pass (memory), ``seed`` the importance samples' noise. A conditional VAE gives log p(x | label)
    with the split's labels. ``progress``: a bar on a terminal, a line every 30 s elsewhere; False: none."""
    from aekit.errors import AekitError
    from aekit.progress import Progress, say
    from aekit.tasks import generate

    samples, batch = generate.check_samples(samples), generate.check_batch(batch)
    o = _variational(model_or_dir, "nll")
    ds = o.dataset(data, data_dir)[0]
    s = o.split(split, data, data_dir)
    if o.model.n_classes and s.y is None:
        raise AekitError(f"a conditional VAE's likelihood is of each sample given its label, and the {split} split "
                         "has no labels")
    meta = {**o.info.get("data", {}), **ds.describe()} if data is None else ds.describe()
    values, record = generate.data_values(meta)
    say(f"nll: {samples:,} importance samples for each of {len(s):,} {split} samples", progress)
    bar = Progress(len(s), "nll", progress, unit="sample")
    try:
        res = generate.nll_summary(o.model, s.x, samples, s.y if o.model.n_classes else None, seed, batch,
                                   on_rows=bar.update)
    finally:
        bar.close()
    return {**res, "split": split, "data": str(ds.name), "values": values, "binarisation": record,
            "conditional": bool(o.model.n_classes), "seed": seed}


def sample(model_or_dir: Any, n: int = 64, label: int | list[int] | None = None, temperature: float = 1.0,
           seed: int = 0, out: str | Path | None = None) -> np.ndarray:
    """``n`` images decoded from draws of a VAE's prior, float32 ``(n, *input_shape)``; ``temperature``
    scales the prior's spread, ``label`` (one, or one per image) picks the class of a conditional VAE.
    The same ``seed`` gives the same bytes. ``out``: also write them, as a picture (.png, ...) or .npy."""
    from aekit.outputs import check_count
    from aekit.tasks import generate

    n = check_count("n", n, 1, generate.MAX_GENERATED)
    temperature = generate.check_temperature(temperature)
    generate.check_images_out(out, n)
    o = _variational(model_or_dir, "sample")
    images = generate.sample(o.model, n, temperature, label, seed)
    if out is not None:
        which = "" if label is None else f", label {label}" if np.ndim(label) == 0 else ", labels as given"
        generate.sample_picture(images, out, tuple(o.model.input_shape),
                                f"{n} samples from the prior (temperature {temperature:g}, seed {seed}{which})")
    return images


def traverse(model_or_dir: Any, dims: list[int] | None = None, steps: int = 9, span: float = 3.0,
             label: int | None = None, out: str | Path | None = None) -> np.ndarray:
    """Each latent dimension in ``dims`` (default: the first 10) of a VAE swept from -``span`` to +``span``
    prior standard deviations, the others held at the prior's mean; float32 ``(len(dims), steps,
    *input_shape)``. ``out``: also write them, one line per dimension (a picture or .npy)."""
    from aekit.tasks import generate

    o = _variational(model_or_dir, "traverse")
    dims = list(range(min(o.model.code_size, 10))) if dims is None else dims
    checked, steps, span = generate.check_traverse(dims, steps, span, o.model.code_size)
    dims = list(checked or ())  # (a list whenever the code size is given)
    generate.check_images_out(out, len(dims) * steps)
    strips = generate.traverse(o.model, dims, steps, span, label=label)
    if out is not None:
        generate.traverse_picture(strips, dims, out, tuple(o.model.input_shape),
                                  f"each dimension from -{span:g} to +{span:g} prior s.d., the others at the mean"
                                  + ("" if label is None else f" (label {label})"))
    return strips


def pretrain(layers: list[int], mode: str = "greedy", noise: str | list[str] | None = None, data: str = "mnist-mini",
             data_dir: str | None = None, out: str | Path | None = None, activation: str = "sigmoid",
             progress: bool | None = None, dataset: Dataset | None = None, resume: bool = False,
             **train: Any) -> tuple[Autoencoder, dict[str, Any]]:
    """Pre-train a stacked encoder greedily (one shallow autoencoder per layer) or end to end.

    ``train`` holds training options (epochs, batch_size, lr, seed, device, ...) for every layer.
    Works on any dataset aekit loads, or on a :class:`Dataset` built from your own arrays. Returns
    the model (an ``mlp`` autoencoder) and the summary (each layer's reconstruction error).
    """
    from aekit.device import resolve_device
    from aekit.training import greedy

    cfg = RunConfig.from_dict({"data": {"name": data, "data_dir": data_dir}, "train": train},
                              where="pretrain").validate()
    out = Path(out) if out is not None else default_run_dir(f"pretrain-{mode}")
    device = resolve_device(cfg.train.device)
    with RunWriter(out, "pretrain", resume, quiet=progress is False) as w:
        ds = dataset if dataset is not None else load_data(cfg, progress=progress is not False)
        table = greedy.plan(ds, layers, mode, noise, activation, cfg)
        info = make_config("pretrain", table.pop("model"), cfg.to_dict(), ds.describe(), pretrain=table)
        w.begin(info)
        deep, summary = greedy.pretrain(ds, layers, mode, noise, activation, cfg.train, out, cfg.data.val_fraction,
                                        cfg.data.split_seed, progress=progress, resume=w.resuming, device=device)
        w.finish({**info, "metrics": summary["metrics"]})
    attach(deep, OpenRun(out, info, deep))
    return deep, summary


def finetune(pretrained: Any, labels: int | str = "all", stage: str = "both", init: str = "pretrained",
             out: str | Path | None = None, data: str | None = None, data_dir: str | None = None, epochs: int = 30,
             batch_size: int = 128, lr: float = 1e-3, patience: int | None = 5, seed: int = 0,
             dropout: float = 0.0, shift: int = 0, schedule: str = "none", weight_decay: float = 0.0,
             dataset: Dataset | None = None, device: str = "auto", resume: bool = False,
             progress: bool | None = None, deterministic: bool = False,
             tensorboard: str | None = None, precision: str = "fp32", compile: str = "off") -> dict[str, Any]:
    """Turn a pre-trained encoder into a classifier: step 1 trains a new softmax layer on the frozen
    encoder (``stage="top"``), step 2 the whole network (``"all"``); ``"both"`` does one then the other.
    ``init="random"`` trains the same network from scratch with the same budget. Returns the summary
    (test error in %), and writes a run directory if ``out`` is given (``resume`` continues it).
    ``dropout``, ``shift`` (random translations of training images by up to that many pixels),
    ``schedule`` ("cosine") and ``weight_decay`` regularise long fine-tuning on many labels.
    ``precision`` and ``compile`` choose how the step runs, as ``[train]`` does for :func:`train`."""
    from aekit.training import finetuning

    job = finetuning.FinetuneJob(labels=labels, stage=stage, init=init, epochs=epochs, batch_size=batch_size, lr=lr,
                                 patience=patience, seed=seed, dropout=dropout, shift=shift, schedule=schedule,
                                 weight_decay=weight_decay, device=device, deterministic=deterministic,
                                 tensorboard=tensorboard, precision=precision, compile=compile).checked()
    o = opened(pretrained, ("autoencoder", "pretrain"))
    ds = dataset if dataset is not None else o.dataset(data, data_dir)[0]
    plan = job.plan(o, ds)
    if out is None:
        return job.run(plan, None, resume=False, progress=progress)
    info = make_config("classifier", **plan.tables)
    with RunWriter(out, "classifier", resume, quiet=progress is False) as w:
        w.begin(info)
        summary = job.run(plan, Path(out), resume=w.resuming, progress=progress)
        w.finish(info)
    return summary


def classify(run_dir: str | Path, data: str | None = None, data_dir: str | None = None,
             split: str = "test") -> dict[str, Any]:
    """Accuracy and error (%) of a saved classifier on a split."""
    from aekit.errors import AekitError
    from aekit.training.classify import accuracy

    o = open_run(run_dir, ("classifier",))
    s = o.split(split, data, data_dir)
    if s.y is None:
        raise AekitError(f"{o.dataset(data, data_dir)[0].name} has no labels on its {split} split")
    acc = accuracy(o.model, s.x, s.y)
    return {"accuracy": acc, "error_percent": 100 * (1 - acc), "n": len(s), "split": split}


def baseline_pca(code: int, data: str = "mnist-mini", data_dir: str | None = None, split: str = "test",
                 val_fraction: float = 0.1, split_seed: int = 0) -> dict[str, Any]:
    """PCA with ``code`` components fitted on the whole training part, scored on ``split``."""
    from aekit.baselines import PCA
    from aekit.data.sources import load_dataset

    ds = load_dataset(data, data_dir)
    pca = PCA(code, name="code").fit(ds.split("all-train").x)
    return pca.evaluate(ds.split(split, val_fraction, split_seed).x, unit_range=ds.value_range == "unit")

"""Commands that train and score autoencoders: train, evaluate, reconstruct, baseline, demo, listings
(datasets, models, recipes)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aekit.cli.common import (
    data_flags,
    int_list,
    json_out,
    metrics_lines,
    progress,
    reader_flags,
    split_flag,
    trainer_flags,
)
from aekit.config import LOSSES, OPTIMIZERS, SCHEDULES, RunConfig
from aekit.errors import AekitError

TRAIN_FLAGS = {  # flag dest -> config key
    "model": "model.name", "code": "model.code", "layers": "model.layers", "activation": "model.activation",
    "channels": "model.channels", "loss": "model.loss", "data": "data.name", "data_dir": "data.data_dir",
    "val_fraction": "data.val_fraction", "image_size": "data.image_size", "epochs": "train.epochs",
    "batch_size": "train.batch_size", "lr": "train.lr", "optimizer": "train.optimizer",
    "schedule": "train.schedule", "weight_decay": "train.weight_decay", "patience": "train.patience",
    "seed": "train.seed", "device": "train.device", "max_steps": "train.max_steps", "noise": "train.noise",
    "precision": "train.precision", "sparse": "model.sparse", "contractive": "model.contractive",
    "code_activation": "model.code_activation", "norm": "model.norm", "checkpoint_every": "train.checkpoint_every",
    "checkpoint_minutes": "train.checkpoint_minutes", "deterministic": "train.deterministic",
    "tensorboard": "train.tensorboard", "compile": "train.compile", "ema": "train.ema", "shift": "train.shift",
    # store_true, so False when absent: a restart saved in config.json is not repeated by the next --resume
    "schedule_restart": "train.schedule_restart",
    # the variational family (--model vae); any other family refuses them in one line
    "beta": "model.beta", "kl_warmup": "model.kl_warmup", "free_bits": "model.free_bits",
    "iw_samples": "model.iw_samples", "prior": "model.prior", "likelihood": "model.likelihood",
    "conditional": "model.conditional", "latents": "model.latents",
    # the masked autoencoder (--model mae); any other family refuses them in one line
    "patch": "model.patch", "mask_ratio": "model.mask_ratio", "width": "model.width", "depth": "model.depth",
    "heads": "model.heads", "decoder_width": "model.decoder_width", "decoder_depth": "model.decoder_depth",
    "norm_pix": "model.norm_pix",
}


def strip_nproc(argv: list[str]) -> list[str]:
    """The command line without ``--nproc N`` / ``--nproc=N``, for the processes torchrun starts."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def launch_distributed(args: argparse.Namespace, cfg: RunConfig, overrides: dict[str, Any]) -> int:
    """``--nproc N``: check the arguments here (one clear line on bad input), then start torchrun."""
    from aekit.api import load_data
    from aekit.config import apply_overrides
    from aekit.device import resolve_device
    from aekit.training.autoencoder import build_model
    from aekit.training.distributed import launch

    if args.nproc < 1:
        raise AekitError(f"--nproc must be at least 1, got {args.nproc}")
    if args.out is None:
        raise AekitError("--nproc needs --out DIR (every process must name the same run directory)")
    checked = apply_overrides(cfg, {k: v for k, v in overrides.items() if v is not None}).validate()
    device = resolve_device(checked.train.device)
    if device.type == "cuda":
        import torch

        if args.nproc > torch.cuda.device_count():
            raise AekitError(f"--nproc {args.nproc} on CUDA needs as many GPUs; {torch.cuda.device_count()} visible")
    ds = load_data(checked)
    build_model(checked, ds)
    del ds  # the processes load their own copy
    return launch(args.nproc, strip_nproc(args.argv))


def cmd_train(args: argparse.Namespace) -> int:
    from aekit.api import train
    from aekit.config import RunConfig, load_config

    if args.resume and args.out is None:
        raise AekitError("--resume needs --out DIR, the run to continue")
    if args.schedule_restart and not args.resume:
        raise AekitError("--schedule-restart needs --resume: it starts a new learning-rate schedule for the "
                         "epochs a resumed run has left")
    if args.resume and (Path(args.out) / "config.json").is_file():
        from aekit.run import read_config

        # The saved recipe is the base; flags that change the model or data are refused by train().
        saved = read_config(args.out)
        cfg = RunConfig.from_dict(saved.get("run", {}), where=f"{args.out}/config.json")
    else:
        cfg = load_config(args.config)
    overrides = {key: getattr(args, dest) for dest, key in TRAIN_FLAGS.items()}
    if overrides["model.name"] not in (None, cfg.model.get("name")):
        cfg.model = {"name": overrides["model.name"]}  # another family: its own defaults, not the file's options
    if args.nproc is not None:
        return launch_distributed(args, cfg, overrides)
    run = train(cfg, args.out, resume=args.resume, progress=progress(args), **overrides)
    if not run.summary:  # a distributed run's other processes: rank 0 reports
        return 0
    m = run.summary["metrics"]
    if args.json:
        json_out({"run_dir": str(run.dir), **run.summary})
        return 0
    print(f"run directory: {run.dir}")
    for split in ("train", "val", "test"):
        if split in m:
            print(metrics_lines(f"  {split}", m[split]))
    print(f"  {run.summary['epochs_run']} epochs, {run.summary['train_seconds']:.1f}s of training, "
          f"{run.summary['n_parameters']:,} parameters")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from aekit.api import evaluate

    m = evaluate(args.run, data=args.data, data_dir=args.data_dir, split=args.split)
    if args.json:
        json_out(m)
    else:
        print(metrics_lines(f"{args.run} on {args.split}", m))
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from aekit.api import reconstruct

    path = reconstruct(args.run, data=args.data, data_dir=args.data_dir, n=args.n, out=args.out, split=args.split)
    if args.json:
        json_out({"picture": str(path)})
    else:
        print(f"wrote {path}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from aekit.api import baseline_pca

    m = baseline_pca(args.code, data=args.data, data_dir=args.data_dir, split=args.split)
    if args.json:
        json_out({"method": "pca", "code": args.code, **m})
    else:
        print(metrics_lines(f"PCA-{args.code} on {args.data} {args.split}", m))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from aekit.demo import format_table, run_demo

    if not args.quiet and not args.json:
        print("training the simplest autoencoder (784-32-784) on mnist-mini (6,000 digits shipped with aekit)...")
    r = run_demo(args.out, progress=progress(args), epochs=args.epochs)
    if args.json:
        json_out(r)
        return 0
    print()
    print(format_table([("autoencoder 784-32-784", r["autoencoder"]), ("PCA, 32 components", r["pca"])]))
    print(f"\n{r['epochs']} epochs in {r['train_seconds']:.1f}s. Pictures and metrics in {r['run_dir']}/:")
    print("  reconstructions.png  loss.png  metrics.csv  summary.json  config.json  model.safetensors")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from aekit.data.sources import list_datasets

    names = list_datasets()
    width = max(map(len, names))
    for name, desc in names.items():
        print(f"{name:<{width}} {desc}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from aekit.registry import list_models, model_options

    for name, desc in list_models().items():
        print(f"{name:<8} {desc}\n         options: {', '.join(model_options(name))}")
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from aekit.config import list_recipes

    recipes = list_recipes()
    width = max(map(len, recipes), default=0)
    for name, desc in recipes.items():
        print(f"{name:<{width}} {desc}")
    return 0


def vae_flags(t: argparse.ArgumentParser) -> None:
    """The variational family's options (``--model vae``), as its [model] keys."""
    g = t.add_argument_group("variational autoencoders (--model vae, --model ladder)")
    g.add_argument("--beta", type=float, metavar="B", help="weight of the KL term (beta-VAE; default 1)")
    g.add_argument("--kl-warmup", type=int, metavar="EPOCHS",
                   help="anneal the KL weight linearly from 0 to 1 over EPOCHS epochs (default 0: none)")
    g.add_argument("--free-bits", type=float, metavar="LAMBDA",
                   help="each latent dimension's KL counts at least LAMBDA nats (default 0)")
    g.add_argument("--iw-samples", type=int, metavar="K",
                   help="train on the importance-weighted bound with K samples (IWAE; default 1: the ELBO)")
    g.add_argument("--prior", metavar="standard|vamp:K", help="the prior: standard normal, or a VampPrior of K "
                   "learned pseudo-inputs (default standard)")
    g.add_argument("--likelihood", metavar="auto|bernoulli|gaussian",  # checked by the model, without torch here
                   help="p(x|z): bernoulli for [0, 1] data, gaussian otherwise (default auto picks by the data)")
    g.add_argument("--latents", type=int_list, metavar="SIZES",
                   help="--model ladder: the stochastic layers below the code, bottom first, e.g. 64 (then "
                   "--layers gives one width per stochastic layer, e.g. 512,256)")
    # store_const with default None: an absent flag leaves a --config file's setting alone
    g.add_argument("--conditional", action="store_const", const=True,
                   help="condition encoder and decoder on the class label (the dataset's class count)")


def mae_flags(t: argparse.ArgumentParser) -> None:
    """The masked autoencoder's options (``--model mae``), as its [model] keys (ranges checked by the model)."""
    g = t.add_argument_group("masked autoencoders (--model mae)")
    g.add_argument("--patch", type=int, metavar="PIXELS", help="side of the square patches, dividing the image's "
                   "sides (default 4: 49 patches of a 28x28 image)")
    g.add_argument("--mask-ratio", type=float, metavar="R",
                   help="share of the patches hidden in training, strictly between 0 and 1 (default 0.75)")
    g.add_argument("--width", type=int, help="channels of the encoder's tokens (default 64)")
    g.add_argument("--depth", type=int, help="Transformer blocks of the encoder (default 4)")
    g.add_argument("--heads", type=int, help="attention heads; they divide both widths (default 4)")
    g.add_argument("--decoder-width", type=int, help="channels of the decoder's tokens (default 64)")
    g.add_argument("--decoder-depth", type=int, help="Transformer blocks of the decoder (default 1)")
    # store_const with default None: an absent flag leaves a --config file's setting alone
    g.add_argument("--norm-pix", action="store_const", const=True,
                   help="predict each hidden patch normalised to mean 0 and variance 1 (He et al.'s target), "
                   "and its mean and spread")


def add_commands(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train an autoencoder into a run directory")
    t.add_argument("--config", metavar="NAME|FILE.toml",
                   help="a packaged recipe by name (see `aekit recipes`) or a TOML file; flags override it")
    t.add_argument("--model", help="model family (see `aekit models`); default mlp")
    t.add_argument("--layers", type=int_list, help="hidden layer sizes of an mlp, e.g. 1000,500,250 ('' for none)")
    t.add_argument("--code", type=int, help="code (bottleneck) size")
    t.add_argument("--activation", help="hidden activation: relu, sigmoid, tanh, gelu, elu, leaky_relu")
    t.add_argument("--channels", type=int_list, help="conv channels per stage, e.g. 32,64")
    t.add_argument("--code-activation", help="activation of the code units (default linear)")
    t.add_argument("--norm", help="an mlp's or conv's normalisation before each hidden activation: none (default), "
                   "batch or layer")
    t.add_argument("--loss", choices=LOSSES, help="reconstruction loss (default mse)")
    t.add_argument("--noise", metavar="KIND:LEVEL",
                   help="denoising: gaussian:SIGMA, masking:F, salt-pepper:F, or block:S / center:S (infilling: a "
                   "square anywhere / in the middle), fresh every batch")
    t.add_argument("--sparse", metavar="SPEC", help="sparsity on the code: l1:LAMBDA or kl:RHO,BETA")
    t.add_argument("--contractive", type=float, metavar="LAMBDA",
                   help="contractive penalty: LAMBDA x squared Frobenius norm of the encoder Jacobian")
    vae_flags(t)
    mae_flags(t)
    data_flags(t)
    t.add_argument("--val-fraction", type=float, help="share of the training part held out for validation (0.1)")
    t.add_argument("--image-size", type=int, help="resize images:DIR sources to this size")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float, help="learning rate")
    t.add_argument("--optimizer", choices=OPTIMIZERS)
    t.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule")
    t.add_argument("--schedule-restart", action="store_true",
                   help="with --resume and other --epochs: start a new schedule at the resumed epoch over the "
                   "epochs left (default: keep the run's schedule; past its end its last rate holds)")
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--ema", type=float, metavar="DECAY",
                   help="keep a moving average of the weights (e.g. 0.999); the average is validated and saved")
    t.add_argument("--shift", type=int, metavar="PIXELS",
                   help="move each training image by up to PIXELS pixels, afresh every batch (images only)")
    t.add_argument("--patience", type=int, help="early stopping after this many epochs without improvement")
    t.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    t.add_argument("--out", metavar="DIR", help="run directory (default runs/<time>-<model>)")
    trainer_flags(t, "continue the run in --out from its last checkpoint (start it if there is none)")
    t.add_argument("--checkpoint-every", type=int, metavar="STEPS",
                   help="also write the last checkpoint every STEPS optimizer steps (for preemptible jobs)")
    t.add_argument("--checkpoint-minutes", type=float, metavar="MIN",
                   help="and at least every MIN minutes of training (default 10)")
    t.add_argument("--nproc", type=int, metavar="N",
                   help="train data-parallel in N processes (starts torchrun; --batch-size is the global batch)")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="reconstruction metrics of a trained run")
    e.add_argument("run", metavar="DIR")
    reader_flags(e)
    e.set_defaults(func=cmd_evaluate)
    r = sub.add_parser("reconstruct", help="picture of originals above their reconstructions")
    r.add_argument("run", metavar="DIR")
    reader_flags(r)
    r.add_argument("--n", type=int, default=16, help="how many samples (16)")
    r.add_argument("--out", metavar="FILE.png", help="default DIR/reconstructions.png")
    r.set_defaults(func=cmd_reconstruct)
    b = sub.add_parser("baseline", help="a classical baseline scored like an autoencoder")
    b.add_argument("method", choices=["pca"])
    b.add_argument("--code", type=int, required=True, help="number of components")
    data_flags(b, default="mnist-mini")
    split_flag(b)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_baseline)
    d = sub.add_parser("demo", help="offline: the simplest autoencoder on mnist-mini vs PCA")
    d.add_argument("--out", metavar="DIR")
    d.add_argument("--epochs", type=int, help="override the demo's epoch count")
    d.add_argument("--quiet", action="store_true")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_demo)
    sub.add_parser("datasets", help="list the named datasets and source kinds").set_defaults(func=cmd_datasets)
    sub.add_parser("models", help="list the registered model families").set_defaults(func=cmd_models)
    sub.add_parser("recipes", help="list the packaged recipes (train --config NAME)").set_defaults(func=cmd_recipes)

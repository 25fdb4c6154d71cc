"""The ``aekit`` command: a thin layer over :mod:`aekit.api`.

Handlers import the heavy modules (torch) only when they run, so ``aekit --help`` is instant.
Bad input -- an :class:`AekitError` or a malformed flag -- prints one line on stderr and exits
with code 2; ``--json`` puts only JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, NoReturn

from aekit.errors import AekitError

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (usage is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_list(text: str) -> list[int]:
    """'1000,500,250' -> [1000, 500, 250]; '' -> []."""
    if text.strip() == "":
        return []
    try:
        return [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None


def _json_out(obj: Any) -> None:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    print(json.dumps(clean(obj), indent=2))


def _metrics_lines(title: str, m: dict[str, Any]) -> str:
    parts = [f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in m.items() if v is not None]
    return f"{title}: " + ", ".join(parts)


def _progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False) and sys.stdout.isatty()


# -- commands ---------------------------------------------------------------------------------
TRAIN_FLAGS = {  # flag dest -> config key
    "model": "model.name", "code": "model.code", "layers": "model.layers", "activation": "model.activation",
    "channels": "model.channels", "loss": "model.loss", "data": "data.name", "data_dir": "data.data_dir",
    "val_fraction": "data.val_fraction", "image_size": "data.image_size", "epochs": "train.epochs",
    "batch_size": "train.batch_size", "lr": "train.lr", "optimizer": "train.optimizer",
    "schedule": "train.schedule", "weight_decay": "train.weight_decay", "patience": "train.patience",
    "seed": "train.seed", "device": "train.device", "max_steps": "train.max_steps", "noise": "train.noise",
    "precision": "train.precision", "sparse": "model.sparse", "contractive": "model.contractive",
    "code_activation": "model.code_activation",
}


def cmd_train(args: argparse.Namespace) -> int:
    from aekit.api import train
    from aekit.config import RunConfig, load_config

    if args.resume:
        if args.out is None:
            raise AekitError("--resume needs --out DIR, the run to continue")
        from aekit.training.checkpoint import read_json

        saved = read_json(Path(args.out) / "config.json")
        cfg = RunConfig.from_dict(saved["run"], where=f"{args.out}/config.json")
    else:
        cfg = load_config(args.config)
    overrides = {key: getattr(args, dest) for dest, key in TRAIN_FLAGS.items()}
    if overrides["model.name"] not in (None, cfg.model.get("name")):
        cfg.model = {"name": overrides["model.name"]}  # another family: its own defaults, not the file's options
    run = train(cfg, args.out, resume=args.resume, progress=_progress(args), **overrides)
    m = run.summary["metrics"]
    if args.json:
        _json_out({"run_dir": str(run.dir), **run.summary})
        return 0
    print(f"run directory: {run.dir}")
    for split in ("train", "val", "test"):
        if split in m:
            print(_metrics_lines(f"  {split}", m[split]))
    print(f"  {run.summary['epochs_run']} epochs, {run.summary['train_seconds']:.1f}s of training, "
          f"{run.summary['n_parameters']:,} parameters")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from aekit.api import evaluate

    m = evaluate(args.run, data=args.data, data_dir=args.data_dir, split=args.split)
    if args.json:
        _json_out(m)
    else:
        print(_metrics_lines(f"{args.run} on {args.split}", m))
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from aekit.api import reconstruct

    path = reconstruct(args.run, data=args.data, data_dir=args.data_dir, n=args.n, out=args.out, split=args.split)
    print(f"wrote {path}")
    return 0


def cmd_denoise(args: argparse.Namespace) -> int:
    from aekit.api import denoise

    r = denoise(args.run, args.noise, data=args.data, data_dir=args.data_dir, split=args.split, out=args.out)
    if args.json:
        _json_out(r)
        return 0
    print(f"PSNR on {args.split} with {r['noise']} noise (dB, higher is better):")
    print(f"  noisy input        {r['psnr_noisy']:7.2f}")
    print(f"  autoencoder        {r['psnr_autoencoder']:7.2f}")
    for name, b in r["baselines"].items():
        extra = ", ".join(f"{k} {v}" for k, v in b.items() if k != "psnr")
        print(f"  {name:<18} {b['psnr']:7.2f}" + (f"  ({extra})" if extra else ""))
    if r["gain_db"] is not None:
        print(f"autoencoder vs best baseline ({r['best_baseline']}): {r['gain_db']:+.2f} dB")
    if "picture" in r:
        print(f"wrote {r['picture']}")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    from aekit.api import encode

    codes, labels = encode(args.run, data=args.data, data_dir=args.data_dir, split=args.split, out=args.out)
    extra = " and labels" if labels is not None else ""
    print(f"wrote {len(codes)} codes of size {codes.shape[1]}{extra} to {args.out}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from aekit.api import probe

    r = probe(args.run, data=args.data, data_dir=args.data_dir, max_train=args.max_train)
    if args.json:
        _json_out(r)
        return 0
    print(f"test accuracy of probes trained on {r['n_train']} training samples (code size {r['code_size']}):")
    print(f"  {'features':<14} {'logistic':>9} {'5-NN':>7}")
    for name, p in r["probes"].items():
        label = {"autoencoder": "autoencoder", "pixels": "raw pixels", "pca": f"PCA-{r['code_size']}"}[name]
        print(f"  {label:<14} {p['logistic']:>9.4f} {p['knn5']:>7.4f}")
    return 0


def cmd_latent_map(args: argparse.Namespace) -> int:
    from aekit.api import latent_map

    path = latent_map(args.run, args.out, data=args.data, data_dir=args.data_dir, split=args.split,
                      method=args.method)
    print(f"wrote {path}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    from aekit.api import interpolate

    path = interpolate(args.run, args.src, args.dst, steps=args.steps, out=args.out, data=args.data,
                       data_dir=args.data_dir, split=args.split)
    print(f"wrote {path}")
    return 0


def cmd_inpaint(args: argparse.Namespace) -> int:
    from aekit.api import inpaint

    r = inpaint(args.run, args.mask, iters=args.iters, out=args.out, data=args.data, data_dir=args.data_dir,
                split=args.split)
    if args.json:
        _json_out(r)
        return 0
    print(f"PSNR on the {100 * r['missing_fraction']:.0f}% missing pixels ({r['mask']}, {r['n']} images):")
    print(f"  autoencoder ({r['iters']} iterations) {r['psnr_autoencoder']:7.2f} dB")
    for name, v in r["baselines"].items():
        print(f"  {name.replace('_', ' '):<26} {v:7.2f} dB")
    print(f"autoencoder vs best baseline: {r['gain_db']:+.2f} dB")
    if "picture" in r:
        print(f"wrote {r['picture']}")
    return 0


def cmd_anomaly(args: argparse.Namespace) -> int:
    from aekit.api import anomaly

    r = anomaly(args.run, out=args.out, contamination=args.contamination, maps=args.maps, data=args.data,
                data_dir=args.data_dir, split=args.split)
    if args.json:
        _json_out(r)
        return 0
    print(f"threshold {r['threshold']:.4g} (validation quantile {1 - r['contamination']:.3g}): "
          f"{r['flagged']} of {r['n']} samples flagged")
    for key in ("scores_csv", "maps"):
        if key in r:
            print(f"wrote {r[key]}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from aekit.report import build_report

    print(f"wrote {build_report(args.run, args.out, data=args.data, data_dir=args.data_dir)}")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from aekit.api import pretrain

    train = {k: v for k, v in {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                               "seed": args.seed, "device": args.device}.items() if v is not None}
    _, s = pretrain(args.layers, args.mode, args.noise, data=args.data, data_dir=args.data_dir, out=args.out,
                    activation=args.activation, progress=_progress(args), **train)
    if args.json:
        _json_out(s)
        return 0
    for row in s["per_layer"]:
        print(f"layer {row['layer']}: best validation loss {row['best_val_loss']:.5g} after {row['epochs']} epochs")
    print(f"{s['mode']} pre-training of {'-'.join(map(str, s['layers']))} took {s['pretrain_seconds']:.1f}s")
    print(f"wrote {args.out}" if args.out else "")
    return 0


def _labels_arg(text: str) -> int | str:
    return text if text == "all" else int(text) if text.lstrip("-").isdigit() else text


def cmd_finetune(args: argparse.Namespace) -> int:
    from aekit.api import finetune

    s = finetune(args.run, _labels_arg(args.labels), args.stage, args.init, out=args.out, data=args.data,
                 data_dir=args.data_dir, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                 patience=args.patience, seed=args.seed)
    if args.json:
        _json_out(s)
        return 0
    print(f"{s['labels']} labels, stage {s['stage']}, init {s['init']}: test error {s['test_error_percent']:.2f}% "
          f"({s['seconds']:.1f}s)")
    if args.out:
        print(f"wrote {args.out}")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from aekit.api import classify

    r = classify(args.run, data=args.data, data_dir=args.data_dir, split=args.split)
    if args.json:
        _json_out(r)
    else:
        print(f"{args.split}: accuracy {r['accuracy']:.4f}, error {r['error_percent']:.2f}% ({r['n']} samples)")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from aekit.api import baseline_pca

    m = baseline_pca(args.code, data=args.data, data_dir=args.data_dir, split=args.split)
    if args.json:
        _json_out({"method": "pca", "code": args.code, **m})
    else:
        print(_metrics_lines(f"PCA-{args.code} on {args.data} {args.split}", m))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from aekit.demo import format_table, run_demo

    if not args.quiet:
        print("training the simplest autoencoder (784-32-784) on mnist-mini (6,000 digits shipped with aekit)...")
    r = run_demo(args.out, progress=_progress(args), epochs=args.epochs)
    if args.json:
        _json_out(r)
        return 0
    print()
    print(format_table([("autoencoder 784-32-784", r["autoencoder"]), ("PCA, 32 components", r["pca"])]))
    print(f"\n{r['epochs']} epochs in {r['train_seconds']:.1f}s. Pictures and metrics in {r['run_dir']}/:")
    print("  reconstructions.png  loss.png  metrics.csv  summary.json  config.json  model.safetensors")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from aekit.data.sources import list_datasets

    for name, desc in list_datasets().items():
        print(f"{name:<18} {desc}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from aekit.registry import list_models, model_options

    for name, desc in list_models().items():
        print(f"{name:<8} {desc}\n         options: {', '.join(model_options(name))}")
    return 0


# -- parser -----------------------------------------------------------------------------------
def _data_flags(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("--data", default=default, metavar="NAME",
                   help="dataset: a name from `aekit datasets` or npy:/npz:/csv:/images: PATH"
                   + (f" (default {default})" if default else " (default: the run's own)"))
    p.add_argument("--data-dir", metavar="DIR",
                   help="folder holding the dataset's files (else $AEKIT_DATA_DIR, the cache, a download)")


def build_parser() -> Parser:
    from aekit import __version__

    p = Parser(prog="aekit", description="Autoencoders on PyTorch: train, evaluate and use them.")
    p.add_argument("--version", action="version", version=f"aekit {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="train an autoencoder into a run directory")
    t.add_argument("--config", metavar="FILE.toml", help="TOML recipe (see configs/); flags override it")
    t.add_argument("--model", help="model family (see `aekit models`); default mlp")
    t.add_argument("--layers", type=int_list, help="hidden layer sizes of an mlp, e.g. 1000,500,250 ('' for none)")
    t.add_argument("--code", type=int, help="code (bottleneck) size")
    t.add_argument("--activation", help="hidden activation: relu, sigmoid, tanh, gelu, elu, leaky_relu")
    t.add_argument("--channels", type=int_list, help="conv channels per stage, e.g. 32,64")
    t.add_argument("--code-activation", help="activation of the code units (default linear)")
    t.add_argument("--loss", choices=["mse", "bce"], help="reconstruction loss (default mse)")
    t.add_argument("--noise", metavar="KIND:LEVEL",
                   help="denoising: gaussian:SIGMA, masking:FRACTION or salt-pepper:FRACTION, fresh every batch")
    t.add_argument("--sparse", metavar="SPEC", help="sparsity on the code: l1:LAMBDA or kl:RHO,BETA")
    t.add_argument("--contractive", type=float, metavar="LAMBDA",
                   help="contractive penalty: LAMBDA x squared Frobenius norm of the encoder Jacobian")
    _data_flags(t)
    t.add_argument("--val-fraction", type=float, help="share of the training part held out for validation (0.1)")
    t.add_argument("--image-size", type=int, help="resize images:DIR sources to this size")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float, help="learning rate")
    t.add_argument("--optimizer", choices=["adam", "adamw", "sgd"])
    t.add_argument("--schedule", choices=["none", "cosine", "step"], help="learning-rate schedule")
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--patience", type=int, help="early stopping after this many epochs without improvement")
    t.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    t.add_argument("--seed", type=int)
    t.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    t.add_argument("--precision", choices=["fp32", "bf16", "fp16", "auto"],
                   help="autocast precision of the forward pass (fp32 master weights; default fp32)")
    t.add_argument("--out", metavar="DIR", help="run directory (default runs/<time>-<model>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--json", action="store_true", help="print the summary as JSON")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="reconstruction metrics of a trained run")
    e.add_argument("run", metavar="DIR")
    _data_flags(e)
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("reconstruct", help="picture of originals above their reconstructions")
    r.add_argument("run", metavar="DIR")
    _data_flags(r)
    r.add_argument("--split", default="test", choices=["train", "val", "test"])
    r.add_argument("--n", type=int, default=16, help="how many samples (16)")
    r.add_argument("--out", metavar="FILE.png", help="default DIR/reconstructions.png")
    r.set_defaults(func=cmd_reconstruct)

    n = sub.add_parser("denoise", help="PSNR of a model as a denoiser, against median, blur and PCA")
    n.add_argument("run", metavar="DIR")
    n.add_argument("--noise", required=True, metavar="KIND:LEVEL", help="gaussian:SIGMA, masking:F or salt-pepper:F")
    _data_flags(n)
    n.add_argument("--split", default="test", choices=["train", "val", "test"])
    n.add_argument("--out", metavar="FILE.png", help="picture noisy/denoised/clean (default DIR/denoise.png)")
    n.add_argument("--json", action="store_true")
    n.set_defaults(func=cmd_denoise)

    c = sub.add_parser("encode", help="write the codes of a split to .npy or .csv (labels alongside)")
    c.add_argument("run", metavar="DIR")
    _data_flags(c)
    c.add_argument("--split", default="test", choices=["train", "val", "test"])
    c.add_argument("--out", required=True, metavar="codes.npy|codes.csv")
    c.set_defaults(func=cmd_encode)

    pr = sub.add_parser("probe", help="accuracy of linear and 5-NN probes on codes vs pixels vs PCA")
    pr.add_argument("run", metavar="DIR")
    _data_flags(pr)
    pr.add_argument("--max-train", type=int, help="fit the probes on at most this many training samples")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_probe)

    lm = sub.add_parser("latent-map", help="picture of the codes in 2-D, coloured by label")
    lm.add_argument("run", metavar="DIR")
    _data_flags(lm)
    lm.add_argument("--split", default="test", choices=["train", "val", "test"])
    lm.add_argument("--method", default="pca", choices=["pca", "tsne"], help="for codes of more than 2 numbers")
    lm.add_argument("--out", required=True, metavar="map.png")
    lm.set_defaults(func=cmd_latent_map)

    ip = sub.add_parser("interpolate", help="decode the line between two codes, next to a pixel cross-fade")
    ip.add_argument("run", metavar="DIR")
    ip.add_argument("--from", dest="src", required=True, metavar="I|FILE",
                    help="sample index in the split, or an image")
    ip.add_argument("--to", dest="dst", required=True, metavar="J|FILE")
    ip.add_argument("--steps", type=int, default=10)
    _data_flags(ip)
    ip.add_argument("--split", default="test", choices=["train", "val", "test"])
    ip.add_argument("--out", metavar="strip.png", help="default DIR/interpolation.png")
    ip.set_defaults(func=cmd_interpolate)

    ipt = sub.add_parser("inpaint", help="fill masked pixels; PSNR on them vs mean-image and nearest fills")
    ipt.add_argument("run", metavar="DIR")
    ipt.add_argument("--mask", required=True, metavar="SPEC", help="center:S | random:F | rows:A-B | FILE.png")
    ipt.add_argument("--iters", type=int, default=20)
    _data_flags(ipt)
    ipt.add_argument("--split", default="test", choices=["train", "val", "test"])
    ipt.add_argument("--out", metavar="inpaint.png", help="default DIR/inpaint.png")
    ipt.add_argument("--json", action="store_true")
    ipt.set_defaults(func=cmd_inpaint)

    an = sub.add_parser("anomaly", help="reconstruction error as an anomaly score, with a threshold")
    an.add_argument("run", metavar="DIR")
    _data_flags(an)
    an.add_argument("--split", default="test", choices=["train", "val", "test"])
    an.add_argument("--contamination", type=float, default=0.01, help="expected share of anomalies (0.01)")
    an.add_argument("--out", metavar="scores.csv")
    an.add_argument("--maps", metavar="maps.png", help="picture of the top-scored samples' error maps")
    an.add_argument("--json", action="store_true")
    an.set_defaults(func=cmd_anomaly)

    rp = sub.add_parser("report", help="one self-contained HTML page about a run")
    rp.add_argument("run", metavar="DIR")
    _data_flags(rp)
    rp.add_argument("--out", required=True, metavar="report.html")
    rp.set_defaults(func=cmd_report)

    pt = sub.add_parser("pretrain", help="pre-train a stacked encoder: greedy layer-wise or end to end")
    pt.add_argument("--layers", type=int_list, required=True, help="encoder layer sizes, e.g. 1000,1000,1000")
    pt.add_argument("--mode", default="greedy", choices=["greedy", "end-to-end"])
    pt.add_argument("--noise", metavar="SPEC[,SPEC...]", help="denoising noise, one for all layers or one per layer")
    pt.add_argument("--activation", default="sigmoid", help="hidden units (default sigmoid)")
    _data_flags(pt, default="mnist-mini")
    pt.add_argument("--epochs", type=int, help="epochs per layer (greedy) or in all (end-to-end)")
    pt.add_argument("--batch-size", type=int)
    pt.add_argument("--lr", type=float)
    pt.add_argument("--seed", type=int)
    pt.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    pt.add_argument("--out", required=True, metavar="DIR")
    pt.add_argument("--quiet", action="store_true")
    pt.add_argument("--json", action="store_true")
    pt.set_defaults(func=cmd_pretrain)

    ft = sub.add_parser("finetune", help="fine-tune a pre-trained encoder into a classifier")
    ft.add_argument("run", metavar="DIR", help="a pretrain (or any mlp/conv autoencoder) run directory")
    ft.add_argument("--labels", default="all", metavar="N|all", help="labelled training samples to use")
    ft.add_argument("--stage", default="both", choices=["top", "all", "both"])
    ft.add_argument("--init", default="pretrained", choices=["pretrained", "random"])
    _data_flags(ft)
    ft.add_argument("--epochs", type=int, default=30, help="epochs per stage (30)")
    ft.add_argument("--batch-size", type=int, default=128)
    ft.add_argument("--lr", type=float, default=1e-3)
    ft.add_argument("--patience", type=int, default=5)
    ft.add_argument("--seed", type=int, default=0)
    ft.add_argument("--out", metavar="DIR")
    ft.add_argument("--json", action="store_true")
    ft.set_defaults(func=cmd_finetune)

    cl = sub.add_parser("classify", help="accuracy of a fine-tuned classifier")
    cl.add_argument("run", metavar="DIR")
    _data_flags(cl)
    cl.add_argument("--split", default="test", choices=["train", "val", "test"])
    cl.add_argument("--json", action="store_true")
    cl.set_defaults(func=cmd_classify)

    b = sub.add_parser("baseline", help="a classical baseline scored like an autoencoder")
    b.add_argument("method", choices=["pca"])
    b.add_argument("--code", type=int, required=True, help="number of components")
    _data_flags(b, default="mnist-mini")
    b.add_argument("--split", default="test", choices=["train", "val", "test"])
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AekitError as exc:
        print(f"aekit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("aekit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

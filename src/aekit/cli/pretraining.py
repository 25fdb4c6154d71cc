"""Commands for autoencoders as initialisation of classifiers: pretrain, finetune, classify."""

from __future__ import annotations

import argparse

from aekit.cli.common import data_flags, int_list, json_out, progress, reader_flags, trainer_flags
from aekit.config import FINETUNE_INITS, FINETUNE_SCHEDULES, FINETUNE_STAGES, PRETRAIN_MODES


def cmd_pretrain(args: argparse.Namespace) -> int:
    from aekit.api import pretrain

    train = {k: v for k, v in {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                               "seed": args.seed, "device": args.device, "deterministic": args.deterministic,
                               "tensorboard": args.tensorboard, "precision": args.precision,
                               "compile": args.compile}.items() if v is not None}
    _, s = pretrain(args.layers, args.mode, args.noise, data=args.data, data_dir=args.data_dir, out=args.out,
                    activation=args.activation, progress=progress(args), resume=args.resume, **train)
    if args.json:
        json_out(s)
        return 0
    for row in s["per_layer"]:
        print(f"layer {row['layer']}: best validation loss {row['best_val_loss']:.5g} after {row['epochs']} epochs")
    print(f"{s['mode']} pre-training of {'-'.join(map(str, s['layers']))} took {s['pretrain_seconds']:.1f}s")
    print(f"wrote {args.out}")
    return 0


def _labels_arg(text: str) -> int | str:
    return text if text == "all" else int(text) if text.lstrip("-").isdigit() else text


def cmd_finetune(args: argparse.Namespace) -> int:
    from aekit.api import finetune
    from aekit.errors import AekitError

    if args.resume and args.out is None:
        raise AekitError("--resume needs --out DIR, the fine-tuning run to continue")
    s = finetune(args.run, _labels_arg(args.labels), args.stage, args.init, out=args.out, data=args.data,
                 data_dir=args.data_dir, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                 patience=args.patience, seed=args.seed if args.seed is not None else 0, dropout=args.dropout,
                 shift=args.shift, schedule=args.schedule, weight_decay=args.weight_decay,
                 device=args.device or "auto", resume=args.resume, progress=progress(args),
                 deterministic=bool(args.deterministic), tensorboard=args.tensorboard,
                 precision=args.precision or "fp32", compile=args.compile or "off")
    if args.json:
        json_out(s)
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
        json_out(r)
    else:
        print(f"{args.split}: accuracy {r['accuracy']:.4f}, error {r['error_percent']:.2f}% ({r['n']} samples)")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    pt = sub.add_parser("pretrain", help="pre-train a stacked encoder: greedy layer-wise or end to end")
    pt.add_argument("--layers", type=int_list, required=True, help="encoder layer sizes, e.g. 1000,1000,1000")
    pt.add_argument("--mode", default="greedy", choices=PRETRAIN_MODES)
    pt.add_argument("--noise", metavar="SPEC[,SPEC...]", help="denoising noise, one for all layers or one per layer")
    pt.add_argument("--activation", default="sigmoid", help="hidden units (default sigmoid)")
    data_flags(pt, default="mnist-mini")
    pt.add_argument("--epochs", type=int, help="epochs per layer (greedy) or in all (end-to-end)")
    pt.add_argument("--batch-size", type=int)
    pt.add_argument("--lr", type=float)
    pt.add_argument("--out", required=True, metavar="DIR")
    trainer_flags(pt, "continue the pre-training run in --out (finished layers are kept; start it if absent)")
    pt.set_defaults(func=cmd_pretrain)
    ft = sub.add_parser("finetune", help="fine-tune a pre-trained encoder into a classifier")
    ft.add_argument("run", metavar="DIR", help="a pretrain (or any mlp/conv/mae autoencoder) run directory")
    ft.add_argument("--labels", default="all", metavar="N|all", help="labelled training samples to use")
    ft.add_argument("--stage", default="both", choices=FINETUNE_STAGES)
    ft.add_argument("--init", default="pretrained", choices=FINETUNE_INITS)
    data_flags(ft)
    ft.add_argument("--epochs", type=int, default=30, help="epochs per stage (30; an epoch is at least 50 steps)")
    ft.add_argument("--batch-size", type=int, default=128)
    ft.add_argument("--lr", type=float, default=1e-3)
    ft.add_argument("--patience", type=int, default=5)
    ft.add_argument("--dropout", type=float, default=0.0,
                    help="dropout after every hidden layer (0; a VAE: on its code)")
    ft.add_argument("--shift", type=int, default=0, metavar="PIXELS",
                    help="move each training image by up to this many pixels, afresh every batch (0)")
    ft.add_argument("--schedule", default="none", choices=FINETUNE_SCHEDULES, help="learning rate over the epochs")
    ft.add_argument("--weight-decay", type=float, default=0.0)
    ft.add_argument("--out", metavar="DIR")
    trainer_flags(ft, "continue the fine-tuning run in --out (finished stages are kept; start it if absent)")
    ft.set_defaults(func=cmd_finetune)
    cl = sub.add_parser("classify", help="accuracy of a fine-tuned classifier")
    cl.add_argument("run", metavar="DIR")
    reader_flags(cl)
    cl.set_defaults(func=cmd_classify)

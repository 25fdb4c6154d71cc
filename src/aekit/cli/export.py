"""``aekit export``: a trained autoencoder as an ONNX or TorchScript file, checked against aekit."""

from __future__ import annotations

import argparse

from aekit.cli.common import data_flags, json_out


def cmd_export(args: argparse.Namespace) -> int:
    from aekit.api import export
    from aekit.export import check_request

    # before the run is opened: format, part, --out, and --threshold only where a new score file uses it
    check_request(args.format, args.part, None if args.check_only else args.out, args.threshold, args.check_only)
    r = export(args.run, format=args.format, part=args.part, out=args.out, threshold=args.threshold,
               check=not args.no_check, check_only=args.check_only, data=args.data, data_dir=args.data_dir)
    if args.json:
        json_out(r)
        return 0
    if not args.check_only:
        print(f"wrote {r['path']} ({args.format}, {args.part})")
    if "max_abs_diff" in r:
        diffs = ", ".join(f"{k} {v:.3g}" for k, v in r["max_abs_diff"].items())
        print(f"checked on {r['checked_samples']} test samples: max abs difference {diffs}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from aekit.config import EXPORT_FORMATS, EXPORT_PARTS

    e = sub.add_parser("export", help="write a model as ONNX or TorchScript, checked against aekit")
    e.add_argument("run", metavar="DIR")
    e.add_argument("--format", default="onnx", choices=EXPORT_FORMATS, help="onnx (needs aekit[export]) or torchscript")
    e.add_argument("--part", default="full", choices=EXPORT_PARTS,
                   help="full (x -> reconstruction), encoder, decoder, score (x -> anomaly score, error map); "
                   "of a VAE the encoder gives the posterior mean and log-variance, the decoder maps z to the "
                   "likelihood's mean")
    e.add_argument("--out", required=True, metavar="FILE", help=".onnx for onnx, .pt or .ts for torchscript")
    e.add_argument("--threshold", metavar="KIND:VALUE",
                   help="for --part score: contamination:0.01 | percentile:99.5 | fpr:0.01 on the validation split "
                   "(default: the run's stored threshold, from training or aekit anomaly --save-threshold); "
                   "not with --check-only, which checks a file against the threshold it names")
    e.add_argument("--no-check", action="store_true", help="skip running the file on 1,000 test samples")
    e.add_argument("--check-only", action="store_true", help="only check an existing FILE against the run")
    data_flags(e)
    e.add_argument("--json", action="store_true", help="print the result as JSON (stdout holds only JSON)")
    e.set_defaults(func=cmd_export)

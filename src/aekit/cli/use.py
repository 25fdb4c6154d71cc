"""Commands that use a trained autoencoder: denoise, encode, probe, latent-map, interpolate, inpaint,
anomaly, report."""

from __future__ import annotations

import argparse

from aekit.cli.common import int_list, json_out, progress, reader_flags
from aekit.config import INPAINT_STARTS, LATENT_METHODS
from aekit.errors import AekitError


def wrote(args: argparse.Namespace, path: object) -> None:
    """The one line a command that writes a file prints, or ``{"path": ...}`` with --json."""
    if args.json:
        json_out({"path": str(path)})
    else:
        print(f"wrote {path}")


def skipped(r: dict) -> None:
    """The one stderr line naming the baselines skipped for a missing package (stdout may be JSON)."""
    import sys

    from aekit.tasks.classical import skipped_line

    if r.get("skipped"):
        print(skipped_line(r["skipped"]), file=sys.stderr)


def took(seconds: dict[str, float]) -> str:
    """A baseline's wall-clock time: choosing its setting and applying it."""
    return f"{seconds['choose'] + seconds['apply']:.1f} s"


def cmd_denoise(args: argparse.Namespace) -> int:
    from aekit.api import denoise
    from aekit.data.noise import parse_noise
    from aekit.outputs import check_picture_file

    parse_noise(args.noise)  # bad flags fail before the model and the data are loaded
    check_picture_file(args.out)

    r = denoise(args.run, args.noise, data=args.data, data_dir=args.data_dir, split=args.split, out=args.out,
                baselines=args.baselines)
    skipped(r)
    if args.json:
        json_out(r)
        return 0
    print(f"PSNR on {args.split} with {r['noise']} noise (dB, higher is better):")
    print(f"  noisy input        {r['psnr_noisy']:7.2f}")
    print(f"  autoencoder        {r['psnr_autoencoder']:7.2f}")
    for name, b in r["baselines"].items():
        extra = "".join(f"{k} {v}, " for k, v in b.items() if k != "psnr")
        print(f"  {name:<18} {b['psnr']:7.2f}  ({extra}{took(r['seconds'][name])})")
    if r["gain_db"] is not None:
        print(f"autoencoder vs best baseline ({r['best_baseline']}): {r['gain_db']:+.2f} dB")
    if "picture" in r:
        print(f"wrote {r['picture']}")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    from pathlib import Path

    from aekit.api import encode
    from aekit.tasks.represent import check_codes_file, labels_path

    check_codes_file(args.out)
    codes, labels = encode(args.run, data=args.data, data_dir=args.data_dir, split=args.split, out=args.out)
    where = f"{len(codes)} codes of size {codes.shape[1]} to {args.out}"
    if args.json:
        beside = Path(args.out).suffix.lower() == ".npy"
        json_out({"codes": str(args.out), "n": len(codes), "code_size": int(codes.shape[1]),
                  "labels": None if labels is None else str(labels_path(args.out)) if beside else "last column"})
    elif labels is None:
        print(f"wrote {where}")
    elif Path(args.out).suffix.lower() == ".npy":  # labels go to a file of their own beside the codes
        print(f"wrote {where} and their labels to {labels_path(args.out)}")
    else:
        print(f"wrote {where}, labels in its last column")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from aekit.api import probe
    from aekit.tasks.represent import check_max_train

    check_max_train(args.max_train)

    r = probe(args.run, data=args.data, data_dir=args.data_dir, max_train=args.max_train, split=args.split,
              progress=progress(args))
    if args.json:
        json_out(r)
        return 0
    print(f"test accuracy of probes trained on {r['n_train']} training samples (code size {r['code_size']}):")
    print(f"  {'features':<14} {'logistic':>9} {'5-NN':>7}")
    for name, p in r["probes"].items():
        label = {"autoencoder": "autoencoder", "pixels": "raw pixels", "pca": f"PCA-{r['code_size']}"}[name]
        print(f"  {label:<14} {p['logistic']:>9.4f} {p['knn5']:>7.4f}")
    return 0


def cmd_latent_map(args: argparse.Namespace) -> int:
    from aekit.api import latent_map
    from aekit.outputs import check_picture_file

    check_picture_file(args.out)

    path = latent_map(args.run, args.out, data=args.data, data_dir=args.data_dir, split=args.split,
                      method=args.method, progress=progress(args))
    wrote(args, path)
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    from aekit.api import interpolate
    from aekit.outputs import check_picture_file
    from aekit.tasks.blend import check_steps

    check_steps(args.steps)
    check_picture_file(args.out)

    path = interpolate(args.run, args.src, args.dst, steps=args.steps, out=args.out, data=args.data,
                       data_dir=args.data_dir, split=args.split)
    wrote(args, path)
    return 0


def cmd_inpaint(args: argparse.Namespace) -> int:
    from aekit.api import inpaint
    from aekit.outputs import check_picture_file
    from aekit.tasks.inpaint import check_iters

    if args.iters is not None:
        check_iters(args.iters)
    check_picture_file(args.out)

    r = inpaint(args.run, args.mask, iters=args.iters, out=args.out, data=args.data, data_dir=args.data_dir,
                split=args.split, start=args.start, baselines=args.baselines)
    skipped(r)
    if args.json:
        json_out(r)
        return 0
    print(f"PSNR on the {100 * r['missing_fraction']:.0f}% missing pixels ({r['mask']}, {r['n']} images):")
    passes = f"{r['passes']} pass" + ("es" if r["passes"] != 1 else "")
    print(f"  autoencoder ({passes}) {r['psnr_autoencoder']:7.2f} dB")
    for name, v in r["baselines"].items():
        extra = "".join(f"{k} {setting}, " for k, setting in r["settings"].get(name, {}).items())
        print(f"  {name.replace('_', ' '):<26} {v:7.2f} dB  ({extra}{took(r['seconds'][name])})")
    print(f"autoencoder vs best baseline: {r['gain_db']:+.2f} dB")
    if "picture" in r:
        print(f"wrote {r['picture']}")
    return 0


def cmd_anomaly(args: argparse.Namespace) -> int:
    from aekit.api import anomaly
    from aekit.tasks.anomaly import check_contamination, check_outputs, parse_threshold

    if args.contamination is not None and args.threshold is not None:
        raise AekitError("give --threshold or --contamination, not both")
    if args.contamination is not None:
        check_contamination(args.contamination)
    if args.threshold is not None:
        parse_threshold(args.threshold)
    check_outputs(args.out, args.maps)

    from aekit.tasks.anomaly import SCORE_PLAIN, shown

    r = anomaly(args.run, out=args.out, contamination=args.contamination, maps=args.maps, data=args.data,
                data_dir=args.data_dir, split=args.split, threshold=args.threshold,
                normal_classes=args.normal_classes, save_threshold=args.save_threshold, score=args.score,
                components=args.components)
    if args.json:
        json_out(r)
        return 0
    stored = ", stored in the run" if r["threshold_stored"] else ""
    # rule and split may come from the run's threshold.json: printed escaped, as any text read from a file
    print(f"threshold {r['threshold']:.4g} ({shown(r['threshold_rule'])} on the {shown(r['threshold_split'])} "
          f"split{stored}): {r['flagged']} of {r['n']} samples flagged")
    if r.get("score") == "latent":
        print(f"score: {r['score_definition']}")
    elif r["score_definition"] != SCORE_PLAIN:  # tabular data: say what the numbers are
        print(f"score: {r['score_definition']} (error_scale in threshold.json)")
    if "f1" in r:
        print(f"normal classes {r['normal_classes']}: precision {r['precision']:.4f}, recall {r['recall']:.4f}, "
              f"F1 {r['f1']:.4f}, false-positive rate {r['fpr']:.4f}, ROC AUC {r['roc_auc']:.4f}")
    for key in ("scores_csv", "maps", "threshold_file"):
        if key in r:
            print(f"wrote {r[key]}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from aekit.report import build_report, check_report_file

    check_report_file(args.out)  # before a minute of work, not after it

    path = build_report(args.run, args.out, data=args.data, data_dir=args.data_dir, split=args.split,
                        progress=progress(args))
    wrote(args, path)
    return 0


def anomaly_parser(sub: argparse._SubParsersAction) -> None:
    """``aekit anomaly`` and its flags (apart from add_commands, which would grow too long)."""
    an = sub.add_parser("anomaly", help="reconstruction error (or the code's density) as an anomaly score, with a "
                        "threshold",
                        description="Score (--score error, the default): the squared reconstruction error summed over "
                        "values (over each value's error scale on data outside [0, 1]). On a VAE run, the error of the "
                        "reconstruction decoded at the posterior mean: deterministic, the same number threshold.json, "
                        "export --part score and serve use; for a likelihood, see aekit nll. --score latent: minus the "
                        "log-density of the code under a Gaussian mixture fitted on the training split's codes (kept "
                        "in DIR/latent-density.safetensors), the better score for images: it also flags anomalies "
                        "simpler than the normal data, which reconstruct well.")
    an.add_argument("run", metavar="DIR")
    reader_flags(an)
    an.add_argument("--contamination", type=float, help="expected share of anomalies (0.01); short for "
                    "--threshold contamination:C")
    an.add_argument("--threshold", metavar="KIND:VALUE",
                    help="contamination:0.01 | percentile:99.5 | fpr:0.01 (fpr needs labels), on the validation "
                    "split (default: the run's stored threshold, else contamination:0.01)")
    an.add_argument("--save-threshold", action="store_true",
                    help="store the threshold in DIR/threshold.json, for aekit export --part score and later runs")
    an.add_argument("--normal-classes", type=int_list, metavar="0,1",
                    help="labels of normal data (default: the classes of the training split)")
    an.add_argument("--out", metavar="scores.csv")
    an.add_argument("--maps", metavar="maps.png", help="picture of the top-scored samples' reconstruction error maps "
                    "(with --score latent: of the samples with the highest latent scores)")
    an.add_argument("--score", default="error", metavar="{error,latent}",
                    help="error: the reconstruction error (default); latent: minus the log-density of the code under "
                    "a Gaussian mixture fitted on the training codes (recommended for images)")
    an.add_argument("--components", type=int, metavar="K",
                    help="with --score latent: the mixture's components, 1 to 256 (default 10, or the stored "
                    "threshold's)")
    an.set_defaults(func=cmd_anomaly)


def add_commands(sub: argparse._SubParsersAction) -> None:
    n = sub.add_parser("denoise", help="PSNR of a model as a denoiser, against median, blur, PCA, BM3D, "
                       "non-local means and TV (the last three from the extra baselines)")
    n.add_argument("run", metavar="DIR")
    n.add_argument("--noise", required=True, metavar="KIND:LEVEL", help="gaussian:SIGMA, masking:F or salt-pepper:F")
    n.add_argument("--baselines", default="all", metavar="NAMES",
                   help="comma-separated: median3x3, median, gaussian_blur, pca_projection, bm3d, nl_means, "
                        "total_variation (default all; each setting is chosen on the validation split)")
    reader_flags(n)
    n.add_argument("--out", metavar="FILE.png", help="picture noisy/denoised/clean (default DIR/denoise.png)")
    n.set_defaults(func=cmd_denoise)
    c = sub.add_parser("encode", help="write the codes of a split to .npy or .csv (labels alongside)")
    c.add_argument("run", metavar="DIR")
    reader_flags(c)
    c.add_argument("--out", required=True, metavar="codes.npy|codes.csv")
    c.set_defaults(func=cmd_encode)
    lm = sub.add_parser("latent-map", help="picture of the codes in 2-D, coloured by label; with a 2-number code of "
                        "images, the decoded manifold beside it (a VAE's through its prior's quantiles)")
    lm.add_argument("run", metavar="DIR")
    reader_flags(lm)
    lm.add_argument("--method", default="pca", choices=LATENT_METHODS, help="for codes of more than 2 numbers")
    lm.add_argument("--quiet", action="store_true", help="no progress output")
    lm.add_argument("--out", required=True, metavar="map.png")
    lm.set_defaults(func=cmd_latent_map)
    pr = sub.add_parser("probe", help="accuracy of linear and 5-NN probes on codes vs pixels vs PCA")
    pr.add_argument("run", metavar="DIR")
    reader_flags(pr)
    pr.add_argument("--max-train", type=int, help="fit the probes on at most this many training samples")
    pr.add_argument("--quiet", action="store_true", help="no progress output")
    pr.set_defaults(func=cmd_probe)
    ip = sub.add_parser("interpolate", help="decode the line between two codes, next to a pixel cross-fade")
    ip.add_argument("run", metavar="DIR")
    ip.add_argument("--from", dest="src", required=True, metavar="I|FILE",
                    help="sample index in the split, or an image")
    ip.add_argument("--to", dest="dst", required=True, metavar="J|FILE")
    ip.add_argument("--steps", type=int, default=10)
    reader_flags(ip)
    ip.add_argument("--out", metavar="strip.png", help="default DIR/interpolation.png")
    ip.set_defaults(func=cmd_interpolate)
    ipt = sub.add_parser("inpaint", help="fill masked pixels; PSNR on them vs mean-image, nearest, biharmonic "
                         "and Telea fills (the last two from the extra baselines)")
    ipt.add_argument("--baselines", default="all", metavar="NAMES",
                     help="comma-separated: mean_image, nearest_observed, biharmonic, telea (default all)")
    ipt.add_argument("run", metavar="DIR")
    ipt.add_argument("--mask", required=True, metavar="SPEC", help="center:S | random:F | rows:A-B | FILE.png")
    ipt.add_argument("--iters", type=int, help="passes of reconstruct-and-keep (default 20; 1 for a run trained "
                     "with --noise center:S)")
    ipt.add_argument("--start", default="mean", choices=INPAINT_STARTS,
                     help="first guess for the missing pixels (mean: what block:S training fills in; "
                          "zeros: what masking noise leaves)")
    reader_flags(ipt)
    ipt.add_argument("--out", metavar="inpaint.png", help="default DIR/inpaint.png")
    ipt.set_defaults(func=cmd_inpaint)
    anomaly_parser(sub)
    rp = sub.add_parser("report", help="one self-contained HTML page about a run")
    rp.add_argument("run", metavar="DIR")
    reader_flags(rp)
    rp.add_argument("--out", required=True, metavar="report.html")
    rp.add_argument("--quiet", action="store_true", help="no progress (a bar on a terminal, else lines on stderr)")
    rp.set_defaults(func=cmd_report)

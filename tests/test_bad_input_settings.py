"""The bad-input corpus for settings, flags and output paths: one row per case, each a command line
that must end in one clear error line (exit 2, no traceback), almost always before any data is read
or any training is done.

A row is (id, build, expect): ``build(ctx)`` makes the hostile input under ``ctx.tmp`` and returns
the argv; ``expect`` is a piece of the error line. Rows that need a trained run ask for ``ctx.run``
(one tiny run, trained once for the module).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from aekit.errors import AekitError
from tests.badinput import assert_one_line_error, run_cli

FAST = ["--data", "mnist-mini", "--epochs", "1", "--max-steps", "1", "--quiet"]


@dataclass
class Ctx:
    tmp: Path
    _run: Callable[[], Path]

    @property
    def run(self) -> str:
        return str(self._run())

    def file(self, name: str, content: str | bytes) -> str:
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(p)

    def folder(self, name: str) -> str:
        (self.tmp / name).mkdir(parents=True, exist_ok=True)
        return str(self.tmp / name)


def train(*flags: str) -> Callable[[Ctx], list[str]]:
    """``aekit train`` on mnist-mini with these flags (the error must come before training)."""
    return lambda c: ["train", *FAST, "--out", str(c.tmp / "r"), *flags]


def toml(text: str) -> Callable[[Ctx], list[str]]:
    """``aekit train --config c.toml`` (no --data flag: the file's [data] table counts)."""
    return lambda c: ["train", "--config", c.file("c.toml", text), *FAST[2:], "--out", str(c.tmp / "r")]


def use(command: str, *flags: str, out: Callable[[Ctx], list[str]] | None = None) -> Callable[[Ctx], list[str]]:
    """A command on the trained run, with ``flags`` and, if given, extra flags built in tmp."""
    return lambda c: [command, c.run, *flags, *(out(c) if out else [])]


def not_root(build: Callable[[Ctx], list[str]]) -> Callable[[Ctx], list[str]]:
    def wrapped(c: Ctx) -> list[str]:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders; the /sys row covers a folder nobody can write")
        return build(c)

    return wrapped


def read_only(c: Ctx) -> str:
    d = Path(c.folder("ro"))
    d.chmod(0o555)
    return str(d)


LONG = "a" * 300  # one name longer than the 255 bytes a file system takes


def npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def tensorboard(where: Callable[[Ctx], str]) -> Callable[[Ctx], list[str]]:
    """``aekit train --tensorboard DIR`` with DIR built in tmp (refused before the run folder is made)."""
    return lambda c: [*train()(c), "--tensorboard", where(c)]


def fifo(c: Ctx) -> str:
    os.mkfifo(c.tmp / "pipe")
    return str(c.tmp / "pipe")


def link_loop(c: Ctx) -> str:
    (c.tmp / "loop-a").symlink_to(c.tmp / "loop-b")
    (c.tmp / "loop-b").symlink_to(c.tmp / "loop-a")
    return str(c.tmp / "loop-a")


ROWS: list[tuple[str, Callable[[Ctx], list[str]], str]] = [
    # --- training flags: every numeric setting has a finite, checked range -------------------------
    ("lr-nan", train("--lr", "nan"), "train.lr must be a finite number"),
    ("lr-inf", train("--lr", "inf"), "train.lr must be a finite number"),
    ("lr-zero", train("--lr", "0"), "train.lr must lie in (0, 10]"),
    ("lr-negative", train("--lr", "-0.1"), "train.lr must lie in (0, 10]"),
    ("lr-huge", train("--lr", "1e6"), "train.lr must lie in (0, 10]"),
    ("weight-decay-negative", train("--weight-decay", "-1"), "train.weight_decay must lie in [0, 10]"),
    ("weight-decay-nan", train("--weight-decay", "nan"), "train.weight_decay must be a finite number"),
    ("epochs-zero", train("--epochs", "0"), "train.epochs must lie in [1,"),
    ("epochs-huge", train("--epochs", "10000000"), "train.epochs must lie in [1, 1000000]"),
    ("batch-size-zero", train("--batch-size", "0"), "train.batch_size must lie in [1,"),
    ("batch-size-negative", train("--batch-size", "-5"), "train.batch_size must lie in [1,"),
    ("max-steps-zero", train("--max-steps", "0"), "train.max_steps must lie in [1,"),
    ("patience-zero", train("--patience", "0"), "train.patience must lie in [1,"),
    ("seed-negative", train("--seed", "-1"), "train.seed must lie in [0, 4294967295]"),
    ("seed-huge", train("--seed", str(2**40)), "train.seed must lie in [0, 4294967295]"),
    ("val-fraction-one", train("--val-fraction", "1"), "data.val_fraction must lie in [0, 1)"),
    ("val-fraction-nan", train("--val-fraction", "nan"), "data.val_fraction must be a finite number"),
    ("image-size-huge", train("--image-size", "100000"), "data.image_size must lie in [1, 4096]"),
    ("image-size-zero", train("--image-size", "0"), "data.image_size must lie in [1, 4096]"),
    ("compile-maybe", train("--compile", "maybe"), "argument --compile: invalid choice: 'maybe'"),
    ("compile-toml-word", toml('[train]\ncompile = "yes"\n'), "unknown compile 'yes'; use one of off, on"),
    ("compile-toml-bool", toml("[train]\ncompile = true\n"), "compile = True has the wrong type (expected str)"),
    ("precision-toml-unknown", toml('[train]\nprecision = "fp8"\n'), "unknown precision 'fp8'"),
    ("pretrain-compile-maybe", lambda c: ["pretrain", "--layers", "8", "--compile", "maybe", "--out",
                                          str(c.tmp / "r")], "argument --compile: invalid choice"),
    ("finetune-compile-maybe", use("finetune", "--compile", "maybe"), "argument --compile: invalid choice"),
    # --- model options: unit counts capped, the parameter count checked before allocating ----------
    ("code-huge", train("--code", "10000000000"), "code size (--code) must be a whole number from 1 to 1,000,000"),
    ("code-zero", train("--code", "0"), "code size (--code)"),
    ("layers-huge", train("--layers", "1000000000"), "layer size (--layers) must be a whole number from 1"),
    ("layers-negative", train("--layers", "100,-3"), "layer size (--layers)"),
    ("layers-too-many-parameters", train("--layers", "100000,100000"), "parameters, more than the 2,147,483,648"),
    ("code-too-many-parameters", train("--code", "999999", "--layers", "5000"), "parameters"),
    ("channels-zero", train("--model", "conv", "--channels", "0"), "channel count (--channels)"),
    ("channels-too-many-parameters", train("--model", "conv", "--channels", "100000,100000"), "parameters"),
    ("contractive-nan", train("--contractive", "nan"), "contractive weight (--contractive)"),
    ("contractive-negative", train("--contractive", "-1"), "contractive weight (--contractive)"),
    ("contractive-huge", train("--contractive", "1e300"), "contractive weight (--contractive)"),
    ("sparse-nan", train("--sparse", "l1:nan"), "must be finite"),
    ("sparse-inf", train("--sparse", "kl:0.05,inf"), "must be finite"),
    ("sparse-rho-out-of-range", train("--sparse", "kl:2", "--code-activation", "sigmoid"), "strictly between 0 and 1"),
    ("activation-unknown", train("--activation", "swishy"), "unknown activation"),
    ("norm-unknown", train("--norm", "group"), "unknown norm 'group' (--norm)"),
    ("norm-on-linear", train("--model", "linear", "--norm", "batch"), "has no option norm"),
    ("norm-unknown-on-conv", train("--model", "conv", "--norm", "group"), "unknown norm 'group' (--norm)"),
    ("contractive-with-batch-norm", train("--layers", "32", "--norm", "batch", "--contractive", "0.1"),
     "--contractive needs each sample's code to depend on that sample alone"),
    ("contractive-with-batch-norm-on-conv", train("--model", "conv", "--norm", "batch", "--contractive", "0.1"),
     "which --norm batch breaks; use --norm layer or none"),
    ("ema-one", train("--ema", "1"), "train.ema must lie in (0, 1), got 1"),
    ("ema-nan", train("--ema", "nan"), "train.ema must be a finite number"),
    ("shift-negative", train("--shift", "-1"), "train.shift must lie in [0, 64], got -1"),
    ("shift-on-rows", train("--shift", "1", "--data", "synthetic:plane"), "shift needs image data"),
    ("noise-center-fraction", train("--noise", "center:2.5"), "center takes a whole number of pixels"),
    ("noise-center-too-big", train("--noise", "center:40"), "center:40 does not fit in 28x28 images"),
    ("noise-center-on-rows", train("--noise", "center:4", "--data", "synthetic:plane"), "center noise needs images"),
    # --- the variational family's options: checked before any data is read ---------------------------
    ("vae-beta-negative", train("--model", "vae", "--beta", "-1"), "beta must be a non-negative number"),
    ("vae-beta-nan", train("--model", "vae", "--beta", "nan"), "beta must be a non-negative number"),
    ("vae-iw-samples-zero", train("--model", "vae", "--iw-samples", "0"),
     "iw_samples must be a whole number from 1 to 5,000, got 0"),
    ("vae-iw-samples-huge", train("--model", "vae", "--iw-samples", "1000000000"),
     "iw_samples must be a whole number from 1 to 5,000, got 1000000000"),
    ("vae-prior-vamp-zero", train("--model", "vae", "--prior", "vamp:0"), "prior vamp:K (pseudo-inputs K) must be"),
    ("vae-prior-unknown", train("--model", "vae", "--prior", "gamma"), "unknown prior 'gamma'"),
    ("vae-likelihood-unknown", train("--model", "vae", "--likelihood", "poisson"), "unknown likelihood 'poisson'"),
    ("vae-kl-warmup-negative", train("--model", "vae", "--kl-warmup", "-1"), "kl_warmup must be a whole number"),
    ("vae-free-bits-with-iwae", train("--model", "vae", "--free-bits", "0.5", "--iw-samples", "5"),
     "with iw_samples > 1"),
    ("vae-conditional-unlabelled", train("--model", "vae", "--conditional", "--data", "synthetic:plane"),
     "--conditional (conditional = true) needs class labels (whole numbers), and synthetic:plane's labels are"),
    ("vae-conditional-no-labels", lambda c: [*train("--model", "vae", "--conditional")(c), "--data",
                                             "npy:" + c.file("x.npy", npy_bytes(np.zeros((20, 4), np.float32)))],
     "needs class labels, and"),
    ("vae-bernoulli-on-real-data", train("--model", "vae", "--likelihood", "bernoulli", "--data", "synthetic:plane"),
     "likelihood bernoulli needs data in [0, 1]"),
    # --- the hierarchical VAE (--model ladder) --------------------------------------------------------
    ("ladder-no-latents", train("--model", "ladder", "--latents", ""), "needs at least one stochastic layer below"),
    ("ladder-latents-zero", train("--model", "ladder", "--latents", "0"), "latent size (--latents)"),
    ("ladder-widths-mismatch", train("--model", "ladder", "--latents", "64,32", "--layers", "512,256"),
     "--layers gives one width per stochastic layer (3"),
    ("ladder-too-many-layers", train("--model", "ladder", "--latents", ",".join(["2"] * 16), "--layers",
                                     ",".join(["8"] * 17)), "at most 16 stochastic layers"),
    ("ladder-too-many-parameters", train("--model", "ladder", "--latents", "8", "--layers", "100000,100000"),
     "parameters"),
    ("ladder-prior-vamp", train("--model", "ladder", "--latents", "8", "--prior", "vamp:5"),
     "model 'ladder' has no option prior"),
    ("ladder-conditional", train("--model", "ladder", "--conditional"), "model 'ladder' takes no labels"),
    ("ladder-iw-samples-zero", train("--model", "ladder", "--iw-samples", "0"), "iw_samples must be a whole number"),
    ("latents-on-vae", train("--model", "vae", "--latents", "8"), "model 'vae' has no option latents"),
    ("toml-ladder-latents-text", toml('[model]\nname = "ladder"\nlatents = ["a"]\n'), "option latents"),
    ("beta-on-mlp", train("--beta", "2"), "model 'mlp' has no option beta"),
    ("iw-samples-on-conv", train("--model", "conv", "--iw-samples", "5"), "model 'conv' has no option iw_samples"),
    ("prior-on-linear", train("--model", "linear", "--prior", "vamp:3"), "model 'linear' has no option prior"),
    ("conditional-on-mlp", train("--conditional"), "model 'mlp' takes no labels; conditional models: vae"),
    ("toml-conditional-not-bool", toml('[model]\nname = "vae"\nconditional = 1\n'),
     "conditional = 1 must be true or false"),
    ("toml-conditional-and-n-classes", toml('[model]\nname = "vae"\nconditional = true\nn_classes = 10\n'),
     "not both"),
    ("toml-vae-beta-negative", toml('[model]\nname = "vae"\nbeta = -0.5\n'), "beta must be a non-negative"),
    # --- the masked autoencoder (--model mae): its ranges before any data is read, its shapes once read --
    ("mae-mask-ratio-zero", train("--model", "mae", "--mask-ratio", "0"), "must lie strictly between 0 and 1"),
    ("mae-mask-ratio-one", train("--model", "mae", "--mask-ratio", "1"), "must lie strictly between 0 and 1"),
    ("mae-mask-ratio-nan", train("--model", "mae", "--mask-ratio", "nan"), "mask ratio (--mask-ratio)"),
    ("toml-mae-mask-ratio-one", toml('[model]\nname = "mae"\nmask_ratio = 1\n'), "strictly between 0 and 1"),
    ("mae-patch-does-not-divide", train("--model", "mae", "--patch", "5"),
     "patch size (--patch) 5 does not divide the 28x28 images into whole patches; sizes that fit: 1, 2, 4, 7, 14"),
    ("mae-patch-whole-image", train("--model", "mae", "--patch", "28"), "makes one patch of each 28x28 image"),
    ("mae-patch-zero", train("--model", "mae", "--patch", "0"), "patch size (--patch) must be a whole number"),
    ("mae-heads-do-not-divide-width", train("--model", "mae", "--heads", "5"),
     "--heads 5 does not divide the width 64 (--width)"),
    ("mae-heads-do-not-divide-decoder", train("--model", "mae", "--decoder-width", "30"),
     "does not divide the decoder width 30 (--decoder-width)"),
    ("mae-depth-zero", train("--model", "mae", "--depth", "0"), "depth (--depth) must be a whole number from 1"),
    ("mae-too-many-parameters", train("--model", "mae", "--width", "100000", "--depth", "64"),
     "parameters, more than the 2,147,483,648"),
    ("mae-on-tabular-data", train("--model", "mae", "--data", "synthetic:plane"),
     "the mae model needs images (C, H, W); this data has samples of shape (4,)"),
    ("mae-loss-bce", train("--model", "mae", "--loss", "bce"), "model 'mae' has no option loss"),
    ("patch-on-mlp", train("--patch", "4"), "model 'mlp' has no option patch"),
    ("toml-mae-norm-pix-not-bool", toml('[model]\nname = "mae"\nnorm_pix = 1\n'),
     "option norm_pix = 1 has the wrong type; it takes true or false"),
    # --- TOML and JSON recipes ----------------------------------------------------------------------
    ("toml-clip-grad-negative", toml("[train]\nclip_grad = -1.0\n"), "train.clip_grad must lie in (0,"),
    ("toml-clip-grad-zero", toml("[train]\nclip_grad = 0.0\n"), "train.clip_grad must lie in (0,"),
    ("toml-momentum-nan", toml("[train]\noptimizer = \"sgd\"\nmomentum = nan\n"), "train.momentum must be a finite"),
    ("toml-momentum-one", toml("[train]\nmomentum = 1.0\n"), "train.momentum must lie in [0, 1)"),
    ("toml-lr-inf", toml("[train]\nlr = inf\n"), "train.lr must be a finite number"),
    ("toml-eval-batch-zero", toml("[train]\neval_batch_size = 0\n"), "train.eval_batch_size must lie in [1,"),
    ("toml-log-every-negative", toml("[train]\nlog_every = -1\n"), "train.log_every must lie in [1,"),
    ("toml-data-is-a-number", toml("data = 5\n"), "data must be a table"),
    ("toml-model-is-a-string", toml('model = "mlp"\n'), "model must be a table"),
    ("toml-train-is-a-list", toml("train = [1, 2]\n"), "train must be a table"),
    ("toml-layers-is-a-number", toml("[model]\nlayers = 64\n"), "option layers = 64 has the wrong type"),
    ("toml-layers-has-text", toml('[model]\nlayers = [10, "a"]\n'), "option layers"),
    ("toml-code-is-fractional", toml("[model]\ncode = 3.5\n"), "option code = 3.5 has the wrong type"),
    ("toml-model-name-number", toml("[model]\nname = 5\n"), "name = 5 must be a string"),
    ("toml-model-unknown-option", toml("[model]\ndepth = 3\n"), "has no option depth"),
    ("toml-activation-is-a-list", toml("[model]\nactivation = [\"relu\"]\n"), "option activation"),
    ("toml-split-seed-negative", toml("[data]\nsplit_seed = -1\n"), "data.split_seed must lie in [0,"),
    ("toml-color-unknown", toml('[data]\ncolor = "purple"\n'), "data.color must be gray or rgb"),
    ("toml-data-name-empty", toml('[data]\nname = ""\n'), "data.name is empty"),
    ("toml-epochs-is-text", toml('[train]\nepochs = "ten"\n'), "epochs = 'ten' has the wrong type"),
    ("toml-batch-size-is-bool", toml("[train]\nbatch_size = true\n"), "has the wrong type"),
    ("toml-unknown-section", toml("[optim]\nlr = 0.1\n"), "unknown section(s) optim"),
    ("toml-syntax", toml("[train\nlr = 0.1\n"), "not valid TOML"),
    ("toml-not-utf8", lambda c: ["train", "--config", c.file("c.toml", b"[train]\nlr = 0.1 # \xff\xfe\n"), *FAST],
     "not UTF-8"),
    ("config-is-a-folder", lambda c: ["train", "--config", c.folder("c.toml"), *FAST], "is a folder"),
    ("config-missing", lambda c: ["train", "--config", str(c.tmp / "none.toml"), *FAST], "not found"),
    # --config NAME: a packaged recipe (aekit recipes); an unknown name lists them
    ("config-unknown-recipe", lambda c: ["train", "--config", "simplets", *FAST, "--out", str(c.tmp / "r")],
     "no config file or packaged recipe named 'simplets'; recipes: anomaly-conv, conv-mnist, cvae-mnist,"),
    ("config-recipe-path-outside-checkout", lambda c: ["train", "--config", str(c.tmp / "configs" / "simplest.toml"),
                                                       *FAST], "not found; aekit ships a recipe of that name"),
    ("json-config-is-a-list", lambda c: ["train", "--config", c.file("list.json", "[1, 2, 3]"), *FAST],
     "expected a table of [data], [model] and [train] settings, found a list"),
    ("json-config-not-json", lambda c: ["train", "--config", c.file("c.json", "{lr: 1}"), *FAST], "not valid JSON"),
    ("json-run-config-doctored", lambda c: ["train", "--config", c.file("config.json", json.dumps(
        {"aekit_version": "0", "run": {"train": {"lr": -1}}})), *FAST], "train.lr must lie in (0, 10]"),
    # --- task flags -----------------------------------------------------------------------------
    ("interpolate-steps-huge", use("interpolate", "--from", "0", "--to", "1", "--steps", "1000000000"),
     "--steps must be a whole number, at least 2 and at most 1,024"),
    ("interpolate-steps-one", use("interpolate", "--from", "0", "--to", "1", "--steps", "1"), "--steps"),
    ("probe-max-train-zero", use("probe", "--max-train", "0"), "--max-train must be a whole number of at least 10"),
    ("probe-max-train-negative", use("probe", "--max-train", "-5"), "--max-train"),
    ("anomaly-contamination-high", use("anomaly", "--contamination", "0.9"), "--contamination must lie in (0, 0.5]"),
    ("anomaly-contamination-zero", use("anomaly", "--contamination", "0"), "--contamination must lie in (0, 0.5]"),
    ("anomaly-contamination-nan", use("anomaly", "--contamination", "nan"), "--contamination must lie in (0, 0.5]"),
    ("inpaint-iters-zero", use("inpaint", "--mask", "center:10", "--iters", "0"), "--iters must be a whole number"),
    ("inpaint-iters-huge", use("inpaint", "--mask", "center:10", "--iters", "100000"), "at least 1 and at most 1,000"),
    ("inpaint-mask-random-nan", use("inpaint", "--mask", "random:nan"), "strictly between 0 and 1"),
    ("denoise-noise-nan", use("denoise", "--noise", "gaussian:nan"), "non-negative number"),
    ("denoise-baselines-unknown", use("denoise", "--noise", "gaussian:0.3", "--baselines", "median,bm4d"),
     "unknown denoising baseline 'bm4d'; use median3x3, median, gaussian_blur, pca_projection, bm3d"),
    ("denoise-baselines-empty", use("denoise", "--noise", "gaussian:0.3", "--baselines", ""),
     "unknown denoising baseline ''"),
    ("denoise-baselines-a-fill", use("denoise", "--noise", "gaussian:0.3", "--baselines", "telea"),
     "unknown denoising baseline 'telea'"),
    ("denoise-baselines-name-300", use("denoise", "--noise", "gaussian:0.3", "--baselines", LONG),
     f"unknown denoising baseline '{LONG[:40]}'; use"),
    ("inpaint-baselines-unknown", use("inpaint", "--mask", "center:10", "--baselines", "telea,criminisi"),
     "unknown infilling baseline 'criminisi'; use mean_image, nearest_observed, biharmonic, telea or all"),
    ("inpaint-baselines-a-denoiser", use("inpaint", "--mask", "center:10", "--baselines", "bm3d"),
     "unknown infilling baseline 'bm3d'"),
    # --- output paths, checked before any work --------------------------------------------------------
    ("latent-map-out-folder", use("latent-map", out=lambda c: ["--out", c.folder("map.png")]), "is a folder"),
    ("latent-map-out-gif", use("latent-map", out=lambda c: ["--out", str(c.tmp / "map.gif")]),
     "name a .png, .pdf, .svg, .jpg or .jpeg file"),
    ("latent-map-out-no-suffix", use("latent-map", out=lambda c: ["--out", str(c.tmp / "map")]), "name a .png"),
    ("interpolate-out-under-a-file", use("interpolate", "--from", "0", "--to", "1",
                                         out=lambda c: ["--out", c.file("f.txt", "x") + "/strip.png"]),
     "is a file, not a folder"),
    ("interpolate-out-deep-under-a-file", use("interpolate", "--from", "0", "--to", "1",
                                              out=lambda c: ["--out", c.file("g.txt", "x") + "/a/b/strip.png"]),
     "is a file, not a folder"),
    ("report-out-folder", use("report", out=lambda c: ["--out", c.folder("report.html")]), "is a folder"),
    ("report-out-png", use("report", out=lambda c: ["--out", str(c.tmp / "report.png")]), "name a .html or .htm"),
    ("report-out-under-a-file", use("report", out=lambda c: ["--out", c.file("h.txt", "x") + "/r.html"]),
     "is a file, not a folder"),
    ("encode-out-txt", use("encode", out=lambda c: ["--out", str(c.tmp / "codes.txt")]), "name a .npy or .csv"),
    ("encode-out-folder", use("encode", out=lambda c: ["--out", c.folder("codes.npy")]), "is a folder"),
    ("encode-labels-file-is-a-folder", use("encode", out=lambda c: [
        "--out", c.folder("codes.labels.npy") and str(c.tmp / "codes.npy")]), "is a folder"),
    ("anomaly-out-not-csv", use("anomaly", out=lambda c: ["--out", str(c.tmp / "scores.json")]), "name a .csv"),
    ("anomaly-maps-folder", use("anomaly", out=lambda c: ["--maps", c.folder("maps.png")]), "--maps"),
    ("denoise-out-bmp", use("denoise", "--noise", "gaussian:0.3", out=lambda c: ["--out", str(c.tmp / "d.bmp")]),
     "name a .png"),
    ("inpaint-out-unwritable", use("inpaint", "--mask", "center:10", out=lambda c: ["--out", "/sys/inpaint.png"]),
     "permission denied"),
    ("inpaint-out-read-only-folder", not_root(use("inpaint", "--mask", "center:10",
                                                  out=lambda c: ["--out", read_only(c) + "/i.png"])),
     "permission denied"),
    ("reconstruct-out-folder", use("reconstruct", out=lambda c: ["--out", c.folder("recon.png")]), "is a folder"),
    ("reconstruct-out-gif", use("reconstruct", out=lambda c: ["--out", str(c.tmp / "recon.gif")]), "name a .png"),
    ("reconstruct-n-huge", use("reconstruct", "--n", "100000"), "--n must be a whole number from 1 to 1024"),
    # --- names longer than a file system takes: one line, not OSError ----------------------------
    ("export-out-name-300", use("export", "--no-check", out=lambda c: ["--out", f"{c.folder('exp')}/{LONG}.onnx"]),
     "file name too long (305 bytes; at most 255"),
    ("latent-map-out-name-300", use("latent-map", out=lambda c: ["--out", f"{c.tmp}/{LONG}.png"]),
     "file name too long"),
    ("encode-out-folder-name-300", use("encode", out=lambda c: ["--out", f"{c.tmp}/{LONG}/codes.npy"]),
     "file name too long"),
    ("train-out-name-300", lambda c: ["train", *FAST, "--out", str(c.tmp / LONG)], "file name too long"),
    ("train-out-path-5000", lambda c: ["train", *FAST, "--out", str(c.tmp / "/".join(["b" * 200] * 25))],
     "path too long"),
    # --- --tensorboard DIR: checked before the run folder, its .lock and config.json exist ----------
    ("tensorboard-a-file", tensorboard(lambda c: c.file("tb.txt", "x")), "is not a folder"),
    ("tensorboard-dev-null", tensorboard(lambda c: "/dev/null"), "is not a folder"),
    ("tensorboard-a-fifo", tensorboard(fifo), "is not a folder"),
    ("tensorboard-under-a-file", tensorboard(lambda c: c.file("tb.txt", "x") + "/logs"), "is not a folder"),
    ("tensorboard-link-loop", tensorboard(link_loop), "a loop of links"),
    ("tensorboard-under-a-link-loop", tensorboard(lambda c: link_loop(c) + "/logs"), "a loop of links"),
    ("tensorboard-read-only-folder", not_root(tensorboard(read_only)), "permission denied"),
    ("tensorboard-unwritable", tensorboard(lambda c: "/sys/aekit-tb"), "permission denied"),
    ("tensorboard-name-300", tensorboard(lambda c: str(c.tmp / LONG)), "file name too long"),
    ("tensorboard-empty", tensorboard(lambda c: ""), "--tensorboard: empty folder name"),
    ("pretrain-tensorboard-a-file", lambda c: ["pretrain", "--layers", "8", "--epochs", "1", "--quiet", "--out",
                                               str(c.tmp / "r"), "--tensorboard", c.file("tb.txt", "x")],
     "is not a folder"),
    ("finetune-tensorboard-dev-null", use("finetune", "--labels", "100", "--epochs", "1", "--quiet",
                                          out=lambda c: ["--out", str(c.tmp / "r"), "--tensorboard", "/dev/null"]),
     "is not a folder"),
    # --- --schedule-restart restarts a resumed run's schedule; alone it means nothing -----------------
    ("schedule-restart-without-resume", train("--schedule", "cosine", "--schedule-restart"),
     "--schedule-restart needs --resume"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Path]:
    """A tiny run (mnist-mini, code 4, one step), trained the first time a row asks for it."""
    made: list[Path] = []

    def get() -> Path:
        if not made:
            import aekit
            from aekit.config import RunConfig, TrainConfig

            d = tmp_path_factory.mktemp("bad-settings") / "run"
            aekit.train(RunConfig(model={"name": "mlp", "code": 4}, train=TrainConfig(epochs=1, max_steps=1)), d,
                        progress=False)
            made.append(d)
        return made[0]

    return get


@pytest.mark.parametrize(("case", "build", "expect"),
                         [pytest.param(*r, id=r[0]) for r in ROWS])
def test_bad_setting(case: str, build: Callable[[Ctx], list[str]], expect: str, tmp_path: Path,
                     trained: Callable[[], Path], capsys: pytest.CaptureFixture[str]) -> None:
    argv = build(Ctx(tmp_path, trained))
    assert_one_line_error(argv, capsys, expect)
    assert not (tmp_path / "r" / "model.safetensors").exists()  # refused before training
    if "--tensorboard" in argv:  # before the run folder: the corrected command is not "already holds a run"
        assert not (tmp_path / "r").exists()
    if "--conditional" in argv or "bernoulli" in argv:  # refused once the data is read, before config.json
        assert not (tmp_path / "r" / "config.json").exists()


@pytest.mark.parametrize("value", ["tpu", "CUDA", "cpu cuda", "x" * 200])
def test_a_bad_AEKIT_DEVICE_is_one_line(value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AEKIT_DEVICE", value)
    err = assert_one_line_error(["train", *FAST, "--out", str(tmp_path / "r")], capsys, "AEKIT_DEVICE=")
    assert len(err) < 300  # a long value is cut, not echoed whole


# --- the same checks from Python, and the fixes that are not error lines ----------------------------


@pytest.mark.parametrize("name", ["a" * 240 + ".onnx", "a" * 255, "é" * 127, "€" * 85, "x.png"])
def test_temporary_names_fit_whenever_the_final_name_fits(name: str, tmp_path: Path) -> None:
    """Names up to the file system's 255 bytes (multi-byte characters counted as bytes) are written:
    the temporary names built from them (writes, probes, downloads) fit too, and stay unique."""
    from aekit.io import NAME_MAX, atomic_write_bytes, temp_path

    assert len(name.encode()) <= NAME_MAX
    for suffix in (".tmp", ".probe", ".part"):
        a, b = temp_path(tmp_path / name, suffix), temp_path(tmp_path / name, suffix)
        assert len(os.fsencode(a.name)) <= NAME_MAX and a.name.endswith(suffix) and a != b
    atomic_write_bytes(tmp_path / name, b"x")  # the real file system says whether the names fit
    assert (tmp_path / name).read_bytes() == b"x" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(AekitError, match="file name too long"):
        atomic_write_bytes(tmp_path / (name + "b" * 256), b"x")


def test_a_245_byte_export_name_is_written(trained: Callable[[], Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    name = "a" * 240 + ".onnx"  # legal; its output check's probe name used to pass 255 bytes
    rc, _, err = run_cli(["export", trained(), "--no-check", "--out", tmp_path / name], capsys)
    assert rc == 0, err
    assert [p.name for p in tmp_path.iterdir()] == [name] and (tmp_path / name).stat().st_size > 1000

def test_model_takes_flat_and_channel_less_batches() -> None:
    from aekit.registry import create_model

    m = create_model("conv", (1, 28, 28), code=4, channels=[4])
    x = torch.rand(3, 1, 28, 28)
    ref = m(x)
    for shaped in (x.reshape(3, 784), x.reshape(3, 28, 28)):
        out = m(shaped)
        torch.testing.assert_close(out.loss, ref.loss)
        assert out.recon.shape == (3, 1, 28, 28)
    assert m.encode(x.reshape(3, 784)).shape == (3, 4)
    with pytest.raises(AekitError, match=r"takes a batch of samples of shape \(1, 28, 28\).*\(3, 100\)"):
        m(torch.rand(3, 100))
    with pytest.raises(AekitError, match=r"wrap a single sample as x\[None\]"):
        m(torch.rand(1, 28, 28).reshape(784))
    with pytest.raises(AekitError, match="got a target of shape"):
        m(x, target=torch.rand(3, 5))


def test_model_size_is_refused_before_allocating() -> None:
    from aekit.registry import create_model

    with pytest.raises(AekitError, match="parameters, more than"):
        create_model("mlp", (3, 4096, 4096), code=1000)  # 100 G parameters: refused, not attempted
    with pytest.raises(AekitError, match="option layers = 64 has the wrong type"):
        create_model("mlp", (1, 28, 28), layers=64)
    assert create_model("mlp", (1, 28, 28), code=np.int64(3)).code_size == 3  # NumPy integers are whole numbers


def test_config_checks_from_python(tmp_path: Path) -> None:
    from aekit.config import RunConfig, TrainConfig, load_config

    with pytest.raises(AekitError, match="train.clip_grad"):
        RunConfig(train=TrainConfig(clip_grad=-1.0)).validate()
    with pytest.raises(AekitError, match="train.momentum must be a finite number"):
        RunConfig(train=TrainConfig(momentum=float("nan"))).validate()
    RunConfig(train=TrainConfig(clip_grad=1.0, momentum=0.0, weight_decay=0.0)).validate()  # the edges pass
    # A run directory's config.json is a recipe too: its "run" part is read.
    (tmp_path / "config.json").write_text(json.dumps({"aekit_version": "0", "run": {"model": {"name": "mlp",
                                                                                             "code": 7}}}))
    assert load_config(tmp_path / "config.json").model["code"] == 7


@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".jpg", b"\xff\xd8\xff"), (".jpeg", b"\xff\xd8\xff"),
                                          (".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_pictures_are_written_in_the_format_their_suffix_names(tmp_path: Path, suffix: str, magic: bytes) -> None:
    from aekit import plots

    x = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    path = plots.image_rows([x, x], (1, 8, 8), tmp_path / f"grid{suffix}", labels=["a", "b"], title="t")
    assert path.read_bytes().startswith(magic)


def test_a_long_row_of_images_wraps_into_one_picture(tmp_path: Path) -> None:
    from PIL import Image

    from aekit import plots

    x = np.random.default_rng(0).random((200, 1, 28, 28)).astype(np.float32)
    path = plots.image_rows([x, x], (1, 28, 28), tmp_path / "g.png", labels=["in", "out"])
    w, h = Image.open(path).size
    assert w < 4000 and h > 1000  # 32 columns a line, in 7 blocks: not one 18,000-pixel-wide row


def test_encode_says_where_the_labels_went(trained: Callable[[], Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(["encode", str(trained()), "--out", str(tmp_path / "codes.npy")], capsys)
    assert rc == 0 and f"their labels to {tmp_path / 'codes.labels.npy'}" in out
    assert (tmp_path / "codes.labels.npy").is_file()
    rc, out, _ = run_cli(["encode", str(trained()), "--out", str(tmp_path / "codes.csv")], capsys)
    assert rc == 0 and "labels in its last column" in out


def test_estimator_checks_its_settings_and_reports_progress(capsys: pytest.CaptureFixture[str]) -> None:
    from aekit.estimator import AutoencoderTransformer

    X = np.random.default_rng(0).normal(size=(40, 5))
    with pytest.raises(AekitError, match="^lr must be a finite number"):  # the estimator's own name for it
        AutoencoderTransformer(lr=float("nan")).fit(X)
    AutoencoderTransformer(epochs=2, verbose=1, random_state=0).fit(X)
    assert "epoch 2/2" in capsys.readouterr().err
    AutoencoderTransformer(epochs=2, random_state=0).fit(X)
    assert capsys.readouterr().err == ""


def test_estimator_results_do_not_depend_on_the_batch() -> None:
    """The cause of check_methods_subset_invariance failing on AVX-512: each row alone gives the same
    float32 values as the row inside any batch."""
    from aekit.estimator import AutoencoderOutlierDetector, AutoencoderTransformer

    X = np.random.default_rng(0).normal(size=(300, 12))
    t = AutoencoderTransformer(code=3, layers=(32,), epochs=3, random_state=0).fit(X)
    d = AutoencoderOutlierDetector(code=3, layers=(32,), epochs=3, random_state=0).fit(X)
    for f in (t.transform, t.inverse_transform, d.score_samples):
        data = t.transform(X) if f == t.inverse_transform else X
        full = f(data)
        alone = np.concatenate([f(data[i : i + 1]) for i in range(0, 300, 7)])
        np.testing.assert_array_equal(alone, full[::7])


def test_probe_and_tsne_report_progress_on_stderr(trained: Callable[[], Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Off a terminal (as under pytest) long stages print a line each on stderr; stdout stays JSON."""
    rc, out, err = run_cli(["probe", str(trained()), "--max-train", "200", "--json"], capsys)
    assert rc == 0 and json.loads(out)["n_train"] == 200
    assert err.count("probes: logistic regression and 5-NN on") == 3, err
    from aekit.data.sources import load_dataset

    np.save(tmp_path / "few.npy", load_dataset("mnist-mini").test.x[:100])  # t-SNE of 1,000 codes takes 20 s
    rc, _, err = run_cli(["latent-map", str(trained()), "--method", "tsne", "--data", f"npy:{tmp_path / 'few.npy'}",
                          "--out", str(tmp_path / "m.png")], capsys)
    assert rc == 0 and "latent map: t-SNE of" in err and "t-SNE done in" in err, err

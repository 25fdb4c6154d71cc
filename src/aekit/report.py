"""``aekit report``: one self-contained HTML page about a trained run.

Pictures are embedded as base64 PNG, so the file can be mailed or archived on its own. The page
shows the config, the loss curves, the test metrics next to PCA's with the same code size,
reconstructions, a latent map, an interpolation strip, denoising and infilling examples and the
probe table (the last ones only where the data allows: images for infilling, labels for probes).
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from pathlib import Path
from typing import Any

from aekit.io import atomic_write_text

CSS = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:.25em .8em;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}img{max-width:100%}pre{background:#f6f6f6;padding:.8em;overflow:auto}
.note{color:#666;font-size:.9em}"""


def esc(v: Any) -> str:
    """Any value as HTML text. Everything on the page that comes from a file (config.json,
    summary.json, metrics.csv, a dataset's name, the folder's name) goes through here, so a
    doctored file shows its markup as text instead of running it."""
    return html.escape(str(v), quote=True)


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{esc(Path(path).stem)}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else esc(v)

    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


REPORT_SUFFIXES = (".html", ".htm")


def check_report_file(out: str | Path) -> None:
    from aekit.outputs import check_output_file

    check_output_file(out, REPORT_SUFFIXES)


SECTIONS = 8  # evaluation, loss curves, reconstructions, latent map, interpolation, denoising, infilling, probes


def build_report(run_dir: str | Path, out: str | Path, data: str | None = None, data_dir: str | None = None,
                 probe_max_train: int | None = 10000, progress: bool | None = None) -> Path:
    """``progress``: a bar on a terminal, a line per section on stderr elsewhere; False: nothing."""
    from aekit import api, plots
    from aekit.metrics import evaluate_model
    from aekit.run import open_run
    from aekit.training.autoencoder import reconstruct_grid
    from aekit.training.progress import Progress, say

    check_report_file(out)  # before a minute of work, not after it
    bar = Progress(SECTIONS, "report", progress, unit="section")

    def section(name: str) -> None:
        """A section starts: the bar moves on a terminal; elsewhere one line on stderr."""
        if bar.tty:
            bar.update(1, section=name)
        else:
            say(f"report: {name}", progress)

    run_dir = Path(run_dir)
    run = open_run(run_dir, ("autoencoder", "pretrain"))  # loads the dataset once, for every section below
    model, info = run.model, run.info
    ds, _ = run.dataset(data, data_dir)
    test = ds.test if len(ds.test) else run.split("val", data, data_dir)
    parts = [f"<h1>aekit run: {esc(run_dir.name)}</h1>",
             f"<p>{esc(model.family)} autoencoder on {esc(ds.name)}: samples of shape "
             f"{esc(tuple(model.input_shape))}, code of {esc(model.code_size)} numbers, "
             f"{model.n_parameters():,} parameters.</p>"]
    images = len(model.input_shape) == 3
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        section("test metrics")
        metrics = evaluate_model(model, test.x)
        rows = [["autoencoder", metrics["sse_per_image"], metrics["mse"], metrics["psnr"] or "-"]]
        if model.code_size < model.n_inputs:
            from aekit.baselines import PCA

            pm = PCA(model.code_size).fit(ds.split("all-train").x).evaluate(test.x, model.output == "sigmoid")
            rows.append([f"PCA-{model.code_size}", pm["sse_per_image"], pm["mse"], pm["psnr"] or "-"])
        parts += ["<h2>Test metrics</h2>", _table(["model", "sse_per_image", "mse", "psnr dB"], rows)]
        summary = run_dir / "summary.json"
        if summary.is_file():
            s = json.loads(summary.read_text())
            if isinstance(s, dict):
                parts.append(f"<p class=note>{esc(s.get('epochs_run'))} epochs, {esc(s.get('train_seconds'))} s "
                             f"of training; best epoch {esc(s.get('best_epoch'))}.</p>")
        if (run_dir / "metrics.csv").is_file():
            import csv

            hist = [{k: float(v) if v not in ("", None) else None for k, v in r.items()}
                    for r in csv.DictReader((run_dir / "metrics.csv").open())]
            if hist:
                section("loss curves")
                parts += ["<h2>Loss curves</h2>", _img(plots.loss_curve(hist, t / "loss.png"))]
        section("reconstructions")
        parts += ["<h2>Reconstructions</h2>", _img(reconstruct_grid(model, test.x[:12], t / "recon.png"))]
        if test.y is not None:
            section("latent map")
            parts += ["<h2>Latent map</h2>", _img(api.latent_map(run, t / "map.png", data=data, data_dir=data_dir,
                                                                 n=3000))]
        if len(test) >= 2:
            section("interpolation")
            parts += ["<h2>Interpolation</h2>",
                      _img(api.interpolate(run, 0, 1, steps=10, out=t / "interp.png", data=data, data_dir=data_dir))]
        if images and model.output == "sigmoid":
            from aekit.tasks.denoise import denoise_report
            from aekit.tasks.inpaint import inpaint_report

            n = min(len(test), 1000)
            section("denoising")
            d = denoise_report(model, run.split("train", data, data_dir).x, run.split("val", data, data_dir).x[:1000],
                               test.x[:n], "gaussian:0.3", picture=t / "denoise.png")
            parts += ["<h2>Denoising (gaussian σ = 0.3)</h2>",
                      _table(["method", "PSNR dB"], [["noisy input", d["psnr_noisy"]],
                                                     ["autoencoder", d["psnr_autoencoder"]],
                                                     *[[k, v["psnr"]] for k, v in d["baselines"].items()]]),
                      _img(t / "denoise.png")]
            h, w = model.input_shape[1:]
            section("infilling")
            ip = inpaint_report(model, run.split("train", data, data_dir).x, test.x[:n],
                                f"center:{max(1, min(h, w) // 2)}", picture=t / "inpaint.png")
            parts += [f"<h2>Infilling ({esc(ip['mask'])})</h2>",
                      _table(["method", "PSNR dB on missing pixels"],
                             [["autoencoder", ip["psnr_autoencoder"]], *[[k, v] for k, v in ip["baselines"].items()]]),
                      _img(t / "inpaint.png")]
        if test.y is not None and ds.train.y is not None and len(ds.train) >= 10:
            from aekit.tasks.represent import probe_table

            section("probes")
            tr, te = run.split("all-train", data, data_dir), run.split("test", data, data_dir)
            # probe_table directly, not api.probe, so that --quiet reaches its progress lines too.
            p = probe_table(model, tr.x, tr.y, te.x, te.y, max_train=probe_max_train, progress=progress)
            parts += ["<h2>Probes (test accuracy)</h2>",
                      _table(["features", "logistic regression", "5-NN"],
                             [[k, v["logistic"], v["knn5"]] for k, v in p["probes"].items()])]
        parts += ["<h2>Config</h2>", f"<pre>{esc(json.dumps(info.get('run', {}), indent=2))}</pre>"]
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>aekit report: {esc(run_dir.name)}"
            f"</title><style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")
    bar.close()
    atomic_write_text(out, page)
    return Path(out)

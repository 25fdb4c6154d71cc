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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aekit.errors import AekitError
from aekit.io import atomic_write_text, read_json_object, read_text

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


SECTIONS = 5  # metrics, loss curves, pictures, denoising and infilling, probes


@dataclass
class _Page:
    """What every section of a report reads: the opened run, the split shown, a scratch folder."""

    run: Any
    test: Any
    split: str
    data: str | None
    data_dir: str | None
    tmp: Path
    progress: bool | None

    def other(self, name: str) -> Any:
        return self.run.split(name, self.data, self.data_dir)


def build_report(run_dir: str | Path, out: str | Path, data: str | None = None, data_dir: str | None = None,
                 probe_max_train: int | None = 10000, progress: bool | None = None, split: str = "test") -> Path:
    """``progress``: a bar on a terminal, a line per section on stderr elsewhere; False: nothing."""
    from aekit.progress import Progress, say
    from aekit.run import open_run

    check_report_file(out)  # before a minute of work, not after it
    bar = Progress(SECTIONS, "report", progress, unit="section")
    run_dir = Path(run_dir)
    run = open_run(run_dir, ("autoencoder", "pretrain"))  # loads the dataset once, for every section below
    model = run.model
    ds, _ = run.dataset(data, data_dir)
    test = run.split(split, data, data_dir)
    if not len(test) and split == "test":  # a source with no test part: show the validation split
        split, test = "val", run.split("val", data, data_dir)
    parts = [f"<h1>aekit run: {esc(run_dir.name)}</h1>",
             f"<p>{esc(model.family)} autoencoder on {esc(ds.name)}: samples of shape "
             f"{esc(tuple(model.input_shape))}, code of {esc(model.code_size)} numbers, "
             f"{model.n_parameters():,} parameters.</p>"]
    with tempfile.TemporaryDirectory() as tmp:
        page = _Page(run, test, split, data, data_dir, Path(tmp), progress)
        for name, make in (("test metrics", _metrics), ("loss curves", _history), ("pictures", _pictures),
                           ("denoising and infilling", _repairs), ("probes", lambda p: _probes(p, probe_max_train))):
            if bar.tty:
                bar.update(1, section=name)
            else:
                say(f"report: {name}", progress)
            parts += make(page)
    bar.close()
    parts += ["<h2>Config</h2>", f"<pre>{esc(json.dumps(run.info.get('run', {}), indent=2))}</pre>"]
    html_page = (f"<!doctype html><html><head><meta charset=utf-8><title>aekit report: {esc(run_dir.name)}"
                 f"</title><style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")
    atomic_write_text(out, html_page)
    return Path(out)


def _metrics(p: _Page) -> list[str]:
    from aekit.baselines import PCA
    from aekit.metrics import evaluate_model

    model, test = p.run.model, p.test
    m = evaluate_model(model, test.x)
    rows = [["autoencoder", m["sse_per_image"], m["mse"], m["psnr"] or "-"]]
    if model.code_size < model.n_inputs:
        pm = PCA(model.code_size).fit(p.other("all-train").x).evaluate(test.x, model.output == "sigmoid")
        rows.append([f"PCA-{model.code_size}", pm["sse_per_image"], pm["mse"], pm["psnr"] or "-"])
    parts = [f"<h2>{esc(p.split.capitalize())} metrics</h2>",
             _table(["model", "sse_per_image", "mse", "psnr dB"], rows)]
    summary = p.run.dir / "summary.json"
    if summary.is_file():
        s = read_json_object(summary)
        parts.append(f"<p class=note>{esc(s.get('epochs_run'))} epochs, {esc(s.get('train_seconds'))} s "
                     f"of training; best epoch {esc(s.get('best_epoch'))}.</p>")
    return parts


def _history(p: _Page) -> list[str]:
    import csv

    from aekit import plots

    path = p.run.dir / "metrics.csv"
    if not path.is_file():
        return []
    try:
        hist = [{k: float(v) if v not in ("", None) else None for k, v in r.items()}
                for r in csv.DictReader(read_text(path, "metrics table").splitlines())]
    except AekitError:  # read_text's own line (a ValueError too), not a malformed table
        raise
    except (ValueError, TypeError, csv.Error) as exc:  # csv.Error: a field over csv's size limit
        raise AekitError(f"{path}: not a metrics table aekit wrote ({exc})") from None
    missing = [k for k in ("epoch", "train_loss") if hist and k not in hist[0]]  # what the loss curve plots
    if missing:
        raise AekitError(f"{path}: not a metrics table aekit wrote (no {' or '.join(missing)} column)")
    return ["<h2>Loss curves</h2>", _img(plots.loss_curve(hist, p.tmp / "loss.png"))] if hist else []


def _pictures(p: _Page) -> list[str]:
    from aekit import api
    from aekit.training.autoencoder import reconstruct_grid

    model, test, t = p.run.model, p.test, p.tmp
    parts = ["<h2>Reconstructions</h2>", _img(reconstruct_grid(model, test.x[:12], t / "recon.png"))]
    if test.y is not None:
        parts += ["<h2>Latent map</h2>", _img(api.latent_map(p.run, t / "map.png", data=p.data, data_dir=p.data_dir,
                                                             split=p.split, n=3000, progress=False))]
    if len(test) >= 2:
        parts += ["<h2>Interpolation</h2>", _img(api.interpolate(p.run, 0, 1, steps=10, out=t / "interp.png",
                                                                 data=p.data, data_dir=p.data_dir, split=p.split))]
    return parts


def _repairs(p: _Page) -> list[str]:
    """Denoising and infilling, for images in [0, 1]."""
    from aekit.tasks.denoise import denoise_report
    from aekit.tasks.inpaint import inpaint_report

    model, test, t = p.run.model, p.test, p.tmp
    if len(model.input_shape) != 3 or model.output != "sigmoid":
        return []
    n = min(len(test), 1000)
    train_x = p.other("train").x
    d = denoise_report(model, train_x, p.other("val").x[:1000], test.x[:n], "gaussian:0.3", picture=t / "denoise.png")
    parts = ["<h2>Denoising (gaussian σ = 0.3)</h2>",
             _table(["method", "PSNR dB"], [["noisy input", d["psnr_noisy"]], ["autoencoder", d["psnr_autoencoder"]],
                                            *[[k, v["psnr"]] for k, v in d["baselines"].items()]]),
             _img(t / "denoise.png")]
    h, w = model.input_shape[1:]
    ip = inpaint_report(model, train_x, test.x[:n], f"center:{max(1, min(h, w) // 2)}", picture=t / "inpaint.png")
    return [*parts, f"<h2>Infilling ({esc(ip['mask'])})</h2>",
            _table(["method", "PSNR dB on missing pixels"],
                   [["autoencoder", ip["psnr_autoencoder"]], *[[k, v] for k, v in ip["baselines"].items()]]),
            _img(t / "inpaint.png")]


def _probes(p: _Page, max_train: int | None) -> list[str]:
    from aekit.tasks.represent import probe_table

    train = p.other("all-train" if p.split == "test" else "train")
    if p.test.y is None or train.y is None or len(train) < 10 or p.split == "train":
        return []
    # probe_table directly, not api.probe, so that --quiet reaches its progress lines too.
    r = probe_table(p.run.model, train.x, train.y, p.test.x, p.test.y, max_train=max_train, progress=p.progress)
    return [f"<h2>Probes ({esc(p.split)} accuracy)</h2>",
            _table(["features", "logistic regression", "5-NN"],
                   [[k, v["logistic"], v["knn5"]] for k, v in r["probes"].items()])]

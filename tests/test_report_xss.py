"""``aekit report`` escapes everything it takes from files: a run folder shared by someone else (a
doctored ``summary.json``, ``config.json`` or ``metrics.csv``, a dataset in a folder with markup in
its name) must not put a live ``<script>`` into ``report.html``, which people open in a browser."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.badinput import run_cli

MARK = "<script>alert(1)</script>"  # a value planted in every field
DIR_MARK = "<script>x<"  # a file or folder name cannot hold the "/" of a closing tag


@pytest.fixture(scope="module")
def doctored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained run on a labelled dataset whose path holds markup, then every file doctored."""
    import aekit
    from aekit.config import DataConfig, RunConfig, TrainConfig
    from aekit.data.sources import load_dataset

    root = tmp_path_factory.mktemp("xss")
    mini = load_dataset("mnist-mini")
    data = root / DIR_MARK / "digits.npz"
    data.parent.mkdir()
    np.savez(data, x_train=mini.train.x[:300], y_train=mini.train.y[:300], x_test=mini.test.x[:60],
             y_test=mini.test.y[:60])
    run = root / f"run-{DIR_MARK}"
    cfg = RunConfig(data=DataConfig(name=f"npz:{data}"), model={"name": "mlp", "code": 4},
                    train=TrainConfig(epochs=2, max_steps=2))
    aekit.train(cfg, run, progress=False)

    info = json.loads((run / "config.json").read_text())
    info["run"]["data"]["data_dir"] = MARK  # a config value (unused by an npz source, shown in the page)
    info["run"]["train"]["noise"] = MARK
    info["metrics"] = {MARK: {MARK: 1.0}, "test": {"sse_per_image": MARK}}  # metric names and values
    info["data"][MARK] = MARK
    (run / "config.json").write_text(json.dumps(info))

    summary = json.loads((run / "summary.json").read_text())
    summary.update({"epochs_run": MARK, "train_seconds": MARK, "best_epoch": MARK, MARK: MARK})
    summary["metrics"] = {MARK: {MARK: MARK}}
    (run / "summary.json").write_text(json.dumps(summary))

    with (run / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    with (run / "metrics.csv").open("w", newline="") as fh:  # a metric column named with markup
        w = csv.DictWriter(fh, [*rows[0], MARK])
        w.writeheader()
        w.writerows({**r, MARK: "1.5"} for r in rows)
    return run


def test_report_escapes_every_value_from_the_run_folder(doctored_run: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    rc, _, err = run_cli(["report", str(doctored_run), "--out", str(out)], capsys)
    assert rc == 0, err
    assert "report: test metrics" in err and "report: probes" in err  # a line per section off a terminal
    page = out.read_text()
    assert "<script" not in page.lower()  # nothing planted is live markup
    # ... and the planted values did reach the page, as text: the folder's name, the dataset's
    # name, a config value and summary values.
    assert page.count("&lt;script&gt;") >= 4, page.count("&lt;script&gt;")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_escape_covers_attributes_and_quotes() -> None:
    from aekit.report import esc

    assert esc('"><img src=x onerror=alert(1)>') == "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
    assert esc("it's") == "it&#x27;s"
    assert esc(None) == "None" and esc(3) == "3"

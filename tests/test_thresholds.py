"""`aekit anomaly --threshold`: the three rules, the label metrics, one score for the command, the
Python API and the scikit-learn detector, and the threshold a run keeps (threshold.json) for later
commands and `aekit export --part score`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import aekit
from aekit.config import RunConfig, TrainConfig
from tests.badinput import run_cli


@pytest.fixture(scope="module")
def mini_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("thresholds") / "run"
    cfg = RunConfig(model={"name": "mlp", "code": 8}, train=TrainConfig(epochs=1, batch_size=64, lr=5e-3))
    aekit.train(cfg, d, progress=False)
    return str(d)


def test_rules_and_label_metrics(mini_run, capsys):
    got = {}
    for rule in ("contamination:0.05", "percentile:95", "fpr:0.05"):
        rc, out, err = run_cli(["anomaly", mini_run, "--threshold", rule, "--normal-classes", "0,1", "--json"],
                               capsys)
        assert rc == 0, err
        got[rule] = r = json.loads(out)
        assert r["threshold_rule"] == rule and r["normal_classes"] == [0, 1]
        assert {"precision", "recall", "f1", "roc_auc", "fpr"} <= set(r) and 0 <= r["f1"] <= 1
    # contamination c and percentile 100(1 - c) are the same quantile of the same scores
    assert got["contamination:0.05"]["threshold"] == got["percentile:95"]["threshold"]
    # fpr: picked on the normal validation samples, so on normal test samples it is close to the target
    assert got["fpr:0.05"]["fpr"] == pytest.approx(0.05, abs=0.05)
    rc, out, _ = run_cli(["anomaly", mini_run, "--threshold", "fpr:0.05", "--normal-classes", "0,1"], capsys)
    assert rc == 0 and "precision" in out and "ROC AUC" in out


def test_all_classes_normal_reports_no_label_metrics(mini_run, capsys):
    rc, out, _ = run_cli(["anomaly", mini_run, "--threshold", "fpr:0.01", "--json"], capsys)
    r = json.loads(out)
    assert rc == 0 and r["normal_classes"] == list(range(10)) and "f1" not in r


def test_one_score_for_command_api_and_estimator(mini_run, mini, tmp_path, capsys):
    from aekit.tasks.anomaly import score_of, scores

    rc, _, _ = run_cli(["anomaly", mini_run, "--out", tmp_path / "s.csv"], capsys)
    assert rc == 0
    csv = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)
    s, err = scores(aekit.load(mini_run), mini.test.x)
    np.testing.assert_allclose(csv[:, 1], s, rtol=1e-5)
    np.testing.assert_array_equal(s, score_of(err))
    assert s[0] == pytest.approx(float(err[0].sum()), rel=1e-6)  # summed over pixels, not averaged


# --- the threshold a run keeps (threshold.json) ------------------------------------------------------


@pytest.fixture
def run_copy(mini_run, tmp_path):
    import shutil

    return str(shutil.copytree(mini_run, tmp_path / "run"))


def stored(run: str) -> dict:
    return json.loads((Path(run) / "threshold.json").read_text())


def test_training_stores_the_default_threshold(run_copy, capsys):
    rec = stored(run_copy)
    assert rec["rule"] == "contamination:0.01" and rec["split"] == "val" and rec["set_by"] == "aekit train"
    rc, out, _ = run_cli(["anomaly", run_copy, "--threshold", "contamination:0.01", "--json"], capsys)
    assert rc == 0 and json.loads(out)["threshold"] == rec["threshold"]  # the same number, chosen the same way
    rc, out, _ = run_cli(["anomaly", run_copy, "--json"], capsys)
    r = json.loads(out)
    assert rc == 0 and r["threshold_stored"] and r["threshold"] == rec["threshold"]


def test_saved_threshold_is_used_by_anomaly_and_export(run_copy, tmp_path, capsys):
    rc, out, err = run_cli(["anomaly", run_copy, "--threshold", "percentile:97.5", "--save-threshold"], capsys)
    assert rc == 0 and "wrote" in out and "threshold.json" in out, err
    rec = stored(run_copy)
    assert rec["rule"] == "percentile:97.5" and rec["set_by"] == "aekit anomaly --save-threshold"
    rc, out, _ = run_cli(["anomaly", run_copy, "--json"], capsys)
    r = json.loads(out)
    assert r["threshold"] == rec["threshold"] and r["threshold_rule"] == "percentile:97.5" and r["threshold_stored"]
    rc, out, err = run_cli(["export", run_copy, "--part", "score", "--format", "torchscript",
                            "--out", tmp_path / "s.pt", "--json"], capsys)  # no --threshold: the stored one
    assert rc == 0, err
    meta = json.loads(out)["metadata"]
    assert float(meta["threshold"]) == rec["threshold"] and meta["threshold_rule"] == "percentile:97.5"
    assert meta["threshold_split"] == "val" and meta["threshold_source"].startswith("threshold.json")
    extra = {"aekit.json": ""}
    torch.jit.load(str(tmp_path / "s.pt"), _extra_files=extra)
    assert json.loads(extra["aekit.json"]) == meta  # the file itself carries it
    # --threshold at export time wins over the stored one, and says so
    r = aekit.export(run_copy, format="torchscript", part="score", out=tmp_path / "t.pt", check=False,
                     threshold="contamination:0.05")
    assert r["metadata"]["threshold_rule"] == "contamination:0.05"
    assert r["metadata"]["threshold_source"] == "aekit export --threshold"


def test_fpr_threshold_keeps_its_normal_classes(run_copy, capsys):
    rc, _, err = run_cli(["anomaly", run_copy, "--threshold", "fpr:0.05", "--normal-classes", "0,1",
                          "--save-threshold"], capsys)
    assert rc == 0, err
    assert stored(run_copy)["normal_classes"] == [0, 1]


def test_resumed_training_recomputes_the_stored_rule(tmp_path, capsys):
    out = tmp_path / "r"
    base = ["train", "--data", "mnist-mini", "--code", "4", "--max-steps", "3", "--quiet", "--out", out]
    assert run_cli([*base, "--epochs", "1"], capsys)[0] == 0
    assert run_cli(["anomaly", out, "--threshold", "percentile:95", "--save-threshold"], capsys)[0] == 0
    first = stored(str(out))
    assert run_cli([*base, "--epochs", "2", "--resume"], capsys)[0] == 0
    again = stored(str(out))
    assert again["rule"] == "percentile:95" and again["set_by"] == "aekit train"
    assert again["weights_sha256"] != first["weights_sha256"]
    assert run_cli(["anomaly", out, "--json"], capsys)[0] == 0  # the new file fits the new weights


def test_save_threshold_refused_while_the_run_is_written(run_copy, capsys):
    import fcntl
    import os

    from tests.badinput import assert_one_line_error

    fd = os.open(Path(run_copy) / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.pwrite(fd, b"4242\n", 0)
        before = (Path(run_copy) / "threshold.json").read_bytes()
        assert_one_line_error(["anomaly", run_copy, "--threshold", "percentile:99", "--save-threshold"], capsys,
                              "being written by process 4242")
        assert (Path(run_copy) / "threshold.json").read_bytes() == before
    finally:
        os.close(fd)


def test_saved_detector_carries_its_threshold(tmp_path):
    from aekit.estimator import AutoencoderOutlierDetector

    X = np.random.default_rng(0).normal(size=(100, 5)).astype(np.float32)
    det = AutoencoderOutlierDetector(code=2, epochs=2, threshold="percentile:90", random_state=0).fit(X)
    det.save(tmp_path / "det")
    rec = stored(str(tmp_path / "det"))
    assert rec["threshold"] == pytest.approx(-det.offset_) and rec["rule"] == "percentile:90"
    r = aekit.export(tmp_path / "det", format="torchscript", part="score", out=tmp_path / "d.pt", check=False)
    assert float(r["metadata"]["threshold"]) == pytest.approx(-det.offset_)

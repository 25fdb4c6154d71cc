"""`aekit anomaly --threshold`: the three rules, the label metrics, and one score for the command, the
Python API and the scikit-learn detector."""

from __future__ import annotations

import json

import numpy as np
import pytest

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

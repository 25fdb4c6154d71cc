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
from aekit.config import DataConfig, RunConfig, TrainConfig
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


# --- data outside [0, 1]: each feature's error in its own units ---------------------------------------


@pytest.fixture(scope="module")
def tabular_run(tmp_path_factory):
    """A run on standardised tabular features (not pixels): its score divides by an error scale."""
    d = tmp_path_factory.mktemp("tabular")
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(6, 6)) * np.array([3.0, 1, 1, 0.3, 0.3, 0.1])  # features of unequal spread
    x = (rng.normal(size=(400, 6)) @ mix).astype(np.float32)
    np.savez(d / "t.npz", x_train=x[:300], x_test=x[300:])
    cfg = RunConfig(data=DataConfig(name=f"npz:{d / 't.npz'}"), model={"name": "mlp", "code": 2, "layers": [8]},
                    train=TrainConfig(epochs=3, batch_size=32, lr=1e-2))
    aekit.train(cfg, d / "run", progress=False)
    return str(d / "run"), x[:300], x[300:]


def test_tabular_run_scores_each_feature_over_its_scale(tabular_run, tmp_path, capsys):
    from aekit.tasks.anomaly import SCALE_FLOOR, score_of

    run, _, test_x = tabular_run
    model = aekit.load(run)
    rec = stored(run)
    scale = np.asarray(rec["error_scale"])
    # measured on the training split (val_fraction 0.1 holds out 30 of the 300 rows)
    o = aekit.run.open_run(run, ("autoencoder",))
    tr = o.split("train").x
    m = np.square(tr - model.reconstruct(tr)).mean(0, dtype=np.float64)
    np.testing.assert_allclose(scale, np.maximum(m, SCALE_FLOOR * m.mean() + 1e-12), rtol=1e-5)
    rc, _, err = run_cli(["anomaly", run, "--out", tmp_path / "s.csv"], capsys)
    assert rc == 0, err
    csv = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)
    sq = np.square(test_x.astype(np.float64) - model.reconstruct(test_x))
    np.testing.assert_allclose(csv[:, 1], score_of(sq, scale), rtol=1e-5)
    assert not np.allclose(csv[:, 1], score_of(sq), rtol=1e-2)  # not the plain sum
    # --threshold chosen afresh measures the same scale, so it gives the stored threshold again
    rc, out, _ = run_cli(["anomaly", run, "--threshold", "contamination:0.01", "--json"], capsys)
    assert rc == 0 and json.loads(out)["threshold"] == pytest.approx(rec["threshold"], rel=1e-9)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_tabular_score_export_carries_the_scale(tabular_run, tmp_path, fmt):
    from aekit.tasks.anomaly import scores

    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="the export extra (onnx, onnxruntime) is not installed")
    run, _, test_x = tabular_run
    rec = stored(run)
    out = tmp_path / ("s.pt" if fmt == "torchscript" else "s.onnx")
    r = aekit.export(run, format=fmt, part="score", out=out)  # the parity check runs and passes
    assert r["max_abs_diff"]["score"] < 1e-4 and r["checked_samples"] == len(test_x)
    assert json.loads(r["metadata"]["error_scale"]) == rec["error_scale"]
    assert "error_scale" in r["metadata"]["score_definition"]
    from aekit.export import file_budget, run_file

    got = run_file(out, fmt, test_x, file_budget(aekit.load(run), "score"))
    want_s, want_map = scores(aekit.load(run), test_x, np.asarray(rec["error_scale"]))
    np.testing.assert_allclose(got[0], want_s, rtol=1e-5)
    np.testing.assert_allclose(got[1], want_map, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[1].reshape(len(test_x), -1).sum(1), want_s, rtol=1e-5)  # a map sums to its score
    assert aekit.export(run, format=fmt, part="score", out=out, check_only=True)["max_abs_diff"]["score"] < 1e-4


def test_serve_scores_a_tabular_run_as_the_command_does(tabular_run):
    from aekit.serve.runs import RunStore
    from aekit.serve.work import forward, scored
    from aekit.tasks.anomaly import scores

    run, _, _ = tabular_run
    store = RunStore({"t": Path(run).resolve()})
    s = store.get("t")
    x = s.test_x[:1]
    r = scored(s, x[0], *[v[0] for v in forward(s, x)])
    want, maps = scores(aekit.load(run), x, np.asarray(stored(run)["error_scale"]))
    assert r["score"] == pytest.approx(float(want[0]), rel=1e-5)
    np.testing.assert_allclose(r["error_map"], maps[0], rtol=1e-4, atol=1e-6)


def test_damaged_error_scale_is_one_line(tabular_run, tmp_path, capsys):
    import shutil

    from tests.badinput import assert_one_line_error

    run = str(shutil.copytree(tabular_run[0], tmp_path / "run"))
    p = Path(run) / "threshold.json"
    good = stored(run)
    too_small = "error_scale must be a list of finite numbers of at least 1e-12"
    for bad, msg in (([1.0, -2.0, 1, 1, 1, 1], too_small), ([5e-324, 1, 1, 1, 1, 1], too_small),
                     ([1.0, "x", 1, 1, 1, 1], too_small),
                     ([1.0, 2.0], "error_scale holds 2 numbers but the model has 6"),
                     ([], "error_scale holds 0 numbers"), ("1,2", "error_scale must be a list of numbers")):
        p.write_text(json.dumps({**good, "error_scale": bad}))
        assert_one_line_error(["anomaly", run], capsys, msg)
        assert_one_line_error(["export", run, "--part", "score", "--format", "torchscript", "--out",
                               tmp_path / "s.pt"], capsys, "error_scale")
    nan = '"error_scale": [NaN, 1, 1, 1, 1, 1]'
    p.write_text(json.dumps({**good, "error_scale": None}).replace('"error_scale": null', nan))
    assert_one_line_error(["anomaly", run], capsys, too_small)
    huge = '"threshold": 1' + "0" * 400  # an integer no float holds
    p.write_text(json.dumps(good).replace(f'"threshold": {json.dumps(good["threshold"])}', huge))
    assert_one_line_error(["anomaly", run], capsys, "threshold must be a finite number")


def test_threshold_file_from_before_error_scales_keeps_the_plain_sum(tabular_run, tmp_path, capsys):
    """A tabular run whose threshold.json predates error scales: its scores stay the plain sum, in the
    command and in an export made from it; a file exported with a scale is checked against its own."""
    import shutil

    from aekit.tasks.anomaly import score_of

    run = str(shutil.copytree(tabular_run[0], tmp_path / "run"))
    old = {k: v for k, v in stored(run).items() if k != "error_scale"}
    (Path(run) / "threshold.json").write_text(json.dumps(old))
    test_x = tabular_run[2]
    rc, out, err = run_cli(["anomaly", run, "--out", tmp_path / "s.csv", "--json"], capsys)
    assert rc == 0, err
    assert json.loads(out)["score_definition"] == "squared error summed over values"
    csv = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(csv[:, 1], score_of(np.square(test_x - aekit.load(run).reconstruct(test_x))), rtol=1e-5)
    r = aekit.export(run, format="torchscript", part="score", out=tmp_path / "plain.pt")
    assert "error_scale" not in r["metadata"]
    # a file exported with a fresh threshold carries a scale the stored file lacks: --check-only reads it
    r = aekit.export(run, format="torchscript", part="score", out=tmp_path / "scaled.pt", threshold="percentile:99")
    assert "error_scale" in r["metadata"]
    assert aekit.export(run, format="torchscript", part="score", out=tmp_path / "scaled.pt",
                        check_only=True)["max_abs_diff"]["score"] < 1e-4
    assert aekit.export(run, format="torchscript", part="score", out=tmp_path / "plain.pt",
                        check_only=True)["max_abs_diff"]["score"] < 1e-4


def test_saved_detector_with_a_damaged_scale_is_one_error(tmp_path):
    from aekit.errors import AekitError
    from aekit.estimator import AutoencoderOutlierDetector

    X = np.random.default_rng(0).normal(size=(100, 5)).astype(np.float32)
    det = AutoencoderOutlierDetector(code=2, epochs=2, random_state=0).fit(X)
    assert det.scale_.shape == (5,)
    det.save(tmp_path / "det")
    again = AutoencoderOutlierDetector.load(tmp_path / "det")
    np.testing.assert_array_equal(again.score_samples(X), det.score_samples(X))
    cfg = tmp_path / "det" / "config.json"
    info = json.loads(cfg.read_text())
    info["estimator"]["fitted"]["scale_"] = [1.0, 1.0]
    cfg.write_text(json.dumps(info))
    with pytest.raises(AekitError, match="error_scale holds 2 numbers but the model has 5"):
        AutoencoderOutlierDetector.load(tmp_path / "det")


# --- text from threshold.json is escaped; every field checked (issue 21, item 11) ------------------


def test_shown_escapes_what_a_terminal_would_obey():
    from aekit.tasks.anomaly import shown

    assert shown("val") == "val"
    assert shown("a\x1b[2Jb\n\u202e\x07") == "a\\x1b[2Jb\\n\\u202e\\x07"
    assert shown("x" * 100, 10) == "x" * 10 + "..."


def test_escape_codes_in_threshold_json_never_reach_the_terminal(run_copy, capsys):
    from tests.badinput import assert_one_line_error

    p = Path(run_copy) / "threshold.json"
    good = stored(run_copy)
    for key, value in (("split", "val\x1b[2J\x1b]0;pwned\x07"), ("set_by", "aekit train\x1b[31m"),
                       ("rule", "percentile:99\n\x1b[2J"), ("weights_sha256", "\x1b[2J" + "0" * 60)):
        p.write_text(json.dumps({**good, key: value}))
        line = assert_one_line_error(["anomaly", run_copy], capsys, key)
        assert "\x1b" not in line and "\x07" not in line and "\\x1b" in line, line


def test_anomaly_prints_file_text_escaped(monkeypatch, capsys):
    import aekit.api

    r = {"threshold": 1.0, "threshold_rule": "percentile:99", "threshold_split": "val\x1b[2J", "n": 3,
         "threshold_stored": True, "flagged": 1, "score_definition": "squared error summed over values"}
    monkeypatch.setattr(aekit.api, "anomaly", lambda *a, **k: r)
    rc, out, _ = run_cli(["anomaly", "somewhere"], capsys)
    assert rc == 0 and "\x1b" not in out and "val\\x1b[2J split" in out


def test_measured_error_scales_pass_the_sanity_check(tabular_run):
    from aekit.tasks.anomaly import MIN_SHARE, checked_scale, scale_from_errors

    # the worst case scale_from_errors can write: one feature holds all the error
    worst = scale_from_errors(np.array([1.0] + [0.0] * 99))
    assert worst.min() >= MIN_SHARE * worst.mean()
    checked_scale(list(worst), 100, "x")
    checked_scale(stored(tabular_run[0])["error_scale"], 6, "x")


def test_check_only_refuses_a_file_whose_run_threshold_changed(run_copy, tmp_path, capsys):
    from tests.badinput import assert_one_line_error

    out = tmp_path / "s.onnx"
    pytest.importorskip("onnxruntime")
    assert run_cli(["export", run_copy, "--part", "score", "--out", out], capsys)[0] == 0
    assert run_cli(["export", run_copy, "--part", "score", "--out", out, "--check-only"], capsys)[0] == 0
    rc, _, err = run_cli(["anomaly", run_copy, "--threshold", "percentile:90", "--save-threshold"], capsys)
    assert rc == 0, err
    # the file still computes the run's scores, but carries a threshold the run no longer keeps
    assert_one_line_error(["export", run_copy, "--part", "score", "--out", out, "--check-only"], capsys,
                          "its metadata threshold is")

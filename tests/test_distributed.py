"""Data-parallel training: 2 CPU processes (torchrun, gloo) against 1 process with the same global batch."""

import json
import subprocess
import sys

import numpy as np
import pytest

from aekit.cli import main
from aekit.cli.train import strip_nproc
from aekit.training import checkpoint as ckpt
from tests.conftest import tabular
from tests.test_cli import assert_one_line_error, run


def test_strip_nproc():
    assert strip_nproc(["train", "--nproc", "2", "--out", "d"]) == ["train", "--out", "d"]
    assert strip_nproc(["train", "--nproc=4", "--epochs", "1"]) == ["train", "--epochs", "1"]


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    # 301 rows: 217 to train on, so the last global batch (25 rows) splits unevenly, 13 + 12.
    np.save(tmp_path / "rows.npy", tabular(301, 8))
    common = ["train", "--data", f"npy:{tmp_path / 'rows.npy'}", "--layers", "16", "--code", "3",
              "--batch-size", "32", "--lr", "3e-3", "--noise", "gaussian:0.1", "--patience", "2", "--device", "cpu",
              "--quiet"]
    assert main([*common, "--epochs", "3", "--out", str(tmp_path / "one")]) == 0
    proc = subprocess.run([sys.executable, "-m", "aekit", *common, "--epochs", "3", "--nproc", "2",
                           "--out", str(tmp_path / "two"), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["epochs_run"] == 3  # one JSON document: only rank 0 prints the summary
    one = ckpt.load_tensors(tmp_path / "one" / "model.safetensors")
    two = ckpt.load_tensors(tmp_path / "two" / "model.safetensors")
    for k in one:
        np.testing.assert_allclose(two[k].numpy(), one[k].numpy(), atol=2e-5, err_msg=k)
    s1 = json.loads((tmp_path / "one" / "summary.json").read_text())
    s2 = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert s2["metrics"]["test"]["mse"] == pytest.approx(s1["metrics"]["test"]["mse"], rel=1e-3)
    assert s2["steps"] == s1["steps"] == 3 * 7 and s2["metrics"]["train"]["n"] == 217
    # --resume continues a distributed run.
    proc = subprocess.run([sys.executable, "-m", "aekit", *common, "--epochs", "4", "--nproc", "2",
                           "--out", str(tmp_path / "two"), "--resume"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["epochs_run"] == 4


@pytest.mark.parametrize(("args", "message"), [
    (["--nproc", "0", "--out", "x"], "--nproc must be at least 1"),
    (["--nproc", "2"], "--nproc needs --out"),
    (["--nproc", "2", "--out", "x", "--code", "0"], "code"),
])
def test_nproc_errors(capsys, tmp_path, args, message):
    code, _, err = run(capsys, "train", "--data", "mnist-mini", *[str(tmp_path / a) if a == "x" else a for a in args])
    assert_one_line_error(code, err, message)

"""The run folder's owner (aekit.run): guards, lock, resume checks, old folders, one dataset load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import aekit
from aekit.config import RunConfig, TrainConfig
from aekit.errors import AekitError
from aekit.run import RunWriter, open_run
from tests.badinput import assert_one_line_error, run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "runs-v0"


def rows_file(tmp_path: Path, n: int = 300, seed: int = 0) -> str:
    """A small npy image dataset, not mnist-mini (so a wrong default is caught)."""
    rng = np.random.default_rng(seed)
    x = (rng.random((n, 8, 8)) * 255).astype(np.uint8)
    p = tmp_path / f"imgs{seed}.npy"
    np.save(p, x)
    return f"npy:{p}"


def quick(data: str, **train) -> RunConfig:
    cfg = RunConfig(train=TrainConfig(**{"epochs": 2, "batch_size": 32, **train}))
    cfg.data.name = data
    cfg.model = {"name": "mlp", "code": 4, "layers": [16]}
    return cfg


FAST = ["--epochs", "1", "--batch-size", "64", "--quiet", "--code", "4", "--layers", "16"]


def test_evaluate_of_a_trained_model_uses_its_own_dataset(tmp_path):
    data = rows_file(tmp_path)
    run = aekit.train(quick(data), tmp_path / "r", progress=False)
    m = aekit.evaluate(run.model)
    assert m["n"] == 60  # the npy file's held-out 20%, not mnist-mini's 1,000 test digits
    assert m == aekit.evaluate(tmp_path / "r")
    loose = aekit.create_model("mlp", (1, 8, 8), code=4)
    with pytest.raises(AekitError, match="not loaded from a run"):
        aekit.evaluate(loose)


def test_report_loads_the_dataset_once(tmp_path, monkeypatch):
    import aekit.data.sources as sources

    data = rows_file(tmp_path)
    aekit.train(quick(data, epochs=1), tmp_path / "r", progress=False)
    calls = []
    real = sources.load_dataset
    monkeypatch.setattr(sources, "load_dataset", lambda *a, **k: calls.append(a) or real(*a, **k))
    from aekit.report import build_report

    build_report(tmp_path / "r", tmp_path / "report.html", probe_max_train=100)
    assert len(calls) == 1 and (tmp_path / "report.html").stat().st_size > 1000


def test_second_writer_is_refused_with_the_holders_pid(tmp_path):
    import os

    with RunWriter(tmp_path / "r", "autoencoder"), \
            pytest.raises(AekitError, match=f"being written by process {os.getpid()}"), \
            RunWriter(tmp_path / "r", "autoencoder", resume=True):
        pass
    with RunWriter(tmp_path / "r", "autoencoder", resume=True) as w:  # released on exit
        assert not w.resuming


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / ".lock").write_text("999999\n")  # no process holds it: flock is free
    run = aekit.train(quick(rows_file(tmp_path), epochs=1), d, progress=False)
    assert run.summary["epochs_run"] == 1


@pytest.mark.parametrize("command", ["anomaly", "train"])
def test_a_lock_link_is_never_followed(tmp_path, capsys, command):
    """A .lock that links to a file of the user's: the command refuses, and that file keeps its bytes."""
    victim, d = tmp_path / "victim", tmp_path / "r"
    victim.write_text("precious\n")
    if command == "anomaly":
        shutil.copytree(FIXTURES / "autoencoder", d)
        argv = ["anomaly", d, "--threshold", "percentile:99", "--save-threshold"]
    else:
        d.mkdir()
        argv = ["train", "--data", rows_file(tmp_path), "--out", d, *FAST]
    (d / ".lock").symlink_to(victim)
    assert_one_line_error(argv, capsys, "a symbolic link")
    assert victim.read_text() == "precious\n" and (d / ".lock").is_symlink()
    assert not (d / ("threshold.json" if command == "anomaly" else "config.json")).exists()  # refused before


def test_files_a_run_rewrites_are_replaced_never_written_through_links(tmp_path, capsys):
    """Every file but .lock is written to a temp file and renamed over its name, so a link there is
    replaced by the new file; what it pointed to keeps its bytes."""
    d = tmp_path / "r"
    assert run_cli(["train", "--data", rows_file(tmp_path), "--out", d, *FAST], capsys)[0] == 0
    # (not last/: --resume reads it first; the checkpoint is a new folder renamed over it)
    names = ["metrics.csv", "summary.json", "threshold.json", "model.safetensors", "loss.png", "reconstructions.png"]
    for i, name in enumerate(names):
        (tmp_path / f"victim{i}").write_text("precious\n")
        (d / name).unlink()
        (d / name).symlink_to(tmp_path / f"victim{i}")
    rc, _, err = run_cli(["train", "--out", d, "--resume", "--epochs", "2", "--quiet"], capsys)
    assert rc == 0, err
    assert all((tmp_path / f"victim{i}").read_text() == "precious\n" for i in range(len(names)))
    assert not any((d / name).is_symlink() for name in names)


def test_two_writers_at_once_one_refused(tmp_path):
    """Two `aekit train --out R` at the same time: one trains, the other is refused, the run is whole."""
    import subprocess
    import sys

    data = rows_file(tmp_path, n=3000)
    cmd = [sys.executable, "-m", "aekit", "train", "--data", data, "--out", str(tmp_path / "r"), "--epochs", "30",
           "--quiet", "--code", "4"]
    a = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen([*cmd[:-2], "--code", "8"], stderr=subprocess.PIPE, text=True)
    (ra, ea), (rb, eb) = (a.wait(120), a.stderr.read()), (b.wait(120), b.stderr.read())
    assert sorted([ra, rb]) == [0, 2], (ea, eb)
    loser = ea if ra else eb
    assert "being written by process" in loser or "already holds a run" in loser
    run = open_run(tmp_path / "r")  # config and weights agree
    assert run.model.code_size == (4 if ra == 0 else 8)


@pytest.mark.parametrize("flag", [["--code", "8"], ["--layers", "32"], ["--lr", "0.01"], ["--noise", "gaussian:0.1"]])
def test_resume_refuses_a_changed_model_before_writing(tmp_path, capsys, flag):
    data = rows_file(tmp_path)
    out = tmp_path / "r"
    assert run_cli(["train", "--data", data, "--out", out, *FAST], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    line = assert_one_line_error(["train", "--data", data, "--out", out, "--resume", *FAST, *flag], capsys,
                                 "differs from the run")
    key = {"--code": "code", "--layers": "layers", "--lr": "lr", "--noise": "noise"}[flag[0]]
    assert key in line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert run_cli(["evaluate", out, "--json"], capsys)[0] == 0


def test_resume_refuses_other_data(tmp_path, capsys):
    out = tmp_path / "r"
    assert run_cli(["train", "--data", rows_file(tmp_path), "--out", out, *FAST], capsys)[0] == 0
    assert_one_line_error(["train", "--data", rows_file(tmp_path, seed=1, n=400), "--out", out, "--resume", *FAST],
                          capsys, "differs from the run")


def test_resume_epochs(tmp_path, capsys):
    data, out = rows_file(tmp_path), tmp_path / "r"
    assert run_cli(["train", "--data", data, "--out", out, *FAST, "--epochs", "2"], capsys)[0] == 0
    assert_one_line_error(["train", "--out", out, "--resume", "--epochs", "1"], capsys, "already run 2 epochs")
    rc, _, err = run_cli(["train", "--out", out, "--resume", "--epochs", "2"], capsys)
    assert rc == 0 and "nothing left to train" in err
    rc, out_, _ = run_cli(["train", "--out", out, "--resume", "--epochs", "3", "--json", "--quiet"], capsys)
    assert rc == 0 and json.loads(out_)["epochs_run"] == 3


def test_resume_with_nothing_saved_starts_the_run(tmp_path, capsys):
    rc, _, err = run_cli(["train", "--data", rows_file(tmp_path), "--out", tmp_path / "new", "--resume",
                          "--epochs", "1", "--code", "4"], capsys)
    assert rc == 0 and "no run there yet; starting the run" in err


@pytest.mark.parametrize("first", ["train", "pretrain", "finetune", "junk"])
@pytest.mark.parametrize("second", ["train", "pretrain", "finetune"])
def test_no_command_overwrites_a_folder_it_does_not_own(tmp_path, capsys, first, second):
    data = rows_file(tmp_path)
    out = tmp_path / "r"
    pre = FIXTURES / "pretrain"
    cmds = {
        "train": ["train", "--data", data, "--out", out, *FAST],
        "pretrain": ["pretrain", "--layers", "8", "--data", data, "--epochs", "1", "--quiet", "--out", out],
        "finetune": ["finetune", pre, "--labels", "100", "--epochs", "1", "--stage", "top", "--quiet", "--out", out],
    }
    if first == "junk":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    else:
        assert run_cli(cmds[first], capsys)[0] == 0, first
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert_one_line_error(cmds[second], capsys, "choose another --out")
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert_one_line_error(["train", "--out", tmp_path / "f", *FAST], capsys, "a file stands")
    assert_one_line_error(["train", "--out", tmp_path / "f" / "sub", *FAST], capsys, "a file stands in the way")


def test_runs_written_by_the_previous_release_still_open(tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(FIXTURES, old)
    run = open_run(old / "autoencoder")
    assert run.kind == "autoencoder" and run.info["format"] == 1
    assert aekit.evaluate(old / "autoencoder")["n"] == 1000
    assert open_run(old / "pretrain").kind == "pretrain"
    assert 0 <= aekit.classify(old / "classifier")["error_percent"] <= 100
    # Its last/ checkpoint (the old state.json has no mid-epoch fields) resumes.
    rc, out, err = run_cli(["train", "--out", old / "autoencoder", "--resume", "--epochs", "2", "--max-steps", "6",
                            "--quiet", "--json"], capsys)
    assert rc == 0, err
    assert json.loads(out)["epochs_run"] == 2


def test_finetune_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path):
    import os
    import subprocess
    import sys

    pre = FIXTURES / "pretrain"
    args = ["finetune", str(pre), "--labels", "100", "--stage", "both", "--epochs", "3", "--quiet", "--json"]
    whole = aekit.finetune(pre, labels=100, stage="both", epochs=3, out=tmp_path / "whole", progress=False)
    env = {**os.environ, "AEKIT_TEST_KILL_AT": "step:180"}  # stage "all", epoch 1 (epochs are 50 steps)
    p = subprocess.run([sys.executable, "-m", "aekit", *args, "--out", str(tmp_path / "k")], env=env)
    assert p.returncode == -9
    assert (tmp_path / "k" / "stage-top" / "last" / "state.json").is_file()
    p = subprocess.run([sys.executable, "-m", "aekit", *args, "--out", str(tmp_path / "k"), "--resume"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    resumed = json.loads(p.stdout)
    assert resumed["test_accuracy"] == pytest.approx(whole["test_accuracy"], abs=1e-9)
    a = open_run(tmp_path / "whole").model.state_dict()
    b = open_run(tmp_path / "k").model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)


def test_pretrain_resume_keeps_finished_layers(tmp_path, capsys):
    data = rows_file(tmp_path)
    args = ["pretrain", "--layers", "16,8", "--data", data, "--epochs", "2", "--quiet", "--json"]
    assert run_cli([*args, "--out", tmp_path / "a"], capsys)[0] == 0
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "layer-2")  # as if killed before the second layer saved anything
    (tmp_path / "b" / "model.safetensors").unlink()
    rc, _, err = run_cli([*args, "--out", tmp_path / "b", "--resume"], capsys)
    assert rc == 0, err
    a, b = open_run(tmp_path / "a").model.state_dict(), open_run(tmp_path / "b").model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)


def test_pretrain_device_is_checked(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the check is for machines without it")
    assert_one_line_error(["pretrain", "--layers", "8", "--device", "cuda", "--out", tmp_path / "p"], capsys, "cuda")
    assert not (tmp_path / "p").exists()

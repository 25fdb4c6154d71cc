"""Preemption: SIGKILL anywhere, SIGTERM and SIGINT, then the same command with --resume.

The kill points come from the test hook ``AEKIT_TEST_KILL_AT=POINT:K`` (aekit.training.checkpoint.
kill_point): after the K-th optimizer step, after the K-th file of a checkpoint, or between a
checkpoint's two renames -- places a timer would rarely hit. The points are drawn at random (seeded)
and always include one in the first epoch, before any checkpoint exists.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file


def dataset(tmp_path: Path) -> str:
    x = (np.random.default_rng(0).random((300, 8, 8)) * 255).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    return f"npy:{tmp_path / 'x.npy'}"


def train_cmd(data: str, out: Path, epochs: int = 3, *extra: str) -> list[str]:
    # 216 training rows in batches of 32: 7 steps an epoch; a checkpoint every 2 steps as well.
    return [sys.executable, "-m", "aekit", "train", "--data", data, "--out", str(out), "--code", "4", "--layers", "16",
            "--epochs", str(epochs), "--batch-size", "32", "--checkpoint-every", "2", "--noise", "masking:0.2",
            "--quiet", "--resume", *extra]


def every_file_parses(out: Path) -> int:
    n = 0
    for p in out.rglob("*"):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(out).parts):
            continue
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".safetensors":
            load_file(p)
        elif p.suffix == ".csv":
            list(csv.DictReader(p.open()))
        n += 1
    return n


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path)


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)


def test_ten_sigkills_then_resume_matches_an_uninterrupted_run(tmp_path):
    data = dataset(tmp_path)
    ref = subprocess.run(train_cmd(data, tmp_path / "ref"), capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    rng = random.Random(0)
    points = [("step", 2)]  # in the first epoch, before any checkpoint exists
    points += [(rng.choice(["step", "checkpoint-file", "checkpoint-rename"]), rng.randint(1, 5)) for _ in range(11)]
    out, kills = tmp_path / "run", 0
    for point, k in points:
        env = {**os.environ, "AEKIT_TEST_KILL_AT": f"{point}:{k}"}
        p = subprocess.run(train_cmd(data, out), env=env, capture_output=True, text=True)
        assert p.returncode in (-signal.SIGKILL, 0), p.stderr
        kills += p.returncode == -signal.SIGKILL
        if out.exists():
            every_file_parses(out)
        if p.returncode == 0:
            break
    assert kills >= 10
    final = subprocess.run(train_cmd(data, out), capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    assert every_file_parses(out) >= 8
    assert same(weights(out / "model.safetensors"), weights(tmp_path / "ref" / "model.safetensors"))
    assert same(weights(out / "last" / "model.safetensors"), weights(tmp_path / "ref" / "last" / "model.safetensors"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_run"] == 3
    assert not list(out.glob(".last.*"))  # no half-written checkpoint left behind


def test_a_vae_killed_mid_epoch_resumes_bit_for_bit(tmp_path):
    """A VAE draws its reparameterisation noise from torch's default generator, which last/ holds:
    killed in the middle of its second epoch (IWAE samples, a KL warm-up that the resumed epoch must
    pick up again) and resumed, it ends at the uninterrupted run's very bytes."""
    data = dataset(tmp_path)
    vae = ["--model", "vae", "--iw-samples", "3", "--kl-warmup", "2"]
    env = {**os.environ, "AEKIT_THREADS": "1"}  # the same float sums in every process
    ref = subprocess.run(train_cmd(data, tmp_path / "ref", 3, *vae), env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "run"
    p = subprocess.run(train_cmd(data, out, 3, *vae), env={**env, "AEKIT_TEST_KILL_AT": "step:11"},
                       capture_output=True, text=True)
    assert p.returncode == -signal.SIGKILL, p.stderr
    state = json.loads((out / "last" / "state.json").read_text())
    assert (state["epoch"], state["step_in_epoch"]) == (1, 3)  # step 10 of 7-step epochs: inside epoch 2
    done = subprocess.run(train_cmd(data, out, 3, *vae), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in ("model.safetensors", "last/model.safetensors"):
        assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_writes_a_checkpoint_and_resume_continues(tmp_path, sig, code):
    data = dataset(tmp_path)
    out = tmp_path / "run"
    cmd = train_cmd(data, out, 200)
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / "last" / "state.json").is_file() and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(sig)
    rc, err = p.wait(60), p.stderr.read()
    assert rc == code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "stopped at epoch" in lines[0] and "continue with --resume" in lines[0], err
    state = json.loads((out / "last" / "state.json").read_text())
    assert state["epoch"] < 200
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    ref = subprocess.run(train_cmd(data, tmp_path / "ref", 200), capture_output=True, text=True)
    assert ref.returncode == 0
    assert same(weights(out / "last" / "model.safetensors"), weights(tmp_path / "ref" / "last" / "model.safetensors"))


def test_second_sigint_stops_at_once():
    from aekit.training.loop import _Stop

    stop = _Stop()
    stop._handle(signal.SIGINT, None)
    assert stop.signum == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        stop._handle(signal.SIGINT, None)


@pytest.mark.parametrize("delete", ["lock", "folder"])
def test_a_run_deleted_while_training_stops_with_one_line(tmp_path, delete):
    """`rm R/.lock` or `rm -r R` mid-training: the trainer notices at its next checkpoint that the
    folder is no longer its own and stops with one error line, writing nothing more (no new lock,
    no folder recreated)."""
    data = dataset(tmp_path)
    out = tmp_path / "run"
    p = subprocess.Popen(train_cmd(data, out, 200), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / "last" / "state.json").is_file() and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    # Stopped while the files go, so that the deletion is whole before the trainer looks again.
    p.send_signal(signal.SIGSTOP)
    if delete == "lock":
        (out / ".lock").unlink()
    else:
        shutil.rmtree(out)
    p.send_signal(signal.SIGCONT)
    rc, err = p.wait(60), p.stderr.read()
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert ("the folder was deleted" if delete == "folder" else ".lock was removed or replaced") in lines[0]
    assert not out.exists() if delete == "folder" else not (out / ".lock").exists()


def test_a_run_folder_deleted_just_after_the_ownership_check_is_not_remade(tmp_path, monkeypatch):
    """The narrow window of the test above: deleted after write_last's check_owned looked and before
    it writes. The checkpoint stops with one line and the folder stays gone."""
    import os

    from aekit import io as aekit_io
    from aekit.errors import AekitError
    from aekit.training import checkpoint

    out = tmp_path / "run"
    out.mkdir()
    lock = out / ".lock"
    lock.write_text("")
    fd = os.open(lock, os.O_RDONLY)
    aekit_io.hold_folder(out, lock, fd)
    real = checkpoint.check_owned
    calls = []

    def then_deleted(path):
        real(path)
        if not calls:
            shutil.rmtree(out)  # `rm -r run` between the check and the first write
        calls.append(path)

    monkeypatch.setattr(checkpoint, "check_owned", then_deleted)
    try:
        with pytest.raises(AekitError, match="the folder was deleted"):
            checkpoint.write_last(out, {"state.json": {"epoch": 1}})
        assert not out.exists()
    finally:
        aekit_io.release_folder(out, fd)
        os.close(fd)

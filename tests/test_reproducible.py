"""Reproducibility: one seed on the CPU gives bit-identical weights and metrics twice, and
``--deterministic`` is recorded in config.json."""

from __future__ import annotations

import json

import pytest
import torch

from tests.badinput import run_cli

FLAGS = ["--data", "mnist-mini", "--model", "mlp", "--layers", "32", "--code", "4", "--epochs", "2",
         "--max-steps", "30", "--batch-size", "64", "--noise", "gaussian:0.2", "--seed", "7", "--quiet"]


def losses(run) -> list[str]:
    """metrics.csv without its timing columns."""
    rows = (run / "metrics.csv").read_text().splitlines()
    head = rows[0].split(",")
    keep = [i for i, h in enumerate(head) if h not in ("seconds", "samples_per_s")]
    return [",".join(r.split(",")[i] for i in keep) for r in rows]


def test_same_seed_same_bits(tmp_path, capsys):
    for name in ("a", "b"):
        rc, _, err = run_cli(["train", *FLAGS, "--device", "cpu", "--out", tmp_path / name], capsys)
        assert rc == 0, err
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "last" / "model.safetensors").read_bytes() == (b / "last" / "model.safetensors").read_bytes()
    assert losses(a) == losses(b)
    ma, mb = (json.loads((d / "summary.json").read_text())["metrics"] for d in (a, b))
    assert ma == mb
    rc, _, _ = run_cli(["train", *FLAGS[:-2], "8", "--quiet", "--device", "cpu", "--out", tmp_path / "c"], capsys)
    assert rc == 0 and (tmp_path / "c" / "model.safetensors").read_bytes() != (a / "model.safetensors").read_bytes()


def test_deterministic_is_recorded(tmp_path, capsys):
    was = torch.are_deterministic_algorithms_enabled()
    try:
        rc, _, err = run_cli(["train", *FLAGS, "--device", "cpu", "--deterministic", "--out", tmp_path / "d"], capsys)
        assert rc == 0, err
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(was)
    cfg = json.loads((tmp_path / "d" / "config.json").read_text())
    assert cfg["run"]["train"]["deterministic"] is True
    rc, _, _ = run_cli(["train", *FLAGS, "--device", "cpu", "--out", tmp_path / "e"], capsys)
    assert json.loads((tmp_path / "e" / "config.json").read_text())["run"]["train"]["deterministic"] is False


@pytest.mark.parametrize("value", ["yes", 1])
def test_deterministic_must_be_true_or_false(value, tmp_path, capsys):
    from tests.badinput import assert_one_line_error

    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[train]\ndeterministic = {json.dumps(value)}\n")
    assert_one_line_error(["train", "--config", cfg, "--epochs", "1", "--max-steps", "1", "--quiet",
                           "--out", tmp_path / "r"], capsys, "deterministic")


def test_runs_from_before_deterministic_still_resume(tmp_path, capsys):
    d = tmp_path / "old"
    rc, _, err = run_cli(["train", *FLAGS, "--epochs", "1", "--device", "cpu", "--out", d], capsys)
    assert rc == 0, err
    cfg = json.loads((d / "config.json").read_text())
    del cfg["run"]["train"]["deterministic"], cfg["run"]["train"]["tensorboard"]  # as an older aekit wrote it
    (d / "config.json").write_text(json.dumps(cfg))
    rc, _, err = run_cli(["train", *FLAGS, "--device", "cpu", "--out", d, "--resume"], capsys)
    assert rc == 0, err
    rc, _, err = run_cli(["train", *FLAGS, "--epochs", "3", "--device", "cpu", "--out", d, "--resume",
                          "--deterministic"], capsys)
    assert rc == 2 and "deterministic" in err

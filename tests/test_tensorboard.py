"""``--tensorboard DIR``: per-epoch scalars and reconstruction grids, read back from the event file;
without the extra, one error line."""

from __future__ import annotations

import errno
import sys

import pytest

from tests.badinput import assert_one_line_error, run_cli

FLAGS = ["--data", "mnist-mini", "--layers", "32", "--code", "4", "--epochs", "5", "--batch-size", "512",
         "--quiet", "--device", "cpu"]


def events(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_train_logs_scalars_and_grids(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    rc, _, err = run_cli(["train", *FLAGS, "--out", tmp_path / "run", "--tensorboard", tmp_path / "tb"], capsys)
    assert rc == 0, err
    acc = events(tmp_path / "tb" / "run")
    tags = acc.Tags()
    assert {"train/train_loss", "val/val_loss", "run/lr"} <= set(tags["scalars"]), tags
    assert [e.step for e in acc.Scalars("train/train_loss")] == [1, 2, 3, 4, 5]
    losses = [e.value for e in acc.Scalars("val/val_loss")]
    assert losses[-1] < losses[0]
    assert [e.step for e in acc.Images("reconstructions")] == [1, 5]
    img = acc.Images("reconstructions")[0]
    assert (img.width, img.height) == (8 * 28, 2 * 28)


def test_pretrain_logs_one_folder_per_layer(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    rc, _, err = run_cli(["pretrain", "--layers", "16,8", "--epochs", "1", "--batch-size", "512", "--quiet",
                          "--out", tmp_path / "pre", "--tensorboard", tmp_path / "tb"], capsys)
    assert rc == 0, err
    logged = sorted(p.name for p in (tmp_path / "tb").iterdir())
    assert len(logged) >= 2, logged
    assert all("train/train_loss" in events(tmp_path / "tb" / n).Tags()["scalars"] for n in logged)


def test_without_the_extra_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    for cmd in (["train", *FLAGS], ["pretrain", "--layers", "8", "--epochs", "1"]):
        assert_one_line_error([*cmd, "--out", tmp_path / cmd[0], "--tensorboard", tmp_path / "tb"], capsys,
                              "pip install 'aekit[tensorboard]'")
    assert not (tmp_path / "train").exists()


def test_a_refused_logdir_leaves_no_run_behind(tmp_path, capsys):
    """An unusable DIR is refused before the run folder, its .lock and config.json exist, so the
    corrected command trains instead of finding a run already there."""
    pytest.importorskip("tensorboard")
    (tmp_path / "tb.txt").write_text("x")
    out = tmp_path / "run"
    assert_one_line_error(["train", *FLAGS, "--out", out, "--tensorboard", tmp_path / "tb.txt"], capsys,
                          "is not a folder")
    assert not out.exists()
    rc, _, err = run_cli(["train", *FLAGS, "--out", out, "--tensorboard", tmp_path / "tb"], capsys)
    assert rc == 0, err


def test_a_log_write_that_fails_mid_training_is_one_line(tmp_path, capsys, monkeypatch):
    """What only shows while training (a full disk) is one error line too, not a traceback."""
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SummaryWriter, "add_scalar", full)
    assert_one_line_error(["train", *FLAGS, "--out", tmp_path / "run", "--tensorboard", tmp_path / "tb"], capsys,
                          "No space left on device")

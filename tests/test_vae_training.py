"""The variational family in aekit's training path: per-epoch hooks, labels for a conditional VAE,
exact --resume (the reparameterisation noise in the checkpoint), dynamic binarisation, a NaN loss,
flags and recipes. Tiny models on mnist-mini so that each test takes seconds on two cores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import aekit
from aekit.config import RunConfig, TrainConfig, apply_overrides, load_config
from aekit.data.dataset import Split
from aekit.errors import AekitError
from aekit.models.variational import VariationalAE
from aekit.training import checkpoint as ckpt
from aekit.training.loop import fit
from tests.badinput import run_cli

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def vae_cfg(data: str = "mnist-mini-binary", epochs: int = 3, **model) -> RunConfig:
    """A small VAE with every option that draws or schedules: IWAE samples, a KL warm-up."""
    return RunConfig(data=aekit.DataConfig(name=data),
                     model={"name": "vae", "layers": [32], "code": 4, "kl_warmup": 2, "iw_samples": 3, **model},
                     train=TrainConfig(epochs=epochs, batch_size=256, lr=3e-3, seed=5, checkpoint_every=4))


def weights_bytes(run: Path) -> tuple[bytes, bytes]:
    return (run / "model.safetensors").read_bytes(), (run / "last" / "model.safetensors").read_bytes()


class Killed(BaseException):
    """Stands for SIGKILL at a step: nothing after it runs (no checkpoint, no clean-up of the loop)."""


# --- 1. the per-epoch hook -------------------------------------------------------------------------
def test_begin_epoch_is_called_at_every_epoch_of_a_resumed_run_too(tmp_path, monkeypatch):
    calls: list[tuple[int, int]] = []
    real = VariationalAE.begin_epoch

    def spy(self, epoch, epochs):
        calls.append((epoch, epochs))
        real(self, epoch, epochs)

    monkeypatch.setattr(VariationalAE, "begin_epoch", spy)
    aekit.train(vae_cfg(epochs=2), tmp_path / "r", progress=False)
    assert calls == [(0, 2), (1, 2)]
    calls.clear()
    aekit.train(vae_cfg(epochs=4), tmp_path / "r", resume=True, progress=False)
    assert calls == [(2, 4), (3, 4)]
    model = aekit.load(tmp_path / "r")
    model.begin_epoch(1, 4)  # the warm-up's weight follows from the epoch alone
    assert model.kl_weight == 0.5


def test_every_autoencoder_has_the_hooks():
    from aekit.registry import create_model, list_models

    for name in list_models():
        m = create_model(name, (1, 8, 8), code=2)
        m.begin_epoch(0, 1)
        m.start_from_data(lambda k: np.zeros((k, 1, 8, 8), np.float32))
        assert m.takes_labels is False  # unconditional by default, a VAE included


# --- 3. --resume in the middle of an epoch ends at the uninterrupted run's weights ---------------------
def test_a_vae_resumed_mid_epoch_ends_bit_for_bit_where_an_uninterrupted_run_does(tmp_path, monkeypatch):
    """Dynamic binarisation, IWAE samples and the warm-up: every random draw and every schedule of the
    run. Interrupted mid-epoch twice (after steps 30 and 53 of 22-step epochs, checkpoints every 4
    steps), resumed each time with the same command: the weights equal the uninterrupted run's, bit
    for bit, because the checkpoint holds torch's generator (the reparameterisation noise) too."""
    monkeypatch.setenv("AEKIT_THREADS", "1")  # the same float sums in every run
    aekit.train(vae_cfg(), tmp_path / "whole", progress=False)
    for kill_at in (30, 25):  # steps of each attempt: global steps 30 and 28 + 25 = 53
        seen = {"steps": 0}

        def kill_point(name: str, kill_at: int = kill_at, seen: dict = seen) -> None:
            if name == "step":
                seen["steps"] += 1
                if seen["steps"] == kill_at:
                    raise Killed

        monkeypatch.setattr(ckpt, "kill_point", kill_point)
        with pytest.raises(Killed):
            aekit.train(vae_cfg(), tmp_path / "part", resume=True, progress=False)
        state = json.loads((tmp_path / "part" / "last" / "state.json").read_text())
        assert state["step_in_epoch"] > 0  # the checkpoint resumed from lies inside an epoch
    monkeypatch.undo()
    monkeypatch.setenv("AEKIT_THREADS", "1")
    run = aekit.train(vae_cfg(), tmp_path / "part", resume=True, progress=False)
    assert run.summary["epochs_run"] == 3
    assert weights_bytes(tmp_path / "part") == weights_bytes(tmp_path / "whole")


def test_the_checkpoint_holds_torchs_generators(tmp_path, device):
    aekit.train(vae_cfg(epochs=1), tmp_path / "r", progress=False)
    saved = ckpt.load_tensors(tmp_path / "r" / "last" / "optimizer.safetensors")
    assert {"rng.perm", "rng.noise", "rng.torch"} <= set(saved)
    assert ("rng.cuda" in saved) == (device == "cuda")  # the GPU's generator where the noise is drawn there


# --- 2. labels for a conditional VAE --------------------------------------------------------------------
def test_conditional_vae_trains_on_the_labels_and_takes_the_class_count_from_the_data(tmp_path, capsys):
    out = tmp_path / "c"
    rc, _, err = run_cli(["train", "--model", "vae", "--data", "mnist-mini", "--layers", "32", "--code", "4",
                          "--conditional", "--epochs", "2", "--batch-size", "256", "--out", out, "--quiet"], capsys)
    assert rc == 0, err
    info = json.loads((out / "config.json").read_text())
    assert info["model"]["n_classes"] == 10 and info["run"]["model"]["conditional"] is True
    model = aekit.load(out)
    assert model.takes_labels
    # the decoder reads the label: the same code decoded as two digits gives two different images
    z = np.zeros((1, 4), np.float32)
    assert np.abs(model.decode(z, labels=[1]) - model.decode(z, labels=[0])).mean() > 1e-3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["test"]["n"] == 1000  # scored with the test labels
    assert not (out / "threshold.json").exists()  # an anomaly score has no label to give it
    # --resume rebuilds the same conditional model from the saved recipe
    rc, _, err = run_cli(["train", "--out", out, "--resume", "--epochs", "3", "--quiet"], capsys)
    assert rc == 0, err
    assert json.loads((out / "summary.json").read_text())["epochs_run"] == 3


def test_validation_passes_the_labels(small_images):
    from aekit.registry import create_model

    torch.manual_seed(0)
    model = create_model("vae", small_images.sample_shape, layers=[16], code=2, n_classes=10)
    model.resolve_output("unit")
    res = fit(model, small_images.split("train"), small_images.split("val"), TrainConfig(epochs=1, batch_size=128),
              progress=False)
    assert np.isfinite(res.history[0]["val_loss"])
    with pytest.raises(AekitError, match="conditioned on labels.*has none"):
        fit(model, Split(small_images.train.x), None, TrainConfig(epochs=1), progress=False)


def test_labels_reach_the_model_in_guess_batches_and_precision_timing(small_images, monkeypatch):
    """``--noise block:S`` runs the model inside the corruption, and ``--precision auto`` times a
    step before training: a conditional VAE gets its labels there too."""
    from aekit.registry import create_model
    from aekit.training import speed

    monkeypatch.setattr(speed, "cpu_has_fast_bf16", lambda: True)  # time bf16 against fp32 on any CPU
    torch.manual_seed(0)
    model = create_model("vae", small_images.sample_shape, layers=[16], code=2, n_classes=10)
    model.resolve_output("unit")
    cfg = TrainConfig(epochs=1, batch_size=64, noise="block:8", precision="auto", device="cpu")
    res = fit(model, small_images.split("train"), small_images.split("val"), cfg, progress=False,
              device=torch.device("cpu"))
    assert res.steps == 9 and res.precision in ("fp32", "bf16")


# --- 6. dynamic binarisation ------------------------------------------------------------------------------
def test_binary_datasets_fix_validation_and_test_and_keep_the_grey_levels(mini):
    from aekit.data.sources import BINARY_SEED, list_datasets, load_dataset

    assert {"mnist-binary", "mnist-mini-binary"} <= set(list_datasets())
    a, b = load_dataset("mnist-mini-binary"), load_dataset("mnist-mini-binary")
    assert a.name == "mnist-mini-binary" and a.describe()["binarisation"] == {"kind": "dynamic", "seed": BINARY_SEED}
    assert a.value_range == "unit"
    assert np.array_equal(a.test.x, b.test.x) and set(np.unique(a.test.x)) == {0, 255}
    assert np.array_equal(a.test.y, mini.test.y) and np.array_equal(a.train.levels, mini.train.x)
    # each pixel is 1 with its grey level's probability: over 784,000 test pixels the means agree
    assert abs(a.test.x.mean() / 255 - mini.test.x.mean() / 255) < 0.002
    val = a.split("val")
    assert set(np.unique(val.x)) <= {0, 255} and val.levels is not None
    assert np.array_equal(val.levels, mini.split("val").x) and np.array_equal(val.y, mini.split("val").y)
    assert "binarisation" not in mini.describe()


def test_mnist_binary_reads_the_idx_files(mnist_dir):
    from aekit.data.sources import load_dataset

    ds = load_dataset("mnist-binary", mnist_dir)
    assert len(ds.test) == 10_000 and set(np.unique(ds.test.x[:100])) == {0, 255}
    assert ds.train.levels.dtype == np.uint8 and len(ds.train.levels) == 60_000


def test_training_draws_fresh_binary_batches_from_the_levels():
    from aekit.training.infill import Binarized, Corruption, training_view

    levels = np.full((4, 1, 8, 8), 64, np.uint8)
    split = Split(np.zeros_like(levels), np.arange(4), levels)
    view, corruption = training_view(split, None)
    assert isinstance(corruption, Binarized) and view.x is levels
    xb = torch.full((512, 1, 8, 8), 64 / 255)
    g = torch.Generator().manual_seed(0)
    inp, target = corruption.pair(None, xb, 0, g)
    assert inp is target and set(inp.unique().tolist()) == {0.0, 1.0}
    assert abs(inp.mean().item() - 64 / 255) < 0.01
    again, _ = corruption.pair(None, xb, 1, g)
    assert not torch.equal(again, inp)  # afresh every batch
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(corruption.pair(None, xb, 0, g2)[0], inp)  # from the loop's generator alone
    plain = Split(levels)
    assert training_view(plain, None)[0] is plain and type(training_view(plain, None)[1]) is Corruption
    noisy = training_view(split, "masking:0.5")[1]
    inp, target = noisy.pair(None, xb, 0, torch.Generator().manual_seed(1))
    assert (inp <= target).all() and (inp < target).any()  # masking after binarising: the target stays binary


def test_a_binary_run_records_its_binarisation(tmp_path):
    aekit.train(vae_cfg(epochs=1), tmp_path / "r", progress=False)
    data = json.loads((tmp_path / "r" / "config.json").read_text())["data"]
    assert data["name"] == "mnist-mini-binary" and data["binarisation"] == {"kind": "dynamic", "seed": 0}


# --- 7. a NaN loss -------------------------------------------------------------------------------------------
def poison_after(monkeypatch, steps: int) -> None:
    """The VAE's training loss becomes NaN from training step ``steps + 1`` on."""
    real, seen = VariationalAE.forward, {"n": 0}

    def forward(self, *a, **k):
        out = real(self, *a, **k)
        if torch.is_grad_enabled():
            seen["n"] += 1
            if seen["n"] > steps:
                out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(VariationalAE, "forward", forward)


def test_a_nan_loss_stops_with_one_line_and_the_best_checkpoint_survives(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AEKIT_THREADS", "1")  # the same float sums in both runs
    flags = ["--model", "vae", "--data", "mnist-mini-binary", "--layers", "16", "--code", "2",
             "--batch-size", "256", "--seed", "1", "--checkpoint-every", "2", "--quiet"]
    rc, _, err = run_cli(["train", *flags, "--epochs", "1", "--out", tmp_path / "one"], capsys)
    assert rc == 0, err
    poison_after(monkeypatch, 22 + 2)  # 22 steps an epoch: NaN from epoch 2, step 3
    rc, _, err = run_cli(["train", *flags, "--epochs", "3", "--out", tmp_path / "r"], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "the training loss became nan at epoch 2, step 3 of 22" in lines[0], lines[0]
    assert "best checkpoint (epoch 1) is kept" in lines[0]
    run = tmp_path / "r"
    assert (run / "model.safetensors").read_bytes() == (tmp_path / "one" / "model.safetensors").read_bytes()
    state = json.loads((run / "last" / "state.json").read_text())
    assert (state["epoch"], state["step_in_epoch"]) == (1, 2)  # the last finite state, never a spoiled one
    assert all(torch.isfinite(t).all() for t in ckpt.load_tensors(run / "last" / "model.safetensors").values())


def test_a_nan_loss_in_memory_gives_back_the_best_weights(small_images, monkeypatch):
    from aekit.registry import create_model

    model = create_model("vae", small_images.sample_shape, layers=[16], code=2)
    model.resolve_output("unit")
    poison_after(monkeypatch, 5 + 1)  # 5 steps an epoch
    with pytest.raises(AekitError, match=r"at epoch 2, step 2 of 5;.*holds the best epoch's weights \(epoch 1\)"):
        fit(model, small_images.split("train"), small_images.split("val"), TrainConfig(epochs=3, batch_size=128),
            progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())


# --- 4, 5. options: flags, TOML keys and Python overrides, checked before any data is read ---------------
def test_flags_toml_and_python_reach_the_model(tmp_path, capsys):
    rc, _, err = run_cli(["train", "--model", "vae", "--data", "mnist-mini", "--layers", "16", "--code", "2",
                          "--beta", "2", "--kl-warmup", "3", "--free-bits", "0.1", "--likelihood", "bernoulli",
                          "--epochs", "1", "--max-steps", "2", "--out", tmp_path / "a", "--quiet"], capsys)
    assert rc == 0, err
    m = json.loads((tmp_path / "a" / "config.json").read_text())["model"]
    assert (m["beta"], m["kl_warmup"], m["free_bits"], m["likelihood"]) == (2.0, 3, 0.1, "bernoulli")
    rc, _, err = run_cli(["train", "--model", "vae", "--data", "mnist-mini", "--layers", "16", "--code", "2",
                          "--iw-samples", "4", "--prior", "vamp:7", "--epochs", "1", "--max-steps", "2",
                          "--out", tmp_path / "b", "--quiet"], capsys)
    assert rc == 0, err
    m = json.loads((tmp_path / "b" / "config.json").read_text())["model"]
    assert (m["iw_samples"], m["prior"]) == (4, "vamp:7")
    # the pseudo-inputs started at training digits (values in [0, 1]), not at small random numbers
    pseudo = aekit.load(tmp_path / "b").prior.pseudo
    assert pseudo.min() > -0.01 and pseudo.max() > 0.9  # (two Adam steps move them by at most 0.002)
    cfg = apply_overrides(RunConfig(model={"name": "vae"}), {"beta": 0.5, "model.conditional": True})
    assert cfg.validate().model == {"name": "vae", "beta": 0.5, "conditional": True}
    with pytest.raises(AekitError, match="beta must be a non-negative number"):
        aekit.train(RunConfig(model={"name": "vae"}), tmp_path / "c", **{"model.beta": -1.0})
    assert not (tmp_path / "c").exists()  # refused before the run folder was made


# --- 8. the recipes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe", ["vae-mnist", "iwae-mnist", "vamp-mnist", "cvae-mnist", "ladder-mnist"])
def test_each_vae_recipe_trains_an_epoch_on_mnist_mini(recipe, tmp_path):
    cfg = load_config(CONFIGS / f"{recipe}.toml")
    data = cfg.data.name.replace("mnist", "mnist-mini", 1)  # mnist-binary -> mnist-mini-binary, offline
    run = aekit.train(cfg, tmp_path / "r", progress=False, **{"data.name": data, "train.epochs": 1,
                                                              "train.max_steps": 10})
    assert run.summary["epochs_run"] == 1 and run.summary["steps"] == 10
    info = json.loads((tmp_path / "r" / "config.json").read_text())
    assert info["model"]["name"] in ("vae", "ladder") and info["model"]["likelihood"] == "bernoulli"
    assert ("binarisation" in info["data"]) == cfg.data.name.endswith("-binary")

import csv
import itertools
import json
import shutil

import numpy as np
import pytest
import torch

import aekit
from aekit.config import RunConfig, TrainConfig, apply_overrides, load_config
from aekit.errors import AekitError
from aekit.registry import create_model
from aekit.training.loop import fit


def quick_cfg(**train):
    return RunConfig(model={"name": "mlp", "code": 16}, train=TrainConfig(**{"epochs": 3, "batch_size": 64, **train}))


def test_loss_falls_on_mnist_mini(mini, tmp_path):
    run = aekit.train(quick_cfg(epochs=4, lr=5e-3), tmp_path / "run", dataset=mini, progress=False)
    hist = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    losses = [float(h["val_loss"]) for h in hist]
    assert len(hist) == 4 and losses[-1] < 0.7 * losses[0]
    assert all(b < a for a, b in itertools.pairwise(losses))
    for f in ("config.json", "model.safetensors", "metrics.csv", "summary.json", "reconstructions.png", "loss.png"):
        assert (tmp_path / "run" / f).is_file(), f
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(s["metrics"]) == {"train", "val", "test"} and s["metrics"]["test"]["n"] == 1000
    assert s["metrics"]["test"]["sse_per_image"] < 30
    assert not list((tmp_path / "run").rglob("*.tmp"))  # atomic writes leave no temp files
    assert run.summary == s


def test_loaded_model_reproduces_saved_metrics(small_images, tmp_path):
    run = aekit.train(quick_cfg(), tmp_path / "r", dataset=small_images, progress=False)
    m = aekit.load(tmp_path / "r")
    from aekit.metrics import evaluate_model

    again = evaluate_model(m, small_images.test.x)
    assert again["sse_per_image"] == pytest.approx(run.summary["metrics"]["test"]["sse_per_image"], rel=1e-9)


def test_seeded_runs_are_repeatable(small_images, tmp_path):
    a = aekit.train(quick_cfg(), tmp_path / "a", dataset=small_images, progress=False)
    b = aekit.train(quick_cfg(), tmp_path / "b", dataset=small_images, progress=False)
    c = aekit.train(quick_cfg(seed=1), tmp_path / "c", dataset=small_images, progress=False)
    assert a.summary["metrics"] == b.summary["metrics"]
    assert a.summary["metrics"] != c.summary["metrics"]


def test_resume_continues_exactly(small_images, tmp_path):
    full = aekit.train(quick_cfg(epochs=4), tmp_path / "full", dataset=small_images, progress=False)
    aekit.train(quick_cfg(epochs=2), tmp_path / "part", dataset=small_images, progress=False)
    resumed = aekit.train(quick_cfg(epochs=4), tmp_path / "part", resume=True, dataset=small_images, progress=False)
    assert resumed.summary["epochs_run"] == 4
    assert resumed.summary["metrics"]["test"]["sse_per_image"] == pytest.approx(
        full.summary["metrics"]["test"]["sse_per_image"], rel=1e-6)
    rows = list(csv.DictReader((tmp_path / "part" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]


def test_block_noise_training_resumes_exactly(small_images, tmp_path):
    # block:S draws the number of guess passes from the noise generator: --resume restores it.
    whole = aekit.train(quick_cfg(noise="block:8", seed=3), tmp_path / "whole", dataset=small_images, progress=False)
    aekit.train(quick_cfg(epochs=2, noise="block:8", seed=3), tmp_path / "part", dataset=small_images, progress=False)
    resumed = aekit.train(quick_cfg(noise="block:8", seed=3), tmp_path / "part", resume=True, dataset=small_images,
                          progress=False)
    assert resumed.summary["metrics"]["test"]["sse_per_image"] == pytest.approx(
        whole.summary["metrics"]["test"]["sse_per_image"], rel=1e-6)


def test_existing_run_is_not_overwritten(small_images, tmp_path):
    aekit.train(quick_cfg(epochs=1), tmp_path / "r", dataset=small_images, progress=False)
    before = (tmp_path / "r" / "model.safetensors").read_bytes()
    with pytest.raises(AekitError, match="already holds a run"):
        aekit.train(quick_cfg(epochs=1), tmp_path / "r", dataset=small_images, progress=False)
    assert (tmp_path / "r" / "model.safetensors").read_bytes() == before
    # --resume where nothing was saved starts the run (a requeued job repeats its command line).
    aekit.train(quick_cfg(epochs=1), tmp_path / "other", resume=True, dataset=small_images, progress=False)
    assert (tmp_path / "other" / "model.safetensors").is_file()


def test_early_stopping_and_max_steps(small_images):
    model = create_model("mlp", small_images.sample_shape, code=8)
    model.resolve_output("unit")
    # lr so small that nothing improves measurably after the first epoch... use patience on a flat run
    cfg = TrainConfig(epochs=50, batch_size=64, lr=1e-9, patience=2)
    res = fit(model, small_images.split("train"), small_images.split("val"), cfg, progress=False)
    assert res.stopped_early and len(res.history) < 50
    res = fit(model, small_images.split("train"), None, TrainConfig(epochs=5, max_steps=3), progress=False)
    assert res.steps == 3


@pytest.mark.parametrize("opt", ["sgd", "adamw"])
@pytest.mark.parametrize("sched", ["cosine", "step"])
def test_optimizers_and_schedules(small_images, opt, sched):
    model = create_model("mlp", small_images.sample_shape, code=8)
    model.resolve_output("unit")
    cfg = TrainConfig(epochs=4, batch_size=64, lr=0.05 if opt == "sgd" else 3e-3, optimizer=opt, schedule=sched)
    res = fit(model, small_images.split("train"), small_images.split("val"), cfg, progress=False)
    assert res.history[-1]["val_loss"] < res.history[0]["val_loss"]
    assert res.history[-1]["lr"] < cfg.lr


def test_corruption_hook_gets_fresh_noise_and_clean_target(small_images):
    seen = []

    def corrupt(x, g):
        noise = torch.rand(x.shape, generator=g)
        seen.append(noise[0, 0, 0, :4].clone())
        return (x + 0.1 * noise).clamp(0, 1)

    model = create_model("mlp", small_images.sample_shape, code=8)
    model.resolve_output("unit")
    fit(model, small_images.split("train"), None, TrainConfig(epochs=1, batch_size=128), corrupt=corrupt,
        progress=False)
    assert len(seen) >= 4 and not torch.equal(seen[0], seen[1])


def test_tabular_training_uses_identity_output(tmp_path):
    run = aekit.train(RunConfig(data=aekit.DataConfig(name="synthetic:plane"), model={"name": "linear", "code": 2},
                                train=TrainConfig(epochs=30, lr=1e-2)), tmp_path / "p", progress=False)
    assert run.model.output == "identity"
    assert run.summary["metrics"]["test"]["psnr"] is None
    assert run.summary["metrics"]["test"]["mse"] < 0.002


def test_config_toml_and_overrides(tmp_path):
    (tmp_path / "c.toml").write_text('[data]\nname = "mnist"\n[model]\nname = "mlp"\nlayers = [100, 50]\n'
                                     "code = 10\n[train]\nepochs = 7\nlr = 1\n")
    cfg = load_config(tmp_path / "c.toml")
    assert cfg.model["layers"] == [100, 50] and cfg.train.epochs == 7 and cfg.train.lr == 1.0
    cfg = apply_overrides(cfg, {"train.epochs": 2, "model.code": None})
    assert cfg.train.epochs == 2 and cfg.model["code"] == 10


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("[train]\nepoch = 3\n", "unknown key"),
        ("[trian]\nepochs = 3\n", "unknown section"),
        ("[train]\nepochs = 'ten'\n", "wrong type"),
        ("[train\n", "not valid TOML"),
    ],
)
def test_config_errors(tmp_path, text, msg):
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(AekitError, match=msg):
        load_config(tmp_path / "c.toml")


def test_every_shipped_recipe_loads():
    from pathlib import Path

    recipes = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))
    assert recipes
    from aekit.registry import constructor_options

    for r in recipes:
        cfg = load_config(r).validate()
        create_model(cfg.model["name"], (1, 28, 28), **constructor_options(cfg.model, lambda: 10))


def test_pca_baseline_matches_sklearn(mini):
    from sklearn.decomposition import PCA as SKPCA

    from aekit.baselines import PCA
    from aekit.metrics import as_float

    x = as_float(mini.train.x[:2000]).reshape(2000, -1)
    t = as_float(mini.test.x[:200]).reshape(200, -1)
    ours = PCA(10).fit(mini.train.x[:2000]).evaluate(mini.test.x[:200])
    sk = SKPCA(10, svd_solver="full").fit(x)
    ref = np.square(sk.inverse_transform(sk.transform(t)) - t).sum(1).mean()
    assert ours["sse_per_image"] == pytest.approx(ref, rel=1e-5)


def test_bf16_autocast_trains_with_fp32_weights_and_loss(small_images):
    model = create_model("mlp", small_images.sample_shape, code=8, layers=[32])
    model.resolve_output("unit")
    cfg = TrainConfig(epochs=2, batch_size=64, lr=3e-3, precision="bf16")
    res = fit(model, small_images.split("train"), small_images.split("val"), cfg, progress=False)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert res.history[-1]["val_loss"] < res.history[0]["val_loss"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(2, *small_images.sample_shape))
    assert out.loss.dtype == torch.float32 and out.recon.dtype == torch.float32


def test_precision_choices():
    from aekit.device import autocast_dtype

    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) == torch.bfloat16
    assert autocast_dtype("auto", cpu) in (None, torch.bfloat16)
    with pytest.raises(AekitError, match="fp16 needs a GPU"):
        autocast_dtype("fp16", cpu)
    with pytest.raises(AekitError, match="unknown precision"):
        RunConfig(train=TrainConfig(precision="fp8")).validate()


def test_atomic_writes_get_normal_file_permissions(tmp_path):
    import os

    from aekit.io import atomic_write_text

    atomic_write_text(tmp_path / "a.txt", "x")
    (tmp_path / "b.txt").write_text("x")
    assert os.stat(tmp_path / "a.txt").st_mode == os.stat(tmp_path / "b.txt").st_mode


def test_conv_bottleneck_on_100x100_images(tmp_path):
    """The lecture's 10,000 -> 20 -> 10,000 bottleneck: a conv AE on an images:DIR folder of 100x100 pictures."""
    from PIL import Image

    from aekit.cli import main
    from aekit.data.sources import load_dataset

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:100, :100]
    (tmp_path / "discs").mkdir()
    for i in range(80):  # bright discs of random centre and radius: a 3-parameter family
        cy, cx, r = rng.uniform(30, 70), rng.uniform(30, 70), rng.uniform(10, 25)
        img = np.where((yy - cy) ** 2 + (xx - cx) ** 2 < r * r, 255, 0).astype(np.uint8)
        Image.fromarray(img).save(tmp_path / "discs" / f"{i:02d}.png")
    out = tmp_path / "run"
    code = main(["train", "--data", f"images:{tmp_path / 'discs'}", "--model", "conv", "--code", "20",
                 "--channels", "8,16", "--epochs", "25", "--batch-size", "16", "--lr", "3e-3", "--quiet",
                 "--out", str(out)])
    assert code == 0
    s = json.loads((out / "summary.json").read_text())
    model = aekit.load(out)
    assert model.input_shape == (1, 100, 100) and model.code_size == 20
    ds = load_dataset(f"images:{tmp_path / 'discs'}")
    x = ds.test.x.astype(np.float32) / 255
    assert model.encode(x).shape == (len(x), 20) and model.reconstruct(x).shape == x.shape
    mean_sse = float(np.square(x - ds.train.x.astype(np.float32).mean(0) / 255).sum((1, 2, 3)).mean())
    assert s["metrics"]["test"]["sse_per_image"] < 0.5 * mean_sse


def test_resume_with_more_epochs_keeps_the_schedule_unless_restarted(tmp_path, capsys):
    """3 cosine epochs resumed to 5: by default the schedule keeps its 3-epoch horizon, so the rate
    never rises again (epochs 4-5 keep epoch 3's rate) and the run says so; --schedule-restart starts
    a new cosine at epoch 4 from the base rate, saved in the checkpoint, and is not repeated by the
    next --resume that does not ask for it."""
    from tests.badinput import run_cli

    def lrs(run):
        return [float(r["lr"]) for r in csv.DictReader((run / "metrics.csv").open())]

    flags = ["--data", "mnist-mini", "--layers", "16", "--code", "4", "--batch-size", "512", "--device", "cpu"]
    a, b = tmp_path / "a", tmp_path / "b"
    rc, _, err = run_cli(["train", *flags, "--schedule", "cosine", "--epochs", "3", "--out", a, "--quiet"], capsys)
    assert rc == 0, err
    shutil.copytree(a, b)
    rc, _, err = run_cli(["train", "--out", a, "--resume", "--epochs", "5"], capsys)
    assert rc == 0 and "keeps its horizon (epochs 1-3); epochs 4-5 keep its last learning rate" in err, err
    first = lrs(a)
    assert len(first) == 5 and all(y <= x for x, y in itertools.pairwise(first)) and first[2] == first[3] == first[4]

    rc, _, err = run_cli(["train", "--out", b, "--resume", "--epochs", "5", "--schedule-restart"], capsys)
    assert rc == 0 and "a new cosine learning-rate schedule over epochs 4-5" in err, err
    assert lrs(b)[:3] == first[:3] and lrs(b)[3:] == pytest.approx([1e-3, 0.5e-3])
    assert json.loads((b / "last" / "state.json").read_text())["schedule"] == {"start": 3, "epochs": 2}
    rc, _, err = run_cli(["train", "--out", b, "--resume", "--epochs", "6"], capsys)
    assert rc == 0 and "keeps its horizon (epochs 4-5)" in err, err
    assert lrs(b)[5] == lrs(b)[4]


def test_batchnorm_mlp_trains_with_a_one_row_remainder_and_resumes_exactly(small_images, tmp_path):
    # 540 training rows in batches of 77 leave one row over: BatchNorm cannot train on a batch of one.
    def cfg(epochs):
        return RunConfig(model={"name": "mlp", "code": 8, "layers": [32], "norm": "batch"},
                         train=TrainConfig(epochs=epochs, batch_size=77))

    full = aekit.train(cfg(3), tmp_path / "full", dataset=small_images, progress=False)
    assert full.summary["epochs_run"] == 3
    aekit.train(cfg(1), tmp_path / "part", dataset=small_images, progress=False)
    resumed = aekit.train(cfg(3), tmp_path / "part", resume=True, dataset=small_images, progress=False)
    # the running statistics are saved with the weights and restored on resume
    assert resumed.summary["metrics"]["test"]["sse_per_image"] == pytest.approx(
        full.summary["metrics"]["test"]["sse_per_image"], rel=1e-6)
    m = aekit.load(tmp_path / "full")
    assert any(isinstance(mod, torch.nn.BatchNorm1d) for mod in m.modules())

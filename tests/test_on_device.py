"""Every path on the device the suite runs on (``pytest --device cuda``, or ``AEKIT_TEST_DEVICE``;
the CPU by default): each model family and every task, the regularisers, the precisions,
``--resume``, pre-training with fine-tuning, and the estimators. Small and quick on the CPU; on a
GPU they are what finds a tensor or a generator left on the wrong device.

Noise kinds and ``--compile`` on the device are in tests/test_compile.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import aekit
from aekit.config import RunConfig

STEPS = {"train.epochs": 1, "train.max_steps": 3, "train.batch_size": 64}
FAMILIES = {"linear": {"code": 8}, "mlp": {"layers": [32], "code": 8}, "conv": {"channels": [4, 8], "code": 8}}


def quick_run(tmp_path, small_images, device, name="mlp", **overrides):
    model = {"name": name, **FAMILIES[name], **overrides.pop("model", {})}
    cfg = RunConfig.from_dict({"model": model, "train": {"device": device}})
    return aekit.train(cfg, tmp_path / f"{name}-run", dataset=small_images, progress=False, **STEPS, **overrides)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_task_on_the_device(family, tmp_path, small_images, device):
    run = quick_run(tmp_path, small_images, device, family)
    assert run.summary["metrics"]["test"]["n"] == len(small_images.test)
    d = run.model  # opened with the dataset it was trained on
    m = aekit.evaluate(d)
    assert np.isfinite(m["sse_per_image"])
    assert aekit.reconstruct(d, n=4).is_file()
    assert np.isfinite(aekit.denoise(d, "gaussian:0.3")["psnr_autoencoder"])
    codes, labels = aekit.encode(d)
    assert codes.shape == (len(small_images.test), 8) and np.isfinite(codes).all()
    assert np.array_equal(labels, small_images.test.y)
    assert np.isfinite(aekit.inpaint(d, "center:8", iters=3)["psnr_autoencoder"])
    assert aekit.interpolate(d, 0, 1, steps=3).is_file()
    assert aekit.latent_map(d, tmp_path / "map.png", n=50).is_file()
    a = aekit.anomaly(d, threshold="percentile:99")
    assert np.isfinite(a["threshold"])
    assert set(aekit.probe(d, max_train=200)["probes"]) == {"autoencoder", "pixels", "pca"}


@pytest.mark.parametrize("model", [{"sparse": "l1:0.001"}, {"sparse": "kl:0.05,0.1", "code_activation": "sigmoid"},
                                   {"contractive": 0.01}], ids=["l1", "kl", "contractive"])
def test_regularisers_on_the_device(model, tmp_path, small_images, device):
    run = quick_run(tmp_path, small_images, device, model=model)
    assert np.isfinite(run.summary["metrics"]["val"]["sse_per_image"])


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16", "auto"])
def test_precisions_on_the_device(precision, tmp_path, small_images, device):
    if precision == "fp16" and device == "cpu":
        pytest.skip("fp16 autocast is a GPU mode (the CPU refuses it with one line: test_training.py)")
    run = quick_run(tmp_path, small_images, device, **{"train.precision": precision})
    assert run.summary["precision"] in ("fp32", "bf16", "fp16")
    assert np.isfinite(run.summary["metrics"]["test"]["sse_per_image"])


def test_resume_on_the_device_equals_one_run(tmp_path, small_images, device):
    cfg = RunConfig.from_dict({"model": {"name": "mlp", **FAMILIES["mlp"]},
                               "train": {"device": device, "batch_size": 64, "noise": "masking:0.2"}})
    aekit.train(cfg, tmp_path / "split", dataset=small_images, progress=False, **{"train.epochs": 1})
    split = aekit.train(cfg, tmp_path / "split", dataset=small_images, progress=False, resume=True,
                        **{"train.epochs": 2})
    whole = aekit.train(cfg, tmp_path / "whole", dataset=small_images, progress=False, **{"train.epochs": 2})
    for k, v in whole.model.state_dict().items():
        torch.testing.assert_close(split.model.state_dict()[k], v, rtol=0, atol=1e-6, msg=k)


def test_pretraining_and_fine_tuning_on_the_device(tmp_path, small_images, device):
    _, s = aekit.pretrain([32], "greedy", data="mini-slice", dataset=small_images, out=tmp_path / "pre",
                          progress=False, epochs=1, batch_size=64, device=device)
    assert s["per_layer"]
    f = aekit.finetune(tmp_path / "pre", labels=100, stage="both", epochs=1, dataset=small_images, device=device,
                       out=tmp_path / "ft", progress=False, shift=1)
    assert 0 <= f["test_error_percent"] <= 100
    assert json.loads((tmp_path / "ft" / "config.json").read_text())["kind"] == "classifier"
    assert aekit.classify(tmp_path / "ft", data="mnist-mini")["n"] == 1000  # its own arrays were in memory


def test_estimators_train_on_the_device(device):
    from sklearn.base import clone

    from aekit.estimator import AutoencoderOutlierDetector, AutoencoderTransformer

    x = np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32)
    t = AutoencoderTransformer(code=2, layers=(8,), epochs=3, random_state=0, device=device).fit(x)
    assert t.transform(x).shape == (300, 2) and next(t.model_.parameters()).device.type == "cpu"
    d = AutoencoderOutlierDetector(epochs=3, random_state=0, device=device).fit(x)
    assert set(np.unique(d.predict(x))) <= {-1, 1} and np.isfinite(d.score_samples(x)).all()
    assert clone(d).get_params()["device"] == device
    with pytest.raises(ValueError, match="device"):
        AutoencoderTransformer(device="tpu").fit(x)

"""Weight averaging ([train] ema) and shift augmentation ([train] shift) in the training loop."""

from __future__ import annotations

import pytest
import torch

import aekit
from aekit.config import RunConfig, TrainConfig
from aekit.errors import AekitError
from aekit.registry import create_model
from aekit.training import checkpoint as ckpt
from aekit.training.averaging import WeightAverage
from aekit.training.batches import random_shift
from aekit.training.loop import Objective


def cfg(**train):
    return RunConfig(model={"name": "mlp", "code": 8, "layers": [32], "norm": "batch"},
                     train=TrainConfig(**{"epochs": 4, "batch_size": 64, **train}))


def test_average_follows_the_weights_with_its_warm_up_decay():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    avg = WeightAverage(model, decay=0.9)
    w0 = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)  # an optimizer's in-place step
    model[1].num_batches_tracked += 5
    avg.update()
    # first update: decay min(0.9, 2/11), so the average moves 9/11 of the way
    got = avg.tensors()["ema.0.weight"]
    assert torch.allclose(got, w0 + 9 / 11, atol=1e-6)
    assert int(avg.tensors()["ema.1.num_batches_tracked"]) == 5  # integer buffers are copied, not averaged
    for _ in range(200):
        avg.update()
    assert torch.allclose(avg.tensors()["ema.0.weight"], model[0].weight, atol=1e-5)


def test_swapped_in_puts_the_average_in_the_model_and_gives_the_weights_back():
    model = torch.nn.Linear(3, 1)
    avg = WeightAverage(model, decay=0.5)
    live = model.weight.detach().clone()
    with torch.no_grad():
        avg.avg[0].fill_(7.0)
    with avg.swapped_in():
        assert torch.all(model.weight == 7.0)
    assert torch.equal(model.weight, live)


def test_ema_run_keeps_the_average_not_the_last_weights(small_images, tmp_path):
    run = aekit.train(cfg(ema=0.99), tmp_path / "r", dataset=small_images, progress=False)
    kept = ckpt.load_tensors(tmp_path / "r" / "model.safetensors")
    last = ckpt.load_tensors(tmp_path / "r" / "last" / "model.safetensors")
    saved = ckpt.load_tensors(tmp_path / "r" / "last" / "optimizer.safetensors")
    name = next(k for k in kept if k.endswith("weight"))
    assert not torch.equal(kept[name], last[name])  # the average is not the last step's weights...
    assert torch.equal(kept[name], saved["ema." + name])  # ...it is the average the checkpoint carries
    plain = aekit.train(cfg(), tmp_path / "p", dataset=small_images, progress=False)
    assert run.summary["metrics"]["test"]["sse_per_image"] != plain.summary["metrics"]["test"]["sse_per_image"]


def test_ema_and_shift_training_resumes_exactly(small_images, tmp_path):
    whole = aekit.train(cfg(ema=0.95, shift=2), tmp_path / "whole", dataset=small_images, progress=False)
    aekit.train(cfg(epochs=2, ema=0.95, shift=2), tmp_path / "part", dataset=small_images, progress=False)
    resumed = aekit.train(cfg(ema=0.95, shift=2), tmp_path / "part", resume=True, dataset=small_images,
                          progress=False)
    a = ckpt.load_tensors(tmp_path / "whole" / "model.safetensors")
    b = ckpt.load_tensors(tmp_path / "part" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.summary["metrics"]["test"] == whole.summary["metrics"]["test"]


def test_resume_refuses_another_ema_and_a_checkpoint_without_its_average(small_images, tmp_path):
    aekit.train(cfg(epochs=2, ema=0.9), tmp_path / "r", dataset=small_images, progress=False)
    with pytest.raises(AekitError, match="run.train.ema differs"):
        aekit.train(cfg(epochs=3, ema=0.5), tmp_path / "r", resume=True, dataset=small_images, progress=False)
    opt = tmp_path / "r" / "last" / "optimizer.safetensors"
    ckpt.save_tensors(opt, {k: v for k, v in ckpt.load_tensors(opt).items() if not k.startswith("ema.")})
    with pytest.raises(AekitError, match="checkpoint does not fit this run .no 'ema"):
        aekit.train(cfg(epochs=3, ema=0.9), tmp_path / "r", resume=True, dataset=small_images, progress=False)


def test_shift_moves_input_and_target_together():
    x = torch.zeros(4, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0
    model = create_model("mlp", (1, 8, 8), code=2)
    model.resolve_output("unit")
    obj = Objective()
    obj.prepare(model, TrainConfig(shift=2), x, torch.device("cpu"))
    inp, target = obj.inputs(model, x, None, 0, torch.Generator().manual_seed(1))
    assert torch.equal(inp, target)  # no noise: the target is the shifted image too
    assert torch.all(inp.sum((1, 2, 3)) == 4.0)  # moved, not cut: the 2x2 square stays whole
    assert not torch.equal(inp, x)
    same = random_shift(x, 2, torch.Generator().manual_seed(1))
    assert torch.equal(same, inp)


def test_shift_refuses_rows(tmp_path):
    ds = aekit.data.sources.load_dataset("synthetic:plane")
    with pytest.raises(AekitError, match="shift needs image data"):
        aekit.train(RunConfig(model={"name": "mlp", "code": 2}, train=TrainConfig(epochs=1, shift=1)),
                    tmp_path / "r", dataset=ds, progress=False)

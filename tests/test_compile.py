"""``--compile``, ``--precision auto`` and a step without host synchronisation (training/speed.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aekit.config import TrainConfig
from aekit.data.dataset import Split
from aekit.registry import create_model
from aekit.training import loop
from aekit.training.classify import Classification
from tests.badinput import run_cli

FAST = ["--data", "mnist-mini", "--layers", "32", "--code", "8", "--batch-size", "100", "--quiet"]


def tiny(seed: int = 0):
    torch.manual_seed(seed)
    m = create_model("mlp", (1, 28, 28), layers=[32], code=8)
    m.resolve_output("unit")
    return m


def test_compile_on_cpu_matches_eager_and_is_recorded_and_resumes(tmp_path, capsys, device):
    runs = {}
    for mode in ("off", "on"):
        out = tmp_path / mode
        rc, _, err = run_cli(["train", *FAST, "--epochs", "1", "--max-steps", "12", "--compile", mode,
                              "--device", device, "--out", out], capsys)
        assert rc == 0, err
        runs[mode] = out
    on = json.loads((runs["on"] / "config.json").read_text())
    assert on["run"]["train"]["compile"] == "on"
    summary = json.loads((runs["on"] / "summary.json").read_text())
    assert summary["compiled"] is True
    eager = json.loads((runs["off"] / "summary.json").read_text())
    assert eager["compiled"] is False
    # Fused kernels add in another order: the same training to float32 rounding, not bit for bit.
    a, b = (json.loads((runs[m] / "summary.json").read_text())["metrics"]["test"]["mse"] for m in ("off", "on"))
    assert abs(a - b) < 1e-4 * max(a, 1e-3)
    # --resume of a compiled run (a setting --resume allows to change: it does not change the model)
    rc, _, err = run_cli(["train", *FAST, "--epochs", "2", "--max-steps", "24", "--compile", "on",
                          "--device", device, "--out", runs["on"], "--resume"], capsys)
    assert rc == 0, err
    assert json.loads((runs["on"] / "summary.json").read_text())["epochs_run"] == 2


def test_compile_without_a_compiler_says_so_in_one_line_and_trains_eagerly(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-c++"))
    rc, out, err = run_cli(["train", *FAST, "--epochs", "1", "--max-steps", "3", "--compile", "--device", "cpu",
                            "--out", tmp_path / "r", "--json"], capsys)
    assert rc == 0, err
    lines = [ln for ln in err.splitlines() if ln.startswith("--compile:")]
    assert len(lines) == 1 and "C++ compiler" in lines[0] and "eagerly" in lines[0], err
    assert json.loads(out)["compiled"] is False


def test_a_compiler_failure_falls_back_to_the_same_eager_result(monkeypatch, small_images, capsys):
    from aekit.training import speed

    class Broken(torch.nn.Module):
        def forward(self, *a, **k):
            raise RuntimeError("backend compiler failed\nwith a long trace")

    monkeypatch.setattr(speed, "compiler_missing", lambda device: None)
    monkeypatch.setattr(speed, "compile_model", lambda model, device: Broken())
    results = []
    for mode in ("on", "off"):
        m = tiny()
        res = loop.fit(m, small_images.train, None, TrainConfig(epochs=1, max_steps=5, compile=mode, seed=3),
                       progress=False, device=torch.device("cpu"))
        results.append((res, m.state_dict()))
    err = capsys.readouterr().err
    assert err.count("--compile: torch.compile failed") == 1 and "long trace" not in err, err
    assert results[0][0].compiled is False
    for k, v in results[0][1].items():
        assert torch.equal(v, results[1][1][k]), k


@pytest.mark.parametrize("value", ["maybe", "yes", ""])
def test_bad_compile_values_are_one_line(value, capsys, tmp_path):
    rc, _, err = run_cli(["train", *FAST, "--compile", value, "--out", tmp_path / "x"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--compile" in err, err


# --- no host synchronisation inside an epoch ------------------------------------------------------
SYNCS = ("item", "__float__", "__int__", "__bool__", "__index__", "tolist", "cpu")


@pytest.fixture
def sync_counter(monkeypatch):
    """Counts the calls that read a tensor back to the host, made inside ``Trainer.step``."""
    counts: dict[str, int] = {}
    inside = [False]
    for name in SYNCS:
        orig = getattr(torch.Tensor, name)

        def counted(self, *a, _orig=orig, _name=name, **k):
            if inside[0]:
                counts[_name] = counts.get(_name, 0) + 1
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    step = loop.Trainer.step

    def watched(self, idx, i):
        inside[0] = True
        # On CUDA the device itself also refuses any synchronising call made during the step.
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.set_sync_debug_mode("error")
        try:
            return step(self, idx, i)
        finally:
            inside[0] = False
            if cuda:
                torch.cuda.set_sync_debug_mode("default")

    monkeypatch.setattr(loop.Trainer, "step", watched)
    return counts


@pytest.mark.parametrize("noise", [None, "gaussian:0.3", "masking:0.3", "salt-pepper:0.2", "block:8"])
def test_a_step_reads_nothing_back_from_the_device(noise, sync_counter, small_images, device):
    cfg = TrainConfig(epochs=1, max_steps=8, noise=noise, clip_grad=1.0, batch_size=64)
    res = loop.fit(tiny(), small_images.train, None, cfg, progress=False, device=torch.device(device))
    assert res.steps == 8
    assert sync_counter == {}, f"host reads per 8 steps: {sync_counter}"


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_a_conv_step_reads_nothing_back(norm, sync_counter, small_images, device):
    """The conv decoder's doubling stages build their kernel from the weights on the device (a constant
    made on the host and copied there each step would make the step wait on CUDA)."""
    torch.manual_seed(0)
    m = create_model("conv", (1, 28, 28), channels=[4, 8], code=8, norm=norm)
    m.resolve_output("unit")
    res = loop.fit(m, small_images.train, None, TrainConfig(epochs=1, max_steps=4, batch_size=32), progress=False,
                   device=torch.device(device))
    assert res.steps == 4 and sync_counter == {}, sync_counter


def test_a_classifier_step_reads_nothing_back(sync_counter, small_images, device):
    from aekit.models.classifier import Classifier

    m = tiny()
    clf = Classifier(m.encoder, m.code_size, 10)
    cfg = TrainConfig(epochs=1, max_steps=6, batch_size=64)
    labelled = Split(small_images.train.x, small_images.train.y)
    res = loop.fit(clf, labelled, None, cfg, objective=Classification(shift=2), progress=False,
                   device=torch.device(device))
    assert res.steps == 6 and sync_counter == {}, sync_counter


def test_precision_auto_is_fp32_on_a_cpu_without_bf16_units(monkeypatch, small_images, capsys):
    from aekit.training import speed

    monkeypatch.setattr(speed, "cpu_has_fast_bf16", lambda: False)
    res = loop.fit(tiny(), small_images.train, None, TrainConfig(epochs=1, max_steps=2, precision="auto"),
                   progress=True, device=torch.device("cpu"))
    assert res.precision == "fp32" and "--precision auto" not in capsys.readouterr().err


def test_precision_auto_times_both_where_bf16_is_native_and_keeps_the_run_rng(monkeypatch, small_images, capsys):
    """Pretend the CPU has bf16 units: auto then measures both; the probe must not move the run's
    random draws, so the weights equal a run told the precision the probe picked."""
    from aekit.training import speed

    monkeypatch.setattr(speed, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr("aekit.device.cpu_has_fast_bf16", lambda: True)
    cfg = dict(epochs=1, max_steps=3, noise="gaussian:0.2", seed=5)
    auto_model = tiny()
    res = loop.fit(auto_model, small_images.train, None, TrainConfig(precision="auto", **cfg), progress=True,
                   device=torch.device("cpu"))
    err = capsys.readouterr().err
    assert "--precision auto: fp32" in err and f"training in {res.precision}" in err
    same = tiny()
    loop.fit(same, small_images.train, None, TrainConfig(precision=res.precision, **cfg), progress=False,
             device=torch.device("cpu"))
    for k, v in auto_model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), same.state_dict()[k].numpy(), err_msg=k)


def test_a_real_error_in_a_compiled_step_is_itself_not_a_compiler_line(monkeypatch, small_images, capsys):
    """Only the first call of a shape can be the compiler's fault, and only if the eager step then
    works: an error the eager step makes too is raised as itself, with no --compile line."""
    from aekit.training import speed

    def broken(model, device):
        raise AssertionError("not reached: the eager retry fails first")

    monkeypatch.setattr(speed, "compiler_missing", lambda device: None)
    monkeypatch.setattr(speed, "compile_model", lambda model, device: model)  # "compiled" = the same module
    m = tiny()
    monkeypatch.setattr(m, "forward", lambda *a, **k: (_ for _ in ()).throw(ValueError("bad batch")))
    with pytest.raises(ValueError, match="bad batch"):
        loop.fit(m, small_images.train, None, TrainConfig(epochs=1, max_steps=2, compile="on"), progress=False,
                 device=torch.device("cpu"))
    assert "--compile: torch.compile failed" not in capsys.readouterr().err


def test_the_contractive_penalty_is_not_compiled_and_says_so(small_images, capsys):
    m = create_model("mlp", (1, 28, 28), layers=[16], code=4, contractive=0.01)
    m.resolve_output("unit")
    res = loop.fit(m, small_images.train, None, TrainConfig(epochs=1, max_steps=2, compile="on"), progress=False,
                   device=torch.device("cpu"))
    err = capsys.readouterr().err
    assert res.compiled is False and err.count("--compile: the contractive penalty") == 1, err


def test_precision_auto_keeps_its_first_decision_on_resume(monkeypatch, tmp_path, small_images):
    from aekit.training import speed

    monkeypatch.setattr(speed, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr("aekit.device.cpu_has_fast_bf16", lambda: True)
    picks = iter([2.0, 1.0, 1.0, 2.0])  # (fp32, bf16) times: bf16 faster, then fp32 would be; it keeps bf16
    monkeypatch.setattr(speed, "time_passes", lambda model, batch, loss, device, dt, repeat=10: next(picks))
    cfg = dict(precision="auto", batch_size=100)
    first = loop.fit(tiny(), small_images.train, None, TrainConfig(epochs=1, **cfg), tmp_path, progress=False,
                     device=torch.device("cpu"))
    again = loop.fit(tiny(), small_images.train, None, TrainConfig(epochs=2, **cfg), tmp_path, resume=True,
                     progress=False, device=torch.device("cpu"))
    assert first.precision == again.precision == "bf16"
    assert next(picks) == 1.0  # the resumed run did not time the precisions again


def test_training_on_the_cpu_keeps_freed_memory_unless_told_otherwise(monkeypatch):
    import ctypes
    import sys

    from aekit.training import speed

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's mallopt: Linux only")
    try:
        ctypes.CDLL(None).gnu_get_libc_version  # noqa: B018
    except AttributeError:
        pytest.skip("not glibc")
    calls, refuse = [], set()

    def mallopt(key, value):
        calls.append((key, value))
        return 0 if value in refuse else 1

    monkeypatch.setattr(ctypes, "CDLL", lambda name: type("libc", (), {
        "gnu_get_libc_version": None, "mallopt": staticmethod(mallopt)})())
    keep = speed.keep_freed_memory.__wrapped__  # the uncached function: the cached one ran already
    for var in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "AEKIT_KEEP_FREED_MEMORY"):
        monkeypatch.delenv(var, raising=False)
    assert keep() is True
    assert calls == [(speed.M_MMAP_THRESHOLD, 128 << 20), (speed.M_TRIM_THRESHOLD, 256 << 20)]
    calls.clear()
    refuse.add(128 << 20)  # an older glibc: at most 32 MB
    assert keep() is True
    assert calls == [(speed.M_MMAP_THRESHOLD, 128 << 20), (speed.M_MMAP_THRESHOLD, 32 << 20),
                     (speed.M_TRIM_THRESHOLD, 256 << 20)]
    calls.clear()
    refuse.add(32 << 20)  # no mmap threshold taken: the trim one is left alone too
    assert keep() is False and (speed.M_TRIM_THRESHOLD, 256 << 20) not in calls
    calls.clear()
    for var, value in (("MALLOC_TRIM_THRESHOLD_", "131072"), ("GLIBC_TUNABLES", ""), ("AEKIT_KEEP_FREED_MEMORY", "0")):
        with monkeypatch.context() as m:
            m.setenv(var, value)  # the user's own setting wins
            assert keep() is False and calls == []


def test_a_cpu_trainer_sets_the_allocator(monkeypatch, small_images):
    called = []
    monkeypatch.setattr(loop, "keep_freed_memory", lambda: called.append(1))
    model = create_model("mlp", (1, 28, 28), layers=[], code=2)
    model.resolve_output("unit")
    loop.fit(model, small_images.train, None, TrainConfig(epochs=1, batch_size=16, max_steps=1), progress=False,
             device=torch.device("cpu"))
    assert called == [1]


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("shape, size", [((2, 4, 7, 7), (14, 14)), ((2, 3, 13, 13), (25, 25)), ((3, 2, 4, 6), (8, 12))])
def test_the_decoders_upsampling_and_convolution_are_those_it_names(shape, size, compiled):
    """conv.upsample_conv computes a doubling stage as one transposed convolution: its values and
    the gradients of the input, the weights and the bias are those of nearest-neighbour upsampling
    followed by the 3x3 convolution, doubling or not, eagerly and under torch.compile."""
    import torch.nn.functional as F

    from aekit.models.conv import upsample_conv

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(shape[1], 5, 3, padding=1).double()
    h = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    g = torch.randn(shape[0], 5, *size, dtype=torch.float64)
    graphs = []

    def backend(gm, inputs):  # dynamo's traced graph, run as it is
        graphs.append(str(gm.graph))
        return gm.forward

    fn = torch.compile(upsample_conv, backend=backend, dynamic=False) if compiled else upsample_conv
    out = fn(h, conv, size)
    doubling = size == (2 * shape[2], 2 * shape[3])
    if compiled:
        assert ("conv_transpose2d" in graphs[0]) is doubling and ("interpolate" in graphs[0]) is not doubling
    grads = torch.autograd.grad(out, (h, conv.weight, conv.bias), g)
    ref = conv(F.interpolate(h, size=size, mode="nearest"))
    ref_grads = torch.autograd.grad(ref, (h, conv.weight, conv.bias), g)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)

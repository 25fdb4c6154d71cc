"""The masked autoencoder (``--model mae``, aekit/models/mae.py): its shapes, a loss on the hidden
patches only, the mask ratio it is given, exact --resume, and the commands that use a run of it
(evaluate, reconstruct, encode, latent-map, inpaint through its own hook, finetune on its pooled
tokens, export with parity). Tiny models on mnist-mini so that each test takes seconds on two cores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import aekit
from aekit.config import RunConfig, TrainConfig
from aekit.models.mae import MaskedAE, check_mae_options, covering_masks, mae_parameters, patchify, unpatchify
from aekit.training import checkpoint as ckpt
from tests.badinput import assert_one_line_error, built_once, run_cli

TINY = {"patch": 7, "width": 16, "depth": 1, "heads": 2, "decoder_width": 16, "code": 2}
TINY_FLAGS = ["--model", "mae", "--patch", "7", "--width", "16", "--depth", "1", "--heads", "2",
              "--decoder-width", "16", "--code", "2"]


def tiny(shape: tuple[int, ...] = (1, 28, 28), **kw) -> MaskedAE:
    torch.manual_seed(0)
    m = MaskedAE(shape, **{**TINY, **kw})
    m.resolve_output("unit")
    return m


# --- shapes -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("shape", "patch"), [((1, 28, 28), 4), ((1, 28, 28), 7), ((3, 12, 8), 2), ((2, 6, 6), 3)])
def test_shapes_of_every_map(shape, patch):
    m = tiny(shape, patch=patch)
    x = torch.rand(5, *shape)
    p = patchify(x, patch)
    assert p.shape == (5, (shape[1] // patch) * (shape[2] // patch), patch * patch * shape[0])
    assert torch.equal(unpatchify(p, patch, shape), x)
    out = m(x)
    assert out.recon.shape == x.shape and out.code.shape == (5, 2) and out.loss.ndim == 0
    with torch.no_grad():
        ev = m(x)
    assert ev.recon.shape == x.shape and ev.code.shape == (5, 2)
    assert m.encode(x.numpy()).shape == (5, 2) and m.reconstruct(x.numpy()).shape == (5, *shape)
    assert m.reconstruct(x.flatten(1).numpy()).shape == (5, *shape)  # flat rows, as every family takes


@pytest.mark.parametrize("norm_pix", [False, True])
def test_the_parameter_count_is_known_before_building(norm_pix):
    m = tiny(norm_pix=norm_pix, depth=2, decoder_depth=2)
    o = check_mae_options({**TINY, "depth": 2, "decoder_depth": 2, "norm_pix": norm_pix})
    assert mae_parameters((1, 28, 28), o) == m.n_parameters()


def test_the_evaluation_reconstruction_is_deterministic_and_row_independent():
    """The fixed masks: the same answer twice, for a row alone or among others, and equal to what
    the validation forward pass gives (gradients off)."""
    m = tiny(patch=4).eval()
    x = np.random.default_rng(0).random((9, 1, 28, 28)).astype(np.float32)
    r = m.reconstruct(x)
    assert r.tobytes() == m.reconstruct(x).tobytes()
    np.testing.assert_allclose(m.reconstruct(x[3:4]), r[3:4], atol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(m(torch.from_numpy(x)).recon.numpy(), r, atol=1e-6)


# --- the loss counts only the hidden patches --------------------------------------------------------
@pytest.mark.parametrize("norm_pix", [False, True])
def test_the_loss_counts_only_the_hidden_patches(norm_pix):
    """A target changed on the patches the encoder sees leaves the loss exactly as it was; changed on
    one hidden patch, it moves. Without norm_pix it is the mean squared error over the hidden patches."""
    m = tiny(patch=4, norm_pix=norm_pix)
    x = torch.rand(4, 1, 28, 28)
    torch.manual_seed(7)
    keep, _, hidden = m.random_masks(len(x), x.device)  # the draw forward makes after the same seed

    def loss(target: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(7)
        return m(x, target=target).loss

    base = loss(x)
    seen = patchify(x, 4).clone()
    seen.scatter_(1, keep[..., None].expand(-1, -1, seen.shape[-1]), 0.5)  # every visible patch replaced
    assert torch.equal(loss(unpatchify(seen, 4, (1, 28, 28))), base)
    one = patchify(x, 4).clone()
    row, col = torch.nonzero(hidden)[0]
    one[row, col] = 1.0 - one[row, col]
    assert not torch.allclose(loss(unpatchify(one, 4, (1, 28, 28))), base)
    if not norm_pix:
        torch.manual_seed(7)
        out = m(x)
        err = torch.square(patchify(out.recon, 4) - patchify(x, 4)).mean(-1)  # recon holds the predictions there
        torch.testing.assert_close(out.loss, err[hidden.bool()].mean())


# --- the mask ratio ---------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.75, 0.9])
def test_the_mask_ratio_is_honoured(ratio):
    m = tiny(patch=4, mask_ratio=ratio)
    n = 49
    visible = round(n * (1 - ratio))
    keep, restore, hidden = m.random_masks(64, torch.device("cpu"))
    assert keep.shape == (64, visible) and torch.all(hidden.sum(1) == n - visible)
    assert all(len(set(row.tolist())) == visible for row in keep)  # distinct patches
    assert torch.all(hidden.gather(1, keep) == 0)  # what is kept is not hidden
    assert torch.equal(restore.gather(1, keep), torch.arange(visible).expand(64, -1))  # seen tokens come first
    seen: list[int] = []
    m.encoder.trunk.blocks[0].register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[1]))
    m(torch.rand(3, 1, 28, 28))
    assert seen == [visible]  # the encoder's blocks see the visible tokens only
    ckeep, _, chidden = covering_masks(n, visible)
    assert torch.all(chidden.sum(1) == n - visible) and torch.all(chidden.sum(0) >= 1)  # every patch hidden once
    assert ckeep.shape[1] == visible


def test_masks_differ_between_images_and_batches():
    m = tiny(patch=4)
    a, b = m.random_masks(8, torch.device("cpu"))[0], m.random_masks(8, torch.device("cpu"))[0]
    assert not torch.equal(a, b) and not all(torch.equal(a[0].sort()[0], r.sort()[0]) for r in a)


# --- resume -----------------------------------------------------------------------------------------
class Killed(BaseException):
    """Stands for SIGKILL at a step: nothing after it runs."""


def mae_cfg() -> RunConfig:
    return RunConfig(data=aekit.DataConfig(name="mnist-mini"), model={"name": "mae", **TINY, "patch": 4},
                     train=TrainConfig(epochs=2, batch_size=512, lr=3e-3, seed=4, checkpoint_every=3,
                                       optimizer="adamw", weight_decay=0.05, schedule="cosine"))


def test_a_run_resumed_mid_epoch_ends_at_the_uninterrupted_runs_bytes(tmp_path, monkeypatch):
    """Killed inside the second epoch (step 14 of 11-step epochs, checkpoints every 3 steps) and
    resumed: the masks drawn after the checkpoint are the same (torch's generator is in it), so the
    weights equal the uninterrupted run's, bit for bit."""
    aekit.train(mae_cfg(), tmp_path / "whole", progress=False)
    seen = {"steps": 0}

    def kill_point(name: str) -> None:
        if name == "step":
            seen["steps"] += 1
            if seen["steps"] == 14:
                raise Killed

    monkeypatch.setattr(ckpt, "kill_point", kill_point)
    with pytest.raises(Killed):
        aekit.train(mae_cfg(), tmp_path / "part", progress=False)
    state = json.loads((tmp_path / "part" / "last" / "state.json").read_text())
    assert state["epoch"] == 1 and state["step_in_epoch"] > 0
    monkeypatch.setattr(ckpt, "kill_point", lambda name: None)
    run = aekit.train(mae_cfg(), tmp_path / "part", resume=True, progress=False)
    assert run.summary["epochs_run"] == 2
    for name in ("model.safetensors", "last/model.safetensors"):
        assert (tmp_path / "part" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


# --- the commands on a 1-epoch run --------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    def one_epoch(d: Path) -> Path:
        import contextlib
        import io

        from aekit.cli import main

        with contextlib.redirect_stdout(io.StringIO()):  # the summary would reach the first test's capsys
            rc = main(["train", *TINY_FLAGS, "--data", "mnist-mini", "--epochs", "1", "--batch-size", "256",
                       "--quiet", "--out", str(d / "run")])
        assert rc == 0
        return d / "run"

    return built_once(tmp_path_factory, "mae", {"tiny": one_epoch})


def test_reconstruct_evaluate_encode_and_latent_map(runs, tmp_path, capsys):
    r = runs("tiny")
    for cmd in (["evaluate", r, "--json"], ["reconstruct", r, "--out", tmp_path / "rec.png"],
                ["encode", r, "--out", tmp_path / "codes.npy"], ["latent-map", r, "--out", tmp_path / "map.png"],
                ["probe", r, "--max-train", "200"], ["anomaly", r]):
        rc, out, err = run_cli(cmd, capsys)
        assert rc == 0, (cmd[0], err)
        if cmd[0] == "evaluate":
            assert json.loads(out) == aekit.evaluate(r)  # the reconstruction is the fixed masks' one
    assert (tmp_path / "rec.png").stat().st_size > 0 and (tmp_path / "map.png").stat().st_size > 0
    codes = np.load(tmp_path / "codes.npy")
    m = aekit.load(r)
    assert codes.shape == (1000, 2)
    from aekit.api import load_data

    test = load_data(RunConfig(data=aekit.DataConfig(name="mnist-mini")), progress=False).test.x
    np.testing.assert_allclose(codes[:5], m.encode(test[:5]), atol=1e-5)  # codes of all patches, unmasked


def test_there_is_no_decoder_for_codes(runs, tmp_path, capsys):
    r = runs("tiny")
    assert_one_line_error(["interpolate", r, "--from", "0", "--to", "1", "--out", tmp_path / "i.png"], capsys,
                          "has no decoder for codes")
    assert_one_line_error(["export", r, "--part", "decoder", "--format", "onnx", "--out", tmp_path / "d.onnx"],
                          capsys, "has no decoder for codes")
    assert not (tmp_path / "d.onnx").exists()


def test_inpainting_predicts_the_hidden_patches_in_one_pass(runs, tmp_path, capsys):
    """center:14 hides 4 whole 7x7 patches: the fill is the model's infill hook (the seen pixels as
    given, the hidden patches predicted from the others), whatever --iters says; a random pixel
    mask leaves no patch whole and goes through the iteration of reconstruct."""
    from aekit.tasks.inpaint import fill, parse_mask

    r = runs("tiny")
    rc, out, err = run_cli(["inpaint", r, "--mask", "center:14", "--json", "--out", tmp_path / "i.png"], capsys)
    assert rc == 0, err
    assert json.loads(out)["psnr_autoencoder"] > 0
    m = aekit.load(r)
    x = np.random.default_rng(1).random((6, 1, 28, 28)).astype(np.float32)
    mask = parse_mask("center:14", (28, 28))
    start = np.zeros((1, 28, 28), np.float32)
    once, many = fill(m, x, mask, start, iters=1), fill(m, x, mask, start, iters=7)
    assert once.tobytes() == many.tobytes()
    np.testing.assert_array_equal(once[:, :, ~mask], x[:, :, ~mask])
    np.testing.assert_allclose(once[:, :, mask], m.infill(x, mask)[:, :, mask], atol=1e-6)
    # the hidden patches' prediction depends on the seen pixels only, not on what the holes held
    np.testing.assert_allclose(fill(m, x, mask, start + 0.7, 1), once, atol=1e-6)
    rnd = parse_mask("random:0.5", (28, 28))
    assert m.infill(x, rnd) is None
    rc, _, err = run_cli(["inpaint", r, "--mask", "random:0.5", "--iters", "2"], capsys)
    assert rc == 0, err


@pytest.mark.parametrize("init", ["pretrained", "random"])
def test_finetune_puts_the_head_on_the_pooled_tokens(runs, tmp_path, capsys, init):
    r = runs("tiny")
    out = tmp_path / "clf"
    rc, text, err = run_cli(["finetune", r, "--labels", "100", "--init", init, "--epochs", "1", "--dropout", "0.1",
                             "--json", "--quiet", "--out", out], capsys)
    assert rc == 0, err
    assert 0 <= json.loads(text)["test_error_percent"] <= 100
    rc, _, err = run_cli(["classify", out], capsys)
    assert rc == 0, err
    from aekit.run import open_run

    clf = open_run(out, ("classifier",)).model
    assert clf.head.in_features == TINY["width"]  # the pooled tokens, not the 2-number code
    assert any(isinstance(mod, torch.nn.Dropout) for mod in clf.encoder.modules())
    # Before training, the classifier's trunk is the run's (pretrained) or a fresh one (random).
    from aekit.training.finetuning import FinetuneJob

    o = open_run(r)
    plan = FinetuneJob(labels=100, init=init).checked().plan(o, o.dataset(None, None)[0])
    start = plan.model.encoder[0].trunk.embed.weight
    assert torch.equal(start, o.model.encoder.trunk.embed.weight) == (init == "pretrained")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_full_encoder_and_score_with_parity(runs, tmp_path, capsys, fmt):
    r = runs("tiny")
    ext = "onnx" if fmt == "onnx" else "pt"
    for part in ("full", "encoder", "score"):
        rc, text, err = run_cli(["export", r, "--format", fmt, "--part", part, "--out", tmp_path / f"{part}.{ext}",
                                 "--json"], capsys)
        assert rc == 0, (part, err)
        assert max(json.loads(text)["max_checked_diff"].values()) <= 1e-5  # checked on the test set, batch free

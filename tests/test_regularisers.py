import numpy as np
import pytest
import torch

import aekit
from aekit.config import RunConfig, TrainConfig
from aekit.data.noise import parse_noise
from aekit.errors import AekitError
from aekit.models.penalties import contractive_general, contractive_one_layer, parse_sparse
from aekit.registry import create_model


def autograd_frobenius(encoder, x):
    """Reference: the full Jacobian of each sample by torch.autograd.functional.jacobian."""
    total = 0.0
    for s in x:
        j = torch.autograd.functional.jacobian(lambda v: encoder(v.unsqueeze(0)).squeeze(0), s)
        total += float(j.square().sum())
    return total / len(x)


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu", "linear", "gelu"])
def test_contractive_closed_form_matches_autograd_jacobian(act):
    torch.manual_seed(0)
    m = create_model("mlp", (1, 6, 5), code=7, code_activation=act, contractive=1.0)
    x = torch.rand(4, 1, 6, 5)
    ours = float(m.jacobian_penalty(x))
    assert ours == pytest.approx(autograd_frobenius(m.encoder, x), rel=1e-5)


def test_contractive_for_deep_and_conv_encoders_matches_autograd():
    torch.manual_seed(0)
    for m in (create_model("mlp", (1, 4, 4), code=3, layers=[8], activation="tanh", contractive=1.0),
              create_model("conv", (1, 6, 6), code=3, channels=[2], contractive=1.0),
              create_model("linear", (1, 4, 4), code=3, contractive=1.0)):
        x = torch.rand(3, 1, 4, 4) if m.input_shape == (1, 4, 4) else torch.rand(3, 1, 6, 6)
        assert float(m.jacobian_penalty(x)) == pytest.approx(autograd_frobenius(m.encoder, x), rel=1e-5)


def test_contractive_penalty_has_gradients_and_trains():
    torch.manual_seed(0)
    m = create_model("mlp", (10,), code=12, code_activation="sigmoid", contractive=0.5)
    m.resolve_output("real")
    out = m(torch.randn(8, 10))
    assert set(out.terms) == {"recon", "contractive"}
    out.loss.backward()
    assert m.encoder[1].weight.grad.abs().sum() > 0
    with torch.no_grad():  # evaluation scores the reconstruction alone
        assert set(m(torch.randn(8, 10)).terms) == {"recon"}


def test_one_layer_helper_on_plain_linear():
    lin = torch.nn.Linear(5, 3)
    x = torch.randn(2, 5)
    v = contractive_one_layer(lin, torch.nn.Identity(), x)
    assert float(v) == pytest.approx(float(lin.weight.square().sum()), rel=1e-6)
    assert float(contractive_general(lin, x)) == pytest.approx(float(v), rel=1e-6)


def test_sparsity_terms():
    code = torch.tensor([[0.1, 0.9], [0.3, 0.5]])
    l1 = parse_sparse("l1:0.5")(code)
    assert float(l1) == pytest.approx(0.5 * (1.0 + 0.8) / 2)
    kl = parse_sparse("kl:0.2,3")(code)
    rho, rh = 0.2, torch.tensor([0.2, 0.7])
    ref = 3 * float((rho * torch.log(rho / rh) + (1 - rho) * torch.log((1 - rho) / (1 - rh))).sum())
    assert float(kl) == pytest.approx(ref, rel=1e-5)
    assert float(parse_sparse("kl:0.2,3")(torch.full((4, 2), 0.2))) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize(("spec", "msg"), [("kl:2", "strictly between 0 and 1"), ("kl:0", "strictly"),
                                           ("l1:-1", "non-negative"), ("l2:1", "unknown sparsity"),
                                           ("l1:abc", "expected numbers"), ("kl:0.1,-1", "non-negative")])
def test_bad_sparsity(spec, msg):
    with pytest.raises(AekitError, match=msg):
        parse_sparse(spec)


def test_kl_sparsity_needs_sigmoid_code():
    with pytest.raises(AekitError, match="code_activation sigmoid"):
        create_model("mlp", (4,), code=3, sparse="kl:0.1")
    create_model("mlp", (4,), code=3, sparse="kl:0.1", code_activation="sigmoid")


def test_noise_kinds_statistics():
    x = torch.full((200, 1, 10, 10), 0.5)
    g = torch.Generator().manual_seed(0)
    gauss = parse_noise("gaussian:0.1")(x, g)
    assert abs(float((gauss - x).std()) - 0.1) < 0.01
    masked = parse_noise("masking:0.3")(x, g)
    assert abs(float((masked == 0).float().mean()) - 0.3) < 0.02
    sp = parse_noise("salt-pepper:0.4")(x, g)
    assert abs(float((sp == 0).float().mean()) - 0.2) < 0.02 and abs(float((sp == 1).float().mean()) - 0.2) < 0.02
    big = parse_noise("gaussian:2")(x, g)
    assert float(big.min()) >= 0 and float(big.max()) <= 1  # clipped to [0, 1]
    assert float(parse_noise("gaussian:2", clip=False)(x, g).max()) > 1


def test_noise_is_fresh_per_call_and_seeded():
    n = parse_noise("masking:0.5")
    x = torch.ones(4, 20)
    g = torch.Generator().manual_seed(1)
    assert not torch.equal(n(x, g), n(x, g))
    np.testing.assert_array_equal(n.apply_numpy(np.ones((3, 5)), 7), n.apply_numpy(np.ones((3, 5)), 7))


@pytest.mark.parametrize(("spec", "msg"), [("gaussian:-1", "non-negative"), ("masking:1.5", "between 0 and 1"),
                                           ("blur:1", "unknown noise"), ("gaussian:x", "not a number"),
                                           ("gaussian", "unknown noise")])
def test_bad_noise(spec, msg):
    with pytest.raises(AekitError, match=msg):
        parse_noise(spec)


def test_denoising_training_beats_noisy_input(mini, tmp_path):
    import aekit
    from aekit.config import RunConfig, TrainConfig

    cfg = RunConfig(model={"name": "mlp", "code": 32}, train=TrainConfig(epochs=4, batch_size=64, lr=5e-3,
                                                                          noise="gaussian:0.4"))
    run = aekit.train(cfg, tmp_path / "dae", dataset=mini, progress=False)
    from aekit.tasks.denoise import denoise_report

    r = denoise_report(run.model, mini.train.x, mini.train.x[:300], mini.test.x[:300],
                       "gaussian:0.4", picture=tmp_path / "d.png", baselines="median3x3,gaussian_blur,pca_projection")
    assert r["psnr_autoencoder"] > r["psnr_noisy"] + 1
    assert set(r["baselines"]) == {"median3x3", "gaussian_blur", "pca_projection"}
    assert (tmp_path / "d.png").is_file()


def test_block_noise_zeroes_one_square_per_image():
    x = torch.ones(6, 1, 10, 12)
    out = parse_noise("block:4")(x, torch.Generator().manual_seed(0))
    zeros = (out == 0).reshape(6, -1).sum(1)
    assert zeros.tolist() == [16] * 6
    rows = (out[:, 0] == 0).any(2).float().sum(1)
    assert rows.tolist() == [4.0] * 6  # a square, not scattered pixels
    with pytest.raises(AekitError, match="whole number"):
        parse_noise("block:2.5")
    with pytest.raises(AekitError, match="does not fit"):
        parse_noise("block:20")(x, None)
    with pytest.raises(AekitError, match="needs images"):
        parse_noise("block:2")(torch.ones(3, 5), None)


def test_center_noise_fills_the_square_inpaint_hides_with_the_mean_image(small_images, tmp_path):
    import dataclasses

    from aekit.tasks.inpaint import default_passes, parse_mask
    from aekit.training.infill import MeanFilled, corruption_for

    x = torch.ones(5, 1, 28, 28)
    out = dataclasses.replace(parse_noise("center:14"), fill=torch.full((1, 28, 28), 0.25))(x, torch.Generator())
    hole = torch.from_numpy(parse_mask("center:14", (28, 28)))
    assert torch.all(out[:, 0][:, hole] == 0.25) and torch.all(out[:, 0][:, ~hole] == 1.0)  # the same square, always
    with pytest.raises(AekitError, match="center takes a whole number"):
        parse_noise("center:0.5")
    with pytest.raises(AekitError, match="center:30 does not fit"):
        parse_noise("center:30")(x, None)
    corr = corruption_for("center:6")
    assert type(corr) is MeanFilled  # no guess batches: the square never moves
    corr.prepare(torch.from_numpy(small_images.train.x), torch.device("cpu"))
    xb = torch.from_numpy(small_images.train.x[:4]).float() / 255
    inp, target = corr.pair(None, xb, 0, torch.Generator())  # type: ignore[arg-type]
    hole6 = np.broadcast_to(parse_mask("center:6", (28, 28)), xb.shape)
    mean = np.broadcast_to(small_images.train.x.astype(np.float32).mean(0) / 255, xb.shape)
    assert torch.equal(target, xb) and np.allclose(inp.numpy()[hole6], mean[hole6], atol=1e-6)
    run = aekit.train(RunConfig(model={"name": "mlp", "code": 8}, train=TrainConfig(epochs=1, noise="center:8")),
                      tmp_path / "r", dataset=small_images, progress=False)
    # a run trained on one fixed hole fills in one pass by default; others make 20
    r = aekit.inpaint(run.dir, "center:8", baselines="mean_image", data="mnist-mini")
    assert r["passes"] == r["iters"] == 1 and np.isfinite(r["psnr_autoencoder"])
    bare = create_model("mlp", (1, 28, 28), code=8)  # no run, so no training noise to go by
    bare.resolve_output("unit")
    assert aekit.inpaint(bare, "center:8", baselines="mean_image", data="mnist-mini")["passes"] == 20
    assert default_passes("block:8") == default_passes(None) == 20 and default_passes("center:8") == 1


def test_block_noise_fills_with_the_training_mean_image(small_images):
    import dataclasses

    from aekit.training.loop import mean_image

    fill = torch.full((1, 10, 12), 0.25)
    out = dataclasses.replace(parse_noise("block:4"), fill=fill)(torch.ones(6, 1, 10, 12), torch.Generator())
    assert ((out == 0.25).reshape(6, -1).sum(1) == 16).all() and ((out == 1) | (out == 0.25)).all()
    x = torch.from_numpy(small_images.train.x)
    assert torch.allclose(mean_image(x, chunk=7), x.float().mean(0) / 255, atol=1e-6)


def test_own_guesses_keep_observed_pixels(small_images, monkeypatch):
    import dataclasses

    from aekit.registry import create_model
    from aekit.training import infill

    model = create_model("mlp", (1, 28, 28), code=8)
    model.resolve_output("unit")
    noise = dataclasses.replace(parse_noise("block:6"), fill=torch.full((1, 28, 28), 0.5))
    x = torch.from_numpy(small_images.train.x[:16]).float() / 255
    monkeypatch.setattr(infill, "GUESS_PASSES", (3,))
    inp, target = infill.own_guesses(model, noise, x, torch.Generator().manual_seed(0))
    filled, mask = noise.block(x, torch.Generator().manual_seed(0))
    hole = mask.expand_as(x)
    assert torch.equal(inp[~hole], x[~hole]) and torch.equal(target[~hole], x[~hole])  # observed pixels kept
    with torch.no_grad():  # three passes by hand: the target holds the first, the input the third
        cur = [filled]
        for _ in range(3):
            cur.append(torch.where(mask, model(cur[-1]).recon, x))
    assert torch.allclose(target, cur[1]) and torch.allclose(inp, cur[3])
    assert not torch.allclose(inp[hole], target[hole])
    assert inp.min() >= 0 and inp.max() <= 1

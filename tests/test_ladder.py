"""The hierarchical VAE (``--model ladder``, aekit/models/ladder.py): its log-weights are those of
the model it samples from (the NLL estimator agrees with 2-D quadrature), its closed-form KLs are the
expectation of the log-ratio, the IWAE bound sits above the ELBO, and it goes through the one loop,
--resume, the generative tasks and export like the vae family."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import aekit
from aekit.models.ladder import LadderVAE, combine
from aekit.models.posterior import DiagonalGaussian
from aekit.tasks.generate import log_likelihood, sample, traverse
from tests.badinput import run_cli


def tiny(**kw) -> LadderVAE:
    torch.manual_seed(0)
    opts = {"code": 3, "latents": [4], "layers": [16, 8], "likelihood": "bernoulli", **kw}
    return LadderVAE((12,), **opts)


def binary(n: int, d: int = 12, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, d)) < 0.3).astype(np.float32)


def test_combine_is_the_normalised_product_of_two_gaussians():
    a = DiagonalGaussian(torch.tensor([0.5, -2.0]), torch.tensor([0.0, 1.5]))
    b = DiagonalGaussian(torch.tensor([1.5, 3.0]), torch.tensor([-1.0, -0.5]))
    c = combine(a, b)
    va, vb = a.logvar.exp(), b.logvar.exp()
    assert torch.allclose(c.logvar.exp(), va * vb / (va + vb))
    assert torch.allclose(c.mean, (a.mean / va + b.mean / vb) * c.logvar.exp())


def test_the_nll_estimator_agrees_with_quadrature_on_two_one_dimensional_layers():
    """log p(x) = log of the double integral of p(x|z1) p(z1|z2) p(z2), on a fine 2-D grid: equal to
    the importance-sampled estimate within its standard error (so the log-weights' q is the density
    of what is drawn and p the model's)."""
    m = tiny(code=1, latents=[1], layers=[6, 6]).double()
    x = binary(3, seed=4)
    with torch.no_grad():
        z2 = torch.linspace(-9, 9, 721, dtype=torch.float64)
        z1 = torch.linspace(-14, 14, 1121, dtype=torch.float64)
        log_p2 = -0.5 * (z2**2 + math.log(2 * math.pi))
        p1 = m.conditional_prior(0, z2[:, None, None])  # (G2, 1, 1)
        log_p12 = p1.log_prob(z1[None, :, None])  # (G2, G1)
        logits, t = m.bottom_logits(z1[:, None]), torch.from_numpy(x).double()  # (G1, 12), (N, 12)
        log_px = t @ torch.nn.functional.logsigmoid(logits).T + (1 - t) @ torch.nn.functional.logsigmoid(-logits).T
        cell = math.log(float(z1[1] - z1[0])) + math.log(float(z2[1] - z2[0]))
        joint = log_p2[None, :, None] + log_p12[None] + log_px[:, None, :]  # (N, G2, G1)
        exact = (torch.logsumexp(joint.reshape(len(x), -1), 1) + cell).numpy()
    reps = np.stack([log_likelihood(m, x, samples=4000, seed=s) for s in range(5)])
    se = reps.std(0, ddof=1) / math.sqrt(len(reps)) + 1e-4
    assert np.all(np.abs(reps.mean(0) - exact) < 5 * se), (reps.mean(0), exact, se)
    assert np.all(se < 0.05)


def test_the_closed_form_kl_is_the_expected_log_ratio():
    m = tiny()
    x = torch.from_numpy(binary(8))
    with torch.no_grad():
        post = m.encoder.distribution(x)
        _, log_ratio, kl = m.infer(post, 20000)
    diff = (log_ratio - kl).double()
    assert torch.all(diff.mean(0).abs() < 5 * diff.std(0) / math.sqrt(20000) + 1e-6)


def test_the_iwae_bound_is_above_the_elbo_and_k1_is_the_elbo():
    m = tiny()
    x = torch.from_numpy(binary(64))
    with torch.no_grad():
        torch.manual_seed(3)
        lw1 = m.log_weights(x, 1)[0]
        torch.manual_seed(3)
        z1, log_ratio, _ = m.infer(m.encoder.distribution(x), 1)
        direct = m._likelihood().log_prob(x, m.bottom_logits(z1)) - log_ratio
        assert torch.allclose(lw1, direct[0])
        bounds = [float((torch.logsumexp(m.log_weights(x, k), 0) - math.log(k)).mean()) for k in (1, 10, 200)]
    assert bounds[0] < bounds[1] < bounds[2]


def test_it_trains_resumes_samples_traverses_and_exports(tmp_path, capsys):
    flags = ["--model", "ladder", "--data", "mnist-mini-binary", "--latents", "8", "--layers", "32,16",
             "--code", "2", "--kl-warmup", "2", "--iw-samples", "2", "--batch-size", "256", "--seed", "3", "--quiet"]
    rc, _, err = run_cli(["train", *flags, "--epochs", "3", "--out", tmp_path / "whole"], capsys)
    assert rc == 0, err
    rc, _, err = run_cli(["train", *flags, "--epochs", "2", "--out", tmp_path / "part"], capsys)
    assert rc == 0, err
    rc, _, err = run_cli(["train", *flags, "--epochs", "3", "--resume", "--out", tmp_path / "part"], capsys)
    assert rc == 0, err
    for name in ("model.safetensors", "last/model.safetensors"):
        assert (tmp_path / "part" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    m = aekit.load(tmp_path / "whole")
    assert isinstance(m, LadderVAE) and m.sizes == [8, 2]
    a, b = sample(m, 6, 0.7, seed=1), sample(m, 6, 0.7, seed=1)
    assert a.shape == (6, 1, 28, 28) and a.tobytes() == b.tobytes() and a.min() >= 0 and a.max() <= 1
    assert sample(m, 6, 0.7, seed=2).tobytes() != a.tobytes()  # the lower layer is drawn, seeded
    assert traverse(m, [0, 1], steps=4).shape == (2, 4, 1, 28, 28)
    for cmd in (["nll", tmp_path / "whole", "--samples", "20", "--json"],
                ["sample", tmp_path / "whole", "--n", "4", "--out", tmp_path / "s.png"],
                ["latent-map", tmp_path / "whole", "--out", tmp_path / "map.png"],
                ["export", tmp_path / "whole", "--part", "full", "--format", "torchscript", "--out", tmp_path / "f.pt"],
                ["anomaly", tmp_path / "whole", "--data", "mnist-mini-binary"]):
        rc, _, err = run_cli([str(c) for c in cmd], capsys)
        assert rc == 0, (cmd[0], err)
    full = torch.jit.load(str(tmp_path / "f.pt"))
    x = torch.from_numpy(binary(5, 784)).reshape(5, 1, 28, 28)
    assert torch.allclose(full(x), torch.from_numpy(m.reconstruct(x.numpy())), atol=1e-5)


def test_a_ladder_reconstruction_uses_every_layers_message():
    """The posterior-mean path differs from decoding the top code alone (the lower layer's bottom-up
    message counts), and is deterministic."""
    m = tiny()
    x = binary(10)
    r = m.reconstruct(x)
    assert r.tobytes() == m.reconstruct(x).tobytes()
    assert not np.allclose(r, m.decode(m.encode(x)), atol=1e-4)


@pytest.mark.parametrize(("layers", "latents", "msg"), [
    ([16], [4], "one width per stochastic layer"), ([16, 8], [], "at least one stochastic layer")])
def test_bad_shapes_are_one_line(layers, latents, msg):
    with pytest.raises(aekit.AekitError, match=msg):
        LadderVAE((12,), code=3, latents=latents, layers=layers)

"""The variational family: its closed forms, its bounds, its likelihood estimator and its samples.

Small synthetic data and tiny models throughout, so that each test takes a few seconds on two cores.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aekit.config import TrainConfig
from aekit.data.dataset import Split
from aekit.errors import AekitError
from aekit.models.posterior import DiagonalGaussian, kl_diagonal, mixture_log_prob
from aekit.registry import create_model
from aekit.tasks import generate as gen
from aekit.training.loop import fit


def vae(shape=(20,), value_range="unit", seed=0, **kw):
    torch.manual_seed(seed)
    m = create_model("vae", shape, **{"code": 2, "layers": [32], **kw})
    m.resolve_output(value_range)
    return m


def binary_data(n=512, d=20, k=6, flip=0.08, seed=0):
    """Binary rows: one of ``k`` random prototypes with a share ``flip`` of its bits flipped; labels."""
    rng = np.random.default_rng(seed)
    protos = rng.random((k, d)) < 0.5
    y = rng.integers(0, k, n)
    x = protos[y] ^ (rng.random((n, d)) < flip)
    return x.astype(np.float32), y, protos.astype(np.float32)


def train(model, x, steps=400, lr=1e-2, labels=None):
    """Full-batch Adam on the model's own loss."""
    xt = torch.from_numpy(x)
    lab = None if labels is None else torch.from_numpy(labels)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        model(xt, labels=lab).loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained():
    x, _, _ = binary_data()
    return train(vae(), x), x


# --- closed forms ---------------------------------------------------------------------------------
def test_kl_of_diagonal_gaussians_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    d = 4
    q = DiagonalGaussian(torch.randn(d, generator=g, dtype=torch.float64),
                         torch.randn(d, generator=g, dtype=torch.float64) * 0.5)
    p = DiagonalGaussian(torch.randn(d, generator=g, dtype=torch.float64),
                         torch.randn(d, generator=g, dtype=torch.float64) * 0.5)
    z = q.rsample(1_000_000, g)
    ratio = q.log_prob(z) - p.log_prob(z)
    closed = kl_diagonal(q, p).sum()
    se = ratio.std() / math.sqrt(len(ratio))
    assert abs(ratio.mean() - closed) < 4 * se and se < 0.005
    # against the standard normal, both closed forms agree, and the mixture of one component is it
    std = DiagonalGaussian(torch.zeros(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64))
    torch.testing.assert_close(kl_diagonal(q, std), q.kl_standard())
    torch.testing.assert_close(mixture_log_prob(z[:100], DiagonalGaussian(p.mean[None], p.logvar[None])),
                               p.log_prob(z[:100]))


def test_mixture_log_prob_matches_direct_sum():
    g = torch.Generator().manual_seed(1)
    comps = DiagonalGaussian(torch.randn(7, 3, generator=g, dtype=torch.float64),
                             torch.randn(7, 3, generator=g, dtype=torch.float64))
    z = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    direct = torch.logsumexp(comps.log_prob(z[..., None, :]), -1) - math.log(7)
    torch.testing.assert_close(mixture_log_prob(z, comps), direct)


# --- bounds -----------------------------------------------------------------------------------------
def test_iwae_bound_is_above_the_elbo_and_grows_with_k(trained):
    model, x = trained
    elbo = gen.elbo_terms(model, x, seed=3)["elbo"]
    bounds = {k: gen.log_likelihood(model, x, samples=k, seed=3).mean() for k in (1, 5, 50, 500)}
    # L_1 is the ELBO with the KL estimated at the sample (here: in closed form): equal in expectation
    assert abs(bounds[1] - elbo) < 0.1
    assert elbo < bounds[5] < bounds[50] < bounds[500]
    assert bounds[500] - elbo > 0.05  # a gap the test can see, not rounding


def test_iwae_with_one_sample_is_the_elbo_with_the_same_noise():
    x, _, _ = binary_data(n=64)
    model = vae(prior="vamp:4")  # its KL is estimated at the sampled z, as a one-sample IWAE bound's
    ll = gen.log_likelihood(model, x, samples=1, seed=5)
    np.testing.assert_allclose(ll.mean(), gen.elbo_terms(model, x, seed=5)["elbo"], rtol=1e-6)
    torch.manual_seed(7)
    with torch.no_grad():
        loss = model(torch.from_numpy(x)).loss
    torch.manual_seed(7)
    with torch.no_grad():
        lw = model.log_weights(torch.from_numpy(x), 1)
    torch.testing.assert_close(loss, -lw.mean())


def test_training_loss_is_the_iwae_bound_with_k_samples():
    x, _, _ = binary_data(n=32)
    model = vae(iw_samples=8)
    xt = torch.from_numpy(x)
    torch.manual_seed(2)
    loss = model(xt).loss
    torch.manual_seed(2)
    lw = model.log_weights(xt, 8)
    torch.testing.assert_close(loss, -(torch.logsumexp(lw, 0) - math.log(8)).mean())


def test_beta_free_bits_and_warmup_weight_the_kl():
    x, _, _ = binary_data(n=32)
    xt = torch.from_numpy(x)

    def loss_and_terms(model):
        torch.manual_seed(4)
        out = model(xt)
        return out.loss, out.terms

    loss, t = loss_and_terms(vae(beta=4.0))
    torch.testing.assert_close(loss, t["recon"] + 4.0 * t["kl"])
    model = vae(kl_warmup=4)
    model.begin_epoch(1, 10)
    assert model.kl_weight == 0.25
    loss, t = loss_and_terms(model)
    torch.testing.assert_close(loss, t["recon"] + 0.25 * t["kl"])
    model.begin_epoch(0, 10)
    loss, t = loss_and_terms(model)
    torch.testing.assert_close(loss, t["recon"])
    model.begin_epoch(9, 10)
    assert model.kl_weight == 1.0
    # an untrained model's KL per dimension is far below 3 nats: each of the 2 counts as 3
    loss, t = loss_and_terms(vae(free_bits=3.0))
    assert t["kl"] < 1.0
    torch.testing.assert_close(loss, t["recon"] + 6.0)
    # evaluation reports the plain ELBO whatever the training options
    with torch.no_grad():
        torch.manual_seed(4)
        plain = vae(beta=4.0, free_bits=3.0)(xt)
    torch.testing.assert_close(plain.loss, plain.terms["recon"] + plain.terms["kl"])


# --- the likelihood estimator against exact answers ----------------------------------------------------
def ppca_data(n=500, d=5, q=2, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(d, q)) * np.array([2.0, 1.0])
    return (rng.normal(size=(n, q)) @ w.T + 0.5 * rng.normal(size=(n, d)) + rng.normal(size=d)).astype(np.float32)


def set_to_ppca(model, w, mu, sigma2):
    """The linear Gaussian VAE with PPCA's decoder and the exact posterior: N(M^-1 W^T (x - mu), sigma2 M^-1),
    M = W^T W + sigma2 I, diagonal because ppca_fit's W has orthogonal columns."""
    q = w.shape[1]
    m_inv = np.linalg.inv(w.T @ w + sigma2 * np.eye(q))
    assert np.allclose(m_inv, np.diag(np.diag(m_inv)))
    a = m_inv @ w.T
    with torch.no_grad():
        head, lin = model.encoder.head, model.decoder.net[0]
        head.weight.zero_()
        head.weight[:q] = torch.from_numpy(a)
        head.bias[:q] = torch.from_numpy(-a @ mu)
        head.bias[q:] = torch.from_numpy(np.log(sigma2 * np.diag(m_inv)))
        lin.weight.copy_(torch.from_numpy(w))
        lin.bias.copy_(torch.from_numpy(mu))
        model.likelihood.logvar.fill_(math.log(sigma2))
    return model


def linear_gaussian_vae(d=5, q=2):
    return vae((d,), "real", code=q, layers=[], likelihood="gaussian", variance="learned")


def test_nll_estimator_is_exact_on_probabilistic_pca():
    x = ppca_data()
    w, mu, sigma2 = gen.ppca_fit(x, 2)
    exact = gen.ppca_log_likelihood(x, w, mu, sigma2)
    # With the exact posterior as proposal every importance weight is p(x): the estimate is exact,
    # to float64 rounding, and to float32 rounding (about 1e-6 of a log-density near -7) in float32.
    model = set_to_ppca(linear_gaussian_vae().double(), w, mu, sigma2)
    np.testing.assert_allclose(gen.log_likelihood(model, x.astype(np.float64), samples=64), exact, atol=1e-9)
    model = set_to_ppca(linear_gaussian_vae(), w, mu, sigma2)
    np.testing.assert_allclose(gen.log_likelihood(model, x, samples=64), exact, atol=1e-5)
    # and the closed form is the density it claims: the maximum, next to a perturbed W
    assert exact.mean() > gen.ppca_log_likelihood(x, w * 1.05, mu, sigma2).mean()


def test_trained_linear_gaussian_vae_reaches_the_ppca_maximum():
    x = ppca_data()
    w, mu, sigma2 = gen.ppca_fit(x, 2)
    best = gen.ppca_log_likelihood(x, w, mu, sigma2).mean()
    model = linear_gaussian_vae()
    xt = torch.from_numpy(x)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 1500)
    for _ in range(1500):
        opt.zero_grad()
        model(xt).loss.backward()
        opt.step()
        sched.step()
    reached = gen.log_likelihood(model, x, samples=1000).mean()
    assert abs(reached - best) < 0.1
    assert math.isclose(model.likelihood.logvar.exp().item(), sigma2, rel_tol=0.05)


def test_nll_estimator_matches_quadrature_with_a_one_number_code():
    """p(x) = integral of N(z; 0, 1) p(x|z) dz by the trapezoid rule on [-12, 12] (the prior's tail
    beyond is below 1e-32, and p(x|z) <= 1), 48,001 points: exact to far below the tolerance.
    The estimate is a mean of S importance weights; its standard error in log space is
    sd(w) / (sqrt(S) mean(w)) (delta method), and it must lie within 5 of them -- the test also
    checks that this tolerance is small (a standard error under 0.01 nat), so that it says something."""
    x, _, _ = binary_data(n=6, d=5)
    model = vae((5,), code=1, layers=[8], activation="tanh").double()
    z = torch.linspace(-12, 12, 48_001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        log_px_z = model.likelihood.log_prob(torch.from_numpy(x).double(), model.decode_logits(z[:, None]))
        log_prior = -0.5 * (z[:, 0] ** 2 + math.log(2 * math.pi))
        dens = torch.exp(log_px_z + log_prior[:, None])  # (grid, N)
        exact = torch.log(torch.trapezoid(dens, z[:, 0], dim=0)).numpy()
    s = 100_000
    est = gen.log_likelihood(model, x.astype(np.float64), samples=s, batch=20_000, seed=1)
    torch.manual_seed(1)
    with torch.no_grad():
        w = torch.exp(model.log_weights(torch.from_numpy(x).double(), s)).numpy()
    se = w.std(0) / (math.sqrt(s) * w.mean(0))
    assert se.max() < 0.01
    assert np.all(np.abs(est - exact) < 5 * se), (est - exact, se)


def test_log_likelihood_is_the_same_in_any_batching(trained):
    model, x = trained
    a = gen.log_likelihood(model, x[:20], samples=300, batch=7, seed=2)
    b = gen.log_likelihood(model, x[:20], samples=300, batch=300, seed=2)
    assert a.shape == (20,) and a.dtype == np.float64
    # different noise (the pieces draw differently), the same quantity: within the estimator's noise
    assert abs(a.mean() - b.mean()) < 0.05
    summary = gen.nll_summary(model, x[:20], samples=50)
    assert set(summary) == {"nll", "elbo", "kl", "recon", "samples", "n"} and summary["n"] == 20
    assert summary["nll"] <= -summary["elbo"] + 0.2 and summary["kl"] > 0
    assert summary["elbo"] == pytest.approx(-(summary["recon"] + summary["kl"]))


# --- samples, traversals, the manifold -------------------------------------------------------------------
def test_samples_repeat_byte_for_byte_and_temperature_scales_the_spread(trained):
    model, _ = trained
    a, b = gen.sample(model, 16, seed=11), gen.sample(model, 16, seed=11)
    assert a.shape == (16, 20) and a.dtype == np.float32 and a.tobytes() == b.tobytes()
    assert not np.array_equal(a, gen.sample(model, 16, seed=12))
    torch.manual_seed(0)
    before = torch.rand(1)
    gen.sample(model, 4)  # a task's randomness leaves the global generator alone
    torch.manual_seed(0)
    assert torch.equal(before, torch.rand(1))
    # a linear decoder: the samples' distance from the decoder's bias scales exactly with the temperature
    lin = linear_gaussian_vae()
    bias = lin.decoder.net[0].bias.detach().numpy()
    one, half = gen.sample(lin, 50, 1.0, seed=3), gen.sample(lin, 50, 0.5, seed=3)
    np.testing.assert_allclose(half - bias, 0.5 * (one - bias), atol=1e-5)
    assert gen.sample(model, 500, 0.1).std(0).mean() < gen.sample(model, 500, 1.0).std(0).mean()


def test_vamp_prior_and_conditional_models_train_and_sample():
    x, y, protos = binary_data(n=256, k=2)
    vamp = vae(prior="vamp:5")
    vamp.init_pseudo_inputs(x)
    out = vamp(torch.from_numpy(x[:8]))
    out.loss.backward()
    assert vamp.prior.pseudo.grad is not None and torch.isfinite(out.loss)
    assert gen.sample(vamp, 8, seed=0).shape == (8, 20)
    images, codes = gen.manifold(vamp, grid=4)
    assert images.shape == (4, 4, 20) and codes.shape == (4, 4, 2)
    assert (np.diff(codes[0, :, 0]) > 0).all() and (np.diff(codes[:, 0, 1]) < 0).all()

    cvae = train(vae(n_classes=2), x, steps=300, labels=y)
    for label in (0, 1):  # a sample asked for class c looks like class c's prototype
        s = gen.sample(cvae, 200, label=label, seed=0)
        dist = np.abs(s[:, None] - protos[None]).mean(-1).mean(0)
        assert dist[label] < 0.25 < dist[1 - label]
    codes = cvae.encode(x[:5], y[:5])
    assert codes.shape == (5, 2)
    assert cvae.reconstruct(x[:5], y[:5]).shape == (5, 20)
    with pytest.raises(AekitError, match="conditional VAE"):
        cvae.encode(x[:5])


def test_traverse_and_manifold_shapes_and_centres(trained):
    model, x = trained
    strips = gen.traverse(model, [0, 1], steps=5, span=2.0)
    assert strips.shape == (2, 5, 20)
    np.testing.assert_allclose(strips[0, 2], model.decode(np.zeros((1, 2), np.float32))[0], atol=1e-6)
    at_x = gen.traverse(model, 1, steps=3, x=x[0])
    np.testing.assert_allclose(at_x[0, 1], model.decode(model.encode(x[:1]))[0], atol=1e-6)
    images, codes = gen.manifold(model, grid=5, span=0.9)
    assert images.shape == (5, 5, 20)
    np.testing.assert_allclose(codes[0, 0], [-1.6448536, 1.6448536], atol=1e-5)  # the 5th and 95th percentile
    with pytest.raises(AekitError, match="2-number code"):
        gen.manifold(vae(code=3))


# --- bad input: one AekitError each ---------------------------------------------------------------------
@pytest.mark.parametrize(("options", "message"), [
    ({"beta": -1}, "beta must be a non-negative number"),
    ({"iw_samples": 0}, "iw_samples must be a whole number from 1 to 5,000"),
    ({"iw_samples": 10**9}, "iw_samples must be a whole number from 1 to 5,000"),
    ({"prior": "vamp:0"}, "prior vamp:K"),
    ({"prior": "vamp:5001"}, "prior vamp:K"),
    ({"prior": "gamma"}, "unknown prior"),
    ({"free_bits": float("nan")}, "free_bits must be"),
    ({"kl_warmup": -1}, "kl_warmup must be a whole number from 0"),
    ({"n_classes": -2}, "n_classes must be a whole number from 0"),
    ({"likelihood": "poisson"}, "unknown likelihood"),
    ({"variance": "sometimes"}, "unknown variance"),
    ({"variance_value": 0.0}, "variance_value must be"),
    ({"arch": "transformer"}, "unknown arch"),
    ({"free_bits": 0.5, "iw_samples": 5}, "free_bits"),
    ({"free_bits": 0.5, "prior": "vamp:3"}, "free_bits"),
    ({"n_classes": 10, "prior": "vamp:3"}, "conditional VAE"),
    ({"layers": [0]}, "layer size"),
])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(AekitError, match=message) as err:
        create_model("vae", (20,), **options)
    assert "\n" not in str(err.value)


def test_bad_task_input_is_one_line_errors(trained):
    model, x = trained
    cvae = vae(n_classes=10)
    cases = [
        (lambda: gen.sample(model, 4, temperature=float("nan")), "temperature must be"),
        (lambda: gen.sample(model, 4, temperature=0), "temperature must be"),
        (lambda: gen.sample(cvae, 4, label=11), "label 11 is out of range"),
        (lambda: gen.sample(cvae, 4), "give a label"),
        (lambda: gen.sample(model, 4, label=3), "takes no labels"),
        (lambda: gen.sample(model, 0), "n must be"),
        (lambda: gen.log_likelihood(model, x, samples=0), "samples must be"),
        (lambda: gen.log_likelihood(model, x, samples=10**6 + 1), "samples must be"),
        (lambda: gen.traverse(model, [2]), "latent dimension"),
        (lambda: gen.traverse(model, [0], span=float("inf")), "span must be"),
        (lambda: vae(likelihood="bernoulli", value_range="real"), "bernoulli needs data in"),
        (lambda: gen.ppca_fit(x, 20), "q must be"),
    ]
    for call, message in cases:
        with pytest.raises(AekitError, match=message) as err:
            call()
        assert "\n" not in str(err.value)
    plain = create_model("mlp", (20,), code=2)
    for task in (lambda m: gen.sample(m, 4), lambda m: gen.log_likelihood(m, x), lambda m: gen.traverse(m, [0]),
                 lambda m: gen.manifold(m), lambda m: gen.nll_summary(m, x)):
        with pytest.raises(AekitError, match=r"needs a variational run \(model vae\); this run is mlp"):
            task(plain)


# --- the family in the rest of aekit -----------------------------------------------------------------------
def test_config_round_trip_rebuilds_the_resolved_model():
    model = vae((6,), "real", variance="per-value", beta=0.5)
    cfg = model.config()
    assert cfg["likelihood"] == "gaussian" and cfg["name"] == "vae"
    again = create_model("vae", tuple(cfg.pop("input_shape")), **{k: v for k, v in cfg.items() if k != "name"})
    again.load_state_dict(model.state_dict())  # strict: the same parameters, the learned variances included
    assert again.config() == model.config() and again.output == "identity"
    assert model.likelihood.logvar.shape == (6,)


def test_existing_tasks_work_on_the_posterior_mean(trained):
    model, x = trained
    codes = model.encode(x[:10])
    torch.testing.assert_close(torch.from_numpy(codes), model.posterior(torch.from_numpy(x[:10])).mean)
    rec = model.reconstruct(x[:10])
    assert rec.shape == (10, 20) and np.array_equal(rec, model.reconstruct(x[:10]))  # deterministic
    assert ((rec >= 0) & (rec <= 1)).all()


def test_training_through_the_loop_improves_the_elbo():
    x, _, _ = binary_data(n=600, seed=1)
    model = vae(layers=[64], code=4)
    cfg = TrainConfig(epochs=4, batch_size=64, lr=3e-3, seed=0)
    res = fit(model, Split(x[:500]), Split(x[500:]), cfg, progress=False)
    losses = [row["val_loss"] for row in res.history]
    assert losses[-1] < losses[0] - 1.0, losses  # the validation loss is the negative ELBO, in nats
    assert gen.elbo_terms(model, x[500:])["elbo"] > -losses[0]


def test_on_the_test_device(device):
    """Forward, backward, the estimator and seeded samples on the device the suite runs on (--device)."""
    x, y, _ = binary_data(n=64)
    model = vae(n_classes=6).to(device)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    out = model(xt, labels=yt)
    out.loss.backward()
    assert out.recon.device.type == device and torch.isfinite(out.loss)
    assert all(p.grad is not None for p in model.parameters())
    with torch.autocast(device, dtype=torch.bfloat16):  # mixed precision: the loss stays fp32
        mixed = model(xt, labels=yt)
    assert mixed.loss.dtype == torch.float32 and torch.isfinite(mixed.loss)
    a, b = gen.sample(model, 8, label=2, seed=4), gen.sample(model, 8, label=2, seed=4)
    assert a.tobytes() == b.tobytes()
    ll = gen.log_likelihood(model, x[:8], samples=64, labels=y[:8])
    assert ll.shape == (8,) and np.isfinite(ll).all()

"""What a user does with a variational run, from the CLI and the Python API: nll, sample, traverse, the
decoded manifold of latent-map, and encode, probe, interpolate, anomaly and export on VAE runs.

Three module-scoped runs on mnist-mini (tests/vaeruns.py): a VAE with a 2-number code trained by
``aekit train --model vae``, a conditional VAE and a plain autoencoder; a few seconds each on two cores.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import aekit
from aekit.tasks import generate
from tests.badinput import run_cli
from tests.vaeruns import conditional_run, plain_run, vae_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("vae-use")
    return {"vae": vae_run(folder), "cvae": conditional_run(folder), "plain": plain_run(folder)}


@pytest.fixture(scope="module")
def test_x() -> tuple[np.ndarray, np.ndarray]:
    from aekit.data.sources import load_dataset

    ds = load_dataset("mnist-mini")
    return ds.test.x, ds.test.y


# --- nll ---------------------------------------------------------------------------------------------
def test_nll_from_python_and_the_cli_agree(runs, capsys):
    run = runs["vae"]
    r = aekit.nll(run, samples=20, progress=False)
    assert r["n"] == 1000 and r["samples"] == 20 and r["split"] == "test" and r["data"] == "mnist-mini"
    assert r["values"] == generate.GREY_LEVELS and r["binarisation"] is None and r["conditional"] is False
    assert r["elbo"] == pytest.approx(-(r["recon"] + r["kl"])) and r["kl"] > 0
    assert r["nll"] < -r["elbo"]  # L_20 is a tighter bound than the ELBO (on 1,000 digits, far beyond the noise)
    # the CLI prints the same figure (same seed): --json keeps stdout pure JSON, progress goes to stderr
    rc, out, err = run_cli(["nll", run, "--samples", "20", "--json"], capsys)
    assert rc == 0 and json.loads(out)["nll"] == r["nll"]
    assert "nll: 20 importance samples for each of 1,000 test samples" in err
    rc, out, err = run_cli(["nll", run, "--samples", "20", "--split", "val", "--quiet"], capsys)
    assert rc == 0 and err == ""
    assert "mnist-mini, val split, 600 samples; values: grey levels (not a likelihood of binary data)" in out
    assert "NLL (20 importance samples, seed 0)" in out and "= reconstruction" in out
    # a model returned by aekit.load keeps its run's data; more samples, a tighter bound
    model = aekit.load(run)
    assert aekit.nll(model, samples=200, progress=False)["nll"] < r["nll"] + 0.2


def test_nll_states_the_binarisation_the_data_records(runs, tmp_path):
    run = Path(shutil.copytree(runs["vae"], tmp_path / "binarised"))
    info = json.loads((run / "config.json").read_text())
    info["data"]["binarisation"] = {"kind": "dynamic", "seed": 123}
    (run / "config.json").write_text(json.dumps(info))
    r = aekit.nll(run, samples=5, progress=False)
    assert r["binarisation"] == {"kind": "dynamic", "seed": 123}
    assert r["values"] == "binary, dynamically binarised (validation and test drawn once, seed 123)"
    # a record of another kind is shown as it is, escaped (it is text from a file)
    assert generate.data_values({"binarisation": {"kind": "static\n"}}) == (
        "binarised (kind static\\n)", {"kind": "static\n"})
    assert generate.data_values({"value_range": "real"})[0] == generate.REAL_VALUES


def test_nll_of_a_conditional_vae_is_given_the_labels(runs, capsys):
    r = aekit.nll(runs["cvae"], samples=10, progress=False)
    assert r["conditional"] is True and np.isfinite(r["nll"]) and r["n"] == 1000
    rc, out, _ = run_cli(["nll", runs["cvae"], "--samples", "10", "--quiet"], capsys)
    assert rc == 0 and "each given its label" in out


# --- sample ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".png", ".npy", ".svg", ".pdf"])
def test_samples_with_one_seed_are_byte_identical_files(runs, tmp_path, capsys, suffix):
    def write(name: str, seed: str) -> bytes:
        path = tmp_path / f"{name}{suffix}"
        rc, out, _ = run_cli(["sample", runs["vae"], "--n", "16", "--seed", seed, "--temperature", "0.8",
                              "--out", path], capsys)
        assert rc == 0 and out.strip() == f"wrote {path}"
        return path.read_bytes()

    a, b = write("a", "7"), write("b", "7")
    assert a == b
    assert write("c", "8") != a


def test_sample_from_python_is_what_the_cli_writes(runs, tmp_path, capsys):
    path = tmp_path / "s.npy"
    assert run_cli(["sample", runs["vae"], "--n", "10", "--seed", "3", "--out", path], capsys)[0] == 0
    images = aekit.sample(runs["vae"], n=10, seed=3)
    assert images.shape == (10, 1, 28, 28) and images.dtype == np.float32
    assert np.load(path).tobytes() == images.tobytes()
    assert ((images >= 0) & (images <= 1)).all()  # a Bernoulli likelihood's mean: pixel probabilities
    cold = aekit.sample(runs["vae"], n=200, temperature=0.1, seed=3)
    assert cold.std(0).mean() < aekit.sample(runs["vae"], n=200, seed=3).std(0).mean()
    # the picture is a near-square grid: 10 samples in lines of 4 under one title
    out = aekit.sample(runs["vae"], n=10, seed=3, out=tmp_path / "grid.png")
    assert out.tobytes() == images.tobytes() and (tmp_path / "grid.png").stat().st_size > 0


def test_conditional_samples_follow_the_label(runs, tmp_path, capsys):
    """Samples asked for digit d are classified as d by 5-NN on the training digits: 94% on average at
    temperature 0.5 after the run's 300 steps (5s look like 3s and 8s half the time); chance is 10%."""
    from sklearn.neighbors import KNeighborsClassifier

    from aekit.data.sources import load_dataset

    train = load_dataset("mnist-mini").train
    knn = KNeighborsClassifier(5).fit(train.x.reshape(len(train), -1) / 255, train.y)
    share = [float((knn.predict(aekit.sample(runs["cvae"], n=50, label=d, temperature=0.5, seed=1)
                                .reshape(50, -1)) == d).mean()) for d in range(10)]
    assert np.mean(share) >= 0.8 and min(share) >= 0.3, share
    rc, _, _ = run_cli(["sample", runs["cvae"], "--label", "3", "--n", "8", "--out", tmp_path / "three.png"], capsys)
    assert rc == 0 and (tmp_path / "three.png").is_file()


# --- traverse ----------------------------------------------------------------------------------------
def test_traverse_sweeps_one_dimension_about_the_prior_mean(runs, tmp_path, capsys):
    path = tmp_path / "t.npy"
    rc, _, _ = run_cli(["traverse", runs["vae"], "--dims", "1,0", "--steps", "5", "--span", "2", "--out", path],
                       capsys)
    assert rc == 0
    strips = np.load(path)
    assert strips.shape == (2, 5, 1, 28, 28)
    model = aekit.load(runs["vae"])
    centre = model.decode(np.zeros((1, 2), np.float32))[0]
    np.testing.assert_allclose(strips[:, 2], np.stack([centre, centre]), atol=1e-6)  # the middle: z at the mean
    np.testing.assert_allclose(strips[0, 0], model.decode(np.array([[0.0, -2.0]], np.float32))[0], atol=1e-6)
    # the default: every dimension up to 10, 9 steps of +-3 s.d.
    assert aekit.traverse(runs["vae"]).shape == (2, 9, 1, 28, 28)
    assert run_cli(["traverse", runs["vae"], "--out", tmp_path / "t.png"], capsys)[0] == 0
    assert aekit.traverse(runs["cvae"], dims=[0], steps=3, label=4, out=tmp_path / "c.png").shape == (1, 3, 1, 28, 28)


# --- latent-map: the decoded manifold ------------------------------------------------------------------
def test_latent_map_of_a_2d_code_draws_the_decoded_manifold(runs, tmp_path, test_x, capsys):
    from PIL import Image

    from aekit.tasks.represent import decoded_grid

    x, _ = test_x
    vae, plain = aekit.load(runs["vae"]), aekit.load(runs["plain"])
    images, codes, title = decoded_grid(vae, vae.encode(x))
    assert images.shape == (20, 20, 1, 28, 28) and "prior" in title
    np.testing.assert_allclose(codes[0, 0], [-1.6448536, 1.6448536], atol=1e-5)  # the 5th and 95th percentiles
    np.testing.assert_allclose(images[0, 0], vae.decode(codes[0, :1])[0], atol=1e-6)
    # a plain autoencoder: even steps over the central 90% of its codes
    pcodes = plain.encode(x)
    images, codes, title = decoded_grid(plain, pcodes)
    lo, hi = np.percentile(pcodes.astype(np.float64), [5, 95], axis=0)
    np.testing.assert_allclose(codes[-1, 0], lo, rtol=1e-5)
    np.testing.assert_allclose(codes[0, -1], hi, rtol=1e-5)
    np.testing.assert_allclose(np.diff(codes[0, :, 0]), (hi[0] - lo[0]) / 19, rtol=1e-4)
    assert "codes'" in title
    assert decoded_grid(aekit.load(runs["cvae"]), pcodes) is None  # its decoder needs a label too
    for which in ("vae", "plain", "cvae"):
        path = tmp_path / f"{which}.png"
        assert run_cli(["latent-map", runs[which], "--out", path], capsys)[0] == 0
        width = Image.open(path).size[0]
        assert (width > 800) == (which != "cvae"), (which, width)  # two panels (about 1,000 px), or the scatter (600)


# --- the existing commands on VAE runs ------------------------------------------------------------------
def test_encode_probe_and_interpolate_use_the_posterior_mean(runs, tmp_path, test_x, capsys):
    x, y = test_x
    model = aekit.load(runs["vae"])
    assert run_cli(["encode", runs["vae"], "--out", tmp_path / "c.npy"], capsys)[0] == 0
    with torch.no_grad():
        mean = model.posterior(torch.from_numpy(x[:50].astype(np.float32) / 255)).mean.numpy()
    np.testing.assert_allclose(np.load(tmp_path / "c.npy")[:50], mean, atol=1e-6)
    # a conditional VAE encodes each sample with its label
    codes, labels = aekit.encode(runs["cvae"])
    np.testing.assert_array_equal(codes, aekit.load(runs["cvae"]).encode(x, y))
    assert np.array_equal(labels, y)
    r = aekit.probe(runs["vae"], max_train=300, progress=False)
    assert r["code_size"] == 2 and 0.1 < r["probes"]["autoencoder"]["logistic"] <= 1
    assert run_cli(["interpolate", runs["vae"], "--from", "0", "--to", "1", "--out", tmp_path / "i.png"],
                   capsys)[0] == 0


def test_anomaly_score_of_a_vae_is_the_reconstruction_error_at_the_posterior_mean(runs, tmp_path, test_x, capsys):
    x, _ = test_x
    model = aekit.load(runs["vae"])
    path = tmp_path / "scores.csv"
    rc, _, _ = run_cli(["anomaly", runs["vae"], "--out", path], capsys)  # training stored a threshold
    assert rc == 0
    got = np.loadtxt(path, delimiter=",", skiprows=1, usecols=1)
    xf = x.astype(np.float32) / 255
    with torch.no_grad():
        at_mean = model.decode(model.posterior(torch.from_numpy(xf)).mean).numpy()
    want = ((xf - at_mean) ** 2).reshape(len(x), -1).sum(1)
    np.testing.assert_allclose(got, want, rtol=1e-5)  # the CSV keeps 6 significant digits
    r = aekit.anomaly(runs["vae"])
    assert r["threshold_stored"] and r["score_definition"] == "squared error summed over values"


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_of_a_vae(runs, tmp_path, test_x, fmt):
    """The encoder gives the posterior mean and log-variance, the decoder takes z; every part is checked
    against aekit by export itself and here once more, and --check-only accepts what was written."""
    from aekit.export import run_file

    x, _ = test_x
    model = aekit.load(runs["vae"])
    xf = np.ascontiguousarray(x[:20].astype(np.float32) / 255)
    with torch.no_grad():
        post = model.posterior(torch.from_numpy(xf))
    suffix = "onnx" if fmt == "onnx" else "pt"
    for part in ("encoder", "decoder", "full", "score"):
        out = tmp_path / f"{part}.{suffix}"
        r = aekit.export(runs["vae"], format=fmt, part=part, out=out)
        assert r["metadata"]["likelihood"] == "bernoulli" and r["metadata"]["model"] == "vae"
        assert max(r["max_checked_diff"].values()) <= 1e-5
        assert aekit.export(runs["vae"], format=fmt, part=part, out=out, check_only=True)["checked_samples"] == 1000
        if part == "encoder":
            assert r["metadata"]["outputs"] == "code, logvar"
            mean, logvar = run_file(out, fmt, xf, 1 << 30)
            np.testing.assert_allclose(mean, post.mean.numpy(), atol=1e-5)
            np.testing.assert_allclose(logvar, post.logvar.numpy(), atol=1e-5)
        if part == "decoder":
            z = np.array([[0.0, 0.0], [1.0, -1.0]], np.float32)
            (images,) = run_file(out, fmt, z, 1 << 30)
            np.testing.assert_allclose(images, model.decode(z), atol=1e-5)

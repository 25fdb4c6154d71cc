"""The latent density (aekit.tasks.density) and ``aekit anomaly --score latent``: the mixture scores as
scikit-learn's does, survives safetensors and refuses a tampered file; the command fits it on the run's
training codes, caches it in the run folder for these weights, and keeps a latent threshold apart from an
error one."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import aekit
from aekit.errors import AekitError
from aekit.tasks.density import DENSITY_FILE, MAX_COMPONENTS, LatentDensity, codes_for, load_cached
from tests.badinput import assert_one_line_error, run_cli


def blobs(n: int = 400, d: int = 3, seed: int = 0) -> np.ndarray:
    """Codes from three well separated clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(3, d))
    return centres[rng.integers(0, 3, n)] + rng.normal(size=(n, d))


# --- the mixture ---------------------------------------------------------------------------------------


def test_score_is_minus_sklearns_log_density():
    from sklearn.mixture import GaussianMixture

    from aekit.tasks.density import REG_COVAR

    codes, probe = blobs(), blobs(50, seed=1) * 1.5
    d = LatentDensity.fit(codes, 4)
    gm = GaussianMixture(4, covariance_type="full", reg_covar=REG_COVAR, random_state=0).fit(codes)
    np.testing.assert_allclose(d.score(probe), -gm.score_samples(probe), rtol=1e-5, atol=1e-5)
    # far from every cluster is more abnormal than the middle of one
    assert d.score(np.full((1, 3), 50.0))[0] > d.score(d.means[:1])[0]


def test_fewer_components_where_there_are_few_codes():
    assert len(LatentDensity.fit(blobs(6), 10).weights) == 3  # each component needs two rows of its own


def test_save_load_round_trip(tmp_path):
    d = LatentDensity.fit(blobs(), 3)
    d.save(tmp_path / "d.safetensors", {"components": "3"})
    back, meta = LatentDensity.read(tmp_path / "d.safetensors", 3)
    for a, b in zip(back.tensors().values(), d.tensors().values(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert meta == {"components": "3"}
    np.testing.assert_array_equal(back.score(blobs(20, seed=2)), d.score(blobs(20, seed=2)))


def tampered_arrays(d: LatentDensity, case: str) -> dict[str, np.ndarray]:
    t = {k: v.copy() for k, v in d.tensors().items()}
    if case == "wrong-shapes":
        t["means"] = t["means"][:, :2]
    elif case == "nan":
        t["means"][0, 0] = np.nan
    elif case == "negative-weight":
        t["weights"][0] = -t["weights"][0]
    elif case == "weights-not-summing-to-one":
        t["weights"] = t["weights"] * 2
    elif case == "extra-tensor":
        t["covariances"] = np.zeros(3)
    elif case == "missing-tensor":
        t.pop("prec_chol")
    elif case == "not-triangular":
        t["prec_chol"][0, 2, 0] = 1.0
    elif case == "zero-diagonal":
        t["prec_chol"][0, 1, 1] = 0.0
    return t


TAMPERED = [("wrong-shapes", "do not fit together"), ("nan", "not valid"), ("negative-weight", "not valid"),
            ("weights-not-summing-to-one", "not valid"), ("extra-tensor", "not a latent density"),
            ("missing-tensor", "not a latent density"), ("not-triangular", "not valid"), ("zero-diagonal", "not valid")]


@pytest.mark.parametrize(("case", "message"), TAMPERED, ids=[t[0] for t in TAMPERED])
def test_tampered_file_is_one_error(case, message, tmp_path):
    d = LatentDensity.fit(blobs(), 3)
    save_file(tampered_arrays(d, case), str(tmp_path / "d.safetensors"))
    with pytest.raises(AekitError, match=message) as e:
        LatentDensity.load(tmp_path / "d.safetensors")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("content", "message"), [
    (b"not safetensors at all, just text", "not a safetensors file"),
    (b"\xff" * 8 + b"{}", "not a safetensors file"),
    (b"", "not a safetensors file"),
])
def test_a_file_that_is_no_safetensors_is_one_error(content, message, tmp_path):
    (tmp_path / "d.safetensors").write_bytes(content)
    with pytest.raises(AekitError, match=message):
        LatentDensity.load(tmp_path / "d.safetensors")


def test_load_checks_the_code_width_and_the_size(tmp_path):
    LatentDensity.fit(blobs(), 3).save(tmp_path / "d.safetensors")
    with pytest.raises(AekitError, match="a density over 3-number codes, and the model's codes have 4"):
        LatentDensity.load(tmp_path / "d.safetensors", 4)
    os.truncate(tmp_path / "d.safetensors", 2 << 20)  # grown past what 256 components of width 3 take
    with pytest.raises(AekitError, match="larger than a latent density of 3-number codes"):
        LatentDensity.load(tmp_path / "d.safetensors", 3)
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(AekitError, match="is a folder"):
        LatentDensity.load(tmp_path / "dir.safetensors")
    with pytest.raises(AekitError, match="not found"):
        LatentDensity.load(tmp_path / "none.safetensors")


@pytest.mark.parametrize("codes", [np.zeros((1, 3)), np.zeros((0, 3)), np.zeros(5)], ids=["one", "none", "flat"])
def test_too_few_codes(codes):
    with pytest.raises(AekitError, match="needs the codes of at least 2 samples"):
        LatentDensity.fit(codes)


@pytest.mark.parametrize("k", [0, MAX_COMPONENTS + 1, 2.5, True, "10"])
def test_components_out_of_range(k):
    with pytest.raises(AekitError, match=f"density components must be a whole number from 1 to {MAX_COMPONENTS}"):
        LatentDensity.fit(blobs(), k)


def test_codes_that_are_not_finite_are_one_error():
    with pytest.raises(AekitError, match="NaN or infinite"):
        LatentDensity.fit(np.array([[0.0, 1.0], [np.inf, 0.0], [1.0, 1.0]]))


def test_a_model_without_2d_codes_is_one_error():
    class Flat:
        family, code_size = "odd", 4

        def encode(self, x: np.ndarray) -> np.ndarray:
            return np.zeros((len(x), 2, 2))

    with pytest.raises(AekitError, match="the odd model's encode gives no \\(samples, code\\) array"):
        codes_for(Flat(), np.zeros((3, 5), np.float32))


def test_every_family_gives_codes_to_fit_on(mini):
    """mae (pooled tokens through a linear map) and the VAEs (posterior means) too: (n, code)."""
    from aekit.registry import create_model, list_models

    for name in list_models():
        model = create_model(name, (1, 28, 28))
        z = codes_for(model, mini.test.x[:5])
        assert z.shape == (5, model.code_size), name


# --- aekit anomaly --score latent ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("density") / "run"
    from aekit.cli import main

    assert main(["train", "--data", "mnist-mini", "--epochs", "1", "--max-steps", "5", "--code", "4", "--quiet",
                 "--out", str(d)]) == 0
    return str(d)


@pytest.fixture
def run(tiny_run, tmp_path) -> str:
    return str(shutil.copytree(tiny_run, tmp_path / "run"))


LATENT = ["--score", "latent", "--threshold", "contamination:0.05"]


def test_latent_scores_threshold_and_report(run, mini, tmp_path, capsys):
    rc, out, err = run_cli(["anomaly", run, *LATENT, "--json", "--out", tmp_path / "s.csv"], capsys)
    assert rc == 0, err
    r = json.loads(out)
    assert r["score"] == "latent" and r["threshold_rule"] == "contamination:0.05"
    assert r["score_definition"] == ("minus the log-density of the code under a 10-component Gaussian mixture "
                                     "fitted on the training codes")
    # the scores are the cached density's, of the model's codes; the threshold a quantile of the val ones
    model = aekit.load(run)
    density, meta = LatentDensity.read(Path(run) / DENSITY_FILE, model.code_size)
    assert meta["components"] == "10" and meta["data"] == "mnist-mini"
    csv = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(csv[:, 1], density.score(model.encode(mini.test.x)), rtol=1e-5, atol=1e-5)
    val = aekit.api._use(run, None, None, "val")[1]
    assert r["threshold"] == pytest.approx(float(np.quantile(density.score(model.encode(val.x)), 0.95)))
    # and the same from Python
    same = aekit.anomaly(run, score="latent", threshold="contamination:0.05")
    assert same["threshold"] == r["threshold"] and same["flagged"] == r["flagged"]
    rc, out, _ = run_cli(["anomaly", run, *LATENT], capsys)
    assert rc == 0 and "score: minus the log-density" in out


def test_the_fit_is_the_training_codes_with_seed_0(run, mini):
    aekit.anomaly(run, score="latent", threshold="contamination:0.05", components=3)
    model = aekit.load(run)
    train = aekit.api._use(run, None, None, "train")[1]
    want = LatentDensity.fit(model.encode(train.x), 3, seed=0)
    got = LatentDensity.load(Path(run) / DENSITY_FILE)
    np.testing.assert_allclose(got.means, want.means, rtol=1e-6, atol=1e-8)


def test_the_density_is_cached_for_these_weights(run, capsys):
    path = Path(run) / DENSITY_FILE
    rc, _, err = run_cli(["anomaly", run, *LATENT], capsys)
    assert rc == 0 and err.count("latent density: fitting 10 components") == 1
    first = path.stat().st_mtime_ns
    rc, _, err = run_cli(["anomaly", run, *LATENT], capsys)
    assert rc == 0 and "fitting" not in err and path.stat().st_mtime_ns == first  # read, not fitted again
    # another component count: fitted again, and said so once
    rc, _, err = run_cli(["anomaly", run, *LATENT, "--components", "3"], capsys)
    assert rc == 0 and err.count("fitted for another component count; fitting it again") == 1
    assert LatentDensity.load(path).weights.shape == (3,)
    # weights trained further or replaced: fitted again for them
    from safetensors.torch import load_file
    from safetensors.torch import save_file as save_torch

    w = load_file(Path(run) / "model.safetensors")
    name = sorted(w)[0]
    w[name] = w[name] + 1e-3
    save_torch(w, Path(run) / "model.safetensors")
    rc, _, err = run_cli(["anomaly", run, *LATENT, "--components", "3"], capsys)
    assert rc == 0 and err.count("fitted for other weights") == 1, err


@pytest.mark.parametrize("damage", ["garbage", "nan", "other-width", "metadata-escape-codes"])
def test_a_damaged_cache_is_fitted_again(run, damage, capsys):
    path = Path(run) / DENSITY_FILE
    assert run_cli(["anomaly", run, *LATENT], capsys)[0] == 0
    good, meta = LatentDensity.read(path)
    if damage == "garbage":
        path.write_bytes(b"\x00" * 40)
    elif damage == "nan":
        t = good.tensors()
        t["weights"][0] = np.nan
        save_file(t, str(path), metadata=meta)
    elif damage == "other-width":
        LatentDensity.fit(blobs(d=3), 2).save(path, meta)
    else:
        good.save(path, {**meta, "data": "mnist-mini\x1b[2J"})
    rc, out, err = run_cli(["anomaly", run, *LATENT, "--json"], capsys)
    assert rc == 0 and "fitting it again" in err and "\x1b" not in err, err
    assert len(err.strip().splitlines()) == 1 and json.loads(out)["score"] == "latent"
    assert LatentDensity.read(path, 4)[1] == meta  # replaced by a good one


def test_a_cache_that_cannot_be_written_is_one_error_line(run, capsys):
    """(Tests run as root here, where a read-only folder would still be written: a folder standing
    at the cache's name makes the write fail the same way.)"""
    (Path(run) / DENSITY_FILE).mkdir()
    assert_one_line_error(["anomaly", run, *LATENT], capsys, DENSITY_FILE)


def test_maps_are_error_maps_ordered_by_the_latent_score(run, mini, tmp_path, monkeypatch, capsys):
    import aekit.tasks.anomaly as an

    seen = {}

    def spy(x, maps, s, shape, path, n=10):
        seen.update(maps=maps, s=s)
        return Path(path)

    monkeypatch.setattr(an, "error_maps", spy)
    assert run_cli(["anomaly", run, *LATENT, "--maps", tmp_path / "m.png"], capsys)[0] == 0
    model = aekit.load(run)
    np.testing.assert_allclose(seen["s"], an.latent_scores(model, mini.test.x, LatentDensity.load(
        Path(run) / DENSITY_FILE)), rtol=1e-6)
    np.testing.assert_allclose(seen["maps"], an.scores(model, mini.test.x)[1], rtol=1e-6)


def test_a_stored_threshold_is_used_only_for_its_own_score(run, tmp_path, capsys):
    # a fresh run stores training's error threshold: latent scores get the default rule instead
    rc, out, err = run_cli(["anomaly", run, "--score", "latent", "--json"], capsys)
    assert rc == 0, err
    r = json.loads(out)
    assert r["score"] == "latent" and not r["threshold_stored"] and r["threshold_rule"] == "contamination:0.01"
    # an error threshold a user saved is not applied to latent scores
    assert run_cli(["anomaly", run, "--threshold", "percentile:99", "--save-threshold"], capsys)[0] == 0
    assert_one_line_error(["anomaly", run, "--score", "latent"], capsys,
                          "the stored threshold is on the error score and this call scores by latent; pass --threshold")
    rc, out, err = run_cli(["anomaly", run, "--score", "latent", "--threshold", "fpr:0.05", "--save-threshold"],
                           capsys)
    assert rc == 0 and "threshold.json" in out, err
    rec = json.loads((Path(run) / "threshold.json").read_text())
    assert rec["score"] == "latent" and rec["components"] == 10 and "error_scale" not in rec
    rc, out, _ = run_cli(["anomaly", run, "--score", "latent", "--json"], capsys)
    r = json.loads(out)
    assert rc == 0 and r["threshold_stored"] and r["threshold"] == rec["threshold"]
    assert_one_line_error(["anomaly", run], capsys, "the stored threshold is on the latent score and this call "
                          "scores by error; pass --threshold RULE (e.g. contamination:0.01) to choose one on the error "
                          "scores, or --score latent")
    assert_one_line_error(["anomaly", run, "--score", "latent", "--components", "3"], capsys,
                          "the stored threshold is for a 10-component density, not 3")
    assert run_cli(["anomaly", run, "--threshold", "contamination:0.01"], capsys)[0] == 0  # chosen now: fine
    # an exported score part computes the reconstruction error: a latent threshold is refused, a rule is not
    assert_one_line_error(["export", run, "--part", "score", "--format", "torchscript", "--out", tmp_path / "s.pt"],
                          capsys, "exported score part computes the reconstruction error")
    rc, _, err = run_cli(["export", run, "--part", "score", "--format", "torchscript", "--out", tmp_path / "s.pt",
                          "--threshold", "contamination:0.01", "--no-check"], capsys)
    assert rc == 0, err


def test_serve_keeps_the_error_score_beside_a_latent_threshold(run, capsys):
    from aekit.serve.runs import RunStore
    from aekit.tasks.anomaly import DEFAULT_RULE, run_threshold

    assert run_cli(["anomaly", run, *LATENT, "--save-threshold"], capsys)[0] == 0
    s = RunStore({"r": Path(run).resolve()}).get("r")
    want = run_threshold(aekit.api.opened(run, ("autoencoder",)), DEFAULT_RULE)
    assert s.threshold == pytest.approx(want["threshold"]) and s.threshold > 0


def test_load_cached_never_echoes_the_file(tmp_path):
    path = tmp_path / DENSITY_FILE
    assert load_cached(path, {"components": "1"}, 3) == (None, "none cached")
    LatentDensity.fit(blobs(), 1).save(path, {"components": "\x1b[31mred"})
    d, why = load_cached(path, {"components": "1"}, 3)
    assert d is None and "\x1b" not in why and "another component count" in why

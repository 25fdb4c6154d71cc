"""Estimators that persist: pickle, joblib, clone and save/load give back the same outputs, and the
detector's score is aekit's one anomaly score with the same threshold rules as ``aekit anomaly``."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone

from aekit.estimator import AutoencoderOutlierDetector, AutoencoderTransformer


def data() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.normal(size=(120, 6)) @ rng.normal(size=(6, 6))).astype(np.float32)


@pytest.fixture(scope="module")
def fitted() -> tuple[AutoencoderTransformer, AutoencoderOutlierDetector]:
    X = data()
    t = AutoencoderTransformer(code=2, layers=(8,), epochs=3, random_state=0).fit(X)
    d = AutoencoderOutlierDetector(code=2, epochs=3, threshold="percentile:95", random_state=0).fit(X)
    return t, d


def outputs(est: object, X: np.ndarray) -> list[np.ndarray]:
    if isinstance(est, AutoencoderTransformer):
        return [est.transform(X), est.inverse_transform(est.transform(X)), np.array(est.score(X))]
    return [est.score_samples(X), est.decision_function(X), est.predict(X)]


@pytest.mark.parametrize("which", [0, 1], ids=["transformer", "detector"])
def test_pickle_joblib_save_load_round_trip(fitted, which, tmp_path):
    est, X = fitted[which], data()
    want = outputs(est, X)
    joblib.dump(est, tmp_path / "e.joblib")
    copies = [pickle.loads(pickle.dumps(est)), joblib.load(tmp_path / "e.joblib"),
              type(est).load(est.save(tmp_path / "run"))]
    for c in copies:
        for a, b in zip(outputs(c, X), want, strict=True):
            np.testing.assert_array_equal(a, b)
        assert c.get_params() == est.get_params()
    assert b"torch.nn" not in pickle.dumps(est)  # the module travels as safetensors bytes
    assert (tmp_path / "run" / "model.safetensors").is_file() and (tmp_path / "run" / "config.json").is_file()


def test_clone_refits_to_the_same_outputs(fitted):
    for est in fitted:
        again = clone(est).fit(data())
        for a, b in zip(outputs(again, data()), outputs(est, data()), strict=True):
            np.testing.assert_array_equal(a, b)


def test_model_is_exposed_and_load_refuses_other_folders(fitted, tmp_path):
    from aekit.errors import AekitError
    from aekit.models.base import Autoencoder

    t, d = fitted
    assert isinstance(t.model_, Autoencoder) and t.model_.code_size == 2
    d.save(tmp_path / "det")
    with pytest.raises(AekitError, match="not a saved AutoencoderTransformer"):
        AutoencoderTransformer.load(tmp_path / "det")
    with pytest.raises(AekitError, match="not empty"):
        d.save(tmp_path / "det")


def test_detector_score_is_the_one_anomaly_score(fitted):
    from aekit.tasks.anomaly import SCALE_FLOOR, score_of

    _, d = fitted
    X = data()  # features outside [0, 1]: each feature's error over its mean on the training rows
    err = np.square(X.astype(np.float64) - d._infer(X, "reconstruct"))
    m = err.mean(0)
    np.testing.assert_allclose(d.scale_, np.maximum(m, SCALE_FLOOR * m.mean() + 1e-12))
    assert d.scale_.min() > 0 and not np.allclose(score_of(err, d.scale_), score_of(err))  # it changes scores
    np.testing.assert_allclose(-d.score_samples(X), (err / d.scale_).sum(1))
    np.testing.assert_allclose(-d.score_samples(X), score_of(err, d.scale_))
    assert -d.offset_ == pytest.approx(np.quantile(score_of(err, d.scale_), 0.95))


def test_detector_scores_pixels_as_they_are():
    from aekit.tasks.anomaly import score_of

    X = np.random.default_rng(1).uniform(size=(80, 12)).astype(np.float32)  # values in [0, 1]
    d = AutoencoderOutlierDetector(code=2, epochs=2, random_state=0).fit(X)
    assert d.scale_ is None
    np.testing.assert_allclose(-d.score_samples(X), score_of(np.square(X.astype(np.float64)
                                                                       - d._infer(X, "reconstruct"))))


@pytest.mark.parametrize("rule", ["percentile:101", "fpr:0", "contamination:0.6", "median:3"])
def test_detector_refuses_bad_thresholds(rule):
    with pytest.raises(ValueError, match="threshold"):
        AutoencoderOutlierDetector(epochs=1, threshold=rule).fit(data())


def test_detector_fpr_with_labels():
    X = data()
    y = np.r_[np.ones(100), -np.ones(20)]
    d = AutoencoderOutlierDetector(code=2, epochs=3, threshold="fpr:0.1", random_state=0).fit(X, y)
    assert (d.predict(X[:100]) == -1).mean() == pytest.approx(0.1, abs=0.02)


@pytest.mark.parametrize(("n_features", "sizes"), [(3, (1, [4])), (30, (7, [28])), (784, (16, [64]))])
def test_detector_defaults_size_the_network_from_the_features(n_features, sizes):
    from aekit.estimator import auto_sizes

    assert auto_sizes(n_features, "auto", "auto") == sizes
    assert auto_sizes(n_features, 5, "auto") == (5, [20]) and auto_sizes(n_features, "auto", (8,))[1] == [8]


def test_default_detector_round_trips_with_auto_sizes(tmp_path):
    X = data()
    d = AutoencoderOutlierDetector(epochs=2, random_state=0).fit(X)
    assert d.get_params()["code"] == "auto" and d.model_.code_size == 1  # 6 features: a quarter, at least 1
    back = AutoencoderOutlierDetector.load(d.save(tmp_path / "det"))
    assert back.get_params() == d.get_params()
    np.testing.assert_array_equal(back.score_samples(X), d.score_samples(X))
    t = AutoencoderTransformer(code="auto", layers="auto", epochs=2, random_state=0).fit(X)
    assert t.transform(X).shape == (len(X), 1) and t.get_feature_names_out().tolist() == ["autoencodertransformer0"]
    with pytest.raises(ValueError, match="code must be a whole number or 'auto'"):
        AutoencoderOutlierDetector(code="big").fit(X)


# --- a saved folder edited or damaged since: one AekitError naming the value, at load ----------------

def tampered(est: object, tmp_path, edit) -> str:
    """``est`` saved to tmp_path/"e", its config.json's estimator table changed by ``edit``."""
    import json

    d = est.save(tmp_path / "e")
    info = json.loads((d / "config.json").read_text())
    edit(info["estimator"])
    (d / "config.json").write_text(json.dumps(info))  # json writes NaN as NaN, as a hand edit might
    return str(d)


def fitted_value(key: str, value: object):
    return lambda e: e["fitted"].__setitem__(key, value)


def param(key: str, value: object):
    return lambda e: e["params"].__setitem__(key, value)


TAMPERED = [
    ("unknown-parameter", param("bogus", 1), "has no parameter bogus; its parameters: activation"),
    ("no-params", lambda e: e.pop("params"), r"estimator\.params must be a table, got None"),
    ("params-list", lambda e: e.__setitem__("params", [1]), r"estimator\.params must be a table"),
    ("fitted-text", lambda e: e.__setitem__("fitted", "x"), r"estimator\.fitted must be a table"),
    ("offset-text", fitted_value("offset_", "high"), r"offset_ must be a finite number <= 0 .*got 'high'"),
    ("offset-nan", fitted_value("offset_", float("nan")), r"offset_ must be a finite number <= 0 .*got nan"),
    ("offset-positive", fitted_value("offset_", 5.0), r"offset_ must be a finite number <= 0"),  # flags every row
    ("offset-huge-integer", fitted_value("offset_", -(10**400)), r"offset_ must be a finite number <= 0"),
    ("offset-missing", lambda e: e["fitted"].pop("offset_"), r"offset_ must be a finite number <= 0 .*got None"),
    ("method-replaced", fitted_value("predict", 1), "has no fitted value predict"),
    ("private-attribute", fitted_value("__class__", "x"), "has no fitted value __class__"),
    ("n-features-wrong", fitted_value("n_features_in_", 7), "n_features_in_ must be 6, the model's inputs, got 7"),
    ("n-features-text", fitted_value("n_features_in_", "6"), "n_features_in_ must be 6"),
    ("feature-names-short", fitted_value("feature_names_in_", ["a"]), "feature_names_in_ must be a list of the 6"),
    ("scale-text", fitted_value("scale_", "x"), "error_scale holds no list of numbers"),
    ("param-epochs-text", param("epochs", "x"), r"estimator\.params: epochs must be a whole number, got 'x'"),
    ("param-code-zero", param("code", 0), r"estimator\.params: code must be a whole number from 1"),
    ("param-threshold", param("threshold", "median:3"), r"estimator\.params: threshold takes KIND:VALUE"),
]


@pytest.mark.parametrize(("case", "edit", "message"), TAMPERED, ids=[t[0] for t in TAMPERED])
def test_load_refuses_a_tampered_folder_in_one_line(fitted, case, edit, message, tmp_path):
    from aekit.errors import AekitError

    d = tampered(fitted[1], tmp_path, edit)
    with pytest.raises(AekitError, match=message) as e:
        AutoencoderOutlierDetector.load(d)
    assert "\n" not in str(e.value) and str(e.value).startswith(d)


def test_transformer_load_takes_only_its_own_fitted_values(fitted, tmp_path):
    from aekit.errors import AekitError

    with pytest.raises(AekitError, match="AutoencoderTransformer has no fitted value offset_"):
        AutoencoderTransformer.load(tampered(fitted[0], tmp_path / "a", fitted_value("offset_", -1.0)))
    # The width of get_feature_names_out comes from the model, not from the file's copy of it.
    t = AutoencoderTransformer.load(tampered(fitted[0], tmp_path / "b", lambda e: e.__setitem__("n_features_out", "x")))
    assert t.get_feature_names_out().tolist() == ["autoencodertransformer0", "autoencodertransformer1"]


def test_load_keeps_folders_from_before_a_parameter_or_the_error_scale(fitted, tmp_path):
    """A parameter left out takes its default; a detector without scale_ scores plain sums, as then;
    column names, where a folder has them, come back as scikit-learn keeps them."""
    def older(e):
        e["params"].pop("device")
        e["fitted"].pop("scale_")
        e["fitted"]["feature_names_in_"] = [f"c{i}" for i in range(6)]

    d = AutoencoderOutlierDetector.load(tampered(fitted[1], tmp_path, older))
    assert d.device == "cpu" and d.scale_ is None and d.offset_ == fitted[1].offset_
    assert d.feature_names_in_.dtype == object and d.feature_names_in_.tolist()[0] == "c0"
    with pytest.warns(UserWarning, match="feature names"):  # scikit-learn sees the names
        assert d.predict(data()).shape == (120,)


def test_save_onto_a_file_is_one_error(fitted, tmp_path):
    from aekit.errors import AekitError

    (tmp_path / "f").write_text("x")
    with pytest.raises(AekitError, match="a file stands there; save an estimator into a new folder"):
        fitted[1].save(tmp_path / "f")
    with pytest.raises(AekitError, match="cannot make the folder"):
        fitted[1].save(tmp_path / "f" / "sub")  # a file on the way
    assert (tmp_path / "f").read_text() == "x"


# --- anomaly_score="latent": the density travels with the detector -----------------------------------


@pytest.fixture(scope="module")
def latent() -> AutoencoderOutlierDetector:
    return AutoencoderOutlierDetector(code=2, epochs=3, threshold="percentile:95", random_state=0,
                                      anomaly_score="latent", density_components=3).fit(data())


def test_latent_detector_round_trips(latent, tmp_path):
    import json

    from aekit.tasks.density import DENSITY_FILE

    X = data()
    want = outputs(latent, X)
    assert -latent.offset_ == pytest.approx(np.quantile(-want[0], 0.95))  # the threshold on the latent scores
    joblib.dump(latent, tmp_path / "e.joblib")
    d = latent.save(tmp_path / "run")
    copies = [pickle.loads(pickle.dumps(latent)), joblib.load(tmp_path / "e.joblib"),
              AutoencoderOutlierDetector.load(d)]
    for c in copies:
        for a, b in zip(outputs(c, X), want, strict=True):
            np.testing.assert_array_equal(a, b)
        assert c.get_params() == latent.get_params()
        np.testing.assert_array_equal(c.density_.prec_chol, latent.density_.prec_chol)
    assert b"torch.nn" not in pickle.dumps(latent)
    assert (d / DENSITY_FILE).is_file()
    rec = json.loads((d / "threshold.json").read_text())
    assert rec["score"] == "latent" and rec["components"] == 3 and rec["threshold"] == -latent.offset_
    again = clone(latent)
    assert again.get_params() == latent.get_params() and not hasattr(again, "density_")
    for a, b in zip(outputs(again.fit(X), X), want, strict=True):
        np.testing.assert_array_equal(a, b)
    # set_params back to the error score and refit: no density is kept from before
    assert not hasattr(clone(latent).set_params(anomaly_score="error").fit(X), "density_")


def test_a_saved_latent_detector_is_not_exported_as_an_error_score(latent, tmp_path):
    import aekit
    from aekit.errors import AekitError

    d = latent.save(tmp_path / "det")
    with pytest.raises(AekitError, match="the stored threshold is on the latent score, and an exported score part "
                       "computes the reconstruction error"):
        aekit.export(d, format="torchscript", part="score", out=tmp_path / "s.pt", check=False)


def damage_density(case: str):
    def edit(d) -> None:
        from safetensors.numpy import save_file

        from aekit.tasks.density import DENSITY_FILE, LatentDensity

        path = d / DENSITY_FILE
        t = LatentDensity.load(path).tensors()
        if case == "garbage":
            path.write_bytes(b"\x00garbage" * 10)
        elif case == "missing":
            path.unlink()
        elif case == "extra-tensor":
            save_file({**t, "x": np.zeros(1)}, str(path))
        elif case == "nan":
            t["means"][0, 0] = np.nan
            save_file(t, str(path))
        elif case == "negative-weight":
            t["weights"][0] *= -1
            save_file(t, str(path))
        elif case == "other-width":
            LatentDensity.fit(np.random.default_rng(0).normal(size=(50, 3)), 2).save(path)

    return edit


DENSITY_DAMAGE = [("garbage", "not a safetensors file"), ("missing", "not found"),
                  ("extra-tensor", "not a latent density"), ("nan", "not valid"), ("negative-weight", "not valid"),
                  ("other-width", "a density over 3-number codes, and the model's codes have 2")]


@pytest.mark.parametrize(("case", "message"), DENSITY_DAMAGE, ids=[c for c, _ in DENSITY_DAMAGE])
def test_load_refuses_a_damaged_density_in_one_line(latent, case, message, tmp_path):
    from aekit.errors import AekitError

    d = latent.save(tmp_path / "e")
    damage_density(case)(d)
    with pytest.raises(AekitError, match=message) as e:
        AutoencoderOutlierDetector.load(d)
    assert "\n" not in str(e.value) and str(e.value).startswith(str(d))


LATENT_TAMPERED = [
    ("score-unknown", param("anomaly_score", "bogus"), r"estimator\.params: anomaly_score must be one of error"),
    ("components-zero", param("density_components", 0), r"estimator\.params: density_components must be a whole"),
    ("offset-nan", fitted_value("offset_", float("nan")), r"offset_ must be a finite number \(minus the threshold on "
     "minus a log-density\\), got nan"),
]


@pytest.mark.parametrize(("case", "edit", "message"), LATENT_TAMPERED, ids=[t[0] for t in LATENT_TAMPERED])
def test_load_refuses_a_tampered_latent_folder_in_one_line(latent, case, edit, message, tmp_path):
    from aekit.errors import AekitError

    d = tampered(latent, tmp_path, edit)
    with pytest.raises(AekitError, match=message) as e:
        AutoencoderOutlierDetector.load(d)
    assert "\n" not in str(e.value) and str(e.value).startswith(d)


def test_a_latent_threshold_may_be_negative(latent, tmp_path):
    """Minus a log-density is below 0 wherever the density exceeds 1: a positive offset_ is a threshold."""
    d = AutoencoderOutlierDetector.load(tampered(latent, tmp_path, fitted_value("offset_", 5.0)))
    assert d.offset_ == 5.0

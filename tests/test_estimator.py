import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from aekit.estimator import AutoencoderOutlierDetector, AutoencoderTransformer

# Expected failures, each with its reason (none so far).
EXPECTED_FAILED: dict[str, str] = {}


@parametrize_with_checks(
    [AutoencoderTransformer(epochs=5, random_state=0), AutoencoderOutlierDetector(epochs=5, random_state=0),
     AutoencoderOutlierDetector(epochs=5, random_state=0, anomaly_score="latent")],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_contract(estimator, check):
    check(estimator)


def blobs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    latent = centres[y] + rng.normal(size=(n, 2))
    mix = rng.normal(size=(2, 10))
    return latent @ mix + 0.1 * rng.normal(size=(n, 10)), y


def test_pipeline_and_grid_search_on_tabular_data():
    X, y = blobs()
    pipe = make_pipeline(StandardScaler(), AutoencoderTransformer(code=2, epochs=30, random_state=0),
                         LogisticRegression())
    grid = GridSearchCV(pipe, {"autoencodertransformer__code": [1, 2]}, cv=3).fit(X, y)
    assert grid.best_score_ > 0.9
    assert grid.best_estimator_[1].get_feature_names_out().tolist()[0] == "autoencodertransformer0"


def test_transformer_round_trip_and_score():
    X, _ = blobs()
    X = StandardScaler().fit_transform(X)
    t = AutoencoderTransformer(code=2, epochs=60, random_state=0).fit(X)
    Z = t.transform(X)
    assert Z.shape == (300, 2)
    rec = t.inverse_transform(Z)
    assert np.mean((rec - X) ** 2) < 0.1 and t.score(X) == pytest.approx(-np.mean((rec - X) ** 2), rel=1e-4)
    with pytest.raises(ValueError, match="2D array"):
        t.transform(X[0])


def test_outlier_detector_flags_far_points():
    X, _ = blobs()
    X = StandardScaler().fit_transform(X)
    det = AutoencoderOutlierDetector(code=2, epochs=60, contamination=0.05, random_state=0).fit(X)
    inliers = det.predict(X)
    assert 0.02 < (inliers == -1).mean() < 0.1
    far = np.random.default_rng(1).normal(0, 6, size=(20, 10))
    assert (det.predict(far) == -1).mean() > 0.8
    assert np.all(det.decision_function(far[:3]) == det.score_samples(far[:3]) - det.offset_)


# --- bad parameters: one AekitError (a ValueError) naming the parameter, not a CLI flag -------------

BAD_PARAMS = [
    ({"code": 0}, "code must be a whole number from 1 to 1,000,000, got 0"),
    ({"code": 2.5}, "code must be a whole number from 1"),
    ({"code": None}, "code must be a whole number from 1"),
    ({"code": "big"}, "code must be a whole number or 'auto'"),
    ({"layers": (8, 0)}, "layers must be a whole number from 1"),
    ({"layers": 8}, r"layers must be a list of whole numbers"),
    ({"layers": (10**6, 10**6)}, "parameters, more than the 2,147,483,648 aekit builds; use a smaller code size"),
    ({"epochs": 2.5}, "epochs must be a whole number, got 2.5"),
    ({"epochs": 0}, r"epochs must lie in \[1, 1000000\], got 0"),
    ({"epochs": 10**400}, r"epochs must lie in \[1, 1000000\], got a whole number of about 401 digits"),
    ({"batch_size": "a"}, "batch_size must be a whole number, got 'a'"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"lr": 10**400}, r"lr must lie in \(0, 10\]"),
    ({"weight_decay": -1.0}, r"weight_decay must lie in \[0, 10\], got -1"),
    ({"noise": 5}, "noise must be a string or None, got 5"),
    ({"noise": "fog:1"}, "unknown noise 'fog:1'"),
    ({"activation": "swish"}, "unknown activation 'swish'"),
    ({"model": "nope"}, "unknown model 'nope'"),
    ({"random_state": -1}, "random_state must be None, a whole number"),
    ({"device": "tpu"}, "unknown device 'tpu'"),
]


@pytest.mark.parametrize("cls", [AutoencoderTransformer, AutoencoderOutlierDetector])
@pytest.mark.parametrize(("params", "message"), BAD_PARAMS, ids=[repr(p)[:40] for p, _ in BAD_PARAMS])
def test_a_bad_parameter_is_one_error_naming_it(cls, params, message):
    from aekit.errors import AekitError

    X, _ = blobs(40)
    with pytest.raises(AekitError, match=message) as e:
        cls(**{"epochs": 1, **params}).fit(X)
    text = str(e.value)
    assert isinstance(e.value, ValueError) and "\n" not in text
    assert "--" not in text and "train." not in text  # the CLI's flags and the config's keys are not its names


DETECTOR_BAD_PARAMS = [
    ({"anomaly_score": "bogus"}, "anomaly_score must be one of error, latent, got 'bogus'"),
    ({"anomaly_score": None}, "anomaly_score must be one of error, latent, got None"),
    ({"density_components": 0}, "density_components must be a whole number from 1 to 256, got 0"),
    ({"density_components": 2.5}, "density_components must be a whole number from 1 to 256, got 2.5"),
    ({"density_components": True}, "density_components must be a whole number from 1 to 256, got True"),
    ({"anomaly_score": "latent", "density_components": 257}, "density_components must be a whole number from 1 to 256"),
]


@pytest.mark.parametrize(("params", "message"), DETECTOR_BAD_PARAMS, ids=[repr(p)[:40] for p, _ in DETECTOR_BAD_PARAMS])
def test_a_bad_score_setting_is_one_error_naming_it(params, message):
    from aekit.errors import AekitError

    X, _ = blobs(40)
    with pytest.raises(AekitError, match=message) as e:
        AutoencoderOutlierDetector(epochs=1, **params).fit(X)
    assert isinstance(e.value, ValueError) and "\n" not in str(e.value) and "--" not in str(e.value)


def test_latent_detector_flags_far_points():
    """anomaly_score="latent": the density of the codes of the training rows; far rows have low density."""
    X, _ = blobs()
    det = AutoencoderOutlierDetector(code=2, epochs=20, random_state=0, anomaly_score="latent", density_components=3,
                                     contamination=0.05).fit(X)
    assert det.density_.means.shape == (3, 2) and (det.predict(X) == -1).mean() == pytest.approx(0.05, abs=0.01)
    codes = det.model_.encode(X.astype(np.float32))
    np.testing.assert_allclose(det.score_samples(X), -det.density_.score(codes), rtol=1e-4, atol=1e-4)
    far = np.random.default_rng(1).normal(size=(50, 10)) * 30
    assert (det.predict(far) == -1).mean() > 0.8


def test_set_params_then_fit_checks_again():
    from aekit.errors import AekitError

    X, _ = blobs(40)
    est = AutoencoderOutlierDetector(epochs=1, random_state=0).fit(X)
    with pytest.raises(AekitError, match="noise must be a string or None, got 5"):
        est.set_params(noise=5).fit(X)
    with pytest.raises(AekitError, match="epochs must be a whole number, got 2.5"):
        est.set_params(noise=None, epochs=2.5).fit(X)


def test_numpy_numbers_are_parameters_too():
    """A grid over np.arange gives NumPy numbers; they are whole numbers and numbers all the same."""
    X, _ = blobs(40)
    t = AutoencoderTransformer(code=np.int64(2), layers=(np.int64(4),), epochs=np.int64(1), batch_size=np.int32(16),
                               lr=np.float32(0.01), weight_decay=np.float64(0.0), random_state=np.int64(0)).fit(X)
    assert t.transform(X).shape == (40, 2)

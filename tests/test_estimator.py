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
    [AutoencoderTransformer(epochs=5, random_state=0), AutoencoderOutlierDetector(epochs=5, random_state=0)],
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

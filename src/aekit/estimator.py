"""scikit-learn adapters: an autoencoder as a transformer and as an outlier detector.

Both follow the estimator contract (``__init__`` stores its arguments and nothing else; learned
attributes end in ``_``; randomness comes from ``random_state``), so they work in ``Pipeline``,
``GridSearchCV`` and ``clone``. They train aekit's own loop on float rows ``(n_samples,
n_features)``; outputs are unbounded (``output="identity"``), so standardise features first, e.g.
``make_pipeline(StandardScaler(), AutoencoderTransformer(code=8))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, OutlierMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data


class _AutoencoderBase(BaseEstimator):
    def __init__(
        self,
        code: int = 2,
        layers: Sequence[int] = (),
        activation: str = "relu",
        model: str = "mlp",
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        noise: str | None = None,
        random_state: int | None = None,
    ) -> None:
        self.code = code
        self.layers = layers
        self.activation = activation
        self.model = model
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.noise = noise
        self.random_state = random_state

    def _fit_model(self, X: np.ndarray) -> None:
        import torch

        from aekit.config import TrainConfig
        from aekit.data.dataset import Split
        from aekit.registry import create_model
        from aekit.training.loop import fit

        seed = int(np.random.RandomState(self.random_state).randint(0, 2**31 - 1))
        torch.manual_seed(seed)
        opts: dict[str, Any] = {"code": self.code}
        if self.model == "mlp":
            opts.update(layers=list(self.layers), activation=self.activation)
        model = create_model(self.model, (X.shape[1],), output="identity", **opts)
        model.resolve_output("real")
        cfg = TrainConfig(epochs=self.epochs, batch_size=min(self.batch_size, len(X)), lr=self.lr,
                          weight_decay=self.weight_decay, noise=self.noise, seed=seed)
        fit(model, Split(X.astype(np.float32)), None, cfg, progress=False)
        self.model_ = model.eval()

    def _errors(self, X: np.ndarray) -> np.ndarray:
        rec = self.model_.reconstruct(X.astype(np.float32))
        return np.square(X - rec).mean(1)


class AutoencoderTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _AutoencoderBase):
    """``transform`` gives the codes, ``inverse_transform`` decodes them, ``score`` is the negative
    mean squared reconstruction error (higher is better, as scikit-learn expects)."""

    def fit(self, X: Any, y: Any = None) -> AutoencoderTransformer:
        X = validate_data(self, X, dtype=np.float32)
        self._fit_model(X)
        self._n_features_out = self.code
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return self.model_.encode(X).astype(np.float64)

    def inverse_transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        from sklearn.utils import check_array

        Z = check_array(X, dtype=np.float32)
        if Z.shape[1] != self.code:
            raise ValueError(f"inverse_transform takes codes with {self.code} columns, got {Z.shape[1]}")
        return self.model_.decode(Z).astype(np.float64)

    def score(self, X: Any, y: Any = None) -> float:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return -float(self._errors(X).mean())


class AutoencoderOutlierDetector(OutlierMixin, _AutoencoderBase):
    """Reconstruction error as the outlier score: ``score_samples`` is its negative (lower = more
    abnormal), ``offset_`` the training scores' ``contamination`` quantile, ``predict`` +1 / -1."""

    def __init__(self, code: int = 2, layers: Sequence[int] = (), activation: str = "relu", model: str = "mlp",
                 epochs: int = 100, batch_size: int = 64, lr: float = 1e-2, weight_decay: float = 0.0,
                 noise: str | None = None, contamination: float = 0.1, random_state: int | None = None) -> None:
        super().__init__(code, layers, activation, model, epochs, batch_size, lr, weight_decay, noise, random_state)
        self.contamination = contamination

    def fit(self, X: Any, y: Any = None) -> AutoencoderOutlierDetector:
        if not 0 < self.contamination <= 0.5:
            raise ValueError(f"contamination must be in (0, 0.5], got {self.contamination}")
        X = validate_data(self, X, dtype=np.float32)
        self._fit_model(X)
        self.offset_ = float(np.quantile(-self._errors(X), self.contamination))
        return self

    def score_samples(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return -self._errors(X).astype(np.float64)

    def decision_function(self, X: Any) -> np.ndarray:
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        return np.where(self.decision_function(X) >= 0, 1, -1)

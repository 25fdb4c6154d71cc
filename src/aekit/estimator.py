"""scikit-learn adapters: an autoencoder as a transformer and as an outlier detector.

Both follow the estimator contract (``__init__`` stores its arguments and nothing else; learned
attributes end in ``_``; randomness comes from ``random_state``), so they work in ``Pipeline``,
``GridSearchCV`` and ``clone``. They train aekit's own loop on float rows ``(n_samples,
n_features)``; outputs are unbounded (``output="identity"``), so standardise features first, e.g.
``make_pipeline(StandardScaler(), AutoencoderTransformer(code=8))``.

A row's codes, reconstruction and score do not depend on which other rows share its call
(scikit-learn's ``check_methods_subset_invariance``). In float32 they did: the CPU's matrix
kernels pick their blocking, and so the order in which each dot product is summed, from the
batch size, so a row came out 1 or 2 float32 ulps apart (2.4e-7 on an AVX-512 Xeon) depending
on its batch. Inference here runs on a float64 copy of the trained module and rounds the result
to float32: the summation order still varies, but only in the 16th digit, which the rounding
removes (a value would have to lie within about 1e-16 of a float32 rounding boundary to change,
and then by one float32 ulp, well inside any tolerance). Running each row alone would be exact
too, but one forward pass per row is 40 to 100 times slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, OutlierMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

INFER_ROWS = 4096  # rows per forward pass at inference; it bounds memory (see above on batch independence)


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
        verbose: int = 0,
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
        self.verbose = verbose

    def _fit_model(self, X: np.ndarray) -> None:
        import torch

        from aekit.config import RunConfig, TrainConfig
        from aekit.data.dataset import Split
        from aekit.registry import create_model
        from aekit.training.loop import fit

        seed = int(np.random.RandomState(self.random_state).randint(0, 2**31 - 1))
        torch.manual_seed(seed)
        opts: dict[str, Any] = {"code": self.code}
        if self.model == "mlp":
            opts.update(layers=list(self.layers), activation=self.activation)
        cfg = TrainConfig(epochs=self.epochs, batch_size=min(self.batch_size, len(X)), lr=self.lr,
                          weight_decay=self.weight_decay, noise=self.noise, seed=seed)
        # The same ranges as `aekit train` (a NaN lr, a negative weight decay...), before training.
        RunConfig(model={"name": self.model, **opts}, train=cfg).validate()
        model = create_model(self.model, (X.shape[1],), output="identity", **opts)
        model.resolve_output("real")
        # verbose: a line per epoch on stderr (a bar on a terminal); 0, scikit-learn's default, is quiet.
        fit(model, Split(X.astype(np.float32)), None, cfg, progress=bool(self.verbose))
        self.model_ = model.eval()

    def _infer(self, X: np.ndarray, part: str) -> np.ndarray:
        """``part`` ("encode", "decode" or "reconstruct") of the rows of ``X``, computed in float64 and
        rounded to float32, so that no row depends on the others in the call (see the module's notes)."""
        import copy

        import torch

        model = copy.deepcopy(self.model_).cpu().double().eval()  # model_ itself stays float32
        outs = []
        with torch.no_grad():
            for start in range(0, len(X), INFER_ROWS):
                t = torch.from_numpy(np.ascontiguousarray(X[start : start + INFER_ROWS], dtype=np.float64))
                y = model.encode(t) if part == "encode" else model.decode(t) if part == "decode" else model(t).recon
                outs.append(y.reshape(len(t), -1).numpy().astype(np.float32))
        return np.concatenate(outs)

    def _errors(self, X: np.ndarray) -> np.ndarray:
        rec = self._infer(X, "reconstruct")
        return np.square(X.astype(np.float64) - rec).mean(1)


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
        return self._infer(X, "encode").astype(np.float64)

    def inverse_transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        from sklearn.utils import check_array

        Z = check_array(X, dtype=np.float32)
        if Z.shape[1] != self.code:
            raise ValueError(f"inverse_transform takes codes with {self.code} columns, got {Z.shape[1]}")
        return self._infer(Z, "decode").astype(np.float64)

    def score(self, X: Any, y: Any = None) -> float:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return -float(self._errors(X).mean())


class AutoencoderOutlierDetector(OutlierMixin, _AutoencoderBase):
    """Reconstruction error as the outlier score: ``score_samples`` is its negative (lower = more
    abnormal), ``offset_`` the training scores' ``contamination`` quantile, ``predict`` +1 / -1."""

    def __init__(self, code: int = 2, layers: Sequence[int] = (), activation: str = "relu", model: str = "mlp",
                 epochs: int = 100, batch_size: int = 64, lr: float = 1e-2, weight_decay: float = 0.0,
                 noise: str | None = None, contamination: float = 0.1, random_state: int | None = None,
                 verbose: int = 0) -> None:
        super().__init__(code, layers, activation, model, epochs, batch_size, lr, weight_decay, noise, random_state,
                         verbose)
        self.contamination = contamination

    def fit(self, X: Any, y: Any = None) -> AutoencoderOutlierDetector:
        if not 0 < self.contamination <= 0.5:  # NaN fails too
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

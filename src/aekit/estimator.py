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

The outlier score is aekit's one anomaly score (:func:`aekit.tasks.anomaly.score_of`: squared error
summed over features), with the same threshold rules as ``aekit anomaly``. For features outside
[0, 1] (tabular data, standardised) each feature's squared error is first divided by its mean on the
training rows (floored at a quarter of the mean over features; ``scale_``), so that every feature's
error counts in its own units; pixels in [0, 1] count as they are (the reasons and figures are in
:mod:`aekit.tasks.anomaly`). With ``anomaly_score="latent"`` the detector scores by the code's density instead,
as ``aekit anomaly --score latent`` does (see :class:`AutoencoderOutlierDetector`).

The detector's defaults are one setting for every data set, sized from the data's shape alone
(``code="auto"``, ``layers="auto"``): a code of a quarter of the features, at least 1 and at most 16
numbers, through one hidden layer of 4 times the code's width (784 pixels: 784-64-16; 64 features:
64-64-16; 30 features: 30-28-7), trained for 30 epochs in batches of 256 rows (the whole set when
smaller) at a learning rate of 1e-2, ELU units. A small code is the point of a detector: what passes
through 16 numbers is what the training rows share, so rows unlike them are reconstructed badly (on
MNIST one-class a 16-number code beats a 32-number one, 0.964 against 0.957 mean AUROC). These
defaults were chosen on ``benchmarks/outliers.py``'s three data families together (MNIST, scikit-
learn's digits, breast cancer), averaged over random seeds, never per data set.

Fitting on the CPU makes glibc keep freed memory for reuse, for the whole process (faster steps, an
RSS that stays near its peak; see :func:`aekit.training.speed.keep_freed_memory`, and set
``AEKIT_KEEP_FREED_MEMORY=0`` to leave the allocator alone).

Persistence: ``pickle``, ``joblib`` and ``clone`` work; a pickle holds the model as its config and
safetensors bytes, never a pickled module (``__getstate__``). ``est.save(dir)`` writes a run folder
(``config.json`` + ``model.safetensors``, and a latent detector's ``latent-density.safetensors``; no pickle
at all) and ``Class.load(dir)`` reads it back,
checking every value against what ``save`` writes (a hand-edited folder is one error, not a wrong answer).

A bad parameter, found by ``fit`` as scikit-learn's convention has it (or by ``load``), is one
:class:`~aekit.errors.AekitError`, a ValueError, that names the parameter (``code``, ``epochs``), with
the ranges ``aekit train`` uses for the same settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, OutlierMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from aekit.errors import AekitError, key_text

INFER_ROWS = 4096  # rows per forward pass at inference; it bounds memory (see above on batch independence)


MAX_AUTO_CODE = 16  # code="auto": a quarter of the features, at least 1 and at most this many numbers
AUTO_HIDDEN = 4  # layers="auto": one hidden layer this many times the code's width


def auto_sizes(n_features: int, code: int | Literal["auto"],
               layers: Sequence[int] | Literal["auto"]) -> tuple[int, list[int]]:
    """The code width and hidden layers for ``n_features`` inputs, where either is "auto"."""
    c = max(1, min(MAX_AUTO_CODE, n_features // 4)) if code == "auto" else code
    hidden = [AUTO_HIDDEN * c] if layers == "auto" else list(layers)
    return c, hidden


class _AutoencoderBase(BaseEstimator):
    def __init__(
        self,
        code: int | str = 2,
        layers: Sequence[int] | str = (),
        activation: str = "relu",
        model: str = "mlp",
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        noise: str | None = None,
        random_state: int | None = None,
        verbose: int = 0,
        device: str = "cpu",
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
        self.device = device

    def _settings(self, n_features: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The model's options and the training settings, each checked under its parameter's name: a
        bad one is one AekitError (a ValueError, as scikit-learn expects) that says ``code``, where
        the same check from the CLI says ``--code``. The ranges are aekit's own (models.base, config)."""
        from aekit.config import check_setting
        from aekit.models.base import activation, check_positive, check_unit_list
        from aekit.registry import model_class

        for name in ("code", "layers"):
            v = getattr(self, name)
            if isinstance(v, str) and v != "auto":
                raise AekitError(f"{name} must be {'a whole number' if name == 'code' else 'a list of widths'} "
                                 f"or 'auto', got {v!r:.40}")
        # (a string is "auto" here: any other was refused above)
        code: int | Literal["auto"] = "auto" if isinstance(self.code, str) else check_positive("code", self.code)
        layers: list[int] | Literal["auto"] = ("auto" if isinstance(self.layers, str)
                                               else check_unit_list("layers", self.layers))
        code, hidden = auto_sizes(n_features, code, layers)
        model_class(self.model)  # an unknown family, before its options are looked at
        opts: dict[str, Any] = {"code": code}
        if self.model == "mlp":
            activation(self.activation)
            opts.update(layers=hidden, activation=self.activation)
        train = {k: check_setting(f"train.{k}", getattr(self, k), k)
                 for k in ("epochs", "batch_size", "lr", "weight_decay", "noise")}
        return opts, train

    def _random_state(self) -> np.random.RandomState:
        from sklearn.utils import check_random_state

        try:
            return check_random_state(self.random_state)
        except ValueError:  # NumPy's words name no parameter
            raise AekitError(f"random_state must be None, a whole number from 0 to 2**32 - 1 or a "
                             f"numpy RandomState, got {self.random_state!r:.40}") from None

    def _fit_model(self, X: np.ndarray) -> None:
        import torch

        from aekit.config import RunConfig, TrainConfig
        from aekit.data.dataset import Split
        from aekit.registry import create_model
        from aekit.training.loop import fit

        opts, train = self._settings(X.shape[1])
        seed = int(self._random_state().randint(0, 2**31 - 1))
        torch.manual_seed(seed)
        cfg = TrainConfig(**{**train, "batch_size": min(train["batch_size"], len(X))}, seed=seed)
        # Everything else `aekit train` checks (the noise spec, the model's options), before training.
        RunConfig(model={"name": self.model, **opts}, train=cfg).validate()
        model = create_model(self.model, (X.shape[1],), output="identity", **opts)
        model.resolve_output("real")
        # verbose: a line per epoch on stderr (a bar on a terminal); 0, scikit-learn's default, is quiet.
        # device: where to train ("cpu" by default: small tabular models gain nothing from a GPU);
        # inference always runs on a float64 copy on the CPU (see the module's notes).
        fit(model, Split(X.astype(np.float32)), None, cfg, progress=bool(self.verbose), device=self._device())
        self.model_ = model.cpu().eval()

    def _device(self) -> Any:
        from aekit.device import resolve_device

        try:
            return resolve_device(self.device)
        except AekitError as exc:  # resolve_device speaks to the CLI: name the parameter instead of the flag
            raise AekitError(str(exc).replace("--device ", "device ")) from None

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

    def _squared_errors(self, X: np.ndarray) -> np.ndarray:
        return np.square(X.astype(np.float64) - self._infer(X, "reconstruct"))

    # --- persistence: the module travels as config + safetensors bytes, never pickled ------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if "model_" in state:
            from aekit.training.checkpoint import tensors_bytes

            m = state.pop("model_")
            state["_model_config"], state["_model_weights"] = m.config(), tensors_bytes(m.state_dict())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "_model_config" in state:
            state["model_"] = _rebuild(state.pop("_model_config"), state.pop("_model_weights"))
        self.__dict__.update(state)

    def save(self, directory: str | Path) -> Path:
        """Write the fitted estimator as a run folder: config.json (its parameters and fitted values)
        and model.safetensors. :meth:`load` reads it back; no pickle is involved."""
        from sklearn.utils.validation import check_is_fitted

        from aekit.io import write_json
        from aekit.run import make_config
        from aekit.training.checkpoint import save_tensors

        check_is_fitted(self, "model_")
        d = Path(directory)
        try:
            if d.exists() and not d.is_dir():
                raise AekitError(f"{d}: a file stands there; save an estimator into a new folder")
            if d.is_dir() and any(d.iterdir()):
                raise AekitError(f"{d}: not empty; save an estimator into a new folder")
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file on the way to it, no permission, a dangling link...
            raise AekitError(f"{d}: cannot make the folder ({exc.strerror or exc})") from None
        fitted = {k: _plain(getattr(self, k)) for k in self._FITTED if hasattr(self, k)}
        est = {"class": type(self).__name__, "params": _plain(self.get_params()), "fitted": fitted,
               "n_features_out": getattr(self, "_n_features_out", None)}
        save_tensors(d / "model.safetensors", self.model_.state_dict())
        write_json(d / "config.json", make_config("autoencoder", self.model_.config(), {}, {}, estimator=est))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> Any:
        """The estimator :meth:`save` wrote to ``directory``. A folder may have been edited or damaged
        since, so everything read is checked against what ``save`` writes: a fault is one AekitError
        naming the value, never a TypeError at load or a wrong prediction later."""
        from aekit.run import open_run

        o = open_run(directory, ("autoencoder",))
        where = f"{directory}/config.json: estimator"
        est = o.info.get("estimator")
        if not isinstance(est, dict) or est.get("class") != cls.__name__:
            raise AekitError(f"{directory}: not a saved {cls.__name__} (no matching 'estimator' table)")
        for key in ("params", "fitted"):
            if not isinstance(est.get(key), dict):
                raise AekitError(f"{where}.{key} must be a table, got {est.get(key)!r:.40}; save the estimator again")
        params, known = est["params"], cls._get_param_names()
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise AekitError(f"{where}.params: {cls.__name__} has no parameter {', '.join(map(key_text, unknown))}; "
                             f"its parameters: {', '.join(known)}")
        # A parameter left out takes its default (a folder from a version before it existed).
        kwargs: dict[str, Any] = {k: tuple(v) if k == "layers" and isinstance(v, list) else v
                                  for k, v in params.items()}
        obj = cls(**kwargs)
        try:
            obj._check_params(o.model.n_inputs)
        except AekitError as exc:
            raise AekitError(f"{where}.params: {exc}") from None
        obj._load_fitted(est["fitted"], o.model, f"{where}.fitted")
        obj.model_ = o.model.float().eval()
        return obj

    def _check_params(self, n_features: int) -> None:
        """The checks :meth:`fit` makes of the parameters, bar those of the machine (the device)."""
        self._settings(n_features)
        self._random_state()  # nothing drawn: loading leaves NumPy's global generator alone

    # The fitted values save() writes and load() sets, and nothing else (model_ is model.safetensors).
    _FITTED: tuple[str, ...] = ("n_features_in_", "feature_names_in_")

    def _load_fitted(self, fitted: dict[str, Any], model: Any, where: str) -> None:
        """Set the fitted values read from a saved folder, each checked against the model."""
        unknown = sorted(set(fitted) - set(self._FITTED))
        if unknown:
            raise AekitError(f"{where}: {type(self).__name__} has no fitted value "
                             f"{', '.join(map(key_text, unknown))}; save the estimator again")
        n = fitted.get("n_features_in_")
        if n != model.n_inputs or not isinstance(n, int) or isinstance(n, bool):
            raise AekitError(f"{where}.n_features_in_ must be {model.n_inputs}, the model's inputs, got {n!r:.40}")
        self.n_features_in_ = n
        names = fitted.get("feature_names_in_")
        if names is not None:  # present when fitted on a DataFrame with text column names, else absent
            if not isinstance(names, list) or len(names) != n or not all(isinstance(c, str) for c in names):
                raise AekitError(f"{where}.feature_names_in_ must be a list of the {n} column names")
            self.feature_names_in_ = np.asarray(names, dtype=object)


def _plain(v: Any) -> Any:
    """A value as JSON can hold it (numpy scalars and arrays, tuples)."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, np.ndarray | tuple | list):
        return [_plain(x) for x in v]
    return v.item() if isinstance(v, np.generic) else v


def _rebuild(config: dict[str, Any], weights: bytes) -> Any:
    from safetensors.torch import load as st_load

    from aekit.run import model_from_config

    model = model_from_config(config)
    model.load_state_dict(st_load(weights))
    return model.eval()


class AutoencoderTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _AutoencoderBase):
    """``transform`` gives the codes, ``inverse_transform`` decodes them, ``score`` is the negative
    mean squared reconstruction error (higher is better, as scikit-learn expects).

    Args:
        code: Width of the code (the number of output features of ``transform``).
        layers: Hidden layer widths of the encoder (the decoder mirrors them), or "auto".
        activation: Hidden activation: relu, elu, tanh, sigmoid, gelu or leaky_relu.
        model: The aekit model family (``aekit models``), "mlp" or "linear" for rows.
        epochs: Passes over the training rows.
        batch_size: Rows per optimizer step (the whole set when it is smaller).
        lr: Adam's learning rate.
        weight_decay: L2 penalty on the weights.
        noise: Denoising corruption as ``aekit train --noise`` takes it (e.g. "gaussian:0.1"), or None.
        random_state: Seed of the weights and the batch order; None takes one from NumPy's global generator.
        verbose: Above 0, the training progress on stderr (a bar on a terminal, else a line per epoch).
        device: "cpu", "cuda" or "auto" for training; outputs are always computed on the CPU.
    """

    def fit(self, X: Any, y: Any = None) -> AutoencoderTransformer:
        """Train the autoencoder on the rows of ``X``.

        Args:
            X: Float rows ``(n_samples, n_features)``; standardise tabular features first.
            y: Ignored; present for scikit-learn's API.

        Returns:
            The fitted transformer (``self``), with ``model_``, the trained aekit model.
        """
        X = validate_data(self, X, dtype=np.float32)
        self._fit_model(X)
        self._n_features_out = self.model_.code_size
        return self

    def _load_fitted(self, fitted: dict[str, Any], model: Any, where: str) -> None:
        super()._load_fitted(fitted, model, where)
        self._n_features_out = model.code_size  # as fit sets it (the file's copy is not read)

    def transform(self, X: Any) -> np.ndarray:
        """The codes of the rows of ``X``.

        Args:
            X: Rows ``(n_samples, n_features)`` with the features ``fit`` saw.

        Returns:
            The codes, ``(n_samples, code)`` float64 (float32 values: see the module's note on batches).
        """
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return self._infer(X, "encode").astype(np.float64)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Decode codes back to feature rows.

        Args:
            X: Codes ``(n_samples, code)``, as ``transform`` gives them.

        Returns:
            The decoded rows, ``(n_samples, n_features)`` float64.

        Raises:
            ValueError: The codes do not have ``code`` columns.
        """
        check_is_fitted(self, "model_")
        from sklearn.utils import check_array

        Z = check_array(X, dtype=np.float32)
        if Z.shape[1] != self.model_.code_size:
            raise ValueError(f"inverse_transform takes codes with {self.model_.code_size} columns, got {Z.shape[1]}")
        return self._infer(Z, "decode").astype(np.float64)

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the mean squared reconstruction error of ``X`` (higher is better, as scikit-learn expects).

        Args:
            X: Rows ``(n_samples, n_features)``.
            y: Ignored; present for scikit-learn's API.

        Returns:
            Minus the mean over rows and features of the squared reconstruction error.
        """
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return -float(self._squared_errors(X).mean())


class AutoencoderOutlierDetector(OutlierMixin, _AutoencoderBase):
    """Reconstruction error (or the code's density) as the outlier score: ``score_samples`` is minus
    aekit's anomaly score (lower = more abnormal), ``offset_`` minus the threshold, ``predict`` +1 / -1.

    ``anomaly_score="latent"`` is recommended for images: the reconstruction error misses anomalies simpler
    than the normal data (an autoencoder of 8s reconstructs a 1 well), whose codes still fall where no
    normal row's code does. It scores a row by minus the log-density of its code under a Gaussian mixture
    of ``density_components`` full-covariance components fitted on the training rows' codes after training
    (``density_``, :mod:`aekit.tasks.density`). The detector builds the row families (mlp, linear); for
    image data with a convolutional autoencoder, train a ``conv`` run and use ``aekit anomaly RUN --score
    latent`` (or :func:`aekit.anomaly` with ``score="latent"``).

    ``threshold`` ("contamination:0.01", "percentile:99.5" or "fpr:0.01", as ``aekit anomaly
    --threshold``) is set on the training rows; when it is None, ``contamination`` sets it. For
    ``fpr:``, ``fit(X, y)`` takes y = +1 for normal rows and -1 for outliers (scikit-learn's labels);
    without y every training row counts as normal.

    The defaults size the network from the number of features (see the module's notes); on data
    in [0, 1] the scores are squared errors in the units of ``X``, so give it features on comparable scales
    (pixels in [0, 1], or ``StandardScaler`` first for tabular data). Where ``X`` is not in [0, 1],
    each feature's error is scored over its mean on the training rows, ``scale_`` (None for [0, 1]
    data; see the module's notes).

    Args:
        code: Width of the code, or "auto": a quarter of the features, 1 to 16.
        layers: Hidden layer widths of the encoder (the decoder mirrors them), or "auto".
        activation: Hidden activation: relu, elu, tanh, sigmoid, gelu or leaky_relu.
        model: The aekit model family (``aekit models``), "mlp" or "linear" for rows.
        epochs: Passes over the training rows.
        batch_size: Rows per optimizer step (the whole set when it is smaller).
        lr: Adam's learning rate.
        weight_decay: L2 penalty on the weights.
        noise: Denoising corruption as ``aekit train --noise`` takes it (e.g. "gaussian:0.1"), or None.
        contamination: The share of training rows flagged, when ``threshold`` is None.
        random_state: Seed of the weights and the batch order; None takes one from NumPy's global generator.
        verbose: Above 0, the training progress on stderr (a bar on a terminal, else a line per epoch).
        threshold: A rule, "contamination:C", "percentile:P" or "fpr:F", or None for ``contamination``.
        device: "cpu", "cuda" or "auto" for training; outputs are always computed on the CPU.
        anomaly_score: "error", the reconstruction error, or "latent", minus the code's log-density (see
            above). (Not ``score``: scikit-learn takes an estimator's ``score`` for its scoring method.)
        density_components: The latent density's mixture components, 1 to 256 (fewer where there are
            fewer than twice as many training rows); used with ``anomaly_score="latent"``.
    """

    def __init__(self, code: int | str = "auto", layers: Sequence[int] | str = "auto", activation: str = "elu",
                 model: str = "mlp", epochs: int = 30, batch_size: int = 256, lr: float = 1e-2,
                 weight_decay: float = 0.0, noise: str | None = None, contamination: float = 0.1,
                 random_state: int | None = None, verbose: int = 0, threshold: str | None = None,
                 device: str = "cpu", anomaly_score: str = "error", density_components: int = 10) -> None:
        super().__init__(code, layers, activation, model, epochs, batch_size, lr, weight_decay, noise, random_state,
                         verbose, device)
        self.contamination = contamination
        self.threshold = threshold
        self.anomaly_score = anomaly_score
        self.density_components = density_components

    def _score_kind(self) -> str:
        """``anomaly_score`` and ``density_components`` checked, each named in its one error line."""
        from aekit.tasks.anomaly import SCORES
        from aekit.tasks.density import check_components

        if self.anomaly_score not in SCORES:
            raise AekitError(f"anomaly_score must be one of {', '.join(SCORES)}, got {self.anomaly_score!r:.40}")
        check_components(self.density_components, "density_components")
        return str(self.anomaly_score)

    def _rule(self) -> Any:
        from aekit.tasks.anomaly import parse_threshold

        try:
            return parse_threshold(self.threshold if self.threshold is not None else self.contamination)
        except AekitError as exc:  # parse_threshold speaks to the CLI: name the parameter instead of the flag
            raise AekitError(str(exc).replace("--threshold ", "threshold ").replace("--", "")) from None

    def fit(self, X: Any, y: Any = None) -> AutoencoderOutlierDetector:
        """Train the autoencoder on the rows of ``X`` and set the threshold by the ``threshold`` rule.

        Args:
            X: Float rows ``(n_samples, n_features)``, mostly normal.
            y: Only for ``threshold="fpr:F"``: +1 for a normal row, -1 for an outlier; the threshold then
                flags the share F of the normal rows. Ignored by the other rules.

        Returns:
            The fitted detector (``self``), with ``model_``, ``offset_`` (minus the threshold), ``scale_``
            and, with ``anomaly_score="latent"``, ``density_``.
        """
        from aekit.data.dataset import unit_range
        from aekit.tasks.anomaly import scale_from_errors, score_of, threshold_value
        from aekit.tasks.density import LatentDensity

        rule = self._rule()
        kind = self._score_kind()
        X = validate_data(self, X, dtype=np.float32)
        normal = None
        if rule.kind == "fpr":
            normal = np.ones(len(X), bool) if y is None else np.asarray(y).reshape(-1) != -1
        self._fit_model(X)
        if kind == "latent":
            # the mixture's seed from random_state, as the weights' (a fresh draw where it is None)
            seed = int(self._random_state().randint(0, 2**31 - 1))
            codes = self._infer(X, "encode")
            self.density_ = LatentDensity.fit(codes, self.density_components, seed)
            self.scale_ = None  # the error scale belongs to the error score
            self.offset_ = -threshold_value(rule, self.density_.score(codes), normal)
            return self
        self.__dict__.pop("density_", None)  # a refit on the error score keeps no density of an earlier fit
        err = self._squared_errors(X)  # one pass over the training rows, for the scale and the threshold
        self.scale_ = None if unit_range(X) else scale_from_errors(err.mean(0))
        self.offset_ = -threshold_value(rule, score_of(err, self.scale_), normal)
        return self

    def _check_params(self, n_features: int) -> None:
        super()._check_params(n_features)
        self._rule()
        self._score_kind()

    _FITTED = (*_AutoencoderBase._FITTED, "offset_", "scale_")

    def _load_fitted(self, fitted: dict[str, Any], model: Any, where: str) -> None:
        import math

        from aekit.tasks.anomaly import checked_scale

        super()._load_fitted(fitted, model, where)
        offset: Any = fitted.get("offset_")  # any JSON value, checked here
        # Minus a threshold on a sum of squared errors: at most 0 (a positive one flags every row), finite
        # (NaN flags every row too). An integer too large for a float is no offset either. Minus a threshold
        # on minus a log-density (anomaly_score="latent"): any finite number, as a density may exceed 1.
        ok = isinstance(offset, int | float) and not isinstance(offset, bool) and abs(offset) <= 1e300
        if self.anomaly_score == "latent" and (not ok or not math.isfinite(offset)):
            raise AekitError(f"{where}.offset_ must be a finite number (minus the threshold on minus a log-density), "
                             f"got {offset!r:.40}; save the estimator again")
        if self.anomaly_score != "latent" and (not ok or not math.isfinite(offset) or offset > 0):
            raise AekitError(f"{where}.offset_ must be a finite number <= 0 (minus the threshold on a sum of "
                             f"squared errors), got {offset!r:.40}; save the estimator again")
        self.offset_ = float(offset)
        # Absent in folders saved before error scales existed: the plain sum, as then.
        self.scale_ = checked_scale(fitted.get("scale_"), model.n_inputs, f"{where}.scale_")

    @classmethod
    def load(cls, directory: str | Path) -> Any:
        """As :meth:`_AutoencoderBase.load`; with ``anomaly_score="latent"`` also the density the folder keeps
        (latent-density.safetensors), checked against the model's codes."""
        from aekit.tasks.density import DENSITY_FILE, LatentDensity

        obj = super().load(directory)
        if obj.anomaly_score == "latent":
            obj.density_ = LatentDensity.load(Path(directory) / DENSITY_FILE, obj.model_.code_size)
        return obj

    def save(self, directory: str | Path) -> Path:
        """As :meth:`_AutoencoderBase.save`, with the threshold in threshold.json as a run keeps it
        (``aekit export DIR --part score`` carries it into the exported file)."""
        from aekit.tasks.anomaly import save_threshold, weights_digest
        from aekit.tasks.density import DENSITY_FILE

        d = super().save(directory)
        rec: dict[str, Any] = {"threshold": -float(self.offset_), "rule": str(self._rule()), "split": "fit"}
        scale = getattr(self, "scale_", None)
        if scale is not None:
            rec["error_scale"] = [float(v) for v in scale]
        density = getattr(self, "density_", None)
        if density is not None:  # threshold.json says so: an exported score part refuses it
            rec.update(score="latent", components=int(self.density_components))
            density.save(d / DENSITY_FILE, {"weights_sha256": weights_digest(d),
                                            "components": str(self.density_components)})
        save_threshold(d, rec, f"{type(self).__name__}.save")
        return d

    def _scores(self, X: np.ndarray) -> np.ndarray:
        from aekit.tasks.anomaly import score_of

        density = getattr(self, "density_", None)
        if density is not None:
            return -density.score(self._infer(X, "encode"))
        return -score_of(self._squared_errors(X), getattr(self, "scale_", None))

    def score_samples(self, X: Any) -> np.ndarray:
        """Minus aekit's anomaly score of each row: lower is more abnormal.

        Args:
            X: Rows ``(n_samples, n_features)``.

        Returns:
            ``(n_samples,)``: minus the squared reconstruction error summed over features (each over its
            ``scale_`` for features outside [0, 1]); with ``anomaly_score="latent"``, the log-density of the row's
            code under ``density_``.
        """
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return self._scores(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for the rows ``predict`` calls outliers.

        Args:
            X: Rows ``(n_samples, n_features)``.

        Returns:
            ``(n_samples,)`` float64.
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """+1 for a normal row, -1 for an outlier (a score above the threshold).

        Args:
            X: Rows ``(n_samples, n_features)``.

        Returns:
            ``(n_samples,)`` of +1 and -1.
        """
        return np.where(self.decision_function(X) >= 0, 1, -1)

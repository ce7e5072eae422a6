"""scikit-learn estimators around a fastnn model, with Keras 3's constructor.

``SKLearnClassifier``, ``SKLearnRegressor`` and ``SKLearnTransformer`` take
``model`` (a function returning a compiled model, or a compiled model),
``warm_start``, ``model_kwargs`` and ``fit_kwargs`` as ``keras.wrappers`` does,
plus ``random_state``: with it set, building and training run on a local
random stream seeded from it, so a fit repeats exactly (which is what
``clone``, cross-validation and ``check_estimator`` expect) and fastnn's
shared stream is left alone.

A pickled estimator carries its model as the bytes of a ``.fastnn`` file
(``model_bytes``), never as a pickled model object.
"""
import contextlib
import numbers

import numpy
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from ..models import Sequential
from ..utils.random import local_random_stream
from .model_bytes import model_from_bytes, model_to_bytes

_FLOATS = [numpy.float32, numpy.float64]
_PREDICT_BATCH = 4096  # rows per forward pass in predict/transform
_ROUTED = ("model_kwargs", "fit_kwargs")  # dict parameters whose entries searches can set
_MODEL_FILES = "_fastnn_model_files"  # pickled state: {attribute: .fastnn bytes}


class SKLBase(BaseEstimator):
    """Shared by the three estimators: building, fitting, predicting, pickling.

    Args:
        model: a callable ``model(X=X, y=y, **model_kwargs)`` returning a
            compiled fastnn model (see ``fastnn.wrappers.build_mlp``), or a
            compiled model, which each fit copies (weights included, when it
            is built) and trains.
        warm_start: when True, a second ``fit`` continues training the fitted
            model instead of building a new one.
        model_kwargs: keyword arguments for ``model`` when it is a callable;
            ``set_params(model_kwargs__<name>=v)`` sets one of them (searches).
        fit_kwargs: keyword arguments for ``model.fit`` (``epochs``,
            ``batch_size``, ...); those given to ``fit`` itself take precedence.
            ``verbose`` defaults to 0 here; ``fit_kwargs__<name>`` sets one.
        random_state: None (draw from fastnn's shared stream, as Keras does),
            an int or a ``numpy.random.RandomState``: the seed of the stream
            used to build and train the model, so fits repeat exactly.

    Attributes:
        model_: the fitted fastnn model.
        history_: ``{"loss": [...], ...}``, the per-epoch logs of the last fit.
        n_features_in_, feature_names_in_: as in every scikit-learn estimator.
    """

    def __init__(self, model, warm_start=False, model_kwargs=None, fit_kwargs=None,
                 random_state=None):
        self.model = model
        self.warm_start = warm_start
        self.model_kwargs = model_kwargs
        self.fit_kwargs = fit_kwargs
        self.random_state = random_state

    # ------------------------------------------------------------ fitting
    def fit(self, X, y, sample_weight=None, **kwargs):
        """Build (or, with ``warm_start``, reuse) the model and train it on ``X``, ``y``.

        Args:
            X: array-like (n_samples, n_features).
            y: targets (n_samples,) or (n_samples, n_outputs).
            sample_weight: per-sample weights (n_samples,), rescaled to mean 1 so
                the loss is a weighted mean and a learning rate means the same
                with and without them.
            **kwargs: more ``model.fit`` arguments (override ``fit_kwargs``).

        Returns:
            self
        """
        warm = bool(self.warm_start) and hasattr(self, "model_")
        X, y = self._validate_xy(X, y, reset=not warm)
        target, state = self._encode_target(y, reset=not warm)
        weights = self._check_weights(sample_weight, X, target)
        fit_kwargs = {"verbose": 0, **(self.fit_kwargs or {}), **kwargs}
        if "sample_weight" in fit_kwargs:
            raise TypeError("pass sample_weight to fit(X, y, sample_weight=...), "
                            "not through fit_kwargs")
        with self._random_stream():
            model = self.model_ if warm else self._build_model(X, target)
            history = model.fit(X, target, sample_weight=weights, **fit_kwargs)
        for name, value in state.items():
            setattr(self, name, value)
        self.model_ = model
        self.history_ = {k: list(v) for k, v in history.history.items()}
        return self

    def _validate_xy(self, X, y, reset):
        return validate_data(self, X, y, reset=reset, dtype=_FLOATS)

    def _encode_target(self, y, reset):
        """(the target the model trains on, attributes to set once the fit succeeds)."""
        y = numpy.asarray(y, dtype=numpy.float32)
        if not reset and y.shape[1:] != self._target_shape_[1:]:
            raise ValueError(f"y has shape {y.shape[1:]} per sample, the model was fitted "
                             f"on {self._target_shape_[1:]}")
        target = y.reshape(len(y), -1) if y.ndim == 1 else y
        return numpy.ascontiguousarray(target), {"_target_shape_": y.shape}

    def _check_weights(self, sample_weight, X, target):
        if sample_weight is None:
            return None
        n = len(X)
        try:
            weights = numpy.asarray(sample_weight, dtype=numpy.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"sample_weight must be numbers: {exc}") from None
        if weights.ndim == 0:
            weights = numpy.full(n, float(weights))
        if weights.shape != (n,):
            raise ValueError(f"sample_weight has shape {weights.shape}, expected ({n},)")
        if not numpy.isfinite(weights).all() or (weights < 0).any():
            raise ValueError("sample_weight must be finite and non-negative")
        total = weights.sum()
        if total <= 0:
            raise ValueError("sample weights are all zero: at least one must be non-zero")
        return (weights * (len(weights) / total)).astype(numpy.float32)

    def _build_model(self, X, y):
        if isinstance(self.model, Sequential):
            model = model_from_bytes(model_to_bytes(self.model))
        elif callable(self.model):
            model = self.model(X=X, y=y, **(self.model_kwargs or {}))
        else:
            raise TypeError(f"model must be a fastnn model or a callable returning one, "
                            f"got {type(self.model).__name__}")
        if not isinstance(model, Sequential):
            raise TypeError(f"model(X, y, **model_kwargs) must return a fastnn model, "
                            f"got {type(model).__name__}")
        if model.loss is None or model.optimizer is None:
            raise ValueError("the model must be compiled (model.compile(optimizer, loss)) "
                             "before the estimator fits it")
        return model

    def _random_stream(self):
        """A local stream seeded from ``random_state``, or the shared one for None."""
        if self.random_state is None:
            return contextlib.nullcontext()  # fastnn's shared stream, as Keras
        if isinstance(self.random_state, numbers.Integral):
            seed = int(self.random_state)
        else:
            seed = int(check_random_state(self.random_state).randint(2 ** 31 - 1))
        if seed < 0:
            raise ValueError(f"random_state must be >= 0, got {self.random_state!r}")
        return local_random_stream(seed)

    # ------------------------------------------------------------ predicting
    def _raw_predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=_FLOATS)
        return self.model_.predict(X, batch_size=_PREDICT_BATCH)

    def predict(self, X):
        """The model's predictions for ``X``, shaped like the ``y`` it was fitted on."""
        out = numpy.asarray(self._raw_predict(X), dtype=numpy.float64)
        return out.reshape((len(out),) + self._target_shape_[1:])

    # ------------------------------------------------------------ parameters
    def get_params(self, deep=True):
        """The constructor's parameters; with ``deep``, also each ``model_kwargs__<name>``
        and ``fit_kwargs__<name>`` entry (the names a search can tune)."""
        params = super().get_params(deep=deep)
        if deep:
            for prefix in _ROUTED:
                if isinstance(params.get(prefix), dict):
                    for key, value in params[prefix].items():
                        params[f"{prefix}__{key}"] = value
        return params

    def set_params(self, **params):
        """Set parameters; ``model_kwargs__learning_rate=0.01`` sets one entry of
        ``model_kwargs`` (on a copy of the dict), so searches can tune model arguments.

        Returns:
            self
        """
        routed = {}
        for key in list(params):
            prefix, sep, name = key.partition("__")
            if sep and prefix in _ROUTED:
                routed.setdefault(prefix, {})[name] = params.pop(key)
        super().set_params(**params)
        for prefix, values in routed.items():
            current = getattr(self, prefix)
            if current is not None and not isinstance(current, dict):
                raise TypeError(f"cannot set {prefix}__...: {prefix} is a "
                                f"{type(current).__name__}, not a dict")
            setattr(self, prefix, {**(current or {}), **values})
        return self

    # ------------------------------------------------------------ tags, clone, pickle
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False  # fits repeat exactly under random_state
        return tags

    def __sklearn_clone__(self):
        """A fresh estimator with the same parameters; a model instance is copied via its file."""
        params = self.get_params(deep=False)
        model = params.pop("model")
        if isinstance(model, Sequential):
            model = model_from_bytes(model_to_bytes(model))
        return type(self)(model=model, **{k: clone(v, safe=False) for k, v in params.items()})

    def __getstate__(self):
        state = dict(super().__getstate__())
        files = {name: model_to_bytes(state.pop(name)) for name in ("model", "model_")
                 if isinstance(state.get(name), Sequential)}
        if files:
            state[_MODEL_FILES] = files
        return state

    def __setstate__(self, state):
        state = dict(state)
        for name, data in state.pop(_MODEL_FILES, {}).items():
            state[name] = model_from_bytes(data)
        super().__setstate__(state)


class SKLearnClassifier(ClassifierMixin, SKLBase):
    """A scikit-learn classifier around a fastnn model (``keras.wrappers.SKLearnClassifier``).

    Labels may be of any type (ints, strings, ...). ``model`` is called with
    ``y`` one-hot encoded (one column per class, in the order of ``classes_``),
    so its last layer has ``len(classes_)`` units, usually with a softmax and
    ``categorical_crossentropy``.

    Attributes:
        classes_: the class labels, sorted.

    Example:
        >>> from sklearn.datasets import load_digits  # doctest: +SKIP
        >>> from fastnn.wrappers import SKLearnClassifier, build_mlp
        >>> X, y = load_digits(return_X_y=True)
        >>> clf = SKLearnClassifier(build_mlp, model_kwargs={"hidden_layer_sizes": (64,)},
        ...                         fit_kwargs={"epochs": 20}, random_state=0).fit(X / 16, y)
        >>> clf.predict_proba(X[:2] / 16).shape
        (2, 10)
    """

    def _encode_target(self, y, reset):
        check_classification_targets(y)
        kind = type_of_target(y, input_name="y")
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"SKLearnClassifier handles binary and multiclass targets, "
                             f"got {kind}")
        if reset:
            classes = numpy.unique(y)
            if len(classes) < 2:
                raise ValueError(f"SKLearnClassifier needs at least 2 classes in y, got "
                                 f"one class: {classes[0]!r}")
        else:
            classes = self.classes_
        ids = numpy.searchsorted(classes, y)
        ids = numpy.minimum(ids, len(classes) - 1)
        unknown = classes[ids] != y
        if unknown.any():
            raise ValueError(f"y holds labels the fitted classifier does not know: "
                             f"{numpy.unique(numpy.asarray(y)[unknown])[:10]!r}; its classes "
                             f"are {classes!r} (warm_start keeps them)")
        one_hot = numpy.zeros((len(ids), len(classes)), dtype=numpy.float32)
        one_hot[numpy.arange(len(ids)), ids] = 1
        return one_hot, {"classes_": classes}

    def _check_weights(self, sample_weight, X, target):
        weights = super()._check_weights(sample_weight, X, target)
        if weights is not None and numpy.count_nonzero(weights @ target) < 2:
            raise ValueError("only one class has non-zero sample weight: a classifier "
                             "needs at least 2 classes to train on")
        return weights

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        return numpy.asarray(self._raw_predict(X), dtype=numpy.float64)

    def predict(self, X):
        """The most probable class label of each sample."""
        proba = self._raw_predict(X)
        return self.classes_[numpy.argmax(proba, axis=1)]


class SKLearnRegressor(RegressorMixin, SKLBase):
    """A scikit-learn regressor around a fastnn model (``keras.wrappers.SKLearnRegressor``).

    ``y`` may have one column (n,) or several (n, outputs); ``model`` is called
    with ``y`` as a 2-D float array, and ``predict`` returns the shape ``y`` had.
    """

    def _validate_xy(self, X, y, reset):
        return validate_data(self, X, y, reset=reset, dtype=_FLOATS, multi_output=True,
                             y_numeric=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class SKLearnTransformer(TransformerMixin, SKLBase):
    """A scikit-learn transformer around a fastnn model (``keras.wrappers.SKLearnTransformer``).

    ``transform(X)`` is the model's output for ``X`` (an embedding, a
    reconstruction, ...). ``fit(X, y)`` trains the model to map ``X`` to ``y``;
    with ``y=None`` it trains it to reproduce ``X`` (an autoencoder).
    """

    def fit(self, X, y=None, sample_weight=None, **kwargs):
        """Train the model on ``X`` and ``y`` (``X`` itself when ``y`` is None)."""
        if y is None:
            X = validate_data(self, X, reset=not (self.warm_start and hasattr(self, "model_")),
                              dtype=_FLOATS)
            y = X
        return super().fit(X, y, sample_weight=sample_weight, **kwargs)

    def _validate_xy(self, X, y, reset):
        return validate_data(self, X, y, reset=reset, dtype=_FLOATS, multi_output=True,
                             y_numeric=True)

    def transform(self, X):
        """The model's output for ``X``: (n_samples, model outputs)."""
        return self._raw_predict(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []
        tags.target_tags.multi_output = True
        return tags

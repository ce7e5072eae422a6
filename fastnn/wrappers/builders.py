"""``build_mlp``: a model-building function for the scikit-learn wrappers.

The wrappers call ``model(X=X, y=y, **model_kwargs)``; this function sizes
the input and output layers from ``X`` and ``y`` and takes the usual search
knobs (hidden sizes, learning rate, L2 strength) as keyword arguments, so
``GridSearchCV`` / ``RandomizedSearchCV`` can tune them through
``model_kwargs``.
"""
from .. import optimizers
from ..layers import Dense, Input
from ..models import Sequential
from ..regularizers import L2


def build_mlp(X, y, hidden_layer_sizes=(100,), activation="relu",
              output_activation="softmax", loss="categorical_crossentropy",
              optimizer="rmsprop", learning_rate=1e-3, l2=0.0, metrics=None,
              dtype="float32"):
    """A compiled Sequential MLP for ``X`` (n, features) and ``y`` (n,) or (n, outputs).

    Args:
        X, y: the training data as the wrapper passes it (for a classifier,
            ``y`` is one-hot, one column per class).
        hidden_layer_sizes: units of each hidden Dense layer, as in
            scikit-learn's ``MLPClassifier``.
        activation: hidden activation.
        output_activation, loss: the head; ``"softmax"`` with
            ``"categorical_crossentropy"`` for ``SKLearnClassifier``, ``None``
            (linear) with ``"mse"`` for ``SKLearnRegressor``/``SKLearnTransformer``.
        optimizer: an optimizer name ("adam", "sgd", "rmsprop", ...).
        learning_rate: its learning rate.
        l2: L2 penalty on every kernel (``kernel_regularizer=L2(l2)``); 0 for none.
        metrics: passed to ``compile``.
        dtype: the layers' dtype ("float64" trains in double precision, slower).

    Example:
        >>> from fastnn.wrappers import SKLearnClassifier, build_mlp  # doctest: +SKIP
        >>> clf = SKLearnClassifier(build_mlp, model_kwargs={"hidden_layer_sizes": (64,)},
        ...                         fit_kwargs={"epochs": 30}, random_state=0)
    """
    if X.ndim != 2:
        raise ValueError(f"build_mlp needs X of shape (n_samples, n_features), got {X.shape}")
    n_outputs = y.shape[1] if y.ndim > 1 else 1
    regularizer = L2(l2) if l2 else None
    layers = [Input(shape=(X.shape[1],), dtype=dtype)]
    layers += [Dense(int(units), activation=activation, kernel_regularizer=regularizer,
                     dtype=dtype)
               for units in hidden_layer_sizes]
    layers.append(Dense(n_outputs, activation=output_activation, kernel_regularizer=regularizer,
                        dtype=dtype))
    model = Sequential(layers)
    model.compile(optimizer=optimizers.get({"class_name": optimizer,
                                            "config": {"learning_rate": float(learning_rate)}}),
                  loss=loss, metrics=metrics)
    return model

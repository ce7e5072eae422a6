"""Bad input against Keras: where fastnn raises a clear error and Keras computes a number
(deliberately kept), and where both raise."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

import fastnn  # noqa: E402
from compat_marks import assert_close, deliberate  # noqa: E402

X = np.random.default_rng(8).normal(size=(6, 3)).astype("float32")


def classifier(lib, loss="sparse_categorical_crossentropy"):
    m = lib.Sequential([lib.Input((3,)), lib.layers.Dense(3, activation="softmax")])
    m.compile(optimizer="sgd", loss=loss)
    return m


def raises_in_both(call):
    """The exception types each library raises for ``call(lib)`` (None: no exception)."""
    out = []
    for lib in (keras, fastnn):
        try:
            call(lib)
            out.append(None)
        except Exception as exc:  # noqa: BLE001 - comparing what each library raises
            out.append(type(exc))
    return out


@deliberate("labels outside the number of classes raise a ValueError naming them")
def test_out_of_range_sparse_labels():
    kinds = raises_in_both(lambda lib: classifier(lib).evaluate(
        X, np.array([0, 1, 2, 5, 1, 0]), verbose=0))
    assert kinds[0] == kinds[1]


@deliberate("NaN or infinite inputs raise a ValueError instead of giving a NaN loss")
@pytest.mark.parametrize("call", ["evaluate", "fit", "predict"])
def test_nan_input(call):
    bad = X.copy()
    bad[2, 1] = np.nan
    y = np.array([0, 1, 2, 1, 1, 0])
    kinds = raises_in_both(lambda lib: getattr(classifier(lib), call)(
        *((bad,) if call == "predict" else (bad, y)), verbose=0))
    assert kinds[0] == kinds[1]


@deliberate("an unknown metric name raises at compile, not at fit")
def test_misspelled_metric_at_compile():
    kinds = raises_in_both(lambda lib: lib.Sequential([lib.Input((3,)), lib.layers.Dense(
        3)]).compile(optimizer="sgd", loss="mse", metrics=["acuracy"]))
    assert kinds[0] == kinds[1]


def test_wrong_number_of_samples_in_y_raises_value_error():
    kinds = raises_in_both(lambda lib: classifier(lib).fit(X, np.zeros(4), verbose=0))
    assert kinds == [ValueError, ValueError]


def test_predict_on_one_unbatched_sample_raises_value_error():
    kinds = raises_in_both(lambda lib: classifier(lib).predict(X[0], verbose=0))
    assert kinds == [ValueError, ValueError]


def test_dense_on_a_sequence_of_vectors():
    x = np.ones((2, 4, 3), "float32")
    shapes = [np.shape(lib.layers.Dense(5)(x)) for lib in (keras, fastnn)]
    assert shapes[0] == shapes[1] == (2, 4, 5)


def test_dense_on_a_sequence_with_the_same_weights():
    x = np.random.default_rng(1).normal(size=(2, 4, 3)).astype("float32")
    k, f = keras.layers.Dense(5, activation="tanh"), fastnn.layers.Dense(5, activation="tanh")
    k.build((None, 4, 3))
    f.build((4, 3))
    f.set_weights(k.get_weights())
    assert_close(f(x), k(x))


@pytest.mark.parametrize("case", ["unknown_mode", "unbuilt"])
def test_quantize_refusals(case):
    """``Model.quantize``: an unknown mode and an unbuilt model are ValueErrors in both."""
    def call(lib):
        if case == "unbuilt":
            lib.Sequential([lib.layers.Dense(2)]).quantize("int8")
        else:
            classifier(lib).quantize("int3")
    kinds = raises_in_both(call)
    assert kinds == [ValueError, ValueError]


def test_int8_quantize_keeps_predictions_close():
    """After ``quantize("int8")`` both libraries predict within int8 rounding of float32."""
    outs = []
    for lib in (keras, fastnn):
        m = lib.Sequential([lib.Input((3,)), lib.layers.Dense(16, activation="relu"),
                            lib.layers.Dense(3, activation="softmax")])
        m.set_weights([np.linspace(-1, 1, w.size).reshape(w.shape).astype("float32")
                       for w in m.get_weights()])
        before = np.asarray(m.predict(X, verbose=0))
        m.quantize("int8")
        outs.append((before, np.asarray(m.predict(X, verbose=0))))
    (k_before, k_after), (f_before, f_after) = outs
    assert_close(f_before, k_before)
    np.testing.assert_allclose(k_after, k_before, atol=0.02)
    np.testing.assert_allclose(f_after, f_before, atol=0.02)
    np.testing.assert_allclose(f_after, k_after, atol=0.03)

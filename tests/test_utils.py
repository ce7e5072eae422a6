"""fastnn.utils helpers shared with Keras: normalize and to_categorical."""
import numpy as np
import pytest

from fastnn import utils


@pytest.mark.parametrize("order", [1, 2])
def test_normalize_rows_to_unit_norm(order):
    x = np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 1.0]])
    out = utils.normalize(x, order=order)
    np.testing.assert_allclose(np.linalg.norm(out[[0, 2]], ord=order, axis=1), 1.0)
    np.testing.assert_array_equal(out[1], 0.0)  # a zero row stays zero


def test_normalize_columns():
    out = utils.normalize(np.array([[3.0, 1.0], [4.0, 0.0]]), axis=0)
    np.testing.assert_allclose(out, [[0.6, 1.0], [0.8, 0.0]])


def test_to_categorical_is_float32():
    assert utils.to_categorical([0, 2]).dtype == np.float32

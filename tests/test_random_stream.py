"""fastnn.utils.random.local_random_stream: a seeded block that leaves the shared stream alone."""
import threading

import numpy
import pytest

import fastnn
from fastnn.utils.random import get_rng, local_random_stream


def _initial_weights(seed):
    with local_random_stream(seed):
        model = fastnn.Sequential([fastnn.Input(shape=(4,)), fastnn.layers.Dense(3)])
        model.predict(numpy.zeros((1, 4), dtype="float32"))  # builds: draws the weights
    return model.get_weights()[0]


def test_the_block_repeats_and_the_shared_stream_is_untouched():
    fastnn.utils.set_random_seed(5)
    expected_next = numpy.random.default_rng(5).random()
    a, b, c = _initial_weights(1), _initial_weights(1), _initial_weights(2)
    numpy.testing.assert_array_equal(a, b)
    assert not numpy.array_equal(a, c)
    assert get_rng().random() == expected_next  # as if the blocks had not run


def test_the_shared_stream_comes_back_after_an_error():
    shared = get_rng()
    with pytest.raises(RuntimeError), local_random_stream(0):
        assert get_rng() is not shared
        raise RuntimeError("inside the block")
    assert get_rng() is shared


def test_blocks_in_threads_take_turns():
    results, errors = {}, []

    def work(seed):
        try:
            with local_random_stream(seed):
                first = get_rng().random()
                threading.Event().wait(0.01)  # another thread would swap the stream here
                results[seed] = (first, get_rng().random())
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for seed, pair in results.items():
        rng = numpy.random.default_rng(seed)
        assert pair == (rng.random(), rng.random())

"""Train an MLP on scikit-learn's handwritten digits and print the test accuracy.

The data ships with scikit-learn (1,797 8x8 images); no download happens.
"""
import time

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastnn
from fastnn import layers, optimizers


def main(epochs=30, verbose=0):
    fastnn.utils.set_random_seed(0)
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.2, stratify=digits.target, random_state=0)

    model = fastnn.Sequential([
        layers.Dense(128, activation="relu", input_shape=(64,)),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=optimizers.Adam(learning_rate=1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=verbose)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"digits: test accuracy {accuracy:.4f}, test loss {loss:.4f}, "
          f"training time {seconds:.2f} s ({epochs} epochs, backend {fastnn.get_backend()})")
    return accuracy


if __name__ == "__main__":
    main()

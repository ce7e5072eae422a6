"""Transfer learning: reuse a digit classifier's features to learn a new task from 30 images.

1. Train a base network to tell the ten digits apart (half of the data).
2. New task, on the other half: is the digit odd? Only 3 labelled images
   of each digit are available. Build a new network with the same hidden
   layers, copy the base weights in with ``get_weights`` / ``set_weights``,
   freeze them with ``layer.trainable = False`` and train only a new output
   layer (the "head").
3. Unfreeze everything and fine-tune briefly with a small learning rate.

The same 30 images also train a network from scratch, for comparison: it has
to learn what digits look like from those 30 examples alone. (A whole model can also go through a
file with ``model.save(path)`` and ``fastnn.models.load_model(path)``;
copying arrays keeps this example about the layers.)
"""
import numpy
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastnn
from fastnn import layers, optimizers

PER_DIGIT = 3


def hidden_layers():
    """The feature extractor shared by every network here."""
    return [layers.Dense(64, activation="relu", input_shape=(64,)),
            layers.Dense(32, activation="relu")]


def classifier(hidden, classes, learning_rate):
    model = fastnn.Sequential(hidden + [layers.Dense(classes, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def load_data():
    """Base task (digit, half the data); new task (odd?, PER_DIGIT labelled images a digit)."""
    digits = load_digits()
    x, y = (digits.data / 16.0).astype("float32"), digits.target
    x_base, x_new, y_base, y_new = train_test_split(
        x, y, test_size=0.5, stratify=y, random_state=0)
    few = numpy.concatenate([numpy.flatnonzero(y_new == d)[:PER_DIGIT] for d in range(10)])
    rest = numpy.setdiff1d(numpy.arange(len(y_new)), few)
    odd = y_new % 2
    return (x_base, y_base), (x_new[few], odd[few]), (x_new[rest], odd[rest])


def main(epochs=30, out_dir=None, verbose=0):
    """Run the three stages; returns a dict of test accuracies (``out_dir`` is unused)."""
    fastnn.utils.set_random_seed(0)
    (x_base, y_base), (x_few, y_few), (x_test, y_test) = load_data()

    base = classifier(hidden_layers(), 10, learning_rate=1e-3)
    base.fit(x_base, y_base, batch_size=32, epochs=epochs, verbose=verbose)

    hidden = hidden_layers()
    transfer = classifier(hidden, 2, learning_rate=1e-2)
    transfer.build()
    for new, old in zip(hidden, base.layers):
        new.set_weights(old.get_weights())
        new.trainable = False
    frozen_before = [w.copy() for layer in hidden for w in layer.get_weights()]
    transfer.fit(x_few, y_few, batch_size=10, epochs=epochs, verbose=verbose)
    frozen_after = [w for layer in hidden for w in layer.get_weights()]
    frozen_unchanged = all(numpy.array_equal(a, b) for a, b in zip(frozen_before, frozen_after))
    head_only = transfer.evaluate(x_test, y_test, verbose=0)[1]

    for layer in hidden:
        layer.trainable = True
    transfer.compile(optimizer=optimizers.Adam(learning_rate=1e-4),
                     loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    transfer.fit(x_few, y_few, batch_size=10, epochs=max(epochs // 3, 1), verbose=verbose)
    fine_tuned = transfer.evaluate(x_test, y_test, verbose=0)[1]

    scratch = classifier(hidden_layers(), 2, learning_rate=1e-2)
    scratch.fit(x_few, y_few, batch_size=10, epochs=epochs, verbose=verbose)
    from_scratch = scratch.evaluate(x_test, y_test, verbose=0)[1]

    print(f"odd digit? from {len(y_few)} labelled images, test accuracy: "
          f"frozen base + new head {head_only:.3f}, after fine-tuning {fine_tuned:.3f}, "
          f"from scratch {from_scratch:.3f}")
    return {"head_only": head_only, "fine_tuned": fine_tuned, "from_scratch": from_scratch,
            "frozen_unchanged": frozen_unchanged}


if __name__ == "__main__":
    main()

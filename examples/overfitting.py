"""Overfitting and four cures, on 100 of scikit-learn's digits.

A wide network (two layers of 256 ReLUs) trained on 100 images learns them
by heart: its training loss keeps falling while the validation loss turns
back up. The same network is trained four ways from the same starting
weights: plain, with dropout, with batch normalisation, and plain with early
stopping (which stops once the validation loss has not improved for a few
epochs and restores the best weights). ``overfitting.png`` shows train vs
validation loss for each, titled with the validation accuracy of the model
that training leaves behind (for early stopping: the restored best weights).
"""
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastnn
from fastnn import callbacks, layers, optimizers

TRAIN_SIZE = 100


def build_model(variant):
    """The 64-256-256-10 network; ``variant`` adds dropout or batch normalisation."""
    extra = {"dropout": lambda: [layers.Dropout(0.5)],
             "batch norm": lambda: [layers.BatchNormalization(momentum=0.9)]}.get(variant, lambda: [])
    model = fastnn.Sequential([layers.Dense(256, activation="relu", input_shape=(64,)),
                               *extra(),
                               layers.Dense(256, activation="relu"),
                               *extra(),
                               layers.Dense(10, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(learning_rate=3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def plot_curves(histories, accuracies, path):
    """Save a 2x2 grid: train vs validation loss per variant, one shared y axis."""
    from fastnn.utils.plotting import require_matplotlib
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True, sharey=True).ravel()
    for ax, (variant, logs) in zip(axes, histories.items()):
        epochs = range(1, len(logs["loss"]) + 1)
        ax.plot(epochs, logs["loss"], label="train")
        ax.plot(epochs, logs["val_loss"], "--", label="validation")
        best = min(range(len(logs["val_loss"])), key=logs["val_loss"].__getitem__)
        ax.axvline(best + 1, color="gray", linewidth=0.8, linestyle=":",
                   label=f"best validation (epoch {best + 1})")
        ax.set_title(f"{variant}: validation accuracy {accuracies[variant]:.3f}")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[2:]:
        ax.set_xlabel("epoch")
    for ax in axes[::2]:
        ax.set_ylabel("cross-entropy loss (log scale)")
    fig.suptitle(f"Overfitting on {TRAIN_SIZE} digits and four ways to train")
    fig.savefig(path, dpi=80)


def main(epochs=60, out_dir=None, verbose=0):
    """Train the four variants; returns their histories, final accuracies and the plot."""
    out_dir = Path(out_dir or Path(__file__).parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    x_train, x_val, y_train, y_val = train_test_split(
        x, digits.target, train_size=TRAIN_SIZE, test_size=600, stratify=digits.target,
        random_state=0)

    histories, accuracies = {}, {}
    for variant in ("no regularisation", "dropout", "batch norm", "early stopping"):
        fastnn.utils.set_random_seed(0)
        model = build_model(variant)
        stop = ([callbacks.EarlyStopping(patience=5, restore_best_weights=True)]
                if variant == "early stopping" else [])
        history = model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=verbose,
                            validation_data=(x_val, y_val), callbacks=stop)
        histories[variant] = history.history
        val_loss, accuracies[variant] = model.evaluate(x_val, y_val, verbose=0)
        print(f"{variant:>18}: {len(history.history['loss'])} epochs, validation loss "
              f"{val_loss:.3f}, accuracy {accuracies[variant]:.3f}")
    plot = out_dir / "overfitting.png"
    plot_curves(histories, accuracies, plot)
    return {"histories": histories, "accuracies": accuracies, "plot": plot}


if __name__ == "__main__":
    main()

"""A dense autoencoder on scikit-learn's 8x8 digits: 64 -> 32 -> 10 -> 32 -> 64.

The network learns to copy its input through a 10-number bottleneck, so it
has to find a compact code for a digit. Pixels are scaled to [0, 1]; the
output is a sigmoid and the loss binary cross-entropy per pixel. Saves
``autoencoder_reconstructions.png``: test digits (top) and their
reconstructions (bottom).
"""
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastnn
from fastnn import layers, optimizers


def plot_reconstructions(originals, reconstructions, path, mse):
    """Save two rows of 8x8 images: originals above, reconstructions below."""
    from fastnn.utils.plotting import require_matplotlib
    require_matplotlib()
    from matplotlib.figure import Figure

    n = len(originals)
    fig = Figure(figsize=(1.0 * n, 2.5), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False)
    for row, (images, label) in enumerate(((originals, "original"),
                                           (reconstructions, "reconstructed"))):
        for col, image in enumerate(images):
            ax = axes[row, col]
            ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(label)
    fig.suptitle(f"Autoencoder with a 10-unit code: test digits (mean squared error {mse:.4f})")
    fig.savefig(path, dpi=100)


def main(epochs=40, out_dir=None, verbose=0):
    """Train, print the test reconstruction error; returns {"mse", "baseline_mse", "plot"}."""
    fastnn.utils.set_random_seed(0)
    out_dir = Path(out_dir or Path(__file__).parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    x_train, x_test = train_test_split(x, test_size=0.2, random_state=0)

    model = fastnn.Sequential([
        layers.Dense(32, activation="relu", input_shape=(64,)),
        layers.Dense(10, activation="relu", name="code"),
        layers.Dense(32, activation="relu"),
        layers.Dense(64, activation="sigmoid"),
    ])
    model.compile(optimizer=optimizers.Adam(learning_rate=3e-3), loss="binary_crossentropy",
                  metrics=["mse"])
    model.fit(x_train, x_train, batch_size=32, epochs=epochs, verbose=verbose)

    reconstructions = model.predict(x_test)
    mse = float(((reconstructions - x_test) ** 2).mean())
    # What predicting the average training image for every digit would score.
    baseline = float(((x_train.mean(axis=0) - x_test) ** 2).mean())
    print(f"autoencoder: test reconstruction MSE {mse:.4f} "
          f"(mean image: {baseline:.4f})")
    plot = out_dir / "autoencoder_reconstructions.png"
    plot_reconstructions(x_test[:10], reconstructions[:10], plot, mse)
    return {"mse": mse, "baseline_mse": baseline, "plot": plot}


if __name__ == "__main__":
    main()

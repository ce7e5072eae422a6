"""Learn XOR with a two-layer network and print its predictions.

XOR is the classic function a single linear layer cannot represent: the two
classes sit on opposite corners of the unit square. One hidden tanh layer is
enough. The example also draws the learned decision surface
(``xor_decision_boundary.png``).
"""
from pathlib import Path

import numpy

import fastnn
from fastnn import layers, optimizers

X = numpy.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32")
Y = numpy.array([0, 1, 1, 0], dtype="float32")


def build_model():
    """A 2-4-1 network: tanh hidden units, one sigmoid output."""
    model = fastnn.Sequential([
        layers.Dense(4, activation="tanh", input_shape=(2,)),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.05),
                  loss="binary_crossentropy", metrics=["accuracy"])
    return model


def plot_decision_surface(model, path):
    """Save the network's output over the unit square, with the four XOR points."""
    from fastnn.utils.plotting import require_matplotlib
    require_matplotlib()
    from matplotlib.figure import Figure

    grid = numpy.linspace(-0.25, 1.25, 121, dtype="float32")
    gx, gy = numpy.meshgrid(grid, grid)
    surface = model.predict(numpy.column_stack([gx.ravel(), gy.ravel()]), batch_size=4096)
    fig = Figure(figsize=(4.8, 4), layout="constrained")
    ax = fig.subplots()
    filled = ax.contourf(gx, gy, surface.reshape(gx.shape), levels=numpy.linspace(0, 1, 11),
                         cmap="RdBu_r")
    ax.contour(gx, gy, surface.reshape(gx.shape), levels=[0.5], colors="k", linewidths=1.5)
    fig.colorbar(filled, ax=ax, label="P(y = 1)")
    for label, marker in ((0, "o"), (1, "s")):
        pts = X[Y == label]
        ax.scatter(pts[:, 0], pts[:, 1], marker=marker, s=90, c="white", edgecolors="k",
                   label=f"XOR = {label}")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title("XOR: learned decision surface (black: 0.5)")
    ax.legend(loc="upper center", framealpha=0.9)
    fig.savefig(path, dpi=100)


def main(epochs=300, out_dir=None, verbose=0):
    """Train on the four XOR points; returns {"accuracy", "predictions", "plot"}."""
    fastnn.utils.set_random_seed(1)
    out_dir = Path(out_dir or Path(__file__).parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = build_model()
    model.fit(X, Y, batch_size=4, epochs=epochs, verbose=verbose)
    predictions = model.predict(X)[:, 0]
    for x, p in zip(X, predictions):
        print(f"xor({int(x[0])}, {int(x[1])}) = {p:.3f}")
    accuracy = float(((predictions > 0.5) == Y).mean())
    print(f"accuracy {accuracy:.2f}")
    plot = out_dir / "xor_decision_boundary.png"
    plot_decision_surface(model, plot)
    return {"accuracy": accuracy, "predictions": predictions, "plot": plot}


if __name__ == "__main__":
    main()

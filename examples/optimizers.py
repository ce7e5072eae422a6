"""Compare eight optimizers on one task: the same network, data and starting weights.

Each optimizer trains a 64-32-10 MLP on scikit-learn's digits from identical
initial weights and batch order; the training loss per epoch goes into
``optimizers.png``. The learning rates, shown in the legend, are reasonable
choices for this problem rather than Keras' defaults: Adadelta gets 1.0 as
in its paper (Keras' 0.001 barely moves), the Adam family 0.005.
"""
from pathlib import Path

from sklearn.datasets import load_digits

import fastnn
from fastnn import layers, optimizers


def contenders():
    """(label, optimizer factory) pairs; a factory gives a fresh optimizer per run."""
    return [
        ("SGD (lr 0.05)", lambda: optimizers.SGD(0.05)),
        ("momentum 0.9 (lr 0.05)", lambda: optimizers.SGD(0.05, momentum=0.9)),
        ("Nesterov 0.9 (lr 0.05)", lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True)),
        ("Adagrad (lr 0.05)", lambda: optimizers.Adagrad(0.05)),
        ("Adadelta (lr 1.0)", lambda: optimizers.Adadelta(1.0)),
        ("RMSprop (lr 0.005)", lambda: optimizers.RMSprop(0.005)),
        ("Adam (lr 0.005)", lambda: optimizers.Adam(0.005)),
        ("Nadam (lr 0.005)", lambda: optimizers.Nadam(0.005)),
    ]


def build_model():
    return fastnn.Sequential([
        layers.Dense(32, activation="relu", input_shape=(64,)),
        layers.Dense(10, activation="softmax"),
    ])


def plot_losses(losses, path):
    """Save one training-loss curve per optimizer on a log scale."""
    from fastnn.utils.plotting import require_matplotlib
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for i, (label, values) in enumerate(losses.items()):
        ax.plot(range(1, len(values) + 1), values, label=label, marker="os^v<>Dx"[i],
                markersize=4, linestyle="-" if i < 4 else "--")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (cross-entropy, log scale)")
    ax.set_title("Optimizers on digits: same network, same initial weights")
    ax.grid(alpha=0.3, which="both")
    ax.legend(ncols=2, fontsize="small")
    fig.savefig(path, dpi=100)


def main(epochs=15, out_dir=None, verbose=0):
    """Train once per optimizer; returns {"losses": {label: [...]}, "plot": path}."""
    out_dir = Path(out_dir or Path(__file__).parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    x, y = (digits.data / 16.0).astype("float32"), digits.target

    fastnn.utils.set_random_seed(0)
    initial = build_model()
    initial.build()
    start_weights = initial.get_weights()

    losses = {}
    for label, make_optimizer in contenders():
        fastnn.utils.set_random_seed(1)  # the same batch order for every run
        model = build_model()
        model.build()
        model.set_weights(start_weights)
        model.compile(optimizer=make_optimizer(), loss="sparse_categorical_crossentropy")
        history = model.fit(x, y, batch_size=32, epochs=epochs, verbose=verbose)
        losses[label] = history.history["loss"]
        print(f"{label:>24}: loss {losses[label][0]:.3f} -> {losses[label][-1]:.3f}")
    plot = out_dir / "optimizers.png"
    plot_losses(losses, plot)
    return {"losses": losses, "plot": plot}


if __name__ == "__main__":
    main()

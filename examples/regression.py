"""Regression on scikit-learn's diabetes data: a linear output, MSE loss, MAE metric.

The target (disease progression after one year, roughly 25 to 346) is
standardised for training and mapped back to its own units for the report,
which compares the network's test MAE with a least-squares linear model (the
data are close to linear: a small L2-regularised network about matches it).
Saves ``regression_history.png`` (curves) and ``regression_predictions.png``
(predicted vs true).
"""
from pathlib import Path

from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastnn
from fastnn import layers, optimizers, regularizers


def plot_predictions(y_true, y_pred, path):
    """Save a predicted-vs-true scatter with the ideal diagonal."""
    from fastnn.utils.plotting import require_matplotlib
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.scatter(y_true, y_pred, s=14, alpha=0.7, label="test patients")
    low, high = min(y_true.min(), y_pred.min()), max(y_true.max(), y_pred.max())
    ax.plot([low, high], [low, high], "k--", linewidth=1, label="perfect prediction")
    ax.set_xlabel("true disease progression")
    ax.set_ylabel("predicted disease progression")
    ax.set_title("Diabetes: test predictions")
    ax.legend()
    fig.savefig(path, dpi=100)


def main(epochs=40, out_dir=None, verbose=0):
    """Train, print test MAE (network and linear baseline); returns a dict of results."""
    fastnn.utils.set_random_seed(0)
    out_dir = Path(out_dir or Path(__file__).parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_diabetes()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0)
    x_scaler = StandardScaler().fit(x_train)
    x_train = x_scaler.transform(x_train).astype("float32")
    x_test = x_scaler.transform(x_test).astype("float32")
    y_mean, y_std = y_train.mean(), y_train.std()

    model = fastnn.Sequential([
        layers.Dense(16, activation="relu", input_shape=(x_train.shape[1],),
                     kernel_regularizer=regularizers.L2(1e-3)),
        layers.Dense(1),
    ])
    model.compile(optimizer=optimizers.Adam(learning_rate=1e-3), loss="mse",
                  metrics=["mae"])
    history = model.fit(x_train, ((y_train - y_mean) / y_std).astype("float32"),
                        batch_size=32, epochs=epochs, verbose=verbose, validation_split=0.2)

    y_pred = model.predict(x_test)[:, 0] * y_std + y_mean
    mae = float(abs(y_pred - y_test).mean())
    baseline = float(abs(LinearRegression().fit(x_train, y_train).predict(x_test)
                         - y_test).mean())
    print(f"diabetes: test MAE {mae:.1f} (linear regression: {baseline:.1f}); "
          f"target std {y_test.std():.1f}")
    history_plot = out_dir / "regression_history.png"
    fastnn.utils.plot_history(history, history_plot,
                              title="Diabetes regression (standardised target)")
    predictions_plot = out_dir / "regression_predictions.png"
    plot_predictions(y_test, y_pred, predictions_plot)
    return {"mae": mae, "baseline_mae": baseline, "target_std": float(y_test.std()),
            "plots": [history_plot, predictions_plot]}


if __name__ == "__main__":
    main()

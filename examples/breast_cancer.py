"""Binary classification: malignant or benign tumour (scikit-learn's breast-cancer data).

One sigmoid output and binary cross-entropy. Besides accuracy it reports
precision (of the tumours called malignant, how many are), recall (of the
malignant tumours, how many were found) and F1, their harmonic mean, from the
confusion counts TP/FP/TN/FN, all as ``fastnn.metrics``. Saves the training curves as
``breast_cancer_history.png``.
"""
from pathlib import Path

from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastnn
from fastnn import layers, metrics, optimizers


def load_data():
    """Standardised features; label 1 = malignant (scikit-learn codes malignant as 0)."""
    data = load_breast_cancer()
    y = (data.target == 0).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, y, test_size=0.25, stratify=y, random_state=0)
    scaler = StandardScaler().fit(x_train)
    return (scaler.transform(x_train).astype("float32"), y_train,
            scaler.transform(x_test).astype("float32"), y_test)


def main(epochs=30, out_dir=None, verbose=0):
    """Train, print the test metrics and save the curves; returns them as a dict."""
    fastnn.utils.set_random_seed(0)
    out_dir = Path(out_dir or Path(__file__).parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = load_data()

    model = fastnn.Sequential([
        layers.Dense(16, activation="relu", input_shape=(x_train.shape[1],)),
        layers.Dropout(0.2),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=optimizers.Adam(learning_rate=1e-3),
                  loss="binary_crossentropy",
                  metrics=["accuracy", metrics.Precision(), metrics.Recall(),
                           metrics.F1Score(average="micro", threshold=0.5)])
    history = model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=verbose,
                        validation_data=(x_test, y_test))

    report = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    proba = model.predict(x_test)
    for key, count in (("tp", metrics.TruePositives()), ("fp", metrics.FalsePositives()),
                       ("tn", metrics.TrueNegatives()), ("fn", metrics.FalseNegatives())):
        report[key] = int(count(y_test, proba))
    print("test: " + ", ".join(f"{k} {report[k]:.3f}"
                               for k in ("accuracy", "precision", "recall", "f1_score")))
    print(f"confusion: TP {report['tp']}  FP {report['fp']}  TN {report['tn']}  "
          f"FN {report['fn']}")
    report["plot"] = out_dir / "breast_cancer_history.png"
    fastnn.utils.plot_history(history, report["plot"],
                              title="Breast cancer: train vs validation (held-out 25%)")
    return report


if __name__ == "__main__":
    main()

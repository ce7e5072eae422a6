"""Binary classification: malignant or benign tumour (scikit-learn's breast-cancer data).

One sigmoid output and binary cross-entropy. Besides accuracy it reports
precision (of the tumours called malignant, how many are), recall (of the
malignant tumours, how many were found) and F1, their harmonic mean, from the
confusion counts TP/FP/TN/FN. Saves the training curves as
``breast_cancer_history.png``.
"""
from pathlib import Path

from sklearn.datasets import load_breast_cancer
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, precision_score,
                             recall_score)
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastnn
from fastnn import layers, optimizers


def load_data():
    """Standardised features; label 1 = malignant (scikit-learn codes malignant as 0)."""
    data = load_breast_cancer()
    y = (data.target == 0).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, y, test_size=0.25, stratify=y, random_state=0)
    scaler = StandardScaler().fit(x_train)
    return (scaler.transform(x_train).astype("float32"), y_train,
            scaler.transform(x_test).astype("float32"), y_test)


def binary_report(y_true, proba, threshold=0.5):
    """Confusion counts and accuracy, precision, recall, F1 for ``proba > threshold``."""
    pred = (proba.reshape(-1) > threshold).astype("float32")
    tn, fp, fn, tp = (int(c) for c in confusion_matrix(y_true, pred, labels=[0, 1]).ravel())
    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn,
            "accuracy": accuracy_score(y_true, pred),
            "precision": precision_score(y_true, pred, zero_division=0),
            "recall": recall_score(y_true, pred, zero_division=0),
            "f1": f1_score(y_true, pred, zero_division=0)}


def main(epochs=30, out_dir=None, verbose=0):
    """Train, print the test report and save the curves; returns the report dict."""
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
                  loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=verbose,
                        validation_data=(x_test, y_test))

    report = binary_report(y_test, model.predict(x_test))
    print("test: " + ", ".join(f"{k} {v:.3f}" for k, v in report.items()
                                if isinstance(v, float)))
    print(f"confusion: TP {report['tp']}  FP {report['fp']}  TN {report['tn']}  "
          f"FN {report['fn']}")
    report["plot"] = out_dir / "breast_cancer_history.png"
    fastnn.utils.plot_history(history, report["plot"],
                              title="Breast cancer: train vs validation (held-out 25%)")
    return report


if __name__ == "__main__":
    main()

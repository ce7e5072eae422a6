"""What ``model.quantize`` costs in accuracy: data sets and per-layer output errors.

    python bench/quantize_accuracy.py            # digits, breast cancer, bench's large model
    python bench/quantize_accuracy.py --json out.json

For scikit-learn's digits and breast-cancer data (70/30 split, features scaled to
[0, 1]) it trains a 96-BN-Dropout-48 ReLU MLP in float32 and reports the test
accuracy of the float32, int8 and bfloat16 models, and each rewritten stage's
relative output error ``||y_q - y|| / ||y||`` on the test inputs
(``fastnn.engine.quantize.output_errors``). For the largest model of
``bench/_workloads.py`` (train_large: 784-2048-2048-10, He-initialised, untrained)
it reports the same errors and the relative error of the model's output on 256
standard-normal rows.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _repo import use_checkout_if_not_installed  # noqa: E402
from _workloads import WORKLOADS  # noqa: E402

use_checkout_if_not_installed()


def _errors(model, x, mode):
    from fastnn.backend import get_ops
    from fastnn.engine.program import inference_program
    from fastnn.engine.quantize import output_errors, quantize_program
    ops = get_ops()
    fp32 = inference_program(model, ops, fold=True)
    return [e for _, _, e in output_errors(fp32, quantize_program(fp32, ops, mode), ops, x)]


def data_set(loader):
    import fastnn
    from fastnn import layers
    x, y = loader(return_X_y=True)
    x = (x / numpy.maximum(x.max(axis=0), 1e-9)).astype("float32")
    order = numpy.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    cut = int(0.7 * len(x))
    fastnn.utils.set_random_seed(0)
    model = fastnn.Sequential([fastnn.Input(shape=(x.shape[1],)),
                               layers.Dense(96, activation="relu"),
                               layers.BatchNormalization(), layers.Dropout(0.2),
                               layers.Dense(48, activation="relu"),
                               layers.Dense(int(y.max()) + 1, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:cut], y[:cut], epochs=15, batch_size=32, verbose=0)
    xt, yt = x[cut:], y[cut:]
    row = {"test_samples": int(len(yt))}
    probs = model.predict(xt, verbose=0)
    row["fp32_accuracy"] = float((probs.argmax(1) == yt).mean())
    for mode in ("int8", "bfloat16"):
        clone = fastnn.models.clone_model(model)
        clone.set_weights(model.get_weights())
        clone.quantize(mode)
        low = clone.predict(xt, verbose=0)
        row[f"{mode}_accuracy"] = float((low.argmax(1) == yt).mean())
        row[f"{mode}_output_rel_error"] = float(numpy.linalg.norm(low - probs)
                                               / numpy.linalg.norm(probs))
        row[f"{mode}_layer_errors"] = _errors(model, xt, mode)
    return row


def large_model():
    import fastnn
    from fastnn import layers
    dims = WORKLOADS["train_large"]["dims"]
    fastnn.utils.set_random_seed(0)
    model = fastnn.Sequential(
        [fastnn.Input(shape=(dims[0],))]
        + [layers.Dense(d, activation="relu", kernel_initializer="he_normal") for d in dims[1:-1]]
        + [layers.Dense(dims[-1], activation="softmax")])
    x = numpy.random.default_rng(1).standard_normal((256, dims[0])).astype("float32")
    probs = model.predict(x, verbose=0)
    row = {"dims": list(dims)}
    for mode in ("int8", "bfloat16"):
        clone = fastnn.models.clone_model(model)
        clone.set_weights(model.get_weights())
        clone.quantize(mode)
        low = clone.predict(x, verbose=0)
        row[f"{mode}_output_rel_error"] = float(numpy.linalg.norm(low - probs)
                                               / numpy.linalg.norm(probs))
        row[f"{mode}_argmax_agreement"] = float((low.argmax(1) == probs.argmax(1)).mean())
        row[f"{mode}_layer_errors"] = _errors(model, x, mode)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)
    from sklearn.datasets import load_breast_cancer, load_digits
    report = {"digits": data_set(load_digits), "breast_cancer": data_set(load_breast_cancer),
              "train_large_model": large_model()}
    for name, row in report.items():
        print(f"{name}:")
        for key, value in row.items():
            text = (", ".join(f"{v:.2e}" for v in value) if isinstance(value, list)
                    and value and isinstance(value[0], float) else
                    f"{value:.4f}" if isinstance(value, float) else value)
            print(f"  {key:26s} {text}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

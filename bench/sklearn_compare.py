"""fastnn's SKLearnClassifier against scikit-learn's MLPClassifier, side by side in one run.

    python bench/sklearn_compare.py                 # digits + breast cancer, 3 seeds, 1 thread
    python bench/sklearn_compare.py --threads 2 --seeds 5
    python bench/sklearn_compare.py --smoke         # tiny run: checks the harness only

Both estimators sit in the same pipeline (StandardScaler, then the network)
with the same hidden sizes, and are cross-validated on the same stratified
5-fold splits. For each seed the two run one after the other (fastnn, then
MLPClassifier), so host noise falls on both alike. Reported per data set:
the 5-fold accuracy (mean over folds, then over seeds, plus each seed's) and
the mean fit time of one fold; the ratio is MLPClassifier's fit time over
fastnn's. MLPClassifier runs with its defaults (Adam, batch 200, up to 200
epochs with its own stopping rule, alpha=1e-4); fastnn with ``build_mlp``'s
defaults (RMSprop, learning rate 1e-3) and ``--epochs``/``--batch-size``.
Both are held to ``--threads`` (fastnn.set_num_threads and threadpoolctl's
BLAS limit).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import warnings

import numpy
import sklearn
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import fastnn
from fastnn.wrappers import SKLearnClassifier, build_mlp

DATASETS = {"digits": load_digits, "breast_cancer": load_breast_cancer}


def estimators(hidden, epochs, batch_size, seed, mlp_max_iter):
    ours = SKLearnClassifier(build_mlp, model_kwargs={"hidden_layer_sizes": hidden},
                             fit_kwargs={"epochs": epochs, "batch_size": batch_size},
                             random_state=seed)
    theirs = MLPClassifier(hidden_layer_sizes=hidden, max_iter=mlp_max_iter, random_state=seed)
    return {"fastnn": make_pipeline(StandardScaler(), ours),
            "sklearn_mlp": make_pipeline(StandardScaler(), theirs)}


def run(datasets, seeds, folds, hidden, epochs, batch_size, mlp_max_iter):
    """{data set: {estimator: {"accuracy": [per seed], "fit_time": [per fold, all seeds]}}}"""
    results = {}
    for name in datasets:
        X, y = DATASETS[name](return_X_y=True)
        rows = {"fastnn": {"accuracy": [], "fit_time": []},
                "sklearn_mlp": {"accuracy": [], "fit_time": []}}
        for seed in range(seeds):
            cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
            for label, est in estimators(hidden, epochs, batch_size, seed, mlp_max_iter).items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    scores = cross_validate(est, X, y, cv=cv, n_jobs=1)
                rows[label]["accuracy"].append(float(scores["test_score"].mean()))
                rows[label]["fit_time"].extend(float(t) for t in scores["fit_time"])
        results[name] = rows
    return results


def report(results):
    lines = ["| data set | estimator | CV accuracy (mean of seeds) | per seed | "
             "fit time / fold (mean) | MLP time / fastnn time |",
             "|---|---|---|---|---|---|"]
    verdicts = []
    for name, rows in results.items():
        acc = {k: statistics.mean(v["accuracy"]) for k, v in rows.items()}
        t = {k: statistics.mean(v["fit_time"]) for k, v in rows.items()}
        ratio = t["sklearn_mlp"] / t["fastnn"]
        for label in ("fastnn", "sklearn_mlp"):
            per_seed = " ".join(f"{a:.4f}" for a in rows[label]["accuracy"])
            lines.append(f"| {name} | {label} | {acc[label]:.4f} | {per_seed} | "
                         f"{t[label] * 1000:.0f} ms | "
                         f"{f'{ratio:.1f}x' if label == 'fastnn' else ''} |")
        verdicts.append(f"{name}: accuracy {acc['fastnn']:.4f} vs {acc['sklearn_mlp']:.4f} "
                        f"({'>=' if acc['fastnn'] >= acc['sklearn_mlp'] else '<'} target), "
                        f"fit {ratio:.1f}x faster ({'>=' if ratio >= 3 else '<'} 3x target)")
    return "\n".join(lines), verdicts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--hidden", default="100", help="hidden sizes, comma separated")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the raw figures to this file")
    parser.add_argument("--smoke", action="store_true",
                        help="1 seed, 2 folds, 2 epochs: checks the harness, figures mean nothing")
    args = parser.parse_args(argv)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    mlp_max_iter = 200
    if args.smoke:
        args.seeds, args.folds, args.epochs, mlp_max_iter = 1, 2, 2, 2
    fastnn.set_num_threads(args.threads)
    with threadpool_limits(args.threads, "blas"):
        results = run(args.datasets.split(","), args.seeds, args.folds, hidden, args.epochs,
                      args.batch_size, mlp_max_iter)
    table, verdicts = report(results)
    print(f"hidden {hidden}, fastnn epochs {args.epochs} batch {args.batch_size}, "
          f"{args.threads} thread(s), {args.seeds} seed(s) x {args.folds} folds, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(table)
    for line in verdicts:
        print(line)
    if args.json:
        meta = {"hidden": hidden, "epochs": args.epochs, "batch_size": args.batch_size,
                "threads": args.threads, "seeds": args.seeds, "folds": args.folds,
                "smoke": args.smoke, "python": sys.version.split()[0],
                "numpy": numpy.__version__, "scikit-learn": sklearn.__version__,
                "fastnn": fastnn.__version__}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
    return results


if __name__ == "__main__":
    main()

"""Random search over learning rate and L2 strength, in log space (scikit-learn's digits).

A ``fastnn.wrappers.SKLearnClassifier`` is a scikit-learn estimator, so
``RandomizedSearchCV`` tunes it like any other: here in a pipeline after a
``StandardScaler``, drawing the learning rate and the L2 penalty from
``scipy.stats.loguniform`` (a rate of 1e-3 is as far from 1e-2 as 1e-2 is from
1e-1: search them on a log scale). The search's parameter names reach into
``model_kwargs``: ``sklearnclassifier__model_kwargs__learning_rate`` is the
``learning_rate`` argument of ``fastnn.wrappers.build_mlp``.

Prints the best parameters, their cross-validated accuracy and the accuracy
on a held-out quarter of the data, and saves the cross-validated accuracy of
every draw against its learning rate (log axis, colour = L2 strength) as
``hyperparameter_search.png``. ``n_jobs=-1`` spreads the fits over the cores;
inside ``joblib.parallel_backend("dask")`` over a Dask cluster (docs/sklearn.md).
"""
from pathlib import Path

from scipy.stats import loguniform
from sklearn.datasets import load_digits
from sklearn.model_selection import RandomizedSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastnn.wrappers import SKLearnClassifier, build_mlp

PREFIX = "sklearnclassifier__model_kwargs__"


def search(n_iter=16, epochs=20, cv=3, n_jobs=1, seed=0):
    """The fitted RandomizedSearchCV and the held-out (X, y)."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=seed)
    classifier = SKLearnClassifier(build_mlp, model_kwargs={"hidden_layer_sizes": (64,)},
                                   fit_kwargs={"epochs": epochs, "batch_size": 32},
                                   random_state=seed)
    pipeline = make_pipeline(StandardScaler(), classifier)
    distributions = {PREFIX + "learning_rate": loguniform(1e-4, 1e-1),
                     PREFIX + "l2": loguniform(1e-6, 1e-2)}
    searcher = RandomizedSearchCV(pipeline, distributions, n_iter=n_iter, cv=cv,
                                  n_jobs=n_jobs, random_state=seed)
    searcher.fit(X_train, y_train)
    return searcher, (X_test, y_test)


def plot(results, path):
    """Cross-validated accuracy against learning rate (log x), coloured by L2 strength."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    rates = [float(r) for r in results["param_" + PREFIX + "learning_rate"]]
    l2 = [float(v) for v in results["param_" + PREFIX + "l2"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    points = ax.scatter(rates, results["mean_test_score"], c=l2, norm=LogNorm(), cmap="viridis",
                        s=40, edgecolors="black", linewidths=0.5)
    ax.errorbar(rates, results["mean_test_score"], yerr=results["std_test_score"], fmt="none",
                ecolor="grey", alpha=0.6, zorder=0)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (RMSprop)")
    ax.set_ylabel("cross-validated accuracy")
    ax.set_title("Random search on digits: accuracy vs learning rate")
    fig.colorbar(points, ax=ax, label="L2 strength")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(n_iter=16, epochs=20, cv=3, n_jobs=1, out_dir=None):
    """Run the search, print the best draw, save the plot; returns the figures as a dict."""
    out_dir = Path(out_dir or Path(__file__).parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    searcher, (X_test, y_test) = search(n_iter=n_iter, epochs=epochs, cv=cv, n_jobs=n_jobs)
    best = {name[len(PREFIX):]: value for name, value in searcher.best_params_.items()}
    test_score = searcher.score(X_test, y_test)
    print("best parameters: " + ", ".join(f"{k} {v:.3g}" for k, v in sorted(best.items())))
    print(f"best cross-validated accuracy {searcher.best_score_:.4f}, "
          f"held-out accuracy {test_score:.4f}")
    path = out_dir / "hyperparameter_search.png"
    plot(searcher.cv_results_, path)
    return {"best_params": best, "best_score": float(searcher.best_score_),
            "test_score": float(test_score), "n_candidates": len(searcher.cv_results_["params"]),
            "plot": path}


if __name__ == "__main__":
    main()

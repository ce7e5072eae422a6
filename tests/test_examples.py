"""Smoke tests: every example's ``main`` runs with few epochs and writes readable output."""
import importlib.util
import math
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

EXAMPLES = None  # set from the repo_root fixture: the examples are not part of the package
# Examples tested elsewhere (they start a server rather than train).
TESTED_ELSEWHERE = {"serve"}


@pytest.fixture(autouse=True, scope="module")
def _examples_dir(repo_root):
    global EXAMPLES
    EXAMPLES = repo_root / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_png(path):
    path = Path(path)
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), f"{path} is not a PNG"
    assert len(data) > 5_000, f"{path} is suspiciously small ({len(data)} bytes)"


def test_every_example_has_a_smoke_test():
    tested = {name[len("test_"):] for name in globals() if name.startswith("test_")}
    names = {p.stem for p in EXAMPLES.glob("*.py")} - TESTED_ELSEWHERE
    assert names, f"no examples found in {EXAMPLES}"
    assert names <= tested, f"examples without a smoke test: {sorted(names - tested)}"


def test_digits():
    assert load("digits").main(epochs=3) > 0.8


def test_xor(tmp_path, capsys):
    result = load("xor").main(epochs=300, out_dir=tmp_path)
    assert result["accuracy"] == 1.0
    assert "xor(1, 1) = " in capsys.readouterr().out
    assert_png(tmp_path / "xor_decision_boundary.png")


def test_breast_cancer(tmp_path):
    report = load("breast_cancer").main(epochs=5, out_dir=tmp_path)
    assert report["tp"] + report["fp"] + report["tn"] + report["fn"] == 143
    assert report["accuracy"] > 0.85
    assert 0.5 < report["f1_score"] <= 1.0
    assert 0.5 < report["precision"] <= 1.0 and 0.5 < report["recall"] <= 1.0
    assert_png(report["plot"])


def test_regression(tmp_path):
    result = load("regression").main(epochs=10, out_dir=tmp_path)
    # Better than always predicting the mean (whose MAE is near 0.8 standard deviations).
    assert result["mae"] < 0.8 * result["target_std"]
    for path in result["plots"]:
        assert_png(path)


def test_autoencoder(tmp_path):
    result = load("autoencoder").main(epochs=5, out_dir=tmp_path)
    assert result["mse"] < result["baseline_mse"]
    assert_png(result["plot"])


def test_optimizers(tmp_path):
    result = load("optimizers").main(epochs=2, out_dir=tmp_path)
    assert len(result["losses"]) == 8
    for label, losses in result["losses"].items():
        assert len(losses) == 2 and all(math.isfinite(v) for v in losses), label
        assert losses[1] < losses[0], f"{label} did not reduce the loss"
    assert_png(result["plot"])


def test_overfitting(tmp_path):
    result = load("overfitting").main(epochs=3, out_dir=tmp_path)
    assert list(result["histories"]) == ["no regularisation", "dropout", "batch norm",
                                         "early stopping"]
    assert all(a > 0.3 for a in result["accuracies"].values())  # chance: 0.1
    for variant, logs in result["histories"].items():
        assert 1 <= len(logs["val_loss"]) <= 3, variant
    assert_png(result["plot"])


def test_transfer():
    result = load("transfer").main(epochs=5)
    assert result["frozen_unchanged"]
    for key in ("head_only", "fine_tuned", "from_scratch"):
        assert result[key] > 0.6, key  # odd-or-even: chance is 0.5


def test_hyperparameter_search(tmp_path, capsys):
    result = load("hyperparameter_search").main(n_iter=2, epochs=2, cv=2, out_dir=tmp_path)
    assert result["n_candidates"] == 2
    assert set(result["best_params"]) == {"learning_rate", "l2"}
    assert 1e-4 <= result["best_params"]["learning_rate"] <= 1e-1
    assert result["best_score"] > 0.3 and result["test_score"] > 0.3  # chance: 0.1
    assert "best parameters:" in capsys.readouterr().out
    assert_png(result["plot"])

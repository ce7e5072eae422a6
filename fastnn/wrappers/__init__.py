"""scikit-learn estimators around fastnn models: ``SKLearnClassifier``,
``SKLearnRegressor`` and ``SKLearnTransformer`` (Keras 3's ``keras.wrappers``).

Importing ``fastnn.wrappers`` does not import scikit-learn; the estimators are
loaded (and scikit-learn with them) on first use, so scikit-learn stays an
optional dependency: ``pip install "fastnn-toolkit[sklearn]"``.
"""
from .builders import build_mlp

_ESTIMATORS = ("SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer")

# Checks of sklearn.utils.estimator_checks.check_estimator that an estimator is
# expected to fail, with the reason: {estimator class name: {check name: reason}}.
# Pass ``EXPECTED_FAILED_CHECKS[type(est).__name__]`` as ``expected_failed_checks``.
_SAMPLE_WEIGHT_ROUNDING = (
    "float32 training sums weighted samples and repeated samples in different orders, so "
    "the two fits agree to about 1e-6, not to the check's rtol=1e-7 (the semantics hold: "
    "weights are rescaled to mean 1, so with full batches integer weights train as "
    "repeated samples do; float64 layers pass the check's tolerance for the regressor "
    "and transformer)")
EXPECTED_FAILED_CHECKS = {
    name: {"check_sample_weight_equivalence_on_dense_data": _SAMPLE_WEIGHT_ROUNDING}
    for name in _ESTIMATORS}


def __getattr__(name):
    if name in _ESTIMATORS:
        try:
            from . import sklearn_wrapper
        except ImportError as exc:
            raise ImportError(f"fastnn.wrappers.{name} needs scikit-learn>=1.6: "
                              f'pip install "fastnn-toolkit[sklearn]"') from exc
        return getattr(sklearn_wrapper, name)
    raise AttributeError(f"module 'fastnn.wrappers' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_ESTIMATORS))


__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer", "build_mlp",
           "EXPECTED_FAILED_CHECKS"]

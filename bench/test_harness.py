"""The harness's own logic, no timing: the low-precision rows' error figures, the
fastnn quantized rows through a stand-in ``quantize``, and compare_commits' pooling.

Runs with the other files here (``python -m pytest bench/``); ``--benchmark-only``
skips it (it takes no benchmark fixture).
"""
import numpy
import pytest

import _workloads as wl
import compare
import compare_commits
import fastnn
from _runners import Unavailable, _quantize, output_error


@pytest.fixture
def keep_threads():
    threads = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(threads)


def _round_weights_int8(model, mode):
    """A stand-in for ``Sequential.quantize``: int8 per-tensor rounding of every weight."""
    if mode != "int8":
        raise NotImplementedError(f"the stand-in has only int8, not {mode}")
    rounded = []
    for w in model.get_weights():
        scale = float(numpy.abs(w).max()) / 127 or 1.0
        rounded.append((numpy.round(w / scale) * scale).astype(w.dtype))
    model.set_weights(rounded)


def test_output_error():
    ref = numpy.array([[0.1, 0.9], [0.6, 0.4]])
    low = numpy.array([[0.1, 0.9], [0.4, 0.6]])
    err = output_error([low], ref)  # onnxruntime's list of outputs is unwrapped
    assert err["rel_error"] == pytest.approx(numpy.sqrt(0.08) / numpy.sqrt(1.34))
    assert err["max_abs_error"] == pytest.approx(0.2)
    assert err["argmax_agreement"] == 0.5


def test_quantize_missing_is_unavailable():
    with pytest.raises(Unavailable, match="has no quantize"):
        _quantize(object(), "int8")


def test_quantized_fastnn_rows(monkeypatch, keep_threads):
    pytest.importorskip("sklearn")
    monkeypatch.setattr(fastnn.Sequential, "quantize", _round_weights_int8, raising=False)
    specs = wl.workloads(smoke=True, only=["infer_b256", "digits"])
    int8 = compare.run_worker("fastnn_int8", 1, specs, repeats=1)["results"]
    for row in ("fastnn_int8.predict_on_batch", "fastnn_int8.predict"):
        result = int8["infer_b256"][row]
        assert result["time_s"] > 0
        assert 0 < result["rel_error"] < 0.05, result  # rounded weights: small, not zero
        assert result["argmax_agreement"] > 0.5
    digits = int8["digits"]["fastnn_int8"]
    assert 0 < digits["rel_error"] < 0.05 and 0 < digits["accuracy"] <= 1
    assert abs(digits["accuracy"] - digits["accuracy_fp32"]) < 0.1
    bf16 = compare.run_worker("fastnn_bf16", 1, specs, repeats=1)["results"]
    assert "not implemented" in bf16["infer_b256"]["fastnn_bf16"]["unavailable"]


def _doc(times):
    return {"results": {"1": {"infer_b1": {"fastnn.predict_on_batch": {"times_s": times},
                                           "torch": {"unavailable": "not installed"}}}}}


def test_compare_commits_pools_rounds():
    pooled = {"base": compare_commits.pool([_doc([1.0, 3.0]), _doc([2.0])]),
              "head": compare_commits.pool([_doc([1.0]), _doc([1.0, 0.5])])}
    summary = compare_commits.summarize(pooled, ["infer_b1"])
    row = summary["1"]["infer_b1"]["fastnn.predict_on_batch"]
    assert (row["base_s"], row["head_s"], row["base_n"]) == (2.0, 1.0, 3)
    assert row["ratio"] == 0.5
    assert "torch" not in summary["1"]["infer_b1"]  # rows without times are left out

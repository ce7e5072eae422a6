"""How much int8 and bf16 weights change a trained network's outputs: a small MLP
trained on scikit-learn's digits, each layer run in float32 and with quantized
weights on the same inputs (the per-layer relative error is printed and bounded),
and the quantized network's predictions against the float32 one's."""
import numpy
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_digits  # noqa: E402

from fastnn._kernels import _quant  # noqa: E402
from fastnn.backend.ops import Ops  # noqa: E402


def train_mlp(X, y, sizes=(64, 64, 32, 10), epochs=300, lr=0.5, seed=0):
    """Full-batch gradient descent on softmax cross-entropy, ReLU hidden layers."""
    rng = numpy.random.default_rng(seed)
    Ws = [rng.standard_normal((a, b)) * numpy.sqrt(2.0 / a) for a, b in zip(sizes, sizes[1:])]
    bs = [numpy.zeros(b) for b in sizes[1:]]
    Y = numpy.eye(sizes[-1])[y]
    for _ in range(epochs):
        acts = [X]
        for i, (W, b) in enumerate(zip(Ws, bs)):
            z = acts[-1] @ W + b
            acts.append(numpy.maximum(z, 0) if i < len(Ws) - 1 else z)
        p = numpy.exp(acts[-1] - acts[-1].max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        d = (p - Y) / len(X)
        for i in reversed(range(len(Ws))):
            gW, gb = acts[i].T @ d, d.sum(axis=0)
            if i:
                d = (d @ Ws[i].T) * (acts[i] > 0)
            Ws[i] -= lr * gW
            bs[i] -= lr * gb
    return [W.astype(numpy.float32) for W in Ws], [b.astype(numpy.float32) for b in bs]


def test_int8_and_bf16_layer_errors_on_digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(numpy.float32)
    Ws, bs = train_mlp(X[:1200], y[:1200])
    Xt = X[1200:]
    last = len(Ws) - 1
    h = Xt
    int8_errors, bf16_errors = [], []
    h8 = Xt
    for i, (W, b) in enumerate(zip(Ws, bs)):
        relu = i < last
        y32 = h @ W + b
        if relu:
            y32 = numpy.maximum(y32, 0)
        Wq, s = Ops().quantize_int8(W)
        y8 = _quant.int8_dense(h, _quant.pack_int8(Wq), s, b, None, 1, relu)
        yb = _quant.bf16_dense(h, _quant.pack_bf16(_quant.to_bf16(W)), b, None, 1, relu)
        int8_errors.append(float(numpy.linalg.norm(y8 - y32) / numpy.linalg.norm(y32)))
        bf16_errors.append(float(numpy.linalg.norm(yb - y32) / numpy.linalg.norm(y32)))
        h8 = _quant.int8_dense(h8, _quant.pack_int8(Wq), s, b, None, 1, relu)
        h = y32
    print("int8 per-layer relative error:", ["%.4f" % e for e in int8_errors])
    print("bf16 per-layer relative error:", ["%.5f" % e for e in bf16_errors])
    assert max(int8_errors) < 0.02
    assert max(bf16_errors) < 0.005
    assert min(int8_errors) > 0  # the quantized path really is another computation
    accuracy32 = float((h.argmax(axis=1) == y[1200:]).mean())
    agree = float((h8.argmax(axis=1) == h.argmax(axis=1)).mean())
    print(f"float32 test accuracy {accuracy32:.3f}; int8 predictions agree on {agree:.3f}")
    assert accuracy32 > 0.85
    assert agree >= 0.97

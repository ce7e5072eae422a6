"""The reference way to run a stage: array code through the Ops.

A stage lowered from a layer runs that layer's own ``forward``/``backward``
(whose math is the Ops: kernels on "cpu", array code on "numpy"/"cupy"). A
stage a rewrite made (a folded Dense, an AFFINE, a quantized Dense) has no
layer method that computes it, so its inference math is here.
"""
from .stages import Kind


class HostPart:
    """One stage run through the Ops (see the module docstring).

    Args:
        ops: the backend's Ops.
        stage: the stage.
        logits_head: the program's fused head: the layer leaves its activation to the loss.
        training: part of a training program (keeps its cache for ``backward``).
    """

    trainable = property(lambda self: bool(self.layer is not None
                                           and self.layer.trainable_weights))

    def __init__(self, ops, stage, logits_head=False, training=True):
        self.ops, self.stage, self.layer = ops, stage, stage.layer
        self._kwargs = {"apply_activation": False} if logits_head else {}
        self._cache = self._activity_grad = None

    def forward(self, x, training):
        """(output, activity penalty) of a training-program pass; keeps the cache."""
        layer = self.layer
        training = training and not self.stage.inference_only
        x, self._cache = layer.forward(x, training, **self._kwargs)
        if layer.activity_regularizer is None:
            return x, 0.0
        penalty, grad = activity_penalty(self.ops, layer, x)
        self._activity_grad = grad if training else None
        return x, penalty

    def backward(self, dy, need_dx):
        if self._activity_grad is not None:
            dy = dy + self._activity_grad
        cache, self._cache, self._activity_grad = self._cache, None, None
        return self.layer.backward(dy, cache, need_dx=need_dx, **self._kwargs)

    def predict_uses_blas(self, n):
        """Whether ``infer`` may call BLAS: any layer's own forward may; the quantized
        kernels, activations and affine maps do not."""
        return self.stage.kind not in _NO_BLAS

    def predict_can_thread(self, n):
        return self.stage.kind not in (Kind.ACTIVATION, Kind.AFFINE)

    def infer(self, x, nthreads=1):
        """Inference output; stores nothing (thread-safe)."""
        stage = self.stage
        if stage.kind in _REWRITTEN:
            return _REWRITTEN[stage.kind](self.ops, stage, x)
        return self.layer.forward(x, False)[0]


def _dense(ops, stage, x):
    out = ops.xp.empty((x.shape[0], stage.kernel.shape[1]), dtype=x.dtype)
    if stage.bias is None:
        ops.gemm(x, stage.kernel, out=out)
    else:
        out[...] = stage.bias
        ops.gemm(x, stage.kernel, out=out, beta=1.0)
    return out if stage.act_name == "linear" else stage.activation.forward(ops, out, out=out)


def _affine(ops, stage, x):
    y = x * stage.scale
    y += stage.shift
    return y


def _activation(ops, stage, x):
    return stage.activation.forward(ops, x)


def _quantized(ops, stage, x):
    out = stage.quantized.dense(ops, x)
    return out if stage.act_name == "linear" else stage.activation.forward(ops, out, out=out)


_NO_BLAS = (Kind.ACTIVATION, Kind.AFFINE, Kind.INT8_DENSE, Kind.BF16_DENSE)

# Inference math of the stage kinds an inference program runs without their layer.
_REWRITTEN = {Kind.DENSE: _dense, Kind.AFFINE: _affine, Kind.ACTIVATION: _activation,
              Kind.INT8_DENSE: _quantized, Kind.BF16_DENSE: _quantized}


def activity_penalty(ops, layer, out):
    """``layer``'s activity penalty on its output ``out`` and the penalty's gradient, both
    divided by the batch size (Keras 3)."""
    n = out.shape[0]
    grad = ops.xp.zeros_like(out)
    layer.activity_regularizer.add_gradient(ops, out, grad)
    grad *= grad.dtype.type(1.0 / n)
    return layer.activity_regularizer.penalty(ops, out) / n, grad


def loss_and_outputs(ops, loss, out, y, sample_weight, grad, fused_head=False,
                     loss_weight=1.0):
    """(loss value, model output) of the head output ``out``; fills ``grad`` with the
    loss gradient (None: evaluation). A fused head's output is the loss's probabilities."""
    probs = ops.xp.empty_like(out) if fused_head else None
    value = loss.value_and_grad(ops, out, y, grad, sample_weight, on_logits=fused_head,
                                probs_out=probs)
    if loss_weight != 1.0:  # compile(loss_weights=...)
        value *= loss_weight
        if grad is not None:
            grad *= grad.dtype.type(loss_weight)
    return value, (probs if fused_head else out)
